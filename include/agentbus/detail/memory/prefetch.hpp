// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_MEMORY_PREFETCH_HPP
#define AGENTBUS_DETAIL_MEMORY_PREFETCH_HPP

// Cache-line prefetch hints, one copy for the block pool, the queue and the mailbox.

namespace agentbus::detail {

/// Asks the core for the cache line at `p` in a writable state (a hint; never faults).
inline void prefetch_for_write(const void* p) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  // PREFETCHW: executed as a no-op by x86 cores that predate it. Written out because GCC
  // only emits it for __builtin_prefetch(p, 1) when the target flags include PRFCHW.
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 1, 3);
#else
  (void)p;
#endif
}

/// Asks the core for the cache line at `p` for reading (a hint; never faults).
inline void prefetch_for_read(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_MEMORY_PREFETCH_HPP
