// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_BASIC_BUS_HPP
#define AGENTBUS_BUS_BASIC_BUS_HPP

// The bus: publish typed events on topics, subscribe with patterns.
//
// Threading contract
//   - publish(), subscribe(), unsubscribe and channel() may be called from any thread at any
//     time, concurrently. Publishing takes no lock at all once a topic has been seen (the first
//     publish to a topic caches its resolution under the writer mutex, which is never held
//     while a handler runs, so no handler can be holding it).
//   - Handlers subscribed with subscribe() run synchronously, on the publishing thread, inside
//     publish(), in subscription order. Two threads publishing at once run handlers at once:
//     a handler shared by several publishing threads must be thread-safe itself.
//   - Reentrancy: a handler may publish (to any topic, including its own), subscribe and
//     unsubscribe (itself included) without deadlock. A subscription made during a dispatch
//     receives events published after subscribe() returns, not the one being dispatched.
//   - Unsubscribing: see subscription. After unsubscribe returns the handler is never called
//     again and no call of it is still running on another thread.
//   - Handler failures: a handler that throws does not stop delivery to the others; the
//     failure is counted (stats().handler_failures) and handed to the error hook (on_error).
//   - Typed delivery: a subscription takes one event type T. A receiver whose pattern matches
//     a topic on which another type U is published is skipped for that event and the skip is
//     counted (stats().type_mismatches); a handler for T never sees a U.
//   - Destroying the bus unsubscribes everything (waiting for running handlers as unsubscribe
//     does). It must not run concurrently with other calls on the same bus object; channels and
//     subscription handles may outlive it safely.

#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/agent/mailbox.hpp"
#include "agentbus/bus/channel.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/handler_failure.hpp"
#include "agentbus/detail/callable_traits.hpp"
#include "agentbus/detail/quiescence.hpp"
#include "agentbus/detail/receiver.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/subscription.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/transport/policy.hpp"

namespace agentbus {

/// @brief An event bus, with its storage and transport chosen at compile time.
/// `agentbus::bus` is `basic_bus<storage::none, transport::in_process>`.
template <class Storage = storage::none, class Transport = transport::in_process>
class basic_bus {
  static_assert(storage_policy<Storage>,
                "agentbus: the first basic_bus parameter must be a storage policy (storage::none, ...): "
                "a type with `using storage_tag = void;` and `static constexpr bool persists`");
  static_assert(transport_policy<Transport>,
                "agentbus: the second basic_bus parameter must be a transport policy (transport::in_process, ...): "
                "a type with `using transport_tag = void;` and `static constexpr bool bridges`");

 public:
  using storage_type = Storage;      ///< the storage policy
  using transport_type = Transport;  ///< the transport policy

  /// @brief An empty bus.
  basic_bus() : router_(std::make_shared<detail::router>()) {}
  basic_bus(const basic_bus&) = delete;
  basic_bus& operator=(const basic_bus&) = delete;
  /// @brief Unsubscribes everything; see the threading contract above.
  ~basic_bus() { router_->shutdown(); }

  /// @brief Publishes `payload` on `topic`. Throws topic_error if `topic` is invalid.
  /// Synchronous handlers see the payload by reference: it is never copied. When a mailbox
  /// subscribes, the payload goes once into a shared block: moved from an rvalue, else copied.
  template <class P>
  publish_result publish(std::string_view topic, P&& payload,
                         const publish_options& options = detail::default_publish_options) {
    using T = std::remove_cvref_t<P>;
    static_assert(event_type<T>, "agentbus: publish: the payload must be a movable object type (not an array, "
                                 "not a string literal: wrap text in std::string)");
    detail::read_guard guard;
    if (detail::topic_node* node = router_->node(topic))
      return detail::publish_to_node(*router_, *node, std::forward<P>(payload), options, guard.slot());
    return publish_uncached<T>(topic, payload, options, guard.slot());
  }

  /// @brief Publishes `payload` on a pre-validated topic, reusing its precomputed hash.
  template <class P>
  publish_result publish(const agentbus::topic& topic, P&& payload,
                         const publish_options& options = detail::default_publish_options) {
    using T = std::remove_cvref_t<P>;
    static_assert(event_type<T>, "agentbus: publish: the payload must be a movable object type");
    detail::read_guard guard;
    if (detail::topic_node* node = router_->node(topic.str(), topic.hash()))
      return detail::publish_to_node(*router_, *node, std::forward<P>(payload), options, guard.slot());
    return publish_uncached<T>(topic.str(), payload, options, guard.slot());
  }

  /// @brief Subscribes `handler` to `pattern` for events of type T. The handler takes
  /// `const event<T>&` or `const T&` (a generic lambda gets `const event<T>&`) and runs inside
  /// publish(). Throws topic_error if `pattern` is invalid.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(std::string_view pattern, F&& handler) {
    check_handler<T, F>();
    topic_pattern parsed(pattern);
    auto* r = new detail::receiver_impl<T, std::decay_t<F>>(std::forward<F>(handler), std::move(parsed));
    return subscription(router_, router_->subscribe(r));  // subscribe takes ownership, even when it throws
  }

  /// @brief Subscribes `handler` to run asynchronously on an agent: `async(agent)`. The event
  /// goes into the agent's mailbox (a shared block: no copy per receiver) and the handler runs
  /// on the agent's consumer. Destroying the agent ends the subscription.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(std::string_view pattern, F&& handler, async_target target) {
    check_handler<T, F>();
    topic_pattern parsed(pattern);
    auto* r = new detail::async_receiver<T, std::decay_t<F>>(std::forward<F>(handler), std::move(parsed), *target.box);
    const std::uint64_t id = router_->subscribe(r);
    try {
      target.box->track(router_, id);
    } catch (...) {
      router_->unsubscribe(id);
      throw;
    }
    return subscription(router_, id);
  }

  /// @brief Subscribes `handler`, deducing the event type from its parameter
  /// (`const event<T>&` or `const T&`). Generic lambdas need subscribe<T>(...).
  template <class F, class... Target>
    requires(sizeof...(Target) <= 1 && (std::is_same_v<Target, async_target> && ...))
  [[nodiscard]] subscription subscribe(std::string_view pattern, F&& handler, Target... target) {
    static_assert(detail::deducible_handler<F>,
                  "agentbus: cannot deduce the event type of this handler (a generic lambda?); write "
                  "bus.subscribe<T>(pattern, handler)");
    if constexpr (detail::deducible_handler<F>)
      return subscribe<detail::handler_event_t<F>>(pattern, std::forward<F>(handler), target...);
    else
      return {};
  }

  /// @brief A channel bound to `topic` for events of type T: the fastest way to publish.
  /// Throws topic_error if `topic` is invalid.
  template <class T>
  agentbus::channel<T> channel(std::string_view topic) {
    detail::read_guard guard;
    return agentbus::channel<T>(router_, router_->node(topic, /*pin=*/true));
  }

  /// @brief Installs the hook that receives handler failures (replaces any previous one;
  /// an empty function removes it). See error_handler.
  void on_error(error_handler hook) { router_->set_error_handler(std::move(hook)); }

  /// @brief A snapshot of the bus's counters.
  bus_stats stats() const { return router_->stats(); }

 private:
  template <class T, class F>
  static constexpr void check_handler() {
    static_assert(event_type<T>, "agentbus: subscribe<T>: T must be a movable, non-const object type");
    using fn_type = std::decay_t<F>;
    // disjunction stops at the first match: a generic lambda is never instantiated with `const T&`
    // once it accepts `const event<T>&` (instantiating its body with the wrong type is a hard error).
    static_assert(std::disjunction_v<std::is_invocable<fn_type&, const event<T>&>, std::is_invocable<fn_type&, const T&>>,
                  "agentbus: subscribe<T>: the handler must be callable with `const agentbus::event<T>&` or "
                  "`const T&`");
  }

  // Beyond the topic cache: resolve under the writer mutex, then deliver as usual.
  template <class T>
  AGENTBUS_NOINLINE publish_result publish_uncached(std::string_view topic, const T& payload,
                                                    const publish_options& options, detail::reader_slot* slot) {
    const std::vector<detail::receiver*> found = router_->resolve_uncached(topic);
    const std::uint64_t id = slot->next_event_id();
    if (found.empty()) return publish_result{0, 0, 0, id};
    detail::receiver_list* list = detail::receiver_list::make_from(found);
    const std::unique_ptr<detail::receiver_list, void (*)(detail::receiver_list*)> owned(
        list, [](detail::receiver_list* l) { detail::receiver_list::delete_erased(l); });
    if (list->retaining()) return detail::publish_retained<T>(*router_, *list, topic, payload, options, id);
    const event<T> ev(payload, topic, options, id, detail::deadline_from(options));
    return router_->dispatch(*list, ev);
  }

  std::shared_ptr<detail::router> router_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_BASIC_BUS_HPP
