// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_STORED_CHANNEL_HPP
#define AGENTBUS_BUS_STORED_CHANNEL_HPP

// Publishing on a bus that stores events (storage::memory_ring<N>, storage::journal): the
// event is stored first, which gives it its offset, then delivered like any other. This
// header holds that publish body, shared by basic_bus::publish and stored_channel.

#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/bus/channel.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/detail/quiescence.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

/// @brief What publish returns on a bus that stores events: the delivery counts and the
/// offset the storage gave the event.
struct stored_publish_result : publish_result {
  std::uint64_t offset = 0;  ///< the event's offset in the bus's storage
};

namespace detail {

/// The receivers of `topic` (its cached node, or resolved beyond the cache) handed to `deliver`.
template <class T, class Deliver>
publish_result deliver_stored(router& r, const topic_node* node, std::string_view topic, const event<T>& ev,
                              Deliver deliver) {
  if (node != nullptr) {
    const receiver_list* list = node->receivers.load(std::memory_order_acquire);
    if (list->size() == 0) return publish_result{0, 0, 0, ev.id()};
    return deliver(*list);
  }
  const std::vector<receiver*> found = r.resolve_uncached(topic);
  if (found.empty()) return publish_result{0, 0, 0, ev.id()};
  receiver_list* list = receiver_list::make_from(found);
  const std::unique_ptr<receiver_list, void (*)(receiver_list*)> owned(
      list, [](receiver_list* l) { receiver_list::delete_erased(l); });
  return deliver(*list);
}

/// Stores, then delivers. `node` may be null (a topic beyond the router's cache); `topic` must
/// outlive the call. Call inside a read section (`slot`).
template <class Store, class P>
stored_publish_result publish_stored(router& r, Store& store, const topic_node* node, std::string_view topic,
                                     P&& payload, const publish_options& options, reader_slot* slot) {
  using T = std::remove_cvref_t<P>;
  const std::uint64_t id = slot->next_event_id();
  stored_publish_result out;
  if constexpr (Store::keeps_blocks) {
    static_assert(std::is_constructible_v<T, P&&>,
                  "agentbus: a bus with storage::memory_ring keeps every event, which means copying the payload, "
                  "and this type is move-only: publish it as an rvalue (std::move)");
    const T* no_payload = nullptr;
    const event_core meta(no_payload, topic, options, id, deadline_from(options), nullptr);
    const shared_event<T> held = adopt_block(event_block<T>::make(meta, std::forward<P>(payload)));
    out.offset = store.append(const_cast<event<T>&>(*held));  // nobody else sees the block yet
    asymmetric_light_barrier();  // pairs with a history subscriber's heavy barrier (basic_bus)
    static_cast<publish_result&>(out) =
        deliver_stored(r, node, topic, *held, [&](const receiver_list& list) { return r.dispatch(list, *held); });
  } else {
    event<T> ev(payload, topic, options, id, deadline_from(options));
    out.offset = store.append(ev);
    asymmetric_light_barrier();  // pairs with a history subscriber's heavy barrier (basic_bus)
    static_cast<publish_result&>(out) = deliver_stored(r, node, topic, ev, [&](const receiver_list& list) {
      if (list.retaining())
        return publish_retained<T>(r, list, topic, std::forward<P>(payload), options, id, out.offset,
                                   offset_setter::published_ns(ev));
      return r.dispatch(list, ev);
    });
  }
  return out;
}

}  // namespace detail

/// @brief A typed publisher bound to one topic of a bus that stores events; what
/// `bus.channel<T>(topic)` returns there. Each publish stores the event, then delivers it,
/// and returns its offset. It shares the bus's storage (a journal stays open while a channel
/// of it lives) and router; publishing after the bus is gone still stores, and reaches no one.
/// Safe to use from any number of threads at once.
template <class T, class Store>
class stored_channel {
 public:
  static_assert(event_type<T>, "agentbus: channel<T>: T must be a movable, non-const object type");

  /// @brief Stores `payload`, then delivers it (synchronous handlers see it by reference).
  stored_publish_result publish(const T& payload,
                                const publish_options& options = detail::default_publish_options) const {
    detail::read_guard guard;
    return detail::publish_stored(*router_, *store_, node_, node_->name, payload, options, guard.slot());
  }
  /// @brief Stores `payload`, then delivers it; moved into a shared block when one is needed.
  stored_publish_result publish(T&& payload, const publish_options& options = detail::default_publish_options) const {
    detail::read_guard guard;
    return detail::publish_stored(*router_, *store_, node_, node_->name, std::move(payload), options, guard.slot());
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
  stored_channel(std::shared_ptr<detail::router> r, std::shared_ptr<Store> store, detail::topic_node* n) noexcept
      : router_(std::move(r)), store_(std::move(store)), node_(n) {}

  std::shared_ptr<detail::router> router_;
  std::shared_ptr<Store> store_;
  detail::topic_node* node_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_STORED_CHANNEL_HPP
