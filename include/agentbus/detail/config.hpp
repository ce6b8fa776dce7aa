// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_CONFIG_HPP
#define AGENTBUS_DETAIL_CONFIG_HPP

#include <atomic>
#include <cstddef>

// Detect ThreadSanitizer (GCC defines __SANITIZE_THREAD__, Clang has __has_feature).
#if defined(__SANITIZE_THREAD__)
#define AGENTBUS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AGENTBUS_TSAN 1
#endif
#endif
#ifndef AGENTBUS_TSAN
#define AGENTBUS_TSAN 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AGENTBUS_LIKELY(x) __builtin_expect(!!(x), 1)
#define AGENTBUS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define AGENTBUS_NOINLINE __attribute__((noinline))
#define AGENTBUS_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define AGENTBUS_LIKELY(x) (x)
#define AGENTBUS_UNLIKELY(x) (x)
#define AGENTBUS_NOINLINE
#define AGENTBUS_ALWAYS_INLINE inline
#endif

namespace agentbus::detail {

/// @brief Size we pad to so that independently written atomics never share a cache line.
/// 64 bytes on x86-64 and most ARM cores; std::hardware_destructive_interference_size
/// is avoided because GCC warns that its value may change between compiler versions (an ABI hazard).
inline constexpr std::size_t cache_line_size = 64;

/// @brief Spin-loop hint: tells the core we are busy-waiting (PAUSE on x86, YIELD on ARM).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

/// @brief A full (sequentially consistent) fence. ThreadSanitizer does not model stand-alone
/// fences, so under TSan a seq_cst read-modify-write on a shared dummy stands in for it.
inline void full_fence() noexcept {
#if AGENTBUS_TSAN
  static std::atomic<int> dummy{0};
  dummy.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_CONFIG_HPP
