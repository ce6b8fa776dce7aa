// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_DETAIL_PUBLISH_HPP
#define AGENTBUS_BUS_DETAIL_PUBLISH_HPP

// The publish path: everything a publish does, in the order it does it, in one place.
// basic_bus::publish and channel::publish are each one call into this file.
//
//  0. The caller enters a read section (detail/sync/quiescence.hpp: read_guard, a few plain
//     stores) and finds the topic's node (router::node: a lock-free cache lookup; a channel
//     holds its node). A topic beyond the cache has no node.
//  1. Who receives it: a view of the node's receiver list (one acquire load gives its entries
//     so far and their flags), or, beyond the
//     cache, a temporary list resolved under the writer mutex (uncached_receivers).
//  2. Store it (storing buses only: publish_stored): the storage appends the event, which
//     gives it its offset, then a light barrier pairs with history subscribers (see
//     delivery/history.hpp).
//  3. Build the event: on the publisher's stack around a reference to the payload when every
//     receiver is synchronous (zero copy, no allocation); once in a shared block, the payload
//     moved in from an rvalue, when some receiver keeps it (publish_retained; a topic's only
//     receiver may take the publisher's reference to it: core/event.hpp offered_reference).
//  4. Dispatch: router::dispatch calls each entry's invoke (type check, which also skips
//     unsubscribed entries; failures counted and reported), which runs a handler or queues
//     the event.
//
// The payload is forwarded, never re-bound to an lvalue, on every path: a move-only event
// published as an rvalue reaches a mailbox on any of them.

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/core/detail/wall_clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/detail/topic_table.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/storage/dedup.hpp"

namespace agentbus::detail {

// default_publish_options (core/event.hpp): a publish without options builds none.

// ---- 1. Who receives it ------------------------------------------------------------------

/// The receivers of a topic beyond the router's cache, resolved into a list of our own.
class uncached_receivers {
 public:
  uncached_receivers(router& r, std::string_view topic) : list_(make(r.resolve_uncached(topic))) {}
  uncached_receivers(const uncached_receivers&) = delete;
  uncached_receivers& operator=(const uncached_receivers&) = delete;
  ~uncached_receivers() { receiver_list::delete_erased(list_); }
  receiver_view list() const noexcept { return list_->view(); }

 private:
  static receiver_list* make(const std::vector<receiver*>& found) {
    if (found.empty()) return receiver_list::empty();
    receiver_list* list = receiver_list::make_from(found);
    list->mark_transient();  // a handler may unsubscribe a later receiver of this publish
    return list;
  }
  receiver_list* list_;
};

/// Calls `fn` with the receivers of `topic`: its node's list, or resolved beyond the cache
/// when `node` is null.
template <class Fn>
AGENTBUS_ALWAYS_INLINE auto with_receivers(router& r, const topic_node* node, std::string_view topic, Fn&& fn) {
  if (AGENTBUS_LIKELY(node != nullptr)) return fn(node->receivers.load(std::memory_order_acquire)->view());
  const uncached_receivers found(r, topic);
  return fn(found.list());
}

// ---- 3. Build the event once in a shared block (for receivers that keep it) ---------------

[[noreturn]] AGENTBUS_NOINLINE inline void throw_move_only_lvalue() {
  throw std::logic_error(
      "agentbus: a mailbox subscriber must keep this event, which means copying the payload, and its type is "
      "move-only: publish it as an rvalue (std::move) so that it can be moved instead");
}

/// Builds the event in a shared block (the payload moved in when the caller passed an rvalue)
/// and dispatches that block's event to every receiver, synchronous ones included. Out of
/// line: the synchronous path stays small.
template <class T, class P>
AGENTBUS_NOINLINE publish_result publish_retained(router& r, receiver_view list, std::string_view topic,
                                                  P&& payload, const publish_options& options, std::uint64_t id,
                                                  std::uint64_t offset = no_offset, std::int64_t published_ns = 0) {
  if constexpr (std::is_constructible_v<T, P&&>) {
    const T* no_payload = nullptr;
    const event_core meta(no_payload, topic, options, id, deadline_from(options), nullptr, offset);
    if (published_ns != 0) offset_setter::set_published(meta, published_ns);  // the time the journal recorded
    event_block<T>* block = event_block<T>::make(meta, std::forward<P>(payload));
    if (list.size() == 1) {  // one receiver: it may take our reference (core/event.hpp)
      const offered_reference offer(block);
      return r.dispatch(list, block->view);
    }
    const shared_event<T> held = adopt_block(block);
    return r.dispatch(list, *held);
  } else {
    throw_move_only_lvalue();
  }
}

// ---- 3+4. Build and dispatch (a bus that stores nothing) -----------------------------------

/// Delivers to `list`: on the stack when every receiver is synchronous, else in a block.
template <class P>
AGENTBUS_ALWAYS_INLINE publish_result deliver(router& r, receiver_view list, std::string_view topic,
                                              P&& payload, const publish_options& options, std::uint64_t id) {
  using T = std::remove_cvref_t<P>;
  if (AGENTBUS_UNLIKELY(!list.plain())) {  // empty, or a receiver needs a shared block
    if (list.size() == 0) return publish_result{0, 0, 0, id};
    return publish_retained<T>(r, list, topic, std::forward<P>(payload), options, id);
  }
  const event<T> ev(payload, topic, options, id, deadline_from(options));
  return r.dispatch(list, ev);
}

/// Publishes to a cached topic (a channel's, or one the cache found). Inside a read section.
template <class P>
AGENTBUS_ALWAYS_INLINE publish_result publish(router& r, const topic_node& node, P&& payload,
                                              const publish_options& options, reader_slot* slot) {
  const receiver_view list = node.receivers.load(std::memory_order_acquire)->view();
  return deliver(r, list, node.name(), std::forward<P>(payload), options, slot->next_event_id());
}

/// Publishes to a topic beyond the cache (`topic` must be valid).
template <class P>
AGENTBUS_NOINLINE publish_result publish_uncached(router& r, std::string_view topic, P&& payload,
                                                  const publish_options& options, reader_slot* slot) {
  const uncached_receivers found(r, topic);
  return deliver(r, found.list(), topic, std::forward<P>(payload), options, slot->next_event_id());
}

// ---- 2. Store, then build and dispatch (a bus that stores events) --------------------------

/// A delayed event, stored as `out`, goes at once only to the subscriptions that asked for
/// delayed events (subscribe_options::delayed: exporters to a system that holds it until due).
template <class T>
stored_publish_result& delayed_to(router& r, const topic_node* node, std::string_view topic, const event<T>& ev,
                                  stored_publish_result& out) {
  static_cast<publish_result&>(out) =
      with_receivers(r, node, topic, [&](receiver_view list) { return r.dispatch_delayed(list, ev); });
  return out;
}

/// Stores, calls `stored(offset)` (the dedup window's bookkeeping), then delivers. `node` may
/// be null (a topic beyond the router's cache); `topic` must outlive the call. Inside a read
/// section (`slot`).
template <class Store, class P, class Stored>
stored_publish_result store_and_dispatch(router& r, Store& store, const topic_node* node, std::string_view topic,
                                         P&& payload, const publish_options& options, reader_slot* slot,
                                         Stored&& stored, bool deliver = true) {
  using T = std::remove_cvref_t<P>;
  const std::uint64_t id = slot->next_event_id();
  stored_publish_result out;
  if constexpr (Store::keeps_blocks) {
    static_assert(std::is_constructible_v<T, P&&>,
                  "agentbus: a bus with storage::memory_ring keeps every event, which means copying the payload, "
                  "and this type is move-only: publish it as an rvalue (std::move)");
    const T* no_payload = nullptr;
    const event_core meta(no_payload, topic, options, id, deadline_from(options), nullptr);
    const shared_event<T> held = adopt_block(event_block<T>::make(meta, std::forward<P>(payload)));
    out.offset = store.append(const_cast<event<T>&>(*held));  // nobody else sees the block yet
    stored(out.offset);
    asymmetric_light_barrier();  // pairs with a history subscriber's heavy barrier
    if (!deliver)  // delayed: only to subscriptions that asked; consumers take it when due
      return delayed_to(r, node, topic, *held, out);
    static_cast<publish_result&>(out) =
        with_receivers(r, node, topic, [&](receiver_view list) { return r.dispatch(list, *held); });
  } else {
    if constexpr (!std::is_constructible_v<T, P&&>)  // a move-only lvalue: refused before it is stored
      if (deliver && with_receivers(r, node, topic, [](receiver_view list) { return list.retaining(); }))
        throw_move_only_lvalue();
    event<T> ev(payload, topic, options, id, deadline_from(options));
    out.offset = store.append(ev);
    stored(out.offset);
    asymmetric_light_barrier();  // pairs with a history subscriber's heavy barrier
    if (!deliver)  // delayed: only to subscriptions that asked; consumers take it when due
      return delayed_to(r, node, topic, ev, out);
    static_cast<publish_result&>(out) = with_receivers(r, node, topic, [&](receiver_view list) {
      if (list.retaining())
        return publish_retained<T>(r, list, topic, std::forward<P>(payload), options, id, out.offset,
                                   offset_setter::published_ns(ev));
      return r.dispatch(list, ev);
    });
  }
  return out;
}

// A publish with an idempotency key (storage/dedup.hpp) or a delay: both travel as headers
// added to the caller's. A key is checked against the window and stored under its mutex, so two
// concurrent publishes of one key store it once; delivery happens after the mutex is released.
// A delayed event is stored and dispatched only to the subscriptions that asked for delayed
// events (subscribe_options::delayed); durable consumers hand it out when due.
template <class Store, class P>
AGENTBUS_NOINLINE stored_publish_result publish_marked(router& r, Store& store, const topic_node* node,
                                                       std::string_view topic, P&& payload,
                                                       const publish_options& options, reader_slot* slot) {
  std::vector<header> headers(options.headers.begin(), options.headers.end());
  std::string due;
  const bool delayed = options.delay > deadline_clock::duration::zero();
  if (delayed) {
    // Saturated: a delay beyond what Unix nanoseconds can say (nanoseconds::max(): for ever)
    // is due at the last one, not (wrapped around) in the past.
    const std::int64_t now_ns = unix_ns(std::chrono::system_clock::now());
    const std::int64_t delay_ns =
        options.delay >= std::chrono::duration_cast<deadline_clock::duration>(std::chrono::nanoseconds::max())
            ? INT64_MAX
            : static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(options.delay).count());
    due = unix_ns_text(delay_ns > INT64_MAX - now_ns ? INT64_MAX : now_ns + delay_ns);
    headers.push_back({not_before_header, due});
  }
  const std::string_view key = options.idempotency_key;
  if (!key.empty()) headers.push_back({idempotency_header, key});
  publish_options marked = options;
  marked.headers = headers;
  if (key.empty())
    return store_and_dispatch(r, store, node, topic, std::forward<P>(payload), marked, slot, [](std::uint64_t) {},
                              !delayed);
  if constexpr (!requires { store.dedup(); }) {
    throw std::invalid_argument("agentbus: publish_options::idempotency_key: this storage policy does not deduplicate");
  } else {
    dedup_window& window = store.dedup();
    std::unique_lock lock(window.mutex());
    const auto now = window.now();
    if (window.enabled())
      if (const auto first = window.find(key, now)) {
        stored_publish_result dup;
        dup.offset = *first;
        dup.duplicate = true;
        return dup;
      }
    return store_and_dispatch(
        r, store, node, topic, std::forward<P>(payload), marked, slot,
        [&](std::uint64_t offset) {
          window.insert(key, offset, now);
          lock.unlock();
        },
        !delayed);
  }
}

/// Publishes on a bus that stores events: store (which gives the offset), then deliver.
template <class Store, class P>
stored_publish_result publish_stored(router& r, Store& store, const topic_node* node, std::string_view topic,
                                     P&& payload, const publish_options& options, reader_slot* slot) {
  if (AGENTBUS_UNLIKELY(!options.idempotency_key.empty() || options.delay > deadline_clock::duration::zero()))
    return publish_marked(r, store, node, topic, std::forward<P>(payload), options, slot);
  return store_and_dispatch(r, store, node, topic, std::forward<P>(payload), options, slot, [](std::uint64_t) {});
}

/// True for options only a bus that stores events can honour (an idempotency key, a delay).
inline bool needs_storage(const publish_options& options) noexcept {
  return !options.idempotency_key.empty() || options.delay > deadline_clock::duration::zero();
}

/// A bus without storage can neither deduplicate nor delay: said at once.
[[noreturn]] AGENTBUS_NOINLINE inline void throw_needs_storage(const publish_options& options) {
  throw std::invalid_argument(std::string("agentbus: publish_options::") +
                              (options.idempotency_key.empty() ? "delay" : "idempotency_key") +
                              " needs a bus that stores events (storage::memory_ring<N> or storage::journal): this "
                              "bus keeps nothing to deduplicate against or to deliver later");
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_BUS_DETAIL_PUBLISH_HPP
