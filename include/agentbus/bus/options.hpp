// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_OPTIONS_HPP
#define AGENTBUS_BUS_OPTIONS_HPP

// The options of a bus and of a subscription. Both are designated-initializer structs whose
// every field has a default: `bus.subscribe<T>("orders.>", handler, subscribe_options{.history
// = history::all(), .report = &stats})`.

#include <cstddef>
#include <optional>

#include "agentbus/storage/dedup.hpp"
#include "agentbus/storage/history.hpp"

namespace agentbus {

/// @brief Settings of a bus, given to its constructor.
struct bus_options {
  /// How many concrete topics publishing caches (resolved receiver lists, looked up without a
  /// lock). Publishing to a topic beyond this many distinct ones still works, through a slower
  /// path that takes the writer mutex and allocates; stats().uncached_publishes counts those.
  /// An exact subscription and a channel always get their topic's entry (their publishes need
  /// no lookup), beyond the limit too, and count toward it. An entry that nothing anchors (no
  /// exact subscription, no channel) and that no publish found for a while is reclaimed, at
  /// O(1) amortized cost, and made again when next used (stats().cached_topics,
  /// stats().reclaimed_topics): a bus that sees an unbounded stream of distinct topics (one per
  /// session, say) keeps only those in use. Reclaiming makes room before a publish beyond the
  /// limit is sent down the slower path.
  std::size_t max_cached_topics = std::size_t{1} << 16;
  /// Publish-side deduplication by publish_options::idempotency_key (a bus that stores events;
  /// storage/dedup.hpp): how many keys, for how long.
  dedup_options dedup{};
};

/// @brief Settings of one subscription (the last argument of subscribe()).
struct subscribe_options {
  /// With a value (a bus that stores events only): the subscription first receives the stored
  /// events from there on, replayed on the subscribing thread before subscribe() returns,
  /// then live events, with no gap and no duplicate at the seam. `bus.subscribe<T>(pattern,
  /// handler, history::all())` is the short form.
  std::optional<agentbus::history> history{};
  /// Where to write what the replay found (records it could not decode, ...), when not null.
  replay_stats* report = nullptr;
  /// Also receive delayed events (publish_options::delay) when they are published, not when
  /// due, carrying their due time in the header `agentbus-not-before` (Unix time in ns). For
  /// a subscription that hands events to a system which holds them until due itself, such as
  /// the JetStream publisher (agentbus/bridge/jetstream.hpp). Every other subscription never
  /// receives a delayed event: durable consumers take it from storage when due. Synchronous
  /// delivery only (std::invalid_argument for a mailbox).
  bool delayed = false;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_OPTIONS_HPP
