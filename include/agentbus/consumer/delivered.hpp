// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DELIVERED_HPP
#define AGENTBUS_CONSUMER_DELIVERED_HPP

// What a durable handler receives (delivered<T>: the event plus its delivery state) and the
// token that settles a delivery later (ack_token: "ack after my own I/O").
//
//   consumer.poll([&](const agentbus::delivered<order>& d) {
//     if (d.attempt() > 1) log("retry of", d.offset());
//     auto token = d.defer();                      // settle later, from any thread
//     io.write(d.payload(), [token] { token.ack(); });
//   });

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "agentbus/consumer/options.hpp"
#include "agentbus/core/clock.hpp"
#include "agentbus/core/event.hpp"

namespace agentbus {

namespace detail {

/// What a token settles through: the consumer's engine, type-erased.
class settle_sink {
 public:
  virtual ack_status settle(std::uint64_t offset, std::uint32_t attempt, outcome decision) = 0;
  virtual ack_status extend(std::uint64_t offset, std::uint32_t attempt) = 0;

 protected:
  ~settle_sink() = default;
};

}  // namespace detail

/// @brief Settles one delivery later, from any thread (see delivered::defer). Copyable; the
/// first decision counts, later ones return ack_status::already (or stale). A token that is
/// destroyed without a decision leaves the delivery to its ack deadline, after which it is
/// redelivered. A token outliving its consumer returns ack_status::gone.
class ack_token {
 public:
  ack_token() = default;

  /// @brief Acknowledges: the event is done.
  ack_status ack() const { return settle(outcome::ack()); }
  /// @brief Fails the attempt: redelivered after the backoff (or dead-lettered after max_deliver).
  ack_status nack(std::string reason = {}) const { return settle(outcome::nack(std::move(reason))); }
  /// @brief Gives up: dead-lettered now.
  ack_status term(std::string reason = {}) const { return settle(outcome::term(std::move(reason))); }
  /// @brief Applies `decision`.
  ack_status settle(outcome decision) const {
    const auto sink = sink_.lock();
    return sink ? sink->settle(offset_, attempt_, std::move(decision)) : ack_status::gone;
  }
  /// @brief Work is still going on: the ack deadline restarts from now.
  ack_status in_progress() const {
    const auto sink = sink_.lock();
    return sink ? sink->extend(offset_, attempt_) : ack_status::gone;
  }
  /// @brief The event's offset in the bus's storage.
  std::uint64_t offset() const noexcept { return offset_; }
  /// @brief Which delivery of the event this token settles (1 = the first).
  std::uint32_t attempt() const noexcept { return attempt_; }

 private:
  template <class T>
  friend class delivered;
  ack_token(std::weak_ptr<detail::settle_sink> sink, std::uint64_t offset, std::uint32_t attempt)
      : sink_(std::move(sink)), offset_(offset), attempt_(attempt) {}
  std::weak_ptr<detail::settle_sink> sink_;
  std::uint64_t offset_ = 0;
  std::uint32_t attempt_ = 0;
};

/// @brief One delivery of a stored event to a durable consumer or group member: the event,
/// and which attempt this is. Valid for the duration of the handler call (take a token with
/// defer() to settle later; retain the event with `d.event().retain()`).
template <class T>
class delivered {
 public:
  /// @brief The event (topic, payload, envelope, offset).
  const agentbus::event<T>& event() const noexcept { return event_; }
  /// @brief The payload.
  const T& payload() const noexcept { return event_.payload(); }
  /// @brief The event's offset in the bus's storage.
  std::uint64_t offset() const noexcept { return offset_; }
  /// @brief Which delivery this is to this consumer: 1 the first, 2 the first redelivery, ...
  /// (counted across restarts on a journal bus).
  std::uint32_t attempt() const noexcept { return attempt_; }
  /// @brief When this consumer first handed the event out (its clock; for events first
  /// delivered before a restart: the first delivery since the restart).
  clock_source::time_point first_delivery() const noexcept { return first_; }
  /// @brief The consumer's (or group's) name.
  std::string_view consumer() const noexcept { return consumer_; }
  /// @brief The group member it was handed to (empty for a durable_consumer).
  std::string_view member() const noexcept { return member_; }

  /// @brief Settle later: the handler's return value is then ignored, and the delivery stays
  /// out until the token decides or the ack deadline passes.
  ack_token defer() const {
    deferred_ = true;
    return ack_token(*sink_, offset_, attempt_);
  }
  /// @brief Work is still going on: the ack deadline restarts from now.
  ack_status in_progress() const { return ack_token(*sink_, offset_, attempt_).in_progress(); }
  /// @brief True once defer() was called.
  bool deferred() const noexcept { return deferred_; }

  /// @brief Internal: made by the consumer.
  delivered(const agentbus::event<T>& ev, std::uint64_t offset, std::uint32_t attempt, clock_source::time_point first,
            std::string_view consumer, std::string_view member, const std::weak_ptr<detail::settle_sink>& sink) noexcept
      : event_(ev),
        offset_(offset),
        attempt_(attempt),
        first_(first),
        consumer_(consumer),
        member_(member),
        sink_(&sink) {}

 private:
  const agentbus::event<T>& event_;
  std::uint64_t offset_;
  std::uint32_t attempt_;
  clock_source::time_point first_;
  std::string_view consumer_;
  std::string_view member_;
  const std::weak_ptr<detail::settle_sink>* sink_;  // the engine's own: no reference count per delivery
  mutable bool deferred_ = false;
};

}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_DELIVERED_HPP
