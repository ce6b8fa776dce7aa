// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_ROUTER_HPP
#define AGENTBUS_ROUTER_ROUTER_HPP

// The topic router: who receives what is published on a topic.
//
// Three structures, all written only under the writer mutex:
//   - a per-topic cache (topic_table) mapping each concrete topic seen so far to a node that
//     holds its resolved receivers (receiver_list: appended and tombstoned in place, replaced
//     only when full or mostly tombstones), read by publishers without any lock. Nodes that
//     nothing anchors (no exact subscription, no channel) are reclaimed in sweeps, O(1)
//     amortized: see "Reclaiming topics" below;
//   - a segment trie of the wildcard patterns (pattern_trie), used to resolve a topic the
//     first time it is seen (exact patterns need none: subscribing creates their node);
//   - an index of the cached topics by segment (topic_index), built on the first wildcard
//     subscription, so that a wildcard subscribe visits only the topics it can match.
// Subscribe and unsubscribe update the lists of the cached topics their pattern matches, in
// O(1) amortized each. Publishing never resolves anything: it looks the node up (or holds it,
// for a channel), loads the list's view and calls the receivers, inside a read section.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/router/detail/pattern_trie.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/detail/registry.hpp"
#include "agentbus/router/detail/topic_index.hpp"
#include "agentbus/router/detail/topic_table.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus {

namespace detail {

/// What names a subscription to the router: its id and, for a compact subscription (a handler
/// kept in its topic's list entry, with no receiver: delivery/synchronous.hpp), the topic node
/// that entry lives in (the live entry anchors the node: it is not reclaimed while it is there,
/// nor at all once the router has shut down).
struct subscription_key {
  std::uint64_t id = 0;
  topic_node* node = nullptr;
};

class router {
 public:
  /// `max_cached_topics`: see bus_options.
  explicit router(std::size_t max_cached_topics) noexcept : max_cached_topics_(max_cached_topics) {}
  router(const router&) = delete;
  router& operator=(const router&) = delete;
  ~router() {
    // Only reached when no bus, channel or subscription handle refers to us; free directly.
    registry_.for_each([](receiver* r) { r->destroy(r); });
  }

  /// The cached node of `text`, creating it if needed. Validates the text when it is not cached
  /// (a cache hit proves it valid: it equals a topic that was validated). Call inside a read
  /// section, and use the node only inside it (it may be reclaimed after). Returns nullptr
  /// when the cache is full (bus_options::max_cached_topics).
  AGENTBUS_ALWAYS_INLINE topic_node* node(std::string_view text) { return node(text, hash_topic_text(text)); }

  /// As above, with the text's hash already known (agentbus::topic carries it).
  AGENTBUS_ALWAYS_INLINE topic_node* node(std::string_view text, std::uint64_t h) {
    if (topic_node* n = table_.find(text, h)) return n;  // marks it in use
    return create_node(text, h);
  }

  /// The node of `text` with a pin added (a channel's: topic_pin::adopt takes it over), made
  /// even when the cache is full. Validates as above. Call inside a read section.
  topic_node* pinned_node(std::string_view text) {
    const std::uint64_t h = hash_topic_text(text);
    if (topic_node* n = table_.find(text, h); n != nullptr && n->try_pin()) return n;
    // Absent, or claimed by a sweep that already took it out of the table: under the mutex
    // the table holds no claimed node.
    if (const auto c = topic::validate(text); !c) throw topic_error(text, c);
    std::vector<retired_record::object> retired;
    topic_node* n;
    {
      std::lock_guard lock(mutex_);
      n = table_.find_unmarked(text, h);
      if (n == nullptr) n = insert_node(text, h, retired);
      (void)n->try_pin();  // cannot find it claimed (claims happen under this mutex)
    }
    retire_unlocked(std::move(retired));
    return n;
  }

  /// Takes ownership of `r` and returns its subscription id.
  std::uint64_t subscribe(receiver* r) {
    std::vector<retired_record::object> retired;
    std::uint64_t id;
    std::exception_ptr error;
    {
      std::lock_guard lock(mutex_);
      id = r->id = ++next_id_;
      r->owner = this;
      try {
        registry_.insert(r);
      } catch (...) {
        r->destroy(r);  // nothing else saw it yet
        throw;
      }
      try {
        const std::string_view p = r->pattern.str();
        if (!r->pattern.has_wildcards()) {
          // The node's list is where an exact subscription lives (it needs no trie entry); the
          // node exists from now on, so the first publish to it allocates nothing.
          const std::uint64_t h = hash_topic_text(p);
          topic_node* n = table_.find_unmarked(p, h);
          if (n == nullptr) n = insert_node(p, h, retired);
          append(*n, entry_of(r), r->retains, retired);
          anchor(*n);
        } else {
          trie_.insert(r);
          if (!index_.active()) index_.activate(table_);
          index_.for_each_match(p, [&](topic_node& n) { append(n, entry_of(r), r->retains, retired); });
        }
      } catch (...) {
        // Out of memory part way: publishers may already see `r` in some lists, so it is
        // removed as by unsubscribe (below, outside the lock), then the error propagates.
        error = std::current_exception();
      }
    }
    quiescence_domain::instance().retire(std::move(retired));
    if (error) {
      (void)unsubscribe(id);
      std::rethrow_exception(error);
    }
    return id;
  }

  /// Subscribes a compact handler to the concrete topic `text` (validated by the caller): an
  /// entry of type `t` whose `invoke` gets `bits` (the handler's bytes), with no receiver
  /// object. Returns its key (id and node).
  subscription_key subscribe_compact(std::string_view text, type_id t, receiver::invoke_fn invoke, receiver* bits) {
    std::vector<retired_record::object> retired;
    subscription_key key;
    {
      std::lock_guard lock(mutex_);
      const std::uint64_t h = hash_topic_text(text);
      topic_node* n = table_.find_unmarked(text, h);
      if (n == nullptr) n = insert_node(text, h, retired);
      const std::uint64_t id = next_id_ + 1;
      append(*n, receiver_entry{{t}, invoke, bits, receiver_entry::key_of(id, true)}, false, retired);
      anchor(*n);
      // Counted only once appended: a failed append leaves no trace but the id it skipped.
      next_id_ = id;
      ++compact_subscriptions_;
      key = {id, n};
    }
    quiescence_domain::instance().retire(std::move(retired));
    return key;
  }

  /// Removes a subscription; returns false when it was already gone. On return the handler is
  /// never started again and no call of it runs on another thread (see quiescence.hpp for the
  /// exceptions when called from inside a handler). Never throws: out of memory, what could
  /// not be queued to be freed is leaked instead (it is unreachable and never called again).
  bool unsubscribe(std::uint64_t id) { return unsubscribe(subscription_key{id, nullptr}); }
  /// The same, for a subscription named by its key (compact ones need theirs).
  bool unsubscribe(subscription_key key) noexcept {
    if (key.node == nullptr) return unsubscribe(std::span<const subscription_key>(&key, 1)) != 0;
    // One compact subscription (a handle's destructor, the usual case): no receiver to free or
    // hand over, and usually no list to retire.
    std::vector<retired_record::object> retired;
    {
      std::lock_guard lock(mutex_);
      if (!kill_compact_locked(key, retired)) return false;
      sweep_if_worth_it(retired);
    }
    synchronize_and_retire(std::move(retired));
    return true;
  }

  /// Removes many subscriptions with one grace period (the cost of an unsubscribe is mostly
  /// that wait); returns how many were still there. Same guarantee as above, for each.
  std::size_t unsubscribe(std::span<const std::uint64_t> ids) noexcept {
    return unsubscribe_each(ids, [](std::uint64_t id) { return subscription_key{id, nullptr}; });
  }
  /// The same, by keys.
  std::size_t unsubscribe(std::span<const subscription_key> keys) noexcept {
    return unsubscribe_each(keys, [](const subscription_key& k) { return k; });
  }

 private:
  // Nothing here throws once a subscription is being removed: the batch is done whole (a
  // caller that fell back to one by one after a throw could otherwise name a compact
  // subscription's node after a sweep freed it).
  template <class Range, class KeyOf>
  std::size_t unsubscribe_each(const Range& items, KeyOf key_of) noexcept {
    std::vector<retired_record::object> retired;
    std::vector<receiver*> handed_over;
    try {  // room for each receiver and a list of its: queuing them then allocates nothing
      retired.reserve(2 * std::size(items) + 1);
      handed_over.reserve(std::size(items));
    } catch (...) {
      // Out of memory already: each push below tries on its own.
    }
    std::size_t removed = 0;
    {
      std::lock_guard lock(mutex_);
      for (const auto& item : items) {
        const subscription_key key = key_of(item);
        if (key.node != nullptr) {
          if (kill_compact_locked(key, retired)) ++removed;
          continue;
        }
        receiver* r = registry_.erase(key.id);
        if (r == nullptr) continue;
        remove_locked(r, retired);
        try {
          if (r->hand_over == nullptr) retired.push_back({r, &receiver::delete_erased});
          else handed_over.push_back(r);
        } catch (...) {
          // Out of memory twice (the reservation above, then this): `r` is dead and in no
          // list, but cannot be queued to be freed, so it is leaked.
        }
        ++removed;
      }
      if (removed != 0) sweep_if_worth_it(retired);
    }
    if (removed == 0) return 0;
    synchronize_and_retire(std::move(retired));
    // An asynchronous receiver may still be named by events waiting in its mailbox: the
    // mailbox frees it once none can be (see mailbox::retire_receiver).
    for (receiver* r : handed_over) hand_over(r);
    return removed;
  }

 public:
  /// Unsubscribes everything (the bus is going away). Channels still publish, to no one.
  void shutdown() {
    std::vector<retired_record::object> retired;
    std::vector<receiver*> handed_over;
    {
      std::lock_guard lock(mutex_);
      shut_down_ = true;  // no more reclaiming: handles may still name their nodes
      registry_.for_each([&](receiver* r) {
        r->alive.store(false, std::memory_order_relaxed);
        if (r->pattern.has_wildcards()) trie_.erase(r);
        if (r->hand_over == nullptr) retired.push_back({r, &receiver::delete_erased});
        else handed_over.push_back(r);
      });
      registry_.clear();
      compact_subscriptions_ = 0;  // their entries go with the lists
      table_.for_each([&](topic_node& n) { replace(n, receiver_list::empty(), retired); });
    }
    quiescence_domain::instance().synchronize_and_retire(std::move(retired));
    for (receiver* r : handed_over) hand_over(r);
    // Handles and channels may keep the router alive: none of them needs the hook any more
    // (no receiver is left to fail), and what it captured goes with the bus.
    std::shared_ptr<const error_handler> hook;
    {
      std::lock_guard lock(hook_mutex_);
      hook = std::move(error_handler_);
    }
  }

  /// Receivers of a topic that is not cached (the cache is full). Call inside a read section.
  std::vector<receiver*> resolve_uncached(std::string_view text) {
    uncached_publishes_.fetch_add(1, std::memory_order_relaxed);
    std::vector<receiver*> out;
    std::lock_guard lock(mutex_);
    trie_.match(text, out);
    sort_by_id(out);
    return out;
  }

  /// Calls every receiver in `list` that takes T. Call inside a read section.
  template <class T>
  AGENTBUS_ALWAYS_INLINE publish_result dispatch(receiver_view view, const event<T>& ev) {
    publish_result result;
    result.id = ev.id();
    constexpr type_id tid = type_id_of<T>();
    const receiver_entry* e = view.begin();
    const receiver_entry* const end = e + view.size();
    for (; e != end; ++e) {
      const type_id t = e->type.load(std::memory_order_relaxed);
      if (AGENTBUS_LIKELY(t == tid)) {
        call(*e, ev, result);
        continue;
      }
      if (t == nullptr) continue;  // a tombstone
      // A marked entry: the list was superseded (a handler of ours replaced it: tombstones
      // may now be in the new one only) or is transient.
      if (AGENTBUS_UNLIKELY(t == marked_type(t))) goto superseded;
      skip_other_type(t);
    }
    return result;
  superseded:
    // The rest of a dispatch over a superseded list: receivers are also checked for `alive`,
    // compact entries against the newest list
    // (relaxed is enough: only this thread's own unsubscribes can be missing from the list;
    // a concurrent one on another thread waits for this read section to end). Inline: a call
    // here would make the loop above keep `result` in memory.
    for (; e != end; ++e)
      if (e->type.load(std::memory_order_relaxed) != nullptr && still_subscribed(view.list, *e))
        deliver_to(*e, ev, result);
    return result;
  }

  /// Calls the receivers in `list` that take delayed events (subscribe_options::delayed) and
  /// take T; the others never see a delayed event. Call inside a read section. Off the hot
  /// path: each entry's receiver is read (for its flag, and for `alive` as after a supersede).
  template <class T>
  AGENTBUS_NOINLINE publish_result dispatch_delayed(receiver_view view, const event<T>& ev) {
    publish_result result;
    result.id = ev.id();
    for (const receiver_entry& e : view)
      if (e.type.load(std::memory_order_relaxed) != nullptr && takes_delayed(e)) deliver_to(e, ev, result);
    return result;
  }

  void set_error_handler(error_handler h) {
    auto p = h ? std::make_shared<const error_handler>(std::move(h)) : nullptr;
    std::lock_guard lock(hook_mutex_);
    error_handler_ = std::move(p);
  }

  bus_stats stats() const {
    bus_stats s;
    s.handler_failures = handler_failures_.load(std::memory_order_relaxed);
    s.error_hook_failures = error_hook_failures_.load(std::memory_order_relaxed);
    s.type_mismatches = type_mismatches_.load(std::memory_order_relaxed);
    s.uncached_publishes = uncached_publishes_.load(std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    s.subscriptions = registry_.size() + compact_subscriptions_;
    s.cached_topics = table_.size();
    s.reclaimed_topics = reclaimed_topics_;
    return s;
  }

 private:
  AGENTBUS_NOINLINE topic_node* create_node(std::string_view text, std::uint64_t h) {
    if (const auto c = topic::validate(text); !c) throw topic_error(text, c);
    std::vector<retired_record::object> retired;
    topic_node* n;
    {
      std::lock_guard lock(mutex_);
      n = table_.find(text, h);
      if (n == nullptr && table_.size() >= max_cached_topics_) {
        ++refused_since_sweep_;
        sweep_if_worth_it(retired);
      }
      if (n == nullptr && table_.size() < max_cached_topics_) n = insert_node(text, h, retired);
    }
    retire_unlocked(std::move(retired));
    return n;
  }

  // What the writers retire, once they released the mutex: retiring may free other records
  // that became ready, and a deleter may unsubscribe from this router.
  static void retire_unlocked(std::vector<retired_record::object> retired) {
    quiescence_domain::instance().retire(std::move(retired));
  }
  // The same, after a grace period (unsubscribe). Out of memory for the bookkeeping, what it
  // held is leaked: an unsubscribe must not fail once it has removed anything.
  static void synchronize_and_retire(std::vector<retired_record::object> retired) noexcept {
    try {
      quiescence_domain::instance().synchronize_and_retire(std::move(retired));
    } catch (...) {
    }
  }

  // ---- Reclaiming topics ----
  //
  // A node is anchored while an exact subscription lives in its list (topic_node::exact) or
  // a channel pins it; an unanchored one holds only wildcard receivers (or none), which is
  // exactly what insert_node builds from the trie, so dropping it loses nothing: the next
  // publish makes it again. Without this, every distinct topic ever published or subscribed
  // to would stay cached for the router's life (per-request reply topics, per-session
  // agents). A sweep keeps the unanchored topics a publish found since the sweep before
  // (topic_node::is, which the lookup calls), so topics in use stay cached with or without
  // subscribers; the others go (a topic published once, or whose last subscription just
  // ended, is not in use). Sweeps run under the mutex and only when they pay for themselves:
  // when the table is about to grow (it is rebuilt then anyway), and when more than half as
  // many topics as are cached became unanchored, or were refused for a full cache, since the
  // last sweep. Each sweep costs O(cached topics) and follows at least half as many of those
  // events: O(1) amortized. What a sweep drops is retired once the mutex is released. No
  // sweep after shutdown(): compact handles may still name their nodes then.
  // Caller holds mutex_: an exact subscription joined `n`'s list.
  void anchor(topic_node& n) noexcept {
    if (n.exact++ == 0) --unanchored_;
  }
  // Caller holds mutex_: an exact subscription left `n`'s list.
  void unanchor(topic_node& n) noexcept {
    if (--n.exact == 0) ++unanchored_;
  }

  // Caller holds mutex_.
  void sweep_if_worth_it(std::vector<retired_record::object>& retired) noexcept {
    if (shut_down_) return;
    const std::size_t newly_unanchored = unanchored_ > unanchored_kept_ ? unanchored_ - unanchored_kept_ : 0;
    if (newly_unanchored + refused_since_sweep_ <= table_.size() / 2) return;
    try {
      sweep_topics(retired);
    } catch (...) {
      // Out of memory for the rebuilt table: nothing changed; a later sweep tries again.
    }
  }

  // Caller holds mutex_: drops every unanchored node that is neither pinned nor in use.
  void sweep_topics(std::vector<retired_record::object>& retired) {
    sweep_kept_ = 0;
    table_.sweep([this](topic_node& n) { return reclaimable(n); }, [this](topic_node& n) noexcept { drop(n); },
                 retired);
    swept();
  }

  // After a sweep (which counted the unanchored nodes it kept): the next one waits for as
  // many new events as it takes again.
  void swept() noexcept {
    unanchored_ = unanchored_kept_ = sweep_kept_;
    refused_since_sweep_ = 0;
  }

  // A sweep's question for each node; it also counts the unanchored ones it keeps (pinned or
  // in use: the next sweep waits for that many more again).
  bool reclaimable(topic_node& n) noexcept {
    if (n.exact != 0) return false;
    if (shut_down_ || n.take_used() || !n.try_claim()) {
      ++sweep_kept_;
      return false;
    }
    ++reclaimed_topics_;
    return true;
  }

  // A node leaving the table (claimed; freed after the grace period): out of the index, and
  // a dispatch still walking its list checks each receiver from now on (a handler of that
  // dispatch unsubscribing a later receiver on its own thread cannot tombstone it there).
  void drop(topic_node& n) noexcept {
    if (index_.active()) index_.erase(n);
    receiver_list* list = n.receivers.load(std::memory_order_relaxed);
    if (list != receiver_list::empty()) list->mark_transient();
  }

  // Caller holds mutex_. The node's first list: the wildcard subscriptions matching it (an
  // exact one has a node already, or is about to append itself). A sweep on the way adds
  // what it drops to `retired`.
  topic_node* insert_node(std::string_view text, std::uint64_t h, std::vector<retired_record::object>& retired) {
    std::vector<receiver*> found;
    trie_.match(text, found);
    sort_by_id(found);
    receiver_list* list = found.empty() ? receiver_list::empty() : receiver_list::make_from(found);
    topic_node* n;
    try {
      n = topic_node::make(text, h, list);
    } catch (...) {
      receiver_list::delete_erased(list);
      throw;
    }
    try {
      sweep_kept_ = 0;
      if (table_.insert(
              n, [this](topic_node& x) { return reclaimable(x); }, [this](topic_node& x) noexcept { drop(x); }, retired))
        swept();      // a sweep ran first
      ++unanchored_;  // n: a node is born unanchored
    } catch (...) {
      topic_node::destroy(n);
      throw;
    }
    if (index_.active()) {
      try {
        index_.insert(*n);
      } catch (...) {
        index_.deactivate();  // rebuilt from the table by the next wildcard subscribe
      }
    }
    return n;
  }

  // Receivers in subscription order (one sort instantiation for both callers).
  static void sort_by_id(std::vector<receiver*>& v) {
    std::sort(v.begin(), v.end(), [](const receiver* a, const receiver* b) { return a->id < b->id; });
  }

  // Caller holds mutex_: `r` joins `n`'s list, in place when there is room.
  static void append(topic_node& n, const receiver_entry& e, bool retains, std::vector<retired_record::object>& retired) {
    receiver_list* list = n.receivers.load(std::memory_order_relaxed);
    if (!list->try_append(e, retains)) replace(n, list->grown_with(e, retains), retired);
  }

  // Caller holds mutex_: tombstones the entry with `key` in `n`'s list, compacting a list
  // left mostly tombstones. False when it was not there.
  // Caller holds mutex_. A compact subscription: its entry is all there is (the handler is
  // trivially destructible); a list replaced on the way goes to `retired`.
  bool kill_compact_locked(subscription_key key, std::vector<retired_record::object>& retired) {
    if (!kill_entry(*key.node, receiver_entry::key_of(key.id, true), retired)) return false;
    unanchor(*key.node);
    --compact_subscriptions_;
    return true;
  }

  // Never throws: compacting is only tidying (out of memory, the list stays as it is, and
  // the next kill tries again), while the caller must learn that the entry is gone.
  static bool kill_entry(topic_node& n, std::uint64_t key, std::vector<retired_record::object>& retired) noexcept {
    receiver_list* list = n.receivers.load(std::memory_order_relaxed);
    if (!list->kill(key)) return false;
    if (list->sparse()) {
      try {
        replace(n, list->compacted(), retired);
      } catch (...) {
      }
    }
    return true;
  }

  // Reader side: the entry asked for delayed events and is still subscribed (a compact one
  // never asks: it has no receiver to say so).
  static bool takes_delayed(const receiver_entry& e) noexcept {
    return !e.compact() && e.target->takes_delayed && e.target->alive.load(std::memory_order_relaxed);
  }

  // Reader side, on a superseded list: false when the entry's subscription ended meanwhile.
  static bool still_subscribed(const receiver_list* list, const receiver_entry& e) noexcept {
    return e.compact() ? list->newest_holds_live(e.key) : e.target->alive.load(std::memory_order_relaxed);
  }

  // Caller holds mutex_: `r` leaves every list it is in, and the trie. Safe on a receiver
  // only partly subscribed (subscribe's undo).
  // Never throws.
  void remove_locked(receiver* r, std::vector<retired_record::object>& retired) noexcept {
    r->alive.store(false, std::memory_order_relaxed);
    const std::string_view p = r->pattern.str();
    const std::uint64_t key = receiver_entry::key_of(r->id, false);
    auto leave = [&](topic_node& n) { (void)kill_entry(n, key, retired); };
    if (!r->pattern.has_wildcards()) {
      if (topic_node* n = table_.find_unmarked(p, hash_topic_text(p)); n != nullptr && kill_entry(*n, key, retired))
        unanchor(*n);
    } else {
      trie_.erase(r);
      if (index_.active())
        index_.for_each_match(p, leave);
      else  // the index was dropped after an allocation failure: every cached topic, then
        table_.for_each([&](topic_node& n) {
          if (r->pattern.matches(n.name())) leave(n);
        });
    }
  }

  // Throws (std::bad_alloc) only before anything changed: `next` is then freed.
  static void replace(topic_node& n, receiver_list* next, std::vector<retired_record::object>& retired) {
    try {
      retired.reserve(retired.size() + 1);
    } catch (...) {
      receiver_list::delete_erased(next);
      throw;
    }
    receiver_list* old = n.receivers.load(std::memory_order_relaxed);
    n.receivers.store(next, std::memory_order_release);
    old->supersede(next);
    retired.push_back({old, &receiver_list::delete_erased});
  }

  // Subscribe's failure path: what was already swapped out is retired the usual way.
  static void retire_now(std::vector<retired_record::object>& retired) {
    quiescence_domain::instance().retire(std::move(retired));
    retired.clear();
  }

  // One receiver: type check (a tombstone is skipped uncounted; a mark is ignored), call,
  // count.
  template <class T>
  AGENTBUS_ALWAYS_INLINE void deliver_to(const receiver_entry& e, const event<T>& ev, publish_result& result) {
    const type_id t = unmarked_type(e.type.load(std::memory_order_relaxed));
    if (AGENTBUS_UNLIKELY(t != type_id_of<T>())) return skip_other_type(t);
    call(e, ev, result);
  }

  // An entry whose receiver takes another type: skipped and counted (a tombstone, nullptr, is
  // skipped uncounted).
  void skip_other_type(type_id t) noexcept {
    if (t != nullptr) type_mismatches_.fetch_add(1, std::memory_order_relaxed);
  }

  // Calls the receiver of an entry known to take T, and counts the outcome.
  template <class T>
  AGENTBUS_ALWAYS_INLINE void call(const receiver_entry& e, const event<T>& ev, publish_result& result) {
    try {
      if (AGENTBUS_LIKELY(e.invoke(e.target, ev)))
        ++result.delivered;
      else if (result.rejected != UINT16_MAX)
        ++result.rejected;
    } catch (...) {
      if (result.failed != UINT16_MAX) ++result.failed;
      report_failure(ev, e, std::current_exception());
    }
  }

  // An asynchronous receiver goes back to its mailbox, which frees it when no queued event
  // names it any more.
  static void hand_over(receiver* r) noexcept { r->hand_over(r); }

 public:
  /// Counts a handler failure and hands it to the error hook (never throws; also used by
  /// history replay).
  void report_failure(const event_core& ev, const receiver& r, std::exception_ptr error) noexcept {
    report_failure(ev, r.id, r.pattern.str(), std::move(error));
  }
  /// The same, for the subscription behind a list entry (out of line: dispatch's cold path).
  AGENTBUS_NOINLINE void report_failure(const event_core& ev, const receiver_entry& e, std::exception_ptr error) noexcept {
    if (e.compact()) report_failure(ev, e.id(), ev.topic(), std::move(error));
    else report_failure(ev, *e.target, std::move(error));
  }
  /// The same, for subscription `id` on `pattern` (a compact one's is its event's topic).
  AGENTBUS_NOINLINE void report_failure(const event_core& ev, std::uint64_t id, std::string_view pattern,
                                        std::exception_ptr error) noexcept {
    handler_failures_.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const error_handler> hook;
    {
      std::lock_guard lock(hook_mutex_);
      hook = error_handler_;
    }
    if (!hook) return;
    try {
      (*hook)(handler_failure{ev.envelope(), id, pattern, std::move(error)});
    } catch (...) {
      error_hook_failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  mutable std::mutex mutex_;  // writers only; never held while a handler runs
  topic_table table_;
  pattern_trie trie_;
  topic_index index_;
  receiver_registry registry_;             // the subscriptions that have a receiver
  std::size_t compact_subscriptions_ = 0;  // the others (entries only)
  std::uint64_t next_id_ = 0;
  const std::size_t max_cached_topics_;
  std::size_t unanchored_ = 0;         // cached nodes with no exact subscription (pinned or not)
  std::size_t unanchored_kept_ = 0;    // of those, the ones the last sweep kept
  std::size_t sweep_kept_ = 0;         // scratch: what the running sweep keeps of them
  std::size_t refused_since_sweep_ = 0;  // publishes refused for a full cache since the last sweep
  std::uint64_t reclaimed_topics_ = 0;
  bool shut_down_ = false;

  std::mutex hook_mutex_;  // guards the pointer only; the hook runs outside it
  std::shared_ptr<const error_handler> error_handler_;

  std::atomic<std::uint64_t> handler_failures_{0};
  std::atomic<std::uint64_t> error_hook_failures_{0};
  std::atomic<std::uint64_t> type_mismatches_{0};
  std::atomic<std::uint64_t> uncached_publishes_{0};
};

}  // namespace detail
}  // namespace agentbus

#endif  // AGENTBUS_ROUTER_ROUTER_HPP
