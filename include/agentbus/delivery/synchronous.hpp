// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_SYNCHRONOUS_HPP
#define AGENTBUS_DELIVERY_SYNCHRONOUS_HPP

// The default delivery kind: the handler runs inside publish(), on the publishing thread,
// and sees the event by reference (zero copy).

#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/delivery/delivery.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus {

namespace detail {

/// A synchronous receiver: invoke calls the handler.
template <class T, class F>
struct synchronous_receiver : receiver {
  template <class G, class Kind>
  synchronous_receiver(G&& g, topic_pattern pat, const Kind&)
      : receiver(type_id_of<T>(), &call, &destroy_self, std::move(pat)), fn(std::forward<G>(g)) {}

  static bool call(receiver* r, const event_core& e) {
    call_handler<T>(static_cast<synchronous_receiver*>(r)->fn, static_cast<const event<T>&>(e));
    return true;
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<synchronous_receiver*>(r); }

  F fn;
};

/// True when a synchronous handler can live in its topic's list entry instead of a receiver
/// (a compact subscription: 32 bytes in all instead of a receiver's 100 and more): it is
/// trivially copyable, fits in a pointer (a lambda capturing nothing, or one pointer or
/// reference), and is callable as const. The entry holds its bytes and every call works on a
/// copy of them, so a handler that changes its own state (`mutable`) keeps a receiver.
template <class T, class F>
inline constexpr bool fits_in_entry = std::conjunction_v<
    std::bool_constant<std::is_trivially_copyable_v<F> && sizeof(F) <= sizeof(std::uintptr_t) &&
                       alignof(F) <= alignof(std::uintptr_t)>,
    // Asked in call_handler's order, and stopping at the first yes: a generic handler's body is
    // not instantiated with a type it was not written for.
    std::disjunction<std::is_invocable<const F&, const event<T>&>, std::is_invocable<const F&, const T&>>>;

/// A compact subscription's handler, packed into the entry's `target` word and unpacked by
/// its `invoke` (the word is never dereferenced).
template <class T, class F>
  requires fits_in_entry<T, F>
struct compact_handler {
  static receiver* pack(const F& f) noexcept {
    std::uintptr_t word = 0;
    std::memcpy(&word, static_cast<const void*>(&f), sizeof(F));
    return reinterpret_cast<receiver*>(word);
  }
  static bool call(receiver* packed, const event_core& e) {
    // The array implicitly creates the (implicit-lifetime) F. An empty F has no bytes to copy:
    // its array is value-initialized instead (a store the compiler drops, since F reads
    // nothing; left uninitialized, GCC warns -Wmaybe-uninitialized at -O2).
    alignas(F) unsigned char bytes[sizeof(F)]{};
    if constexpr (!std::is_empty_v<F>) {
      const std::uintptr_t word = reinterpret_cast<std::uintptr_t>(packed);
      std::memcpy(bytes, &word, sizeof(F));
    } else {
      (void)packed;
    }
    const F& fn = *std::launder(reinterpret_cast<const F*>(bytes));
    call_handler<T>(fn, static_cast<const event<T>&>(e));
    return true;
  }
};

}  // namespace detail

/// @brief Delivery kind: the handler runs inside publish() (the default of subscribe()).
struct synchronous {
  /// @brief Marks this type as a delivery kind (delivery/delivery.hpp).
  using delivery_tag = void;
  /// @brief The receiver a subscription of this kind installs: calls the handler.
  template <class T, class F>
  using receiver = detail::synchronous_receiver<T, F>;
};

static_assert(delivery_kind<synchronous>);

}  // namespace agentbus

#endif  // AGENTBUS_DELIVERY_SYNCHRONOUS_HPP
