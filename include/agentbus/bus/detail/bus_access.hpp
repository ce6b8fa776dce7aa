// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_DETAIL_BUS_ACCESS_HPP
#define AGENTBUS_BUS_DETAIL_BUS_ACCESS_HPP

// The seam for modules: the one documented way for code outside basic_bus to reach a bus's
// router and storage, register a receiver it built itself, and hand the user a subscription
// or a channel. basic_bus, subscription and channel befriend this struct and nothing else.
//
// Two kinds of module use it:
//   - delivery kinds (delivery/delivery.hpp) reach it only through subscribe(): the bus
//     builds their receiver and calls bus_access::adopt;
//   - layers that manage receivers of their own (a consumer group's shared receiver, a
//     transport's outbound bridge, a request/reply inbox) call it directly:
//
//       auto* r = new my_receiver(...);                       // derives from detail::receiver
//       subscription sub = detail::bus_access::adopt(detail::bus_access::router_of(bus), r);
//
// Contract: adopt takes ownership of the receiver, even when it throws; the receiver is live
// (publishes on matching topics reach it) when adopt returns; the subscription ends it with
// the usual unsubscribe guarantee.

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "agentbus/bus/channel.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/delivery/delivery.hpp"
#include "agentbus/delivery/synchronous.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus::detail {

struct bus_access {
  /// The bus's router (shared: channels and handles keep it alive).
  template <class Bus>
  static const std::shared_ptr<router>& router_of(Bus& bus) noexcept {
    return bus.router_;
  }

  /// The bus's storage (storing buses only).
  template <class Bus>
  static const auto& store_of(Bus& bus) noexcept {
    return bus.storage_.store;
  }

  /// Registers `r` (taking ownership, even when this throws) and returns its handle.
  static subscription adopt(const std::shared_ptr<router>& owner, receiver* r) {
    return subscription(owner, owner->subscribe(r));
  }

  /// As above, then runs the delivery kind's `subscribed` hook; undone if the hook throws.
  template <class Kind>
  static subscription adopt(const std::shared_ptr<router>& owner, receiver* r, const Kind& kind) {
    const std::uint64_t id = owner->subscribe(r);
    try {
      notify_subscribed(kind, owner, id);
    } catch (...) {
      owner->unsubscribe(id);
      throw;
    }
    return subscription(owner, id);
  }

  /// Subscribes a compact handler (delivery/synchronous.hpp: fits_in_entry) of events of type
  /// T to the concrete topic `text` (validated by the caller): no receiver, the topic's list
  /// entry holds it.
  template <class T, class F>
  static subscription adopt_compact(const std::shared_ptr<router>& owner, std::string_view text, const F& handler) {
    using packed = compact_handler<T, F>;
    return subscription(owner, owner->subscribe_compact(text, type_id_of<T>(), &packed::call, packed::pack(handler)));
  }
  /// A channel on `node` (pinned: the router keeps it while the channel lives).
  template <class T, class Store>
  static channel<T, Store> make_channel(std::shared_ptr<router> owner, channel_store<Store> store, topic_pin node) {
    return channel<T, Store>(std::move(owner), std::move(store), std::move(node));
  }
};

/// True for a bus whose storage policy keeps events (false for anything else, so that a wrong
/// argument gives one error: the caller's static_assert). For modules over any bus type (the
/// consumer module, the bridges).
template <class Bus>
inline constexpr bool bus_stores_events = [] {
  if constexpr (requires { Bus::storage_type::persists; }) return bool{Bus::storage_type::persists};
  return false;
}();

}  // namespace agentbus::detail

#endif  // AGENTBUS_BUS_DETAIL_BUS_ACCESS_HPP
