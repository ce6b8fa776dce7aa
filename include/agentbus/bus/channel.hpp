// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_CHANNEL_HPP
#define AGENTBUS_BUS_CHANNEL_HPP

// A resolved channel: one topic and one event type, bound once, published to many times.
// Publishing through a channel skips parsing, hashing and looking up the topic: it is one
// acquire load of the topic's receiver list and the calls. On a bus that stores events
// (`Store` is its storage), each publish stores the event first and returns its offset.

#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include "agentbus/bus/detail/publish.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

namespace detail {
struct bus_access;

/// What a channel keeps of its bus's storage: nothing, or a share of it.
template <class Store>
struct channel_store {
  std::shared_ptr<Store> store;
};
template <>
struct channel_store<void> {};
}  // namespace detail

/// @brief A typed publisher bound to one topic of one bus: `bus.channel<T>("tasks.created")`.
///
/// Cheap to copy; safe to use from any number of threads at once. It keeps the bus's router
/// (and storage) alive, so publishing after the bus is destroyed is safe: it still stores,
/// and reaches no one. Copying is the only way to move one: a "moved-from" channel is a
/// copy and goes on publishing, so no channel is ever left without a topic.
template <class T, class Store>  // Store defaults to void (fwd.hpp)
class channel {
 public:
  static_assert(event_type<T>, "agentbus: channel<T>: T must be a movable, non-const object type");

  /// @brief publish_result, or stored_publish_result (with the offset) on a storing bus.
  using result_type = std::conditional_t<std::is_void_v<Store>, publish_result, stored_publish_result>;

  /// @brief Copies the handle: both publish to the same topic.
  channel(const channel&) = default;
  /// @brief Makes this handle publish where `other` does.
  channel& operator=(const channel&) = default;
  ~channel() = default;

  /// @brief Publishes `payload` to the channel's topic; synchronous handlers see it by
  /// reference. When some receiver keeps the event (a mailbox), it is copied once into a
  /// shared block.
  result_type publish(const T& payload, const publish_options& options = detail::default_publish_options) const {
    return publish_impl(payload, options);
  }
  /// @brief Publishes `payload`; when some receiver keeps the event, the payload is moved
  /// (not copied) into the shared block.
  result_type publish(T&& payload, const publish_options& options = detail::default_publish_options) const {
    return publish_impl(std::move(payload), options);
  }

  /// @brief The channel's topic.
  std::string_view topic() const noexcept { return node_->name(); }

  /// @brief True when at least one subscription currently matches the topic (of any type).
  bool has_subscribers() const noexcept {
    detail::read_guard guard;
    return node_->receivers.load(std::memory_order_acquire)->view().size() != 0;
  }

 private:
  friend struct detail::bus_access;
  channel(std::shared_ptr<detail::router> r, detail::channel_store<Store> s, detail::topic_pin n) noexcept
      : router_(std::move(r)), store_(std::move(s)), node_(std::move(n)) {}

  template <class P>
  AGENTBUS_ALWAYS_INLINE result_type publish_impl(P&& payload, const publish_options& options) const {
    detail::read_guard guard;
    if constexpr (std::is_void_v<Store>) {
      if (AGENTBUS_UNLIKELY(detail::needs_storage(options))) detail::throw_needs_storage(options);
      return detail::publish(*router_, *node_, std::forward<P>(payload), options, guard.slot());
    }
    else
      return detail::publish_stored(*router_, *store_.store, node_.get(), node_->name(), std::forward<P>(payload), options,
                                    guard.slot());
  }

  std::shared_ptr<detail::router> router_;
  [[no_unique_address]] detail::channel_store<Store> store_;
  detail::topic_pin node_;  // never empty: a copy pins again, and there is no move
};

/// @brief What `bus.channel<T>(topic)` returns on a bus that stores events.
template <class T, class Store>
using stored_channel = channel<T, Store>;

}  // namespace agentbus

#endif  // AGENTBUS_BUS_CHANNEL_HPP
