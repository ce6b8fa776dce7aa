// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_SYNCHRONOUS_HPP
#define AGENTBUS_DELIVERY_SYNCHRONOUS_HPP

// The default delivery kind: the handler runs inside publish(), on the publishing thread,
// and sees the event by reference (zero copy).

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
