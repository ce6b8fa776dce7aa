// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_DETAIL_TIMER_HPP
#define AGENTBUS_REPLY_DETAIL_TIMER_HPP

// What notices a deadline nobody waits for: the request timer.
//
// A future's deadline is noticed by the thread waiting in get(). A callback request (and a
// request through a circuit breaker) has no such thread, so it is armed on the timer of the
// clock_source its timeout is measured on: one timer per clock, process-wide, made on first
// use, each with one thread ("the timer thread") that sleeps on that clock until the earliest
// deadline and then ends every request that is due with request_errc::timeout, which runs
// their callbacks on the timer thread. The steady clock's timer sleeps on a condition variable
// with that deadline; a manual clock's timer sleeps in manual_clock::wait_until(), so that
// advance() wakes it and due timeouts fire without any real time passing.
//
// A request that ends otherwise (a reply, a failure, a cancel) is disarmed: its entry goes, so
// nothing of it stays behind. The timer thread waits on the clock only while requests are
// armed on it; disarming the last one of a clock other than the steady one waits until the
// timer thread has left the clock (a few microseconds), so that the clock may be destroyed
// once its last request has ended. Timers and their threads are never destroyed (one per
// clock object address the process ever armed a request on; an idle one sleeps on its own
// condition variable and reads no clock).

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "agentbus/core/clock.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/reply/detail/pending.hpp"

namespace agentbus::detail {

// deadline_after (core/clock.hpp): now + a timeout, saturated.

class request_timer {
 public:
  using time_point = clock_source::time_point;

  /// The timer of `clock` (null: the steady clock's).
  static request_timer& of(clock_source* clock) {
    if (clock == nullptr || clock == &clock_source::steady()) {
      static request_timer* steady = new request_timer(nullptr);  // immortal, like its thread
      return *steady;
    }
    static registry* timers = new registry;
    std::lock_guard lock(timers->mutex);
    for (request_timer* t : timers->all)
      if (t->clock_ == clock) return *t;
    timers->all.push_back(new request_timer(clock));
    return *timers->all.back();
  }

  request_timer(const request_timer&) = delete;
  request_timer& operator=(const request_timer&) = delete;

  /// Ends `state` with timeout at `deadline` (on this timer's clock) unless disarmed first.
  /// Starts the timer thread on first use (std::system_error if it cannot).
  void arm(std::shared_ptr<pending_reply> state, time_point deadline) {
    std::lock_guard lock(mutex_);
    if (!started_) {
      std::thread([this] { run(); }).detach();
      started_ = true;
    }
    state->timer = this;
    state->deadline = deadline;
    const bool earliest = entries_.empty() || deadline < entries_.begin()->first.first;
    entries_.emplace(key{deadline, state->id}, std::move(state));
    if (earliest) wake_.notify_one();
  }

  /// Moves the deadline of `state`, armed on this timer, earlier to `deadline` (a bridge that
  /// gives up sooner); nothing when it is not armed here any more or already due sooner.
  void advance(const pending_reply& state, time_point deadline) noexcept {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key{state.deadline, state.id});
    if (it == entries_.end() || deadline >= state.deadline) return;
    auto entry = entries_.extract(it);  // re-keyed in place: nothing to allocate
    entry.key() = key{deadline, state.id};
    entry.mapped()->deadline = deadline;
    const bool earliest = entries_.empty() || deadline < entries_.begin()->first.first;
    entries_.insert(std::move(entry));
    if (earliest) wake_.notify_one();
  }

  /// Forgets `state` (it ended before its deadline). Called by whoever ended it.
  void disarm(const pending_reply& state) noexcept {
    std::shared_ptr<pending_reply> gone;  // released outside the lock
    std::unique_lock lock(mutex_);
    const auto it = entries_.find(key{state.deadline, state.id});
    if (it == entries_.end()) return;  // expired (the timer thread took it) or never armed
    gone = std::move(it->second);
    entries_.erase(it);
    if (entries_.empty() && clock_ != nullptr && in_clock_wait_ && std::this_thread::get_id() != thread_) {
      // The last request on this clock: the clock may be destroyed as soon as it has ended,
      // so the timer thread must leave its wait_until() first. (If other requests are armed
      // meanwhile it goes back to waiting on the clock, which they keep alive: what counts is
      // that it has left the wait it was in.)
      const std::uint64_t exits = clock_exits_;
      wake_.notify_all();
      left_clock_.wait(lock, [&] { return !in_clock_wait_ || clock_exits_ != exits; });
    }
    lock.unlock();
  }

  /// Requests armed now (tests).
  std::size_t armed() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  /// How many times the timer thread has looked for due requests (tests: that it has seen an
  /// advance of a manual clock).
  std::uint64_t passes() const {
    std::lock_guard lock(mutex_);
    return passes_;
  }

 private:
  struct registry {
    std::mutex mutex;
    std::vector<request_timer*> all;
  };
  using key = std::pair<time_point, std::uint64_t>;  // (deadline, request id): unique

  explicit request_timer(clock_source* clock) noexcept : clock_(clock) {}

  time_point now() const noexcept { return clock_ == nullptr ? std::chrono::steady_clock::now() : clock_->now(); }

  void run() noexcept {
    std::unique_lock lock(mutex_);
    thread_ = std::this_thread::get_id();
    std::vector<std::shared_ptr<pending_reply>> due;
    for (;;) {
      if (entries_.empty()) {
        wake_.wait(lock);  // idle: no clock is read
        continue;
      }
      const time_point t = now();
      ++passes_;
      while (!entries_.empty() && entries_.begin()->first.first <= t) {
        due.push_back(std::move(entries_.begin()->second));
        entries_.erase(entries_.begin());
      }
      if (!due.empty()) {
        lock.unlock();
        for (auto& s : due) s->end(request_errc::timeout);  // runs callbacks: no lock held
        due.clear();
        lock.lock();
        continue;
      }
      const time_point next = entries_.begin()->first.first;
      if (clock_ == nullptr) {
        wake_.wait_until(lock, next);
      } else {
        in_clock_wait_ = true;
        clock_->wait_until(lock, wake_, next);
        in_clock_wait_ = false;
        ++clock_exits_;
        left_clock_.notify_all();
      }
    }
  }

  clock_source* const clock_;  // null: the steady clock (read directly: it is never destroyed)
  mutable std::mutex mutex_;
  std::condition_variable wake_;        // a new earliest deadline, or the last entry gone
  std::condition_variable left_clock_;  // the thread left clock_->wait_until()
  std::map<key, std::shared_ptr<pending_reply>> entries_;
  bool started_ = false;
  bool in_clock_wait_ = false;
  std::uint64_t clock_exits_ = 0;  // returns from clock_->wait_until()
  std::thread::id thread_{};
  std::uint64_t passes_ = 0;
};

/// Releases what a request holds in the process once it has ended: its timer entry and its
/// table entry (replies that come later find nothing and are counted as late).
inline void release_request(const pending_reply& state) noexcept {
  if (state.timer != nullptr) state.timer->disarm(state);
  reply_table::instance().remove(state.id);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_REPLY_DETAIL_TIMER_HPP
