// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_CALLABLE_TRAITS_HPP
#define AGENTBUS_DETAIL_CALLABLE_TRAITS_HPP

// Deduces the event type a handler takes, so that `bus.subscribe("t", [](const event<order>&){})`
// needs no explicit template argument.

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

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_CALLABLE_TRAITS_HPP
