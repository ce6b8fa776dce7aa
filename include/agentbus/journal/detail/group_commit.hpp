// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_GROUP_COMMIT_HPP
#define AGENTBUS_JOURNAL_DETAIL_GROUP_COMMIT_HPP

// Group commit: many threads need "my record is on disk", one fdatasync can give it to all.
//
// A thread that needs offsets below `target` durable either finds them durable already, or
// becomes the leader if nobody is syncing, or queues up behind the leader. The leader's flush
// function snapshots how far the journal has been written (everything appended so far,
// including the records of the threads now queued behind it), syncs without holding any lock,
// then publishes the new durable mark. While one fdatasync runs (~100 us) the other appenders
// keep appending, so each sync covers a whole batch: with N concurrent appenders, throughput
// grows nearly N-fold over one sync per record.
//
// Waking is directed: each queued thread waits on a condition variable of its own. After a
// flush the leader first hands the leadership straight to the oldest waiter that is still not
// covered (it appended after the snapshot), so the next fdatasync starts without a round of
// wake-ups and mutex contention, then wakes exactly the waiters the flush covered. Nobody is
// woken only to go back to sleep.
//
// A failed flush is sticky: every later wait throws the same journal_error. After an fsync
// error Linux may have dropped the dirty pages, so retrying could report data durable that is
// not; the journal must be reopened (and recovered) instead.

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>

#include "agentbus/detail/chrono.hpp"
#include "agentbus/journal/options.hpp"

namespace agentbus::detail {

/// @brief Leader/follower coordination of flushes (see the file comment).
class group_commit {
 public:
  /// @brief Everything below `initially_durable` is durable already.
  explicit group_commit(std::uint64_t initially_durable = 0) noexcept : durable_(initially_durable) {}

  /// @brief Returns once every offset below `target` is durable. `flush()` (called by the
  /// leader with no lock held) makes everything appended so far durable and returns the
  /// offset up to which it did. Throws journal_error{io} if a flush failed (now or before).
  template <class Flush>
  void wait(std::uint64_t target, Flush&& flush) {
    std::unique_lock lock(mutex_);
    // A thread with a record not yet durable: one of those the last flush released is back.
    if (target > durable_ && expected_ > 0 && --expected_ == 0 && gathering_) gather_cv_.notify_one();
    for (;;) {
      if (!failure_.empty()) throw journal_error(journal_error::code::io, failure_);
      if (durable_ >= target) return;
      if (syncing_) {
        // Queue up; the node lives on this stack and is unlinked (and signalled, under the
        // mutex) by a leader before this thread can return.
        waiter w;
        w.target = target;
        if (tail_) tail_->next = &w;
        else head_ = &w;
        tail_ = &w;
        w.cv.wait(lock, [&] { return w.state != waiter::waiting; });
        if (w.state != waiter::lead) continue;  // covered (or failed): re-check above
        // Handed the leadership: syncing_ stayed true for us.
      } else {
        syncing_ = true;
      }
      gather(lock);
      lock.unlock();
      const auto started = std::chrono::steady_clock::now();
      std::uint64_t done = 0;
      std::string error;
      try {
        done = flush();
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "agentbus journal: flush failed";
      }
      lock.lock();
      last_flush_ = std::chrono::steady_clock::now() - started;
      if (!error.empty()) {
        failure_ = std::move(error);
        syncing_ = false;
        release_all();
        continue;
      }
      durable_ = std::max(durable_, done);
      release_covered();
    }
  }

  /// @brief Offsets below this are durable.
  std::uint64_t durable() const {
    std::lock_guard lock(mutex_);
    return durable_;
  }

  /// @brief The message of the flush failure that stopped the journal, empty if none.
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  struct waiter {
    enum state_t { waiting, released, lead };
    std::uint64_t target = 0;
    state_t state = waiting;
    waiter* next = nullptr;
    std::condition_variable cv;
  };

  // Under mutex_, by a leader about to flush: the threads the last flush released usually
  // append again within microseconds; waiting a little for them (at most a quarter of the last
  // flush's duration, and only while some are still expected) lets one fdatasync cover all of
  // them instead of alternating between half batches.
  void gather(std::unique_lock<std::mutex>& lock) {
    if (expected_ == 0) return;
    const auto limit = std::min<std::chrono::steady_clock::duration>(last_flush_ / 4, std::chrono::microseconds(500));
    const auto deadline = std::chrono::steady_clock::now() + limit;
    gathering_ = true;
    while (expected_ > 0 && failure_.empty()) {
      if (gather_cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
    }
    gathering_ = false;
    expected_ = 0;
  }

  // Under mutex_, after a successful flush: hands the leadership to the first waiter not
  // covered (syncing_ stays true) or ends the sync, then wakes the covered waiters.
  void release_covered() {
    waiter* new_leader = nullptr;
    waiter** link = &head_;
    waiter* prev = nullptr;
    waiter* covered = nullptr;  // unlinked covered waiters, chained through next
    while (waiter* w = *link) {
      if (w->target <= durable_ || new_leader == nullptr) {
        *link = w->next;
        if (w->target <= durable_) {
          w->next = covered;
          covered = w;
        } else {
          new_leader = w;
        }
      } else {
        prev = w;
        link = &w->next;
      }
    }
    tail_ = prev;
    expected_ = 1;  // the leader itself
    for (waiter* w = covered; w; w = w->next) ++expected_;
    if (new_leader) {
      new_leader->state = waiter::lead;
      new_leader->cv.notify_one();
    } else {
      syncing_ = false;
    }
    while (covered) {
      waiter* w = covered;
      covered = w->next;
      w->state = waiter::released;
      w->cv.notify_one();  // under the mutex: w cannot return (and go out of scope) before we are done
    }
  }

  // Under mutex_, after a failed flush: wakes everyone (they throw).
  void release_all() {
    while (waiter* w = head_) {
      head_ = w->next;
      w->state = waiter::released;
      w->cv.notify_one();
    }
    tail_ = nullptr;
  }

  mutable std::mutex mutex_;
  std::uint64_t durable_;
  bool syncing_ = false;
  std::string failure_;
  waiter* head_ = nullptr;  // queued waiters, oldest first
  waiter* tail_ = nullptr;
  // Gathering (see gather()): threads released by the last flush not yet back with a new
  // record, and the last flush's duration.
  std::uint32_t expected_ = 0;
  bool gathering_ = false;
  std::condition_variable gather_cv_;
  std::chrono::steady_clock::duration last_flush_{};
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_GROUP_COMMIT_HPP
