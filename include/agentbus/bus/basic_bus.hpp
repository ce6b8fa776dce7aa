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
//   - Storage (a persisting storage policy: storage::memory_ring<N>, storage::journal): publish()
//     first stores the event, which gives it an offset, then delivers it; publish returns a
//     stored_publish_result with the offset. With storage::journal the event is as durable as
//     the journal's durability policy says when publish returns (durability::always: on disk).
//     Offsets are assigned in the order events are stored; concurrent publishers may deliver
//     in another order than their offsets. A subscription with a history option first
//     receives stored events (replayed on the subscribing thread, inside subscribe()), then
//     live ones: no gap and no duplicate at the seam, with any number of concurrent
//     publishers.
//   - Destroying the bus unsubscribes everything (waiting for running handlers as unsubscribe
//     does). It must not run concurrently with other calls on the same bus object; channels and
//     subscription handles may outlive it safely.

#include <concepts>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/agent/mailbox.hpp"
#include "agentbus/bus/channel.hpp"
#include "agentbus/bus/stored_channel.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/handler_failure.hpp"
#include "agentbus/detail/callable_traits.hpp"
#include "agentbus/detail/quiescence.hpp"
#include "agentbus/detail/receiver.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/subscription.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/transport/policy.hpp"

namespace agentbus {

namespace detail {

/// What a bus without storage takes instead of storage options (never constructed by users).
struct no_storage_options {};

template <class S, bool = S::persists>
struct storage_traits {
  using options = no_storage_options;
  struct holder {};
};
template <class S>
struct storage_traits<S, true> {
  using options = typename S::options;
  struct holder {
    std::shared_ptr<typename S::store> store;  // shared with stored channels
  };
};

/// The seam between a history subscription's replay and its live events. Until the replay
/// has caught up, live events are not delivered (the replay reads them from storage: every
/// event is stored before it is dispatched); afterwards those below the seam are skipped
/// (the replay delivered them).
struct history_seam {
  std::atomic<bool> live{false};
  std::mutex mutex;
  std::uint64_t seam = 0;  // written before live is set (release), read after it is seen

  /// True when a live event is for the subscriber to receive now.
  bool admits(const event_core& e) {
    if (AGENTBUS_UNLIKELY(!live.load(std::memory_order_acquire))) {
      // The mutex orders this check against the replay's final one (catch_up below).
      std::lock_guard lock(mutex);
      if (!live.load(std::memory_order_relaxed)) return false;
    }
    const auto offset = e.offset();
    return !(offset && *offset < seam);
  }

  /// Runs the replay: hands each stored event to `deliver` until the cursor has reached the
  /// end of storage, then opens the seam there, in one step under the mutex.
  template <class Store, class Cursor, class Deliver>
  void catch_up(const Store& store, Cursor& cursor, Deliver deliver) {
    for (;;) {
      while (cursor.next()) deliver(cursor);
      std::unique_lock lock(mutex);
      if (cursor.position() >= store.next_offset()) {
        // The cursor's position, not next_offset(): a journal reader can already have read a
        // record whose offset next_offset() does not count yet. (A cursor never starts beyond
        // the end: stores clamp history::from_offset to it.)
        seam = cursor.position();
        live.store(true, std::memory_order_release);
        return;
      }
      lock.unlock();
      std::this_thread::yield();  // more was stored meanwhile (or is being written): read on
    }
  }
};

/// A synchronous subscription with history: the handler runs inside publish() once caught up.
template <class T, class F>
struct history_receiver final : receiver {
  template <class G>
  history_receiver(G&& g, topic_pattern pat)
      : receiver(type_id_of<T>(), &call, &destroy_self, std::move(pat)), fn(std::forward<G>(g)) {}

  static bool call(receiver* r, const event_core& e) {
    auto* self = static_cast<history_receiver*>(r);
    if (self->seam.admits(e)) call_handler<T>(self->fn, static_cast<const event<T>&>(e));
    return true;  // an event not admitted is (or was) delivered by the replay
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<history_receiver*>(r); }

  F fn;
  history_seam seam;
};

/// An agent's subscription with history: the replay queues stored events in the agent's
/// mailbox, then live events follow them there.
template <class T, class F>
struct history_async_receiver final : receiver {
  template <class G>
  history_async_receiver(G&& g, topic_pattern pat, mailbox& box)
      : receiver(type_id_of<T>(), &enqueue, &destroy_self, std::move(pat)), fn(std::forward<G>(g)) {
    home = &box;
    handle = &run;
    hand_over = &async_receiver<T, F>::return_home;  // type-independent: back to the mailbox
  }

  static void run(receiver* r, const event_core& e) {
    call_handler<T>(static_cast<history_async_receiver*>(r)->fn, static_cast<const event<T>&>(e));
  }

  static bool enqueue(receiver* r, const event_core& e) {
    auto* self = static_cast<history_async_receiver*>(r);
    if (!self->seam.admits(e)) return true;
    return r->home->deliver(r, e);
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<history_async_receiver*>(r); }

  F fn;
  history_seam seam;
};

}  // namespace detail

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
  /// @brief What the storage policy is opened with (storage::journal: journal_options).
  using storage_options = typename detail::storage_traits<Storage>::options;
  /// @brief What publish returns: publish_result, or stored_publish_result when the bus stores events.
  using result_type = std::conditional_t<Storage::persists, stored_publish_result, publish_result>;

  /// @brief An empty bus (with storage opened with default options, for policies that have them).
  basic_bus()
    requires(!Storage::persists || std::default_initializable<storage_options>)
      : basic_bus(storage_options{}) {}
  /// @brief An empty bus whose storage is opened with `options`; a storage error (e.g.
  /// journal_error for a locked journal directory) propagates.
  explicit basic_bus(const storage_options& options) : router_(std::make_shared<detail::router>()) {
    if constexpr (Storage::persists) storage_.store = std::make_shared<typename Storage::store>(options);
    else (void)options;
  }
  basic_bus(const basic_bus&) = delete;
  basic_bus& operator=(const basic_bus&) = delete;
  /// @brief Unsubscribes everything; see the threading contract above.
  ~basic_bus() { router_->shutdown(); }

  /// @brief Publishes `payload` on `topic`. Throws topic_error if `topic` is invalid.
  /// Synchronous handlers see the payload by reference: it is never copied. When a mailbox
  /// subscribes, the payload goes once into a shared block: moved from an rvalue, else copied.
  template <class P>
  result_type publish(std::string_view topic, P&& payload,
                      const publish_options& options = detail::default_publish_options) {
    using T = std::remove_cvref_t<P>;
    static_assert(event_type<T>, "agentbus: publish: the payload must be a movable object type (not an array, "
                                 "not a string literal: wrap text in std::string)");
    if constexpr (Storage::persists) {
      return publish_stored(topic, detail::hash_topic_text(topic), std::forward<P>(payload), options);
    } else {
      detail::read_guard guard;
      if (detail::topic_node* node = router_->node(topic))
        return detail::publish_to_node(*router_, *node, std::forward<P>(payload), options, guard.slot());
      return publish_uncached<T>(topic, payload, options, guard.slot());
    }
  }

  /// @brief Publishes `payload` on a pre-validated topic, reusing its precomputed hash.
  template <class P>
  result_type publish(const agentbus::topic& topic, P&& payload,
                      const publish_options& options = detail::default_publish_options) {
    using T = std::remove_cvref_t<P>;
    static_assert(event_type<T>, "agentbus: publish: the payload must be a movable object type");
    if constexpr (Storage::persists) {
      return publish_stored(topic.str(), topic.hash(), std::forward<P>(payload), options);
    } else {
      detail::read_guard guard;
      if (detail::topic_node* node = router_->node(topic.str(), topic.hash()))
        return detail::publish_to_node(*router_, *node, std::forward<P>(payload), options, guard.slot());
      return publish_uncached<T>(topic.str(), payload, options, guard.slot());
    }
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
    return subscribe_to_mailbox(r, *target.box);
  }

  /// @brief Subscribes `handler` with history (a bus that stores events only): it first
  /// receives the stored events from `from` on, replayed on this thread before subscribe()
  /// returns, then live events — no gap and no duplicate at the seam, whatever other threads
  /// publish meanwhile. Replay problems (records that cannot be decoded, ...) are counted in
  /// `*report` when given; handler failures go to the error hook as usual.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(std::string_view pattern, F&& handler, history from,
                                       replay_stats* report = nullptr) {
    static_assert(Storage::persists,
                  "agentbus: subscribe with history needs a bus that stores events: basic_bus<storage::memory_ring<N>> "
                  "or basic_bus<storage::journal>");
    check_handler<T, F>();
    if constexpr (Storage::persists) {
      topic_pattern parsed(pattern);
      std::optional<topic_pattern> filter(parsed);
      auto* r = new detail::history_receiver<T, std::decay_t<F>>(std::forward<F>(handler), std::move(parsed));
      subscription sub(router_, router_->subscribe(r));  // live now, but not delivering yet
      // Pairs with the light barrier a publisher runs between storing and dispatching: either
      // the publisher sees this receiver, or this thread sees that event's offset.
      detail::asymmetric_heavy_barrier();
      auto cursor = storage_.store->template open<T>(from, std::move(filter));
      r->seam.catch_up(*storage_.store, cursor, [&](auto& c) { deliver_replayed(*r, c.current()); });
      if (report != nullptr) *report = std::move(cursor.stats());
      return sub;
    } else {
      return {};
    }
  }

  /// @brief Subscribes `handler` to run on an agent, with history: the stored events from
  /// `from` on are queued in the agent's mailbox by subscribe() (subject to the mailbox's
  /// overflow policy, like any event), then live events follow — no gap, no duplicate.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(std::string_view pattern, F&& handler, async_target target, history from,
                                       replay_stats* report = nullptr) {
    static_assert(Storage::persists,
                  "agentbus: subscribe with history needs a bus that stores events: basic_bus<storage::memory_ring<N>> "
                  "or basic_bus<storage::journal>");
    check_handler<T, F>();
    if constexpr (Storage::persists) {
      topic_pattern parsed(pattern);
      std::optional<topic_pattern> filter(parsed);
      auto* r = new detail::history_async_receiver<T, std::decay_t<F>>(std::forward<F>(handler), std::move(parsed),
                                                                       *target.box);
      subscription sub = subscribe_to_mailbox(r, *target.box);
      detail::asymmetric_heavy_barrier();  // as in the synchronous overload
      auto cursor = storage_.store->template open<T>(from, std::move(filter));
      r->seam.catch_up(*storage_.store, cursor, [&](auto& c) {
        const shared_event<T> held = c.share();  // the mailbox keeps a block
        (void)target.box->deliver(r, *held);     // a refusal is counted by the mailbox
      });
      if (report != nullptr) *report = std::move(cursor.stats());
      return sub;
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
    static_assert(Storage::persists, "agentbus: replay needs a bus that stores events (storage::memory_ring<N>, "
                                     "storage::journal)");
    check_handler<T, F>();
    if constexpr (Storage::persists) {
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
    static_assert(Storage::persists, "agentbus: records needs a bus that stores events (storage::memory_ring<N>, "
                                     "storage::journal)");
    if constexpr (Storage::persists) {
      using cursor_type = decltype(storage_.store->template open<T>(from, std::nullopt));
      return replay_range<cursor_type>(storage_.store->template open<T>(from, filter_of(pattern)));
    }
  }

  /// @brief The bus's storage (journal: engine() for sync(), stats(), recovery(); upcast<T>()).
  auto& storage() noexcept {
    static_assert(Storage::persists, "agentbus: storage(): this bus stores nothing (storage::none)");
    return *storage_.store;
  }

  /// @brief Subscribes `handler`, deducing the event type from its parameter
  /// (`const event<T>&` or `const T&`). Generic lambdas need subscribe<T>(...).
  template <class F, class... Target>
    requires(sizeof...(Target) <= 1 &&
             ((std::is_same_v<Target, async_target> || std::is_same_v<Target, history>) && ...))
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
  /// On a bus that stores events it is a stored_channel<T, store>: it stores, then delivers,
  /// and returns the offset (it keeps the storage open while it lives).
  template <class T>
  auto channel(std::string_view topic) {
    detail::read_guard guard;
    detail::topic_node* node = router_->node(topic, /*pin=*/true);
    if constexpr (Storage::persists)
      return stored_channel<T, typename Storage::store>(router_, storage_.store, node);
    else
      return agentbus::channel<T>(router_, node);
  }

  /// @brief Installs the hook that receives handler failures (replaces any previous one;
  /// an empty function removes it). See error_handler.
  void on_error(error_handler hook) { router_->set_error_handler(std::move(hook)); }

  /// @brief A snapshot of the bus's counters.
  bus_stats stats() const { return router_->stats(); }

 private:
  // Subscribes an asynchronous receiver and lets its mailbox track the subscription (so that
  // destroying the agent ends it); undone if tracking fails.
  subscription subscribe_to_mailbox(detail::receiver* r, detail::mailbox& box) {
    const std::uint64_t id = router_->subscribe(r);  // takes ownership, even when it throws
    try {
      box.track(router_, id);
    } catch (...) {
      router_->unsubscribe(id);
      throw;
    }
    return subscription(router_, id);
  }

  static std::optional<topic_pattern> filter_of(std::string_view pattern) {
    if (pattern == ">") return std::nullopt;  // every topic: no need to match
    return topic_pattern(pattern);
  }

  // Hands a replayed event to a history subscription; failures go to the error hook.
  template <class T, class F>
  void deliver_replayed(detail::history_receiver<T, F>& r, const event<T>& ev) {
    try {
      detail::call_handler<T>(r.fn, ev);
    } catch (...) {
      router_->report_failure(ev, r, std::current_exception());
    }
  }

  // Publish on a bus that stores events: store (which assigns the offset), then deliver.
  template <class P>
  stored_publish_result publish_stored(std::string_view topic, std::uint64_t hash, P&& payload,
                                       const publish_options& options) {
    detail::read_guard guard;
    detail::topic_node* node = router_->node(topic, hash);  // validates the topic (throws topic_error)
    return detail::publish_stored(*router_, *storage_.store, node, node != nullptr ? node->name : topic,
                                  std::forward<P>(payload), options, guard.slot());
  }

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
  [[no_unique_address]] typename detail::storage_traits<Storage>::holder storage_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_BASIC_BUS_HPP
