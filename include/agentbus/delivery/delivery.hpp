// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_DELIVERY_HPP
#define AGENTBUS_DELIVERY_DELIVERY_HPP

// Delivery kinds: how a subscription receives its events. This is the seam through which
// new ways of receiving are added without touching basic_bus:
//
//   bus.subscribe("tasks.*", handler);                      // synchronous (the default)
//   bus.subscribe("tasks.*", handler, agentbus::async(a));  // a mailbox, run by agent a
//   bus.subscribe("tasks.*", handler, my_kind{...});        // a kind written elsewhere
//
// A delivery kind D is a small value type with
//
//   using delivery_tag = void;
//   template <class T, class F> using receiver = R;   // R<T, F>: the receiver it builds
//   void subscribed(const std::shared_ptr<detail::router>&, std::uint64_t id) const;  // optional
//
// where R derives from detail::receiver (router/detail/receiver.hpp), is not final (history
// derives from it), and is constructible as `R(F&& handler, topic_pattern pattern, const D& kind)`. Its constructor sets the receiver's
// `invoke` function (called inside publish for every matching event of type T; returns false
// when it refused the event), `destroy`, and, for a receiver that keeps events beyond the
// call, `retains` (publish then builds the event once in a shared block, which `invoke` may
// keep a reference to: `ev.block()`) and `hand_over` (see receiver). `subscribed` runs once
// the subscription is live; when it throws, the subscription is undone and the exception
// propagates out of subscribe().
//
// The bus does the rest for every kind alike: it checks the handler, parses the pattern,
// builds the receiver, registers it with the router and returns the subscription handle
// (for `synchronous` with a small handler on a concrete topic it builds no receiver: the
// handler lives in the topic's list entry, see synchronous.hpp `fits_in_entry`);
// with a history option it wraps the receiver in with_history (delivery/history.hpp), which
// feeds stored events through the same `invoke` before the live ones.
//
// Handler failures: an exception out of `invoke` is counted and handed to the bus's error
// hook by the router; a kind that runs the handler later (a mailbox) reports through
// `owner->report_failure(...)` itself.

#include <concepts>
#include <memory>
#include <type_traits>

#include "agentbus/core/event.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus {

namespace detail {

/// An event type and handler used only to check a kind's receiver template.
struct probe_event {};
struct probe_handler {
  void operator()(const event<probe_event>&) const {}
};

}  // namespace detail

/// @brief A delivery kind: how a subscription receives its events (see the top of this file).
template <class D>
concept delivery_kind =
    requires { typename D::delivery_tag; } &&
    std::derived_from<typename D::template receiver<detail::probe_event, detail::probe_handler>, detail::receiver> &&
    std::constructible_from<typename D::template receiver<detail::probe_event, detail::probe_handler>,
                            detail::probe_handler&&, topic_pattern, const D&>;

namespace detail {

/// Calls a handler taking `const event<T>&` or `const T&`.
template <class T, class F>
inline void call_handler(F& fn, const event<T>& ev) {
  if constexpr (std::is_invocable_v<F&, const event<T>&>)
    fn(ev);
  else
    fn(ev.payload());
}

/// Runs a kind's `subscribed` hook, when it has one.
template <class D, class Router>
void notify_subscribed(const D& kind, const std::shared_ptr<Router>& owner, std::uint64_t id) {
  if constexpr (requires { kind.subscribed(owner, id); }) kind.subscribed(owner, id);
}

}  // namespace detail
}  // namespace agentbus

#endif  // AGENTBUS_DELIVERY_DELIVERY_HPP
