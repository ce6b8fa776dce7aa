// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_CLOCK_HPP
#define AGENTBUS_CORE_CLOCK_HPP

// The one clock everything time-driven reads (ack deadlines, redelivery backoff, request
// timeouts, breaker cool-downs), so that a test can replace it:
//
//   agentbus::manual_clock clock;                          // starts at an arbitrary epoch
//   agentbus::durable_consumer<order> c(bus, "billing", "orders.>", {.clock = &clock});
//   ... clock.advance(5s); c.poll(handler);                // the deadline has passed: no sleep
//
// A component takes a `clock_source*` in its options (field `clock`); null means
// clock_source::steady(), the process's monotonic clock. (Not named `clock`: that would
// collide with ::clock() from <ctime> under `using namespace agentbus`.) A clock must outlive
// every component that reads it.
//
// Waiting: a component that blocks until a deadline of this clock calls wait_until(). The
// steady clock waits on the condition variable with that deadline; a manual clock waits until
// it is advanced (or the condition variable is notified), since no amount of real time brings a
// manual deadline closer. Either way the caller re-checks its condition afterwards (spurious
// wake-ups are allowed, as for std::condition_variable).
//
// Thread safety: now(), advance() and wait_until() may be called from any thread concurrently.

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <vector>

#include "agentbus/detail/chrono.hpp"

namespace agentbus {

/// @brief A source of monotonic time (see the top of core/clock.hpp).
class clock_source {
 public:
  /// @brief Durations of this clock: those of std::chrono::steady_clock.
  using duration = std::chrono::steady_clock::duration;
  /// @brief Points of this clock, on steady_clock's time line (a manual clock starts anywhere on it).
  using time_point = std::chrono::steady_clock::time_point;

  clock_source() = default;
  clock_source(const clock_source&) = delete;
  clock_source& operator=(const clock_source&) = delete;
  virtual ~clock_source() = default;

  /// @brief The current time.
  virtual time_point now() const noexcept = 0;

  /// @brief Blocks on `cv` (whose mutex `lock` holds) until `deadline` of this clock may have
  /// passed or `cv` is notified; the caller re-checks what it waits for.
  virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline) = 0;

  /// @brief The process's monotonic clock (std::chrono::steady_clock): the default.
  static clock_source& steady() noexcept;

  /// @brief `c` when not null, else steady(): what a component does with its options' clock.
  static clock_source& or_steady(clock_source* c) noexcept { return c != nullptr ? *c : steady(); }
};

namespace detail {

/// `t + d`, saturated at the ends of the time line: a timeout, delay or ack_wait of
/// duration::max() means never, not a time in the past (the plain sum overflows).
inline clock_source::time_point deadline_after(clock_source::time_point t, clock_source::duration d) noexcept {
  using duration = clock_source::duration;
  if (d > duration::zero() && t.time_since_epoch() > duration::max() - d) return clock_source::time_point::max();
  if (d < duration::zero() && t.time_since_epoch() < duration::min() - d) return clock_source::time_point::min();
  return t + d;
}

class steady_clock_source final : public clock_source {
 public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline) override {
    cv.wait_until(lock, deadline);
  }
};

}  // namespace detail

inline clock_source& clock_source::steady() noexcept {
  static detail::steady_clock_source source;
  return source;
}

/// @brief A clock that moves only when told to: for tests of anything time-driven.
///
/// Starts at `start` (default: the steady clock's reading when it is made, so that events
/// stamped by the real clock and by this one are comparable). advance() wakes every thread
/// blocked in wait_until() on this clock.
class manual_clock final : public clock_source {
 public:
  /// @brief A manual clock reading the steady clock's current time.
  manual_clock() : now_(std::chrono::steady_clock::now()) {}
  /// @brief A manual clock reading `start`.
  explicit manual_clock(time_point start) : now_(start) {}

  /// @brief The time this clock was set or advanced to.
  time_point now() const noexcept override {
    std::lock_guard guard(mutex_);
    return now_;
  }

  /// @brief Moves the clock forward by `by` (a negative duration is ignored: time is
  /// monotonic) and wakes every waiter.
  void advance(duration by) {
    {
      std::lock_guard guard(mutex_);
      if (by > duration::zero()) now_ += by;
      ++generation_;
    }
    notify_waiters();
  }

  /// @brief Sets the clock to `to` when that is later than now, and wakes every waiter.
  void set(time_point to) {
    {
      std::lock_guard guard(mutex_);
      now_ = std::max(now_, to);
      ++generation_;
    }
    notify_waiters();
  }

  /// @brief How many times the clock was advanced or set (tests use it to tell that a
  /// component is waiting on this clock).
  std::uint64_t generation() const noexcept {
    std::lock_guard guard(mutex_);
    return generation_;
  }

  /// @brief Threads blocked in wait_until() on this clock now.
  std::size_t waiting() const noexcept {
    std::lock_guard guard(mutex_);
    return waiters_.size();
  }

  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline) override {
    std::list<waiter>::iterator self;
    {
      std::lock_guard guard(mutex_);
      if (now_ >= deadline) return;
      self = waiters_.insert(waiters_.end(), waiter{&cv, lock.mutex()});
    }
    // Registered while the caller's mutex is held, and advance() notifies under that mutex: an
    // advance between here and the wait finds this thread already waiting, so its wake-up
    // cannot be missed.
    cv.wait(lock);
    // Leave the list only once no advance() is between reading it and notifying (it may still
    // be about to lock the caller's mutex): the entry must outlive that. The caller's mutex is
    // released meanwhile, which that advance() may need.
    lock.unlock();
    {
      std::unique_lock guard(mutex_);
      notified_.wait(guard, [&] { return self->notifying == 0; });
      waiters_.erase(self);
    }
    lock.lock();
  }

 private:
  struct waiter {
    std::condition_variable* cv;
    std::mutex* mutex;  // the waiter's own mutex, taken to notify (see wait_until)
    int notifying = 0;  // advance() calls between reading this entry and notifying it
  };

  void notify_waiters() {
    std::vector<waiter*> targets;
    {
      std::lock_guard guard(mutex_);
      for (waiter& w : waiters_) {
        ++w.notifying;
        targets.push_back(&w);
      }
    }
    for (waiter* w : targets) {
      std::lock_guard caller(*w->mutex);
      w->cv->notify_all();
    }
    {
      std::lock_guard guard(mutex_);
      for (waiter* w : targets) --w->notifying;
    }
    notified_.notify_all();
  }

  mutable std::mutex mutex_;
  time_point now_;
  std::uint64_t generation_ = 0;
  std::list<waiter> waiters_;  // stable addresses: notify_waiters holds pointers
  std::condition_variable notified_;
};

}  // namespace agentbus

#endif  // AGENTBUS_CORE_CLOCK_HPP
