// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_CHANNEL_HPP
#define AGENTBUS_BUS_CHANNEL_HPP

// A resolved channel: one topic and one event type, bound once, published to many times.
// Publishing through a channel skips parsing, hashing and looking up the topic: it is one
// acquire load of the topic's receiver list and the calls.

#include <memory>
#include <string_view>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/quiescence.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

namespace detail {

/// The body of every publish: stamp the event, build it on the stack, call the receivers.
template <class T>
AGENTBUS_ALWAYS_INLINE publish_result publish_to_node(router& r, const topic_node& node, const T& payload,
                                      const publish_options& options, reader_slot* slot) {
  const receiver_list* list = node.receivers.load(std::memory_order_acquire);
  const std::uint64_t id = slot->id_base | (++slot->next_sequence & sequence_mask);
  if (list->size() == 0) return publish_result{0, 0, id};
  const event<T> ev(payload, node.name, options, id, deadline_from(options));
  return r.dispatch(*list, ev);
}

/// Default options, shared so that a publish without options builds none.
inline constexpr publish_options default_publish_options{};

}  // namespace detail

/// @brief A typed publisher bound to one topic of one bus: `bus.channel<T>("tasks.created")`.
///
/// Cheap to copy; safe to use from any number of threads at once. It keeps the bus's router
/// alive, so publishing after the bus is destroyed is safe and reaches no one.
template <class T>
class channel {
 public:
  static_assert(event_type<T>, "agentbus: channel<T>: T must be a movable, non-const object type");

  /// @brief Publishes `payload` to the channel's topic; handlers see it by reference.
  publish_result publish(const T& payload, const publish_options& options = detail::default_publish_options) const {
    detail::read_guard guard;
    return detail::publish_to_node(*router_, *node_, payload, options, guard.slot());
  }

  /// @brief The channel's topic.
  std::string_view topic() const noexcept { return node_->name; }

  /// @brief True when at least one subscription currently matches the topic (of any type).
  bool has_subscribers() const noexcept {
    detail::read_guard guard;
    return node_->receivers.load(std::memory_order_acquire)->size() != 0;
  }

 private:
  template <class S, class U>
  friend class basic_bus;
  channel(std::shared_ptr<detail::router> r, detail::topic_node* n) noexcept : router_(std::move(r)), node_(n) {}

  std::shared_ptr<detail::router> router_;
  detail::topic_node* node_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_CHANNEL_HPP
