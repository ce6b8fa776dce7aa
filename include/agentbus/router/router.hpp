// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_ROUTER_HPP
#define AGENTBUS_ROUTER_ROUTER_HPP

// The topic router: who receives what is published on a topic.
//
// Two structures:
//   - a segment trie of every subscription's pattern (pattern_trie), read and written only
//     under the writer mutex, used to resolve a topic the first time it is seen;
//   - a per-topic cache (topic_table) mapping each concrete topic seen so far to a node that
//     holds its resolved receivers as one immutable list behind an atomic pointer.
// Subscribe and unsubscribe update the trie and, eagerly, every cached topic their pattern
// matches (copy-on-write of those lists). Publishing therefore never resolves anything: it
// looks the node up (or holds it, for a channel), loads the list and calls the receivers,
// all inside a read section and without any lock.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/router/detail/pattern_trie.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/router/detail/topic_table.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus {

namespace detail {

class router {
 public:
  /// `max_cached_topics`: see bus_options.
  explicit router(std::size_t max_cached_topics) noexcept : max_cached_topics_(max_cached_topics) {}
  router(const router&) = delete;
  router& operator=(const router&) = delete;
  ~router() {
    // Only reached when no bus, channel or in-flight unsubscribe refers to us; free directly.
    for (auto& [id, r] : registry_) r->destroy(r);
  }

  /// The cached node of `text`, creating it if needed. Validates the text when it is not cached
  /// (a cache hit proves it valid: it equals a topic that was validated). Call inside a read
  /// section. Returns nullptr when the cache is full and `pin` is false.
  AGENTBUS_ALWAYS_INLINE topic_node* node(std::string_view text, bool pin = false) { return node(text, hash_topic_text(text), pin); }

  /// As above, with the text's hash already known (agentbus::topic carries it).
  AGENTBUS_ALWAYS_INLINE topic_node* node(std::string_view text, std::uint64_t h, bool pin = false) {
    if (topic_node* n = table_.find(text, h)) return n;
    return create_node(text, h, pin);
  }

  /// Takes ownership of `r` and returns its subscription id.
  std::uint64_t subscribe(receiver* r) {
    std::vector<retired_record::object> retired;
    std::uint64_t id;
    {
      std::lock_guard lock(mutex_);
      id = r->id = ++next_id_;
      r->owner = this;
      try {
        trie_.insert(r);
        registry_.emplace(id, r);
      } catch (...) {
        trie_.erase(r);
        r->destroy(r);
        throw;
      }
      const std::string_view p = r->pattern.str();
      if (!r->pattern.has_wildcards()) {
        // Create the node now so the first publish to it needs no allocation.
        const std::uint64_t h = hash_topic_text(p);
        if (topic_node* n = table_.find(p, h))
          replace(*n, n->receivers.load(std::memory_order_relaxed)->with(r), retired);
        else
          insert_node(p, h);
      } else {
        table_.for_each([&](topic_node& n) {
          if (r->pattern.matches(n.name)) replace(n, n.receivers.load(std::memory_order_relaxed)->with(r), retired);
        });
      }
    }
    quiescence_domain::instance().retire(std::move(retired));
    return id;
  }

  /// Removes a subscription; returns false when it was already gone. On return the handler is
  /// never started again and no call of it runs on another thread (see quiescence.hpp for the
  /// exceptions when called from inside a handler).
  bool unsubscribe(std::uint64_t id) {
    std::vector<retired_record::object> retired;
    receiver* handed_over = nullptr;
    {
      std::lock_guard lock(mutex_);
      const auto it = registry_.find(id);
      if (it == registry_.end()) return false;
      receiver* r = it->second;
      r->alive.store(false, std::memory_order_relaxed);
      registry_.erase(it);
      trie_.erase(r);
      const std::string_view p = r->pattern.str();
      if (!r->pattern.has_wildcards()) {
        if (topic_node* n = table_.find(p, hash_topic_text(p)))
          replace(*n, n->receivers.load(std::memory_order_relaxed)->without(r), retired);
      } else {
        table_.for_each([&](topic_node& n) {
          if (r->pattern.matches(n.name)) replace(n, n.receivers.load(std::memory_order_relaxed)->without(r), retired);
        });
      }
      if (r->hand_over == nullptr) retired.push_back({r, &receiver::delete_erased});
      else handed_over = r;
    }
    auto& domain = quiescence_domain::instance();
    domain.retire(std::move(retired));
    domain.synchronize();
    // An asynchronous receiver may still be named by events waiting in its mailbox: the
    // mailbox frees it once none can be (see mailbox::retire_receiver).
    if (handed_over) hand_over(handed_over);
    return true;
  }

  /// Unsubscribes everything (the bus is going away). Channels still publish, to no one.
  void shutdown() {
    std::vector<retired_record::object> retired;
    std::vector<receiver*> handed_over;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, r] : registry_) {
        r->alive.store(false, std::memory_order_relaxed);
        trie_.erase(r);
        if (r->hand_over == nullptr) retired.push_back({r, &receiver::delete_erased});
        else handed_over.push_back(r);
      }
      registry_.clear();
      table_.for_each([&](topic_node& n) { replace(n, receiver_list::empty(), retired); });
    }
    auto& domain = quiescence_domain::instance();
    domain.retire(std::move(retired));
    domain.synchronize();
    for (receiver* r : handed_over) hand_over(r);
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
  template <class T, class Range>
  AGENTBUS_ALWAYS_INLINE publish_result dispatch(const Range& list, const event<T>& ev) {
    publish_result result;
    result.id = ev.id();
    constexpr type_id tid = type_id_of<T>();
    for (receiver* r : list) {
      if (AGENTBUS_UNLIKELY(r->type != tid)) {
        type_mismatches_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // Relaxed is enough: a concurrent unsubscribe on another thread also waits for us to
      // leave the read section; this check is for unsubscribes earlier in this same dispatch.
      if (AGENTBUS_UNLIKELY(!r->alive.load(std::memory_order_relaxed))) continue;
      try {
        if (AGENTBUS_LIKELY(r->invoke(r, ev)))
          ++result.delivered;
        else if (result.rejected != UINT16_MAX)
          ++result.rejected;
      } catch (...) {
        if (result.failed != UINT16_MAX) ++result.failed;
        report_failure(ev, *r, std::current_exception());
      }
    }
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
    s.subscriptions = registry_.size();
    s.cached_topics = table_.size();
    return s;
  }

 private:
  AGENTBUS_NOINLINE topic_node* create_node(std::string_view text, std::uint64_t h, bool pin) {
    if (const auto c = topic::validate(text); !c) throw topic_error(text, c);
    std::lock_guard lock(mutex_);
    if (topic_node* n = table_.find(text, h)) return n;
    if (!pin && table_.size() >= max_cached_topics_) return nullptr;
    return insert_node(text, h);
  }

  // Caller holds mutex_.
  topic_node* insert_node(std::string_view text, std::uint64_t h) {
    std::vector<receiver*> found;
    trie_.match(text, found);
    sort_by_id(found);
    receiver_list* list = found.empty() ? receiver_list::empty() : receiver_list::make_from(found);
    auto node = std::make_unique<topic_node>(text, h, list);
    table_.insert(node.get());
    return node.release();
  }

  // Receivers in subscription order (one sort instantiation for both callers).
  static void sort_by_id(std::vector<receiver*>& v) {
    std::sort(v.begin(), v.end(), [](const receiver* a, const receiver* b) { return a->id < b->id; });
  }

  static void replace(topic_node& n, receiver_list* next, std::vector<retired_record::object>& retired) {
    receiver_list* old = n.receivers.load(std::memory_order_relaxed);
    n.receivers.store(next, std::memory_order_release);
    retired.push_back({old, &receiver_list::delete_erased});
  }

  // An asynchronous receiver goes back to its mailbox, which frees it when no queued event
  // names it any more.
  static void hand_over(receiver* r) noexcept { r->hand_over(r); }

 public:
  /// Counts a handler failure and hands it to the error hook (never throws; also used by
  /// history replay).
  AGENTBUS_NOINLINE void report_failure(const event_core& ev, const receiver& r, std::exception_ptr error) noexcept {
    handler_failures_.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const error_handler> hook;
    {
      std::lock_guard lock(hook_mutex_);
      hook = error_handler_;
    }
    if (!hook) return;
    try {
      (*hook)(handler_failure{ev.envelope(), r.id, r.pattern.str(), std::move(error)});
    } catch (...) {
      error_hook_failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  mutable std::mutex mutex_;  // writers only; never held while a handler runs
  topic_table table_;
  pattern_trie trie_;
  std::unordered_map<std::uint64_t, receiver*> registry_;
  std::uint64_t next_id_ = 0;
  const std::size_t max_cached_topics_;

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
