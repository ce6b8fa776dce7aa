// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_UNPREDICTABLE_HPP
#define AGENTBUS_DETAIL_UNPREDICTABLE_HPP

// 64 bits that differ from one process to the next (and from call to call): where ids must
// not repeat across restarts of a program (request ids, which a journal stores with requests;
// a NATS bridge's origin id). Not for cryptography.
//
// The operating system's entropy call where there is one (getentropy: Linux, macOS, the BSDs),
// not std::random_device: <random> brings every engine and distribution along, 0.1 s of the
// parse of every translation unit that includes agentbus.hpp (bench/compile).

#include <atomic>
#include <cstdint>

#include "agentbus/detail/chrono.hpp"

#if defined(__has_include)
#if __has_include(<sys/random.h>) && (defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__) || \
                                      defined(__OpenBSD__) || defined(__NetBSD__))
#include <sys/random.h>
#define AGENTBUS_HAVE_GETENTROPY 1
#endif
#endif

namespace agentbus::detail {

/// The splitmix64 finalizer: every bit of the result depends on every bit of `v`.
constexpr std::uint64_t mix64(std::uint64_t v) noexcept {
  v += 0x9e3779b97f4a7c15U;
  v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9U;
  v = (v ^ (v >> 27)) * 0x94d049bb133111ebU;
  return v ^ (v >> 31);
}

/// @brief The operating system's entropy (getentropy, where there is one) mixed with both
/// clocks, the address of a thread's variable (which address-space randomisation moves from
/// run to run) and a count of calls, through mix64. Without an entropy call two processes
/// still differ by their start times and addresses, and two calls always by the count.
inline std::uint64_t unpredictable_u64() noexcept {
  static std::atomic<std::uint64_t> calls{0};
  thread_local const char here = 0;
  std::uint64_t v = mix64(static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  v ^= mix64(static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) ^ 1);
  v ^= mix64(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&here)) ^ 2);
  v ^= mix64(calls.fetch_add(1, std::memory_order_relaxed) ^ 3);
#if defined(AGENTBUS_HAVE_GETENTROPY)
  std::uint64_t entropy = 0;
  if (getentropy(&entropy, sizeof entropy) == 0) v ^= mix64(entropy ^ 4);
#endif
  return mix64(v);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_UNPREDICTABLE_HPP
