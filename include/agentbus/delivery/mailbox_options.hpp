// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_MAILBOX_OPTIONS_HPP
#define AGENTBUS_DELIVERY_MAILBOX_OPTIONS_HPP

// The settings and counters of a mailbox (an agent's), and how a stopping one treats what is
// queued. What is not handled is reported as `undelivered` (core/failure.hpp).

#include <cstddef>
#include <cstdint>
#include <optional>

#include "agentbus/core/clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus {

/// @brief What a full mailbox does with a new event.
enum class overflow : std::uint8_t {
  block,        ///< the publisher waits for room (up to mailbox_options::block_timeout, then rejected)
  fail,         ///< the publish is refused at once (publish_result::rejected counts it)
  drop_newest,  ///< the new event is dropped (counted, reported, publish_result::rejected)
  drop_oldest,  ///< the oldest queued event of the same priority is dropped to make room
};

/// @brief One value per priority: `{.high = ..., .normal = ..., .low = ...}`.
template <class T>
struct per_priority {
  T high{};    ///< for priority::high
  T normal{};  ///< for priority::normal
  T low{};     ///< for priority::low

  /// @brief The value for `p`.
  constexpr const T& operator[](priority p) const noexcept {
    return p == priority::high ? high : p == priority::normal ? normal : low;
  }
};

/// @brief Settings of a mailbox.
struct mailbox_options {
  /// Events each priority queue holds (rounded up to a power of two). Memory: a priority's
  /// queue is allocated by the first event of that priority (an idle mailbox holds none) and
  /// starts at 32 slots (about 2 KiB); when those fill, it grows once to this capacity, 32
  /// bytes per slot (64-bit) plus about 1 KiB: 1024 slots take 33 KiB more per priority, 97 KiB
  /// if all three grow. The bound is exact throughout: the queue never holds more than this,
  /// and the overflow policy acts when it holds this many. The consumer takes events out in
  /// bursts of up to an eighth of this (64 at most) before handling them, so up to that many
  /// more may be waiting for their handler while the queue itself is full.
  std::size_t capacity = 1024;
  agentbus::overflow overflow = overflow::block;  ///< what to do when full (see priority_overflow)
  /// What a full queue of one priority does, where set; unset priorities use `overflow`. Each
  /// priority has its own queue, so e.g. `{.low = overflow::drop_oldest}` lets a flood of low
  /// events lose the oldest ones while normal publishers still wait for room.
  agentbus::per_priority<std::optional<agentbus::overflow>> priority_overflow{};
  /// The order in which the consumer serves the priorities. All zero (the default): strict
  /// priority, high before normal before low, also within a burst (a high event that arrives
  /// meanwhile goes next); under sustained load a lower priority may then wait forever. All
  /// non-zero: weighted round robin, which starves no priority: while all three have events
  /// waiting, out of every `high + normal + low` events handled, `high` are high, `normal`
  /// normal and `low` low (a priority with nothing waiting gives its turn to the others), e.g.
  /// `{.high = 8, .normal = 4, .low = 1}`. A weight also caps the consumer's burst for that
  /// priority, so weights of 8 or more keep bursts efficient. Mixing zero and non-zero weights
  /// is refused (std::invalid_argument when the mailbox is made).
  agentbus::per_priority<std::uint32_t> weights{};
  /// With overflow::block: how long a publisher waits before the event is rejected.
  /// The default waits forever. A publisher blocked on a full mailbox is inside its publish
  /// call: a handler of that mailbox that unsubscribes (which waits for running publishes)
  /// would wait for it, so give such mailboxes a timeout or a dropping policy.
  std::chrono::nanoseconds block_timeout = std::chrono::nanoseconds::max();
  /// An agent with its own thread: how long it polls an empty mailbox before parking. A
  /// parked consumer costs the next publisher a wake-up system call (tens of microseconds
  /// in a VM); polling for a fraction of a time slice first keeps bursts cheap. Zero parks
  /// at once (for many mostly idle agents on few cores).
  std::chrono::microseconds spin_before_park{50};
  /// An agent with its own thread, events streaming in: how long it leaves the publisher a
  /// head start before taking the next burst (a consumer right behind the publisher makes
  /// both cores pass the same cache lines back and forth; measured 2-3x slower). Only after
  /// a round that found events too, so a lone event is never held back, and only for
  /// mailboxes of at least 256 slots. A pace that gathers at most one event (request/response
  /// traffic: the publisher waits for the handler before it publishes again) makes the agent
  /// skip pacing for a while (16 rounds, doubling up to 256 while paces keep losing), so one
  /// event in flight is handled at once. Zero disables pacing.
  std::chrono::nanoseconds pace{1000};
  /// The clock that decides whether a queued event has expired (publish_options::ttl): an event
  /// is dropped as expired when this clock reads past its deadline, which publish sets on
  /// steady_clock's time line. Null: clock_source::steady(). A manual_clock (core/clock.hpp)
  /// lets a test expire events with advance() instead of sleeping.
  clock_source* clock = nullptr;
};

/// @brief Counters of a mailbox.
struct mailbox_stats {
  std::uint64_t queued = 0;          ///< events accepted (derived: outcomes so far plus depth)
  std::uint64_t handled = 0;         ///< handler calls that returned normally
  std::uint64_t failed = 0;          ///< handler calls that threw (also reported to the bus's error hook)
  std::uint64_t rejected = 0;        ///< see undelivered_reason
  std::uint64_t dropped_newest = 0;  ///< see undelivered_reason
  std::uint64_t dropped_oldest = 0;  ///< see undelivered_reason
  std::uint64_t expired = 0;         ///< see undelivered_reason
  std::uint64_t discarded = 0;       ///< see undelivered_reason
  std::uint64_t closed = 0;          ///< see undelivered_reason
  std::uint64_t unsubscribed = 0;    ///< see undelivered_reason (queued for a subscription that ended before its turn)
  std::size_t depth = 0;             ///< events waiting now (approximate)
  std::size_t queue_bytes = 0;       ///< memory of the priority queues allocated so far (0 until an event comes)
  std::size_t subscriptions = 0;     ///< live subscriptions delivering into this mailbox
};

/// @brief How a stopping mailbox treats what is still queued.
enum class stop_mode : std::uint8_t {
  drain,    ///< handle everything already queued, then stop
  discard,  ///< drop what is queued (counted as discarded, reported)
};

}  // namespace agentbus

#endif  // AGENTBUS_DELIVERY_MAILBOX_OPTIONS_HPP
