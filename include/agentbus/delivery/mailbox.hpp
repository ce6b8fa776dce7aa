// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_MAILBOX_HPP
#define AGENTBUS_DELIVERY_MAILBOX_HPP

// Delivery into a mailbox: `bus.subscribe(pattern, handler, agentbus::async(agent))`. Publishing
// queues the event's shared block (one per publish, whatever the number of receivers) in the
// agent's mailbox; the handler runs later, on the agent's consumer (its thread, an executor's
// worker, or the application's poll()). Destroying the agent ends the subscription.

#include <cstdint>
#include <exception>
#include <memory>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/delivery/delivery.hpp"
#include "agentbus/delivery/detail/mailbox.hpp"
#include "agentbus/delivery/mailbox_options.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus {

namespace detail {

/// A mailbox receiver: invoke queues the event in the mailbox; the mailbox's consumer runs the
/// handler through `handle`.
template <class T, class F>
struct mailbox_receiver : mailbox_receiver_base {
  template <class G, class Kind>
  mailbox_receiver(G&& g, topic_pattern pat, const Kind& kind)
      : mailbox_receiver_base(type_id_of<T>(), &enqueue, &destroy_self, std::move(pat), *kind.box, &run, &return_home),
        fn(std::forward<G>(g)) {}

  static bool enqueue(receiver* r, const event_core& e) {
    auto* self = static_cast<mailbox_receiver*>(r);
    return self->home->deliver(self, e);
  }
  static void run(receiver* r, const event_core& e) {
    call_handler<T>(static_cast<mailbox_receiver*>(r)->fn, static_cast<const event<T>&>(e));
  }
  // Unsubscribed: queued events may still name it; the mailbox frees it once none can.
  static void return_home(receiver* r) noexcept {
    try {
      static_cast<mailbox_receiver*>(r)->home->retire_receiver(r);
    } catch (...) {
      // Out of memory recording it: the receiver is dead (alive == false) and stays allocated.
    }
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<mailbox_receiver*>(r); }

  F fn;
};

}  // namespace detail

/// @brief Delivery kind: events go into a mailbox and the handler runs on its consumer.
/// Made by `agentbus::async(agent)` (agent/agent.hpp).
struct mailbox_delivery {
  /// @brief Marks this type as a delivery kind (delivery/delivery.hpp).
  using delivery_tag = void;
  /// @brief The receiver a subscription of this kind installs: queues into `box`.
  template <class T, class F>
  using receiver = detail::mailbox_receiver<T, F>;

  detail::mailbox* box;  ///< the mailbox events go to

  /// The mailbox remembers the subscription, so that destroying the agent ends it.
  void subscribed(const std::shared_ptr<detail::router>& owner, std::uint64_t id) const { box->track(owner, id); }
};

static_assert(delivery_kind<mailbox_delivery>);

}  // namespace agentbus

#endif  // AGENTBUS_DELIVERY_MAILBOX_HPP
