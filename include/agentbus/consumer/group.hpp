// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_GROUP_HPP
#define AGENTBUS_CONSUMER_GROUP_HPP

// Consumer groups: several members share the work of one durable consumer. Each stored event
// on the group's pattern goes to exactly one member at a time; at least once overall.
//
//   agentbus::consumer_group<job> workers(bus, "workers", "jobs.>", {.ack_wait = 30s});
//   auto me = workers.join("worker-1");                 // one per thread or agent
//   while (running) me.poll_for([](const agentbus::delivered<job>& d) { run(d.payload()); }, 100ms);
//
// The policy, and why:
//   - Who gets an event: the member that polls next (pull, as JetStream pull consumers and
//     Redis XREADGROUP). A busy member takes fewer events, so the load balances itself
//     (least-loaded by construction). There is no per-key affinity: per-key order needs one
//     consumer per key range.
//   - Who redelivers: the group, on an ack deadline (JetStream's choice), not an explicit claim
//     (Redis's XAUTOCLAIM): a delivery not settled within ack_wait counts as a failed attempt,
//     and after its backoff the event goes to whichever member polls next. So a member that
//     hangs loses its events to the others without anyone having to notice it.
//   - A member that leaves (leave(), or its handle destroyed) returns what it holds at once:
//     those events are due immediately for the others; their attempt counts stay, and one that
//     has had max_deliver attempts goes to the dead-letter topic at the next poll instead of
//     to another member (the attempt the member took away failed, as if its ack deadline had
//     passed).
//   - What counts as a delivery: handing the event to a member (so a crash inside the handler
//     counts, also across a restart on a journal bus); after max_deliver the event goes to the
//     dead-letter topic `$dlq.<topic>` instead of being retried (JetStream keeps it and stops;
//     a dead letter can be inspected and replayed: dead_letters.hpp).
//   - Order: events are handed out in offset order, but a redelivery comes when it is due,
//     after events that were handed out meanwhile: a consumer keeps order only while nothing
//     fails (or with max_ack_pending = 1, which hands out one event at a time).
//   - Stale events: an event whose deadline (publish_options::ttl) has passed when it is read or
//     due again is settled without delivery and counted (info().expired), as a mailbox drops
//     it; a journal keeps deadlines, so this holds across a restart too.
//   - Exactly once per live member between failures: an event is with one member at a time; a
//     second member gets it only after the first one's deadline passed or it left. A late ack
//     from the first member is still accepted (the work was done); its late nack is ignored.
//
// Thread safety: join, info and flush from any thread; each member polls from one thread at a
// time (members poll concurrently with each other); ack tokens from any thread.
// Lifetime: the bus must outlive the group and its members.

#include <cstddef>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "agentbus/bus/detail/bus_access.hpp"
#include "agentbus/consumer/delivered.hpp"
#include "agentbus/consumer/detail/engine.hpp"
#include "agentbus/consumer/options.hpp"

namespace agentbus {

namespace detail {

template <class T, class Bus>
std::shared_ptr<consumer_core<T>> make_consumer(Bus& bus, std::string name, std::string_view pattern,
                                                const consumer_options& options) {
  auto engine = std::make_shared<consumer_engine<T, Bus>>(bus, std::move(name), pattern, options);
  engine->start_doorbell();
  return engine;
}

template <class T, class F>
constexpr bool check_durable_handler() {
  static_assert(durable_handler<T, std::remove_cvref_t<F>>,
                "agentbus: a durable handler takes `const agentbus::delivered<T>&` and returns void (ack; a throw "
                "is a nack) or agentbus::outcome");
  return durable_handler<T, std::remove_cvref_t<F>>;
}

/// Default events per poll: enough to amortize the two lock round trips and cursor writes.
inline constexpr std::size_t default_poll_batch = 256;

}  // namespace detail

template <class T>
class consumer_group;

/// @brief One member of a consumer_group: polls for its share of the events (see group.hpp).
/// Leaves the group when destroyed. Movable; a moved-from member polls nothing (returns 0).
template <class T>
class group_member {
 public:
  /// @brief A member of no group: polls nothing.
  group_member() = default;
  /// @brief Takes over `other`'s membership (`other` then polls nothing).
  group_member(group_member&& other) noexcept : core_(std::move(other.core_)), id_(other.id_) {}
  /// @brief Leaves this member's group, then takes over `other`'s membership.
  group_member& operator=(group_member&& other) noexcept {
    if (this != &other) {
      leave();
      core_ = std::move(other.core_);
      id_ = other.id_;
    }
    return *this;
  }
  group_member(const group_member&) = delete;
  group_member& operator=(const group_member&) = delete;
  ~group_member() { leave(); }

  /// @brief Hands up to `max` events (due redeliveries first, then new ones) to `handler` on
  /// this thread and settles each by the handler's outcome; returns how many. Does not wait.
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = detail::default_poll_batch) {
    if constexpr (detail::check_durable_handler<T, F>()) {
      if (!core_) return 0;
      return core_->poll(id_, detail::handler_ref<T>(handler), max);
    } else {
      return 0;
    }
  }
  /// @brief As poll, but when nothing is due waits up to `timeout` (on the consumer's clock)
  /// for a publish on the pattern or a redelivery time.
  template <class F>
  std::size_t poll_for(F&& handler, clock_source::duration timeout, std::size_t max = detail::default_poll_batch) {
    if constexpr (detail::check_durable_handler<T, F>()) {
      if (!core_) return 0;
      return core_->poll_for(id_, detail::handler_ref<T>(handler), max, timeout);
    } else {
      return 0;
    }
  }
  /// @brief Leaves the group: what this member holds goes back to the others at once. Idempotent.
  void leave() noexcept {
    if (core_) core_->leave(id_);
    core_.reset();
  }
  /// @brief False once left (or moved from).
  bool joined() const noexcept { return core_ != nullptr; }

 private:
  friend class consumer_group<T>;
  template <class>
  friend class durable_consumer;
  group_member(std::shared_ptr<detail::consumer_core<T>> core, detail::member_id id)
      : core_(std::move(core)), id_(id) {}
  std::shared_ptr<detail::consumer_core<T>> core_;
  detail::member_id id_ = 0;
};

/// @brief A consumer group on a bus that stores events (see the top of group.hpp).
/// Its cursor is stored like a durable consumer's, under the group's name.
template <class T>
class consumer_group {
 public:
  /// @brief Opens (creating it at options.start, or resuming its stored cursor) the group
  /// `name` for events of type T on topics matching `pattern`. Throws std::invalid_argument
  /// for a bad name or when `name` exists with another pattern or type; journal_error when
  /// its cursor cannot be written.
  template <class Bus>
  consumer_group(Bus& on, std::string name, std::string_view pattern, const consumer_options& options = {}) {
    static_assert(detail::bus_stores_events<Bus>,
                  "agentbus: consumer groups and durable consumers need a bus that stores events: "
                  "basic_bus<storage::journal> or basic_bus<storage::memory_ring<N>>");
    if constexpr (detail::bus_stores_events<Bus>)
      core_ = detail::make_consumer<T>(on, std::move(name), pattern, options);
  }

  /// @brief A new member named `member_name` (shown on its deliveries: delivered::member()).
  group_member<T> join(std::string member_name) {
    const detail::member_id id = core_->join(std::move(member_name));
    return group_member<T>(core_, id);
  }
  /// @brief Counters and position.
  consumer_info info() const { return core_->info(); }
  /// @brief Writes the cursor now if it changed (polls do it themselves; this is for the
  /// settles made by ack tokens since the last poll).
  void flush() { core_->flush(); }
  /// @brief The group's name.
  const std::string& name() const noexcept { return core_->name(); }
  /// @brief Where its cursor is stored (empty when the bus has no files).
  std::filesystem::path cursor_path() const { return core_->cursor_path(); }

 private:
  std::shared_ptr<detail::consumer_core<T>> core_;
};

}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_GROUP_HPP
