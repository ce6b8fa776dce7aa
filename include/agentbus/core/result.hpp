// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_RESULT_HPP
#define AGENTBUS_CORE_RESULT_HPP

// What publishing returns, and the bus's counters.

#include <cstddef>
#include <cstdint>

namespace agentbus {

/// @brief What one publish did.
/// Kept to 16 bytes so that it comes back in registers: publish is on the hot path.
struct publish_result {
  std::uint32_t delivered = 0;  ///< handlers that returned normally, plus mailboxes that queued it
  std::uint16_t failed = 0;     ///< handlers that threw (each reported to the error hook; saturates)
  std::uint16_t rejected = 0;   ///< mailboxes that refused the event (full or stopped; saturates)
  std::uint64_t id = 0;         ///< the event's id
};
static_assert(sizeof(publish_result) == 16, "publish_result should fit in two registers");

/// @brief What publish returns on a bus that stores events: the delivery counts and the
/// offset the storage gave the event.
struct stored_publish_result : publish_result {
  std::uint64_t offset = 0;  ///< the event's offset in the bus's storage (a duplicate: the first one's)
  bool duplicate = false;    ///< the idempotency key was seen within the dedup window: nothing was stored or delivered
};

/// @brief Counters of a bus, read with bus.stats().
struct bus_stats {
  std::uint64_t handler_failures = 0;     ///< handler calls that threw
  std::uint64_t error_hook_failures = 0;  ///< error-hook calls that threw (swallowed)
  std::uint64_t type_mismatches = 0;      ///< receivers skipped because they take another event type
  std::uint64_t uncached_publishes = 0;   ///< publishes to topics beyond the topic cache's capacity
  std::size_t subscriptions = 0;          ///< live subscriptions
  std::size_t cached_topics = 0;          ///< concrete topics in the router's cache
  /// Cached topics dropped because nothing anchored them (no exact subscription, no channel)
  /// and no publish found them for a sweep interval; made again when next used. A count that
  /// keeps climbing with a steady set of topics means topics are being made and dropped over
  /// and over: a channel per hot topic keeps it.
  std::uint64_t reclaimed_topics = 0;
};

}  // namespace agentbus

#endif  // AGENTBUS_CORE_RESULT_HPP
