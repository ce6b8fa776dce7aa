// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_SYNC_EVENT_COUNT_HPP
#define AGENTBUS_DETAIL_SYNC_EVENT_COUNT_HPP

// An event count (folly's EventCount shape: prepare_wait / cancel_wait / wait / notify): lets
// a thread sleep until another makes progress, at no cost to the notifier while nobody
// sleeps. Knows nothing of the bus; mpmc_queue parks its blocking calls on it.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/config.hpp"

namespace agentbus::detail {

/// @brief Event count that lets a thread sleep until another makes progress
/// (blocking queue calls), at no cost to the other side while nobody sleeps.
///
/// Waiters register (`prepare_*`), re-check their condition, then sleep until
/// the epoch differs from the key they read at registration. Notifiers check
/// `has_waiters()` first and only then bump the epoch and wake.
class event_count {
 public:
  /// @brief True when some thread is registered as a waiter. A plain load on
  /// x86; the line is only written by threads that are about to sleep.
  [[nodiscard]] bool has_waiters() const noexcept {
    return waiters_.load(std::memory_order_seq_cst) != 0;
  }

  /// @brief Registers an untimed waiter; returns the key to wait on.
  [[nodiscard]] std::uint32_t prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_seq_cst);
  }

  /// @brief Registers a timed waiter; returns the key to wait on.
  [[nodiscard]] std::uint32_t prepare_timed_wait() noexcept {
    // Counted as timed before counted as a waiter: a notifier that sees the
    // waiter also sees that it needs the condition variable.
    timed_waiters_.fetch_add(1, std::memory_order_seq_cst);
    return prepare_wait();
  }

  /// @brief Withdraws an untimed registration without sleeping.
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_seq_cst); }

  /// @brief Withdraws a timed registration without sleeping.
  void cancel_timed_wait() noexcept {
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    timed_waiters_.fetch_sub(1, std::memory_order_seq_cst);
  }

  /// @brief Sleeps until the epoch moves past `key`, then withdraws.
  void wait(std::uint32_t key) noexcept {
    epoch_.wait(key, std::memory_order_seq_cst);
    cancel_wait();
  }

  /// @brief Sleeps until the epoch moves past `key` or `deadline` passes, then
  /// withdraws. Returns false on timeout.
  bool wait_until(std::uint32_t key, std::chrono::steady_clock::time_point deadline) {
    bool woken = true;
    {
      std::unique_lock<std::mutex> lock(timed_mutex_);
      while (epoch_.load(std::memory_order_seq_cst) == key) {
        if (timed_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
          woken = epoch_.load(std::memory_order_seq_cst) != key;
          break;
        }
      }
    }
    cancel_timed_wait();
    return woken;
  }

  /// @brief Wakes one sleeper if anyone is registered (cheap when nobody is).
  void notify_one() noexcept {
    if (AGENTBUS_UNLIKELY(has_waiters())) wake(false);
  }

  /// @brief Wakes every sleeper unconditionally (used by close()).
  void notify_all() noexcept { wake(true); }

 private:
  AGENTBUS_NOINLINE void wake(bool all) noexcept {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (all) {
      epoch_.notify_all();
    } else {
      epoch_.notify_one();
    }
    if (timed_waiters_.load(std::memory_order_seq_cst) != 0) {
      // Taking the mutex orders this wake-up after a timed waiter's check of
      // the epoch, so it cannot slip in between that check and its sleep.
      { std::lock_guard<std::mutex> lock(timed_mutex_); }
      timed_cv_.notify_all();
    }
  }

  // Two cache lines apart: x86 cores prefetch the adjacent line of a 128-byte pair.
  static constexpr std::size_t isolation = 2 * cache_line_size;

  // The hot pair (read by every notifier, written only by sleepers) has a
  // line of its own; the timed machinery is touched only on slow paths.
  alignas(isolation) std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> timed_waiters_{0};
  alignas(isolation) std::mutex timed_mutex_;
  std::condition_variable timed_cv_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_SYNC_EVENT_COUNT_HPP
