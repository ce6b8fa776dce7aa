// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_SYNC_WORD_LOCK_HPP
#define AGENTBUS_DETAIL_SYNC_WORD_LOCK_HPP

// A mutex in one 32-bit word: the three-state futex mutex of Drepper's "Futexes Are Tricky",
// on std::atomic wait/notify. Uncontended, lock() and unlock() are inline and one atomic
// instruction each; std::mutex costs two calls into the threads library (about 50
// instructions for the pair, measured with callgrind on an unsubscribe). That is most of what
// separates a single unsubscribe (~280 instructions) from its locked operations. Contended, a
// locker spins briefly (critical sections here are short), then sleeps in the kernel.
//
// Not recursive, not fair; a BasicLockable and Lockable for std::lock_guard/unique_lock.

#include <atomic>
#include <cstdint>

#include "agentbus/detail/config.hpp"

namespace agentbus::detail {

class word_lock {
 public:
  word_lock() noexcept = default;
  word_lock(const word_lock&) = delete;
  word_lock& operator=(const word_lock&) = delete;

  AGENTBUS_ALWAYS_INLINE void lock() noexcept {
    std::uint32_t expected = free;
    if (AGENTBUS_LIKELY(state_.compare_exchange_strong(expected, held, std::memory_order_acquire))) return;
    lock_contended();
  }
  AGENTBUS_ALWAYS_INLINE bool try_lock() noexcept {
    std::uint32_t expected = free;
    return state_.compare_exchange_strong(expected, held, std::memory_order_acquire);
  }
  AGENTBUS_ALWAYS_INLINE void unlock() noexcept {
    if (AGENTBUS_UNLIKELY(state_.exchange(free, std::memory_order_release) == held_with_sleepers))
      state_.notify_one();
  }

 private:
  static constexpr std::uint32_t free = 0, held = 1, held_with_sleepers = 2;

  AGENTBUS_NOINLINE void lock_contended() noexcept {
    for (int spins = 0; spins < 64; ++spins) {
      cpu_relax();
      std::uint32_t expected = free;
      if (state_.load(std::memory_order_relaxed) == free &&
          state_.compare_exchange_weak(expected, held, std::memory_order_acquire))
        return;
    }
    // From here on the word says "maybe sleepers", so that the unlocker wakes one; a thread
    // that takes the lock this way keeps that state (it cannot know whether others sleep).
    while (state_.exchange(held_with_sleepers, std::memory_order_acquire) != free)
      state_.wait(held_with_sleepers, std::memory_order_relaxed);
  }

  std::atomic<std::uint32_t> state_{free};
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_SYNC_WORD_LOCK_HPP
