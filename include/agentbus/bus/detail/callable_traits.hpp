// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_DETAIL_CALLABLE_TRAITS_HPP
#define AGENTBUS_BUS_DETAIL_CALLABLE_TRAITS_HPP

// What a handler may be: deduces the event type it takes, so that
// `bus.subscribe("t", [](const event<order>&){})` needs no explicit template argument, and
// checks a handler with one readable error per mistake.

#include <type_traits>

#include "agentbus/core/event.hpp"

namespace agentbus::detail {

template <class A>
struct event_of_argument {
  using type = std::remove_cvref_t<A>;
};
template <class A>
  requires requires { typename std::remove_cvref_t<A>::agentbus_payload_type; }
struct event_of_argument<A> {
  using type = typename std::remove_cvref_t<A>::agentbus_payload_type;
};

template <class F>
struct handler_argument {};  // not deducible (generic lambda, overloaded call operator, ...)
template <class F>
  requires requires { &F::operator(); }
struct handler_argument<F> : handler_argument<decltype(&F::operator())> {};
template <class R, class A>
struct handler_argument<R (*)(A)> {
  using type = A;
};
template <class R, class A>
struct handler_argument<R (*)(A) noexcept> {
  using type = A;
};
template <class C, class R, class A>
struct handler_argument<R (C::*)(A)> {
  using type = A;
};
template <class C, class R, class A>
struct handler_argument<R (C::*)(A) const> {
  using type = A;
};
template <class C, class R, class A>
struct handler_argument<R (C::*)(A) noexcept> {
  using type = A;
};
template <class C, class R, class A>
struct handler_argument<R (C::*)(A) const noexcept> {
  using type = A;
};

/// True when the event type taken by F can be deduced.
template <class F>
concept deducible_handler = requires { typename handler_argument<std::decay_t<F>>::type; };

/// The event type taken by F: T for `const event<T>&` or `const T&`.
template <class F>
using handler_event_t = typename event_of_argument<typename handler_argument<std::decay_t<F>>::type>::type;

/// subscribe<T>'s default: "deduce T from the handler".
struct deduce_event_type {};

/// The event type a subscription takes: T, or deduced from F when T is deduce_event_type
/// (void when it cannot be deduced).
template <class T, class F>
struct subscribed_event {
  using type = T;
};
template <class F>
struct subscribed_event<deduce_event_type, F> {
  using type = void;
};
template <class F>
  requires deducible_handler<F>
struct subscribed_event<deduce_event_type, F> {
  using type = handler_event_t<F>;
};

/// Checks a handler for events of type T (void: not deducible); each mistake gives one
/// static_assert, and the result lets the caller stop before instantiating anything else.
template <class T, class F>
constexpr bool check_handler() {
  if constexpr (std::is_void_v<T>) {
    static_assert(!std::is_void_v<T>,
                  "agentbus: subscribe: cannot deduce the event type of this handler. A handler takes exactly one "
                  "parameter, `const agentbus::event<T>&` or `const T&`; for a generic lambda write "
                  "bus.subscribe<T>(pattern, handler)");
    return false;
  } else if constexpr (!event_type<T>) {
    static_assert(event_type<T>, "agentbus: subscribe<T>: T must be a movable, non-const object type");
    return false;
  } else {
    using fn_type = std::decay_t<F>;
    // disjunction stops at the first match: a generic lambda is never instantiated with
    // `const T&` once it accepts `const event<T>&` (instantiating its body with the wrong type
    // is a hard error).
    constexpr bool invocable =
        std::disjunction_v<std::is_invocable<fn_type&, const event<T>&>, std::is_invocable<fn_type&, const T&>>;
    static_assert(invocable,
                  "agentbus: subscribe<T>: the handler must be callable with `const agentbus::event<T>&` or "
                  "`const T&` (one parameter)");
    return invocable;
  }
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_BUS_DETAIL_CALLABLE_TRAITS_HPP
