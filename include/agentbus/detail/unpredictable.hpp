// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_UNPREDICTABLE_HPP
#define AGENTBUS_DETAIL_UNPREDICTABLE_HPP

// 64 bits that differ from one process to the next (and from call to call): where ids must
// not repeat across restarts of a program (request ids, which a journal stores with requests;
// a NATS bridge's origin id). Not for cryptography.

#include <chrono>
#include <cstdint>
#include <random>

namespace agentbus::detail {

/// @brief std::random_device mixed with the steady clock (in case the device is deterministic
/// or throws), through the splitmix64 finalizer so that every bit depends on all of them.
inline std::uint64_t unpredictable_u64() noexcept {
  std::uint64_t v = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  try {
    std::random_device device;
    v ^= (std::uint64_t{device()} << 32) ^ device();
  } catch (...) {  // no entropy source: the clock alone
  }
  v += 0x9e3779b97f4a7c15U;
  v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9U;
  v = (v ^ (v >> 27)) * 0x94d049bb133111ebU;
  return v ^ (v >> 31);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_UNPREDICTABLE_HPP
