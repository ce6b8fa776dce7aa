// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_BASIC_BUS_HPP
#define AGENTBUS_BUS_BASIC_BUS_HPP

// The bus: publish typed events on topics, subscribe with patterns. A thin facade: the
// publish path is bus/detail/publish.hpp, the ways of receiving are delivery kinds
// (delivery/), storage is a policy (storage/), and modules reach the bus through
// bus/detail/bus_access.hpp.
//
// Threading contract
//   - publish(), subscribe(), unsubscribe and channel() may be called from any thread at any
//     time, concurrently. Publishing takes no lock at all once a topic has been seen (the first
//     publish to a topic caches its resolution under the writer mutex, which is never held
//     while a handler runs, so no handler can be holding it).
//   - Synchronous handlers (the default delivery) run on the publishing thread, inside
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
//   - Storage (a persisting storage policy: storage::memory_ring<N>, storage::journal): publish()
//     first stores the event, which gives it an offset, then delivers it; publish returns a
//     stored_publish_result with the offset. With storage::journal the event is as durable as
//     the journal's durability policy says when publish returns (durability::always: on disk).
//     Offsets are assigned in the order events are stored; concurrent publishers may deliver
//     in another order than their offsets. A subscription with a history option first
//     receives stored events (replayed on the subscribing thread, inside subscribe()), then
//     live ones: no gap and no duplicate at the seam, with any number of concurrent
//     publishers (delivery/history.hpp).
//   - Destroying the bus unsubscribes everything (waiting for running handlers as unsubscribe
//     does). It must not run concurrently with other calls on the same bus object; channels and
//     subscription handles may outlive it safely.

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

#include "agentbus/bus/channel.hpp"
#include "agentbus/bus/detail/bus_access.hpp"
#include "agentbus/bus/detail/callable_traits.hpp"
#include "agentbus/bus/detail/publish.hpp"
#include "agentbus/bus/options.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/delivery/delivery.hpp"
#include "agentbus/delivery/history.hpp"
#include "agentbus/delivery/synchronous.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/transport/policy.hpp"

namespace agentbus {

namespace detail {

/// What a bus without storage takes instead of storage options (never constructed by users).
struct no_storage_options {};

/// True for a storage policy that keeps events; false for storage::none and for anything that
/// is not a policy (so a wrong parameter gives one error, the static_assert's, not a cascade).
template <class S>
inline constexpr bool stores_events = [] {
  if constexpr (requires { S::persists; }) return bool{S::persists};
  return false;
}();

/// True when S is a complete type (storage::journal is only declared without its header).
template <class S>
concept complete_type = requires { sizeof(S); };

template <class S, bool = stores_events<S>>
struct storage_traits {
  using options = no_storage_options;
  using store = void;
  struct holder {};
};
template <class S>
struct storage_traits<S, true> {
  using options = typename S::options;
  using store = typename S::store;
  struct holder {
    std::shared_ptr<typename S::store> store;  // shared with channels
  };
};

// subscribe()'s trailing arguments: at most one delivery kind, and at most one of
// subscribe_options or history (short for subscribe_options{.history = h}).
template <class A>
inline constexpr bool is_subscribe_option = std::is_same_v<A, subscribe_options> || std::is_same_v<A, history>;

template <class... With>
constexpr bool check_subscribe_arguments() {
  constexpr bool known = ((delivery_kind<With> || is_subscribe_option<With>)&&...);
  static_assert(known,
                "agentbus: subscribe(pattern, handler, ...): after the handler come a delivery kind "
                "(agentbus::async(agent), ...), subscribe_options, or a history (history::all(), ...)");
  constexpr std::size_t kinds = (std::size_t{delivery_kind<With>} + ... + 0);
  constexpr std::size_t options = (std::size_t{is_subscribe_option<With>} + ... + 0);
  static_assert(kinds <= 1, "agentbus: subscribe: give at most one delivery kind");
  static_assert(options <= 1, "agentbus: subscribe: give at most one of subscribe_options and history");
  return known && kinds <= 1 && options <= 1;
}

inline synchronous pick_delivery() noexcept { return {}; }
template <class First, class... Rest>
decltype(auto) pick_delivery(const First& first, const Rest&... rest) noexcept {
  if constexpr (delivery_kind<First>)
    return first;
  else
    return pick_delivery(rest...);
}

template <class... With>
subscribe_options pick_options(const With&... with) {
  subscribe_options out;
  (
      [&](const auto& w) {
        using W = std::remove_cvref_t<decltype(w)>;
        if constexpr (std::is_same_v<W, subscribe_options>)
          out = w;
        else if constexpr (std::is_same_v<W, history>)
          out.history = w;
      }(with),
      ...);
  return out;
}

/// The bus's transport attachment: nothing for a transport that does not bridge.
template <class Transport, class Bus>
struct transport_holder {
  void open(Bus&, const typename Transport::options&) noexcept {}
  void close() noexcept {}
};

/// A bridging transport's attachment (e.g. nats_bridge), made when the bus opens and
/// destroyed before the bus shuts down.
template <class Transport, class Bus>
  requires(Transport::bridges)
struct transport_holder<Transport, Bus> {
  using attachment = typename Transport::template attachment<Bus>;
  static_assert(complete_type<attachment>,
                "agentbus: this bus's transport attaches a module that is declared but not defined here: for "
                "transport::nats, #include <agentbus/bridge/nats.hpp> (and link agentbus::nats)");

  void open(Bus& bus, const typename Transport::options& options) { link = std::make_unique<attachment>(bus, options); }
  void close() noexcept { link.reset(); }
  std::unique_ptr<attachment> link;
};

}  // namespace detail

/// @brief An event bus, with its storage and transport chosen at compile time.
/// `agentbus::bus` is `basic_bus<storage::none, transport::in_process>`.
template <class Storage, class Transport>  // defaults: storage::none, transport::in_process (fwd.hpp)
class basic_bus {
  static_assert(detail::complete_type<Storage>,
                "agentbus: this storage policy is declared but not defined here: for storage::journal, "
                "#include <agentbus/storage/journal.hpp> (POSIX only, not in the umbrella header)");
  static_assert(!detail::complete_type<Storage> || storage_policy<Storage>,
                "agentbus: the first basic_bus parameter must be a storage policy (storage::none, "
                "storage::memory_ring<N>, storage::journal): see storage/policy.hpp");
  static_assert(transport_policy<Transport>,
                "agentbus: the second basic_bus parameter must be a transport policy (transport::in_process, ...): "
                "a type with `using transport_tag = void;`, `static constexpr bool bridges` and `using options`");

  using traits = detail::storage_traits<Storage>;
  static constexpr bool stores = detail::stores_events<Storage>;

 public:
  using storage_type = Storage;      ///< the storage policy
  using transport_type = Transport;  ///< the transport policy
  /// @brief What the storage policy is opened with (storage::journal: journal_options).
  using storage_options = typename traits::options;
  /// @brief What the transport policy is opened with (transport::nats: nats_options).
  using transport_options = typename Transport::options;
  /// @brief What publish returns: publish_result, or stored_publish_result when the bus stores events.
  using result_type = std::conditional_t<stores, stored_publish_result, publish_result>;
  /// @brief What channel<T>() returns.
  template <class T>
  using channel_type = agentbus::channel<T, typename traits::store>;

  /// @brief An empty bus (with storage opened with default options, for policies that have them).
  basic_bus()
    requires(!stores || std::default_initializable<storage_options>)
      : basic_bus(storage_options{}, bus_options{}) {}
  /// @brief An empty bus with `options` (storage opened with default options).
  explicit basic_bus(const bus_options& options)
    requires(!stores || std::default_initializable<storage_options>)
      : basic_bus(storage_options{}, options) {}
  /// @brief An empty bus whose storage is opened with `storage`, then its transport (for one
  /// that bridges) with `transport`; a storage error (e.g. journal_error for a locked journal
  /// directory) or a transport error (e.g. nats_error: no server there) propagates.
  explicit basic_bus(const storage_options& storage, const bus_options& options = {},
                     const transport_options& transport = {})
      : router_(std::make_shared<detail::router>(options.max_cached_topics)) {
    if constexpr (stores) {
      storage_.store = std::make_shared<typename Storage::store>(storage);
      if constexpr (requires { storage_.store->open_dedup(options.dedup); }) storage_.store->open_dedup(options.dedup);
    } else {
      (void)storage;
    }
    if constexpr (Transport::bridges) {
      static_assert(transport_attachment_for<Transport, basic_bus>,
                    "agentbus: the transport policy's attachment must be constructible from (bus&, const options&)");
      try {
        transport_.open(*this, transport);
      } catch (...) {
        router_->shutdown();
        throw;
      }
    } else {
      (void)transport;
    }
  }
  /// @brief An empty bus whose bridging transport is opened with `transport` (storage opened
  /// with default options): `basic_bus<storage::none, transport::nats> bus({.url = ...});`.
  explicit basic_bus(const transport_options& transport)
    requires(Transport::bridges && (!stores || std::default_initializable<storage_options>))
      : basic_bus(storage_options{}, bus_options{}, transport) {}
  basic_bus(const basic_bus&) = delete;
  basic_bus& operator=(const basic_bus&) = delete;
  /// @brief Closes the transport (a bridge: its exports, imports and connections), then
  /// unsubscribes everything; see the threading contract above.
  ~basic_bus() { transport_.close(); router_->shutdown(); }

  /// @brief The transport's attachment, for a transport that bridges: with transport::nats the
  /// bus's nats_bridge (`bus.transport().export_type<order>("orders.>")`, stats(), ...).
  auto& transport() noexcept
    requires(Transport::bridges)
  {
    return *transport_.link;
  }

  /// @brief Publishes `payload` on `topic` (validated: topic_error when invalid). Synchronous
  /// handlers see the payload by reference: it is never copied. When a receiver keeps the
  /// event (a mailbox), the payload goes once into a shared block: moved from an rvalue,
  /// else copied.
  template <class P>
  result_type publish(std::string_view topic, P&& payload,
                      const publish_options& options = detail::default_publish_options) {
    check_payload<P>();
    detail::read_guard guard;
    detail::topic_node* node = router_->node(topic);  // validates an uncached topic (topic_error)
    return publish_on(node, topic, std::forward<P>(payload), options, guard.slot());
  }
  /// @brief Publishes `payload` on a pre-validated topic, reusing its precomputed hash.
  template <class P>
  result_type publish(const agentbus::topic& topic, P&& payload,
                      const publish_options& options = detail::default_publish_options) {
    check_payload<P>();
    detail::read_guard guard;
    detail::topic_node* node = router_->node(topic.str(), topic.hash());
    return publish_on(node, topic.str(), std::forward<P>(payload), options, guard.slot());
  }

  /// @brief Subscribes `handler` to `pattern` (validated: topic_error when invalid) for events
  /// of type T, which is deduced from the handler's parameter (`const event<T>&` or
  /// `const T&`) unless given. After the handler, optionally:
  ///   - a delivery kind: how the handler receives events. Default synchronous (inside
  ///     publish()); `agentbus::async(agent)` queues them in the agent's mailbox;
  ///   - subscribe_options, or just a history (`history::all()`): replay stored events first
  ///     (a bus that stores events only), then go live with no gap and no duplicate.
  /// `bus.subscribe<order>("orders.>", handler, agentbus::async(worker), agentbus::history::all())`
  template <class T = detail::deduce_event_type, class F, class... With>
  [[nodiscard("the subscription ends when the returned handle is destroyed")]] subscription subscribe(
      std::string_view pattern, F&& handler, const With&... with) {
    using E = typename detail::subscribed_event<T, F>::type;
    if constexpr (detail::check_handler<E, F>() && detail::check_subscribe_arguments<With...>()) {
      static_assert(stores || !(std::is_same_v<With, history> || ...),
                    "agentbus: subscribe with history needs a bus that stores events: "
                    "basic_bus<storage::memory_ring<N>> or basic_bus<storage::journal>");
      return subscribe_with<E>(pattern, std::forward<F>(handler), detail::pick_delivery(with...),
                               detail::pick_options(with...));
    } else {
      return {};
    }
  }

  /// @brief Replays stored events of type T from `from` on topics matching `pattern` into
  /// `handler` (on this thread), up to the last event stored when the replay reaches it.
  /// Returns what it found: delivered, skipped and damaged records are all counted. A handler
  /// that throws is counted (handler_failures) and the replay goes on.
  template <class T, class F>
  replay_stats replay(history from, std::string_view pattern, F&& handler) {
    static_assert(stores, "agentbus: replay needs a bus that stores events (storage::memory_ring<N>, "
                                     "storage::journal)");
    if constexpr (stores && detail::check_handler<T, F>()) {
      auto cursor = storage_.store->template open<T>(from, filter_of(pattern));
      while (cursor.next()) {
        try {
          detail::call_handler<T>(handler, cursor.current());
        } catch (...) {
          ++cursor.stats().handler_failures;
        }
      }
      return std::move(cursor.stats());
    } else {
      return {};
    }
  }

  /// @brief Stored events of type T from `from` on, on topics matching `pattern` (default:
  /// all), as a single-pass range: `for (const event<T>& ev : bus.records<T>(history::all()))`.
  /// It ends at the last stored event when it gets there; stats() says what it skipped.
  template <class T>
  auto records(history from, std::string_view pattern = ">") {
    static_assert(stores, "agentbus: records needs a bus that stores events (storage::memory_ring<N>, "
                                     "storage::journal)");
    if constexpr (stores) {
      using cursor_type = decltype(storage_.store->template open<T>(from, std::nullopt));
      return replay_range<cursor_type>(storage_.store->template open<T>(from, filter_of(pattern)));
    }
  }

  /// @brief The bus's storage (journal: engine() for sync(), stats(), recovery(); upcast<T>()).
  auto& storage() noexcept {
    static_assert(stores, "agentbus: storage(): this bus stores nothing (storage::none)");
    return *storage_.store;
  }

  /// @brief A channel bound to `topic` for events of type T: the fastest way to publish.
  /// Throws topic_error if `topic` is invalid. On a bus that stores events it stores, then
  /// delivers, and returns the offset (it keeps the storage open while it lives).
  template <class T>
  channel_type<T> channel(std::string_view topic) {
    detail::read_guard guard;
    auto node = detail::topic_pin::adopt(router_->pinned_node(topic));
    if constexpr (stores)
      return detail::bus_access::make_channel<T>(router_, detail::channel_store<typename traits::store>{storage_.store},
                                                 std::move(node));
    else
      return detail::bus_access::make_channel<T>(router_, detail::channel_store<void>{}, std::move(node));
  }

  /// @brief Installs the hook that receives handler failures (replaces any previous one;
  /// an empty function removes it). See error_handler.
  void on_error(error_handler hook) { router_->set_error_handler(std::move(hook)); }

  /// @brief A snapshot of the bus's counters.
  bus_stats stats() const { return router_->stats(); }

 private:
  friend struct detail::bus_access;

  template <class P>
  static constexpr void check_payload() {
    static_assert(event_type<std::remove_cvref_t<P>>,
                  "agentbus: publish: the payload must be a movable object type (not an array, not a string "
                  "literal: wrap text in std::string)");
  }

  // After the lookup (`node` null: beyond the cache), inside the read section: store (if the
  // bus stores), then deliver, through the one publish path.
  template <class P>
  AGENTBUS_ALWAYS_INLINE result_type publish_on(detail::topic_node* node, std::string_view text, P&& payload,
                                                const publish_options& options, detail::reader_slot* slot) {
    if constexpr (stores)
      return detail::publish_stored(*router_, *storage_.store, node, node != nullptr ? node->name() : text,
                                    std::forward<P>(payload), options, slot);
    else if (AGENTBUS_UNLIKELY(detail::needs_storage(options)))
      detail::throw_needs_storage(options);
    else if (AGENTBUS_LIKELY(node != nullptr))
      return detail::publish(*router_, *node, std::forward<P>(payload), options, slot);
    else
      return detail::publish_uncached(*router_, text, std::forward<P>(payload), options, slot);
  }

  // The one subscribe body, for every delivery kind: build the kind's receiver (wrapped in
  // with_history when asked), register it, replay history into it.
  template <class T, class F, class Kind>
  subscription subscribe_with(std::string_view pattern, F&& handler, const Kind& kind,
                              const subscribe_options& options) {
    using receiver_type = typename Kind::template receiver<T, std::decay_t<F>>;
    if constexpr (std::is_same_v<Kind, synchronous> && detail::fits_in_entry<T, std::decay_t<F>>) {
      // A small handler on one topic, with no option that needs a receiver: kept in the
      // topic's list entry (a compact subscription), 32 bytes instead of a receiver's 100+.
      if (!options.history && !options.delayed) {
        if (const auto check = topic_pattern::validate(pattern); !check) throw topic_error(pattern, check);
        if (pattern.find_first_of("*>") == std::string_view::npos)
          return detail::bus_access::adopt_compact<T, std::decay_t<F>>(router_, pattern, handler);
      }
    }
    topic_pattern parsed(pattern);
    if (!options.history) {
      auto r = std::make_unique<receiver_type>(std::forward<F>(handler), std::move(parsed), kind);
      take_delayed_if_asked(*r, options);
      return detail::bus_access::adopt(router_, r.release(), kind);
    }
    if constexpr (stores) {
      std::optional<topic_pattern> filter(parsed);
      auto* r = new detail::with_history<receiver_type>(std::forward<F>(handler), std::move(parsed), kind);
      try {
        take_delayed_if_asked(*r, options);
      } catch (...) {
        r->destroy(r);
        throw;
      }
      subscription sub = detail::bus_access::adopt(router_, r, kind);  // live now, but not delivering yet
      // Pairs with the light barrier a publisher runs between storing and dispatching: either
      // the publisher sees this receiver, or this thread sees that event's offset.
      detail::asymmetric_heavy_barrier();
      auto cursor = storage_.store->template open<T>(*options.history, std::move(filter));
      r->template replay<T>(*storage_.store, cursor);
      if (options.report != nullptr) *options.report = std::move(cursor.stats());
      return sub;
    } else {
      throw std::invalid_argument(
          "agentbus: subscribe with history needs a bus that stores events: basic_bus<storage::memory_ring<N>> or "
          "basic_bus<storage::journal>");
    }
  }

  // subscribe_options::delayed: only a receiver that keeps no event can take delayed ones (the
  // delayed path builds the event on the publisher's stack).
  static void take_delayed_if_asked(detail::receiver& r, const subscribe_options& options) {
    if (!options.delayed) return;
    if (r.retains)
      throw std::invalid_argument(
          "agentbus: subscribe_options::delayed needs synchronous delivery (a subscription that keeps no event)");
    r.takes_delayed = true;
  }

  static std::optional<topic_pattern> filter_of(std::string_view pattern) {
    if (pattern == ">") return std::nullopt;  // every topic: no need to match
    return topic_pattern(pattern);
  }

  std::shared_ptr<detail::router> router_;
  [[no_unique_address]] typename traits::holder storage_;
  [[no_unique_address]] detail::transport_holder<Transport, basic_bus> transport_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_BASIC_BUS_HPP
