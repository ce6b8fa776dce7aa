// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_HISTORY_HPP
#define AGENTBUS_DELIVERY_HISTORY_HPP

// History as a decorator over any delivery kind: with_history<R> is the kind's own receiver R
// with a gate in front of its invoke. A history subscription first receives the stored
// events (replayed on the subscribing thread, inside subscribe(), through R's own invoke: a
// synchronous handler is called, a mailbox queues them), then live ones, with no gap and no
// duplicate at the seam, whatever other threads publish meanwhile.
//
// How the seam works. Every event is stored before it is dispatched, and the publisher runs
// a light barrier between the two that pairs with the subscriber's heavy barrier after the
// receiver went live: either the publisher sees the receiver, or the subscriber's replay
// sees the event's offset. Until the replay has caught up, live events are not delivered
// (the replay reads them from storage); afterwards those below the seam are skipped (the
// replay delivered them).

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/detail/tuning.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus::detail {

/// The seam between a history subscription's replay and its live events.
struct history_seam {
  std::atomic<bool> live{false};
  std::mutex mutex;
  std::uint64_t seam = 0;  // written before live is set (release), read after it is seen

  /// True when a live event is for the subscriber to receive now.
  bool admits(const event_core& e) {
    if (AGENTBUS_UNLIKELY(!live.load(std::memory_order_acquire))) {
      // The mutex orders this check against the replay's final one (catch_up below).
      std::lock_guard lock(mutex);
      if (!live.load(std::memory_order_relaxed)) return false;
    }
    const auto offset = e.offset();
    return !(offset && *offset < seam);
  }

  /// Runs the replay: hands each stored event to `deliver` until the cursor has reached the
  /// end of storage, then opens the seam there, in one step under the mutex.
  template <class Store, class Cursor, class Deliver>
  void catch_up(const Store& store, Cursor& cursor, Deliver deliver) {
    // A cursor that reported a damaged record and then stays where it is has reached a
    // damaged tail: the newest stored records cannot be read (a journal reader resumes only
    // after the next intact record, and none may ever come), and waiting for them would never
    // end. Without damage, a cursor behind the end is behind a record being written: wait.
    const std::uint64_t damaged_before = damaged_records(cursor);
    std::uint64_t stalled_at = cursor.position();
    auto stalled_since = std::chrono::steady_clock::now();
    for (;;) {
      while (cursor.next()) deliver(cursor);
      std::unique_lock lock(mutex);
      const std::uint64_t end = store.next_offset();
      if (cursor.position() >= end) {
        // The cursor's position, not next_offset(): a journal reader can already have read a
        // record whose offset next_offset() does not count yet. (A cursor never starts beyond
        // the end: stores clamp history::from_offset to it.)
        seam = cursor.position();
        live.store(true, std::memory_order_release);
        return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (cursor.position() != stalled_at) {
        stalled_at = cursor.position();
        stalled_since = now;
      } else if (damaged_records(cursor) > damaged_before && now - stalled_since >= tuning::history_damaged_tail_wait) {
        // Live from the end; the records in between are the damaged ones the cursor counted.
        if constexpr (requires { cursor.stats().note(std::string()); })
          cursor.stats().note("history: the records from offset " + std::to_string(stalled_at) + " to " +
                              std::to_string(end - 1) + " could not be read (damaged); live events from offset " +
                              std::to_string(end) + " on");
        seam = end;
        live.store(true, std::memory_order_release);
        return;
      }
      lock.unlock();
      std::this_thread::yield();  // more was stored meanwhile (or is being written): read on
    }
  }

 private:
  template <class Cursor>
  static std::uint64_t damaged_records(const Cursor& cursor) noexcept {
    if constexpr (requires { cursor.stats().corrupt; })
      return cursor.stats().corrupt;
    else
      return 0;  // a store that keeps events in memory has no damaged records
  }

 public:
};

/// A delivery kind's receiver R with history in front of it.
template <class Inner>
struct with_history final : Inner {
  template <class G, class Kind>
  with_history(G&& g, topic_pattern pat, const Kind& kind) : Inner(std::forward<G>(g), std::move(pat), kind) {
    inner_invoke = this->invoke;
    this->invoke = &gated;
    this->destroy = &destroy_self;
  }

  /// Replays `cursor` (events of type T) through the receiver's own invoke, then opens the
  /// seam. Call once the receiver is live and after the heavy barrier.
  template <class T, class Store, class Cursor>
  void replay(const Store& store, Cursor& cursor) {
    seam.catch_up(store, cursor, [this](Cursor& c) {
      // A delayed event reaches only a subscription that asked for delayed events (live, it is
      // dispatched to no other): its replay skips it too, else it arrives before it is due.
      if (!this->takes_delayed && c.current().header_value(not_before_header)) {
        --c.stats().delivered;
        ++c.stats().delayed;
        return;
      }
      if (this->retains) {
        const shared_event<T> held = c.share();  // a retaining receiver keeps a block
        deliver_replayed(*held);
      } else {
        deliver_replayed(c.current());
      }
    });
  }

 private:
  static bool gated(receiver* r, const event_core& e) {
    auto* self = static_cast<with_history*>(r);
    if (!self->seam.admits(e)) return true;  // the replay delivers (or delivered) it
    return self->inner_invoke(r, e);
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<with_history*>(r); }

  // A refusal (full mailbox) is counted by the receiver; a handler failure goes to the hook.
  void deliver_replayed(const event_core& ev) {
    try {
      (void)inner_invoke(this, ev);
    } catch (...) {
      this->owner->report_failure(ev, *this, std::current_exception());
    }
  }

  receiver::invoke_fn inner_invoke;
  history_seam seam;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_DELIVERY_HISTORY_HPP
