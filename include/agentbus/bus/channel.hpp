// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_CHANNEL_HPP
#define AGENTBUS_BUS_CHANNEL_HPP

// A resolved channel: one topic and one event type, bound once, published to many times.
// Publishing through a channel skips parsing, hashing and looking up the topic: it is one
// acquire load of the topic's receiver list and the calls.

#include <memory>
#include <stdexcept>
#include <type_traits>
#include <string_view>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/quiescence.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

namespace detail {

/// Publishes to receivers that keep the event (mailboxes): the payload goes, once, into a
/// shared block (moved when the caller passed an rvalue), and every receiver, synchronous ones
/// included, sees that block's event. Out of line: the synchronous path stays small.
template <class T, class P>
AGENTBUS_NOINLINE publish_result publish_retained(router& r, const receiver_list& list, std::string_view topic,
                                                  P&& payload, const publish_options& options, std::uint64_t id,
                                                  std::uint64_t offset = no_offset, std::int64_t published_ns = 0) {
  if constexpr (std::is_constructible_v<T, P&&>) {
    const T* no_payload = nullptr;
    const event_core meta(no_payload, topic, options, id, deadline_from(options), nullptr, offset);
    if (published_ns != 0) offset_setter::set_published(meta, published_ns);  // the time the journal recorded
    const shared_event<T> held = adopt_block(event_block<T>::make(meta, std::forward<P>(payload)));
    return r.dispatch(list, *held);
  } else {
    throw std::logic_error(
        "agentbus: a mailbox subscriber must keep this event, which means copying the payload, and its type is "
        "move-only: publish it as an rvalue (std::move) so that it can be moved instead");
  }
}

/// The body of every publish: stamp the event, build it on the stack, call the receivers.
template <class P>
AGENTBUS_ALWAYS_INLINE publish_result publish_to_node(router& r, const topic_node& node, P&& payload,
                                                      const publish_options& options, reader_slot* slot) {
  using T = std::remove_cvref_t<P>;
  const receiver_list* list = node.receivers.load(std::memory_order_acquire);
  const std::uint64_t id = slot->next_event_id();
  if (AGENTBUS_UNLIKELY(!list->plain())) {  // empty, or a mailbox needs a shared block
    if (list->size() == 0) return publish_result{0, 0, 0, id};
    return publish_retained<T>(r, *list, node.name, std::forward<P>(payload), options, id);
  }
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

  /// @brief Publishes `payload` to the channel's topic; synchronous handlers see it by reference.
  /// When a mailbox subscribes, the payload is copied once into a shared block.
  publish_result publish(const T& payload, const publish_options& options = detail::default_publish_options) const {
    detail::read_guard guard;
    return detail::publish_to_node(*router_, *node_, payload, options, guard.slot());
  }
  /// @brief Publishes `payload`; when a mailbox subscribes, the payload is moved (not copied)
  /// into the shared block.
  publish_result publish(T&& payload, const publish_options& options = detail::default_publish_options) const {
    detail::read_guard guard;
    return detail::publish_to_node(*router_, *node_, std::move(payload), options, guard.slot());
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
