// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP
#define AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP

// A subscription's receiver, type-erased, and the receiver lists that topics point to.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <stdexcept>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus::detail {

class router;  // router/router.hpp

/// One subscription's receiver: the base every delivery kind derives from (see
/// delivery/delivery.hpp for the protocol). The router keeps receivers in immutable lists and
/// calls `invoke` on each event; what that does (call a handler, queue the event in a
/// mailbox, ...) is the delivery kind's business.
///
/// Lifetime: a receiver that keeps no event beyond the publish call (`retains` false) is
/// freed by the router once unsubscribe's grace period ends. One that does (a mailbox's)
/// may still be named by queued events after it is unsubscribed: the router hands it to
/// `hand_over` instead, which frees it once nothing can name it.
struct receiver {
  /// Delivers an event. Returns false when the event was refused (a full mailbox); throws
  /// what the handler throws (the router counts and reports it).
  using invoke_fn = bool (*)(receiver*, const event_core&);
  using destroy_fn = void (*)(receiver*) noexcept;

  receiver(type_id t, invoke_fn inv, destroy_fn des, topic_pattern pat, bool keeps_events = false,
           destroy_fn hand_over_fn = nullptr) noexcept
      : type(t), invoke(inv), destroy(des), hand_over(hand_over_fn), retains(keeps_events), pattern(std::move(pat)) {}

  // Dispatch reads a topic list's entries (receiver_entry: type and invoke copied there), not
  // this object; a mailbox's consumer reads `alive`. Pointers first, the two flags together.
  type_id type;
  invoke_fn invoke;
  destroy_fn destroy;
  /// Retaining receivers: called instead of `destroy` once unsubscribed (see above).
  destroy_fn hand_over;
  router* owner = nullptr;  // the router that reports this receiver's failures
  std::uint64_t id = 0;
  std::atomic<bool> alive{true};
  /// True when the receiver keeps events beyond the publish call: publish then builds the
  /// event once in a shared block (shared_event) instead of on its stack.
  bool retains;
  /// True when the subscription asked for delayed events at publish time
  /// (subscribe_options::delayed): the delayed publish path calls only these receivers.
  bool takes_delayed = false;
  topic_pattern pattern;

  static void delete_erased(void* p) noexcept {
    auto* r = static_cast<receiver*>(p);
    r->destroy(r);
  }
};

/// One receiver as a topic's list holds it: what dispatch needs, inline, so that walking a
/// list touches only the list (the receiver itself is reached only through `invoke`).
///
/// A compact entry has no receiver at all: `target` holds the handler's own bytes (a small
/// synchronous handler: see delivery/synchronous.hpp), and `invoke` unpacks them. It costs the
/// entry alone (32 bytes), where a receiver is a separate allocation (104 bytes for a
/// synchronous one with an empty handler, and its pattern's text when longer than 15 bytes).
struct receiver_entry {
  /// The receiver's event type; nullptr once unsubscribed (a tombstone, skipped uncounted);
  /// marked (lowest bit set: see marked_type) once its list is superseded or transient.
  std::atomic<type_id> type;
  receiver::invoke_fn invoke;
  /// The receiver, passed to `invoke`; a compact entry's handler bytes (never dereferenced).
  receiver* target;
  /// Subscription order, with the compact flag below it: entries are sorted by key (appends
  /// only ever add a newer one).
  std::uint64_t key;

  static constexpr std::uint64_t compact_bit = 1;
  static constexpr std::uint64_t key_of(std::uint64_t id, bool compact) noexcept { return id << 1 | (compact ? 1 : 0); }
  /// True when the entry has no receiver behind `target`.
  bool compact() const noexcept { return (key & compact_bit) != 0; }
  /// The subscription id.
  std::uint64_t id() const noexcept { return key >> 1; }
};

/// A type id with its lowest bit set (type ids are even: core/event_traits.hpp). Every entry of
/// a superseded or transient list carries one, so a dispatch over such a list learns it from
/// the type check it makes anyway, and checks each such entry before calling it (see
/// receiver_list: "Superseded lists"). One compare per entry instead of a second load and
/// branch after every call.
inline type_id marked_type(type_id t) noexcept {
  return reinterpret_cast<type_id>(reinterpret_cast<std::uintptr_t>(t) | 1);
}
/// The type id without the mark.
inline type_id unmarked_type(type_id t) noexcept {
  return reinterpret_cast<type_id>(reinterpret_cast<std::uintptr_t>(t) & ~std::uintptr_t{1});
}

/// A receiver as an entry (the entry's key is its id, not compact).
inline receiver_entry entry_of(receiver* r) noexcept {
  return {{r->type}, r->invoke, r, receiver_entry::key_of(r->id, false)};
}

class receiver_list;

/// What a reader loaded of a list: its entries so far and what they need. One acquire load
/// gives all of it, so the flags always describe exactly the entries the reader walks. Two
/// words, passed in registers.
struct receiver_view {
  const receiver_list* list;
  std::uint64_t shape;  // size << 2 | retaining_bit | plain_bit (see receiver_list)

  static constexpr std::uint64_t plain_bit = 1, retaining_bit = 2;

  /// Entries, tombstones included.
  std::size_t size() const noexcept { return static_cast<std::size_t>(shape >> 2); }
  /// Not empty and no receiver keeps events: the synchronous fast path.
  bool plain() const noexcept { return (shape & plain_bit) != 0; }
  /// Some receiver keeps events (a mailbox): build a shared block once.
  bool retaining() const noexcept { return (shape & retaining_bit) != 0; }
  inline const receiver_entry* begin() const noexcept;
  const receiver_entry* end() const noexcept { return begin() + size(); }
};

/// A topic's receivers: a growable array of entries in subscription order.
///
/// Readers (publishers) walk it without a lock. The writer (holding the router's mutex):
///   - appends in place while there is room: the entry is written first, then the size is
///     published with a release store, so a reader sees either the old size or a complete
///     entry; an entry is never written again except for its `type`;
///   - unsubscribes in place by turning the entry into a tombstone (`type` = nullptr);
///   - otherwise builds a new list (full: 1.5 times the live entries; more than half
///     tombstones: compacted), swaps it in and retires the old one, which it links to the new
///     one (its successor: the old list is superseded).
/// So subscribe and unsubscribe cost O(1) amortized plus a search by key (find_in), never a
/// copy per call.
///
/// Superseded lists. A handler that unsubscribes another receiver of the same topic, on its
/// own thread, after its list was replaced, tombstones the entry in the newest list only. The
/// writer marks every entry of the list it replaces (marked_type), so the dispatch still
/// walking the old one finds the mark in its type check and from then on also checks each
/// receiver's `alive` flag (a compact entry, which has no receiver: whether the newest list
/// still holds it live, found through the successors), so the unsubscribed handler is not
/// called after unsubscribe returned. (Other threads' unsubscribes wait for
/// this dispatch to end instead: quiescence. The successors a dispatch follows were retired
/// after the list it holds, so they are not freed before its read section ends either.)
class receiver_list {
 public:
  /// A list with room for `capacity` entries and none in it.
  static receiver_list* make(std::size_t capacity) {
    if (capacity > max_capacity) throw std::length_error("agentbus: more than 2^31 receivers on one topic");
    void* raw = ::operator new(sizeof(receiver_list) + capacity * sizeof(receiver_entry));
    return ::new (raw) receiver_list(capacity);
  }
  /// A list holding `items` (receivers, in id order), with no spare room.
  template <class Range>
  static receiver_list* make_from(const Range& items) {
    receiver_list* out = make(std::size(items));
    std::size_t n = 0;
    bool retaining = false;
    for (receiver* r : items) {
      out->place(n++, entry_of(r));
      retaining = retaining || r->retains;
    }
    out->publish_shape(n, retaining);
    return out;
  }
  /// The shared empty list (no room: the first append replaces it); never freed, never
  /// superseded (it has no entries for a dispatch to walk).
  static receiver_list* empty() noexcept {
    static receiver_list e(0);
    return &e;
  }
  static void delete_erased(void* p) noexcept {
    auto* l = static_cast<receiver_list*>(p);
    if (l != empty()) ::operator delete(l);
  }

  /// Reader side: the entries published so far (call inside a read section).
  AGENTBUS_ALWAYS_INLINE receiver_view view() const noexcept { return {this, shape_.load(std::memory_order_acquire)}; }
  /// The first entry (entries follow the header).
  const receiver_entry* entries() const noexcept { return reinterpret_cast<const receiver_entry*>(this + 1); }
  /// Reader side: true when the newest list of this one's topic (this one, or the last of its
  /// successors) holds the entry with `key` and it is not a tombstone. Call inside a read section.
  /// (Out of line: it is rare, and inlined it costs the dispatch loop a register.)
  AGENTBUS_NOINLINE bool newest_holds_live(std::uint64_t key) const noexcept {
    const receiver_list* list = this;
    while (const receiver_list* next = list->successor_.load(std::memory_order_acquire)) list = next;
    const receiver_view v = list->view();
    const receiver_entry* e = find_in(v.begin(), v.size(), key);
    return e != nullptr && e->type.load(std::memory_order_relaxed) != nullptr;
  }

  // ---- writer side (the router's mutex held) ----

  /// Entries, tombstones included.
  std::size_t size() const noexcept { return static_cast<std::size_t>(shape_.load(std::memory_order_relaxed) >> 2); }
  /// Entries that are not tombstones.
  std::size_t live() const noexcept { return size() - dead_; }

  /// Appends `e` (its receiver keeping events when `retains`) in place; false when there is no room.
  bool try_append(const receiver_entry& e, bool retains) noexcept {
    const std::size_t n = size();
    if (n == capacity_) return false;
    place(n, e);
    publish_shape(n + 1, retains || (shape_.load(std::memory_order_relaxed) & retaining_bit) != 0);
    return true;
  }
  /// A new list: the live entries and `e`, with room for half as many again (a topic's first
  /// receiver gets a list of exactly one: most topics have one subscriber).
  receiver_list* grown_with(const receiver_entry& e, bool retains) const {
    const std::size_t n = live() + 1;
    receiver_list* out = make(n + n / 2);
    bool retaining = retains;
    const std::size_t copied = out->copy_live_from(*this, retaining);
    out->place(copied, e);
    out->publish_shape(copied + 1, retaining);
    return out;
  }
  /// Turns the entry with `key` into a tombstone. Returns false when it is not in the list
  /// (or is one already).
  bool kill(std::uint64_t key) noexcept {
    auto* e = const_cast<receiver_entry*>(find_in(entries(), size(), key));
    if (e == nullptr || e->type.load(std::memory_order_relaxed) == nullptr) return false;
    e->type.store(nullptr, std::memory_order_relaxed);
    ++dead_;
    return true;
  }
  /// True when more than half the entries are tombstones: time to compact.
  bool sparse() const noexcept { return std::uint64_t{dead_} * 2 > size(); }
  /// A new list of the live entries (the shared empty list when there are none).
  receiver_list* compacted() const {
    if (live() == 0) return empty();
    receiver_list* out = make(live());
    bool retaining = false;
    const std::size_t copied = out->copy_live_from(*this, retaining);
    out->publish_shape(copied, retaining);
    return out;
  }
  /// Marks the list replaced by `next` (it is being retired) and each of its entries (a
  /// dispatch walking it checks them from then on). O(n), like the copy that made `next`.
  void supersede(receiver_list* next) noexcept {
    if (this == empty()) return;
    successor_.store(next, std::memory_order_release);
    mark_entries();  // a dispatch walking this list checks each entry from now on
  }
  /// Marks a list that no topic holds (resolved for one publish beyond the topic cache): no
  /// unsubscribe can tombstone its entries, so a dispatch over it checks each receiver's
  /// `alive`, as over a superseded list. It only ever holds receivers.
  void mark_transient() noexcept {
    successor_.store(empty(), std::memory_order_relaxed);
    mark_entries();
  }

 private:
  static constexpr std::uint64_t plain_bit = receiver_view::plain_bit, retaining_bit = receiver_view::retaining_bit;
  static constexpr std::size_t max_capacity = std::size_t{1} << 31;

  explicit receiver_list(std::size_t capacity) noexcept : capacity_(static_cast<std::uint32_t>(capacity)) {}

  receiver_entry* entries() noexcept { return reinterpret_cast<receiver_entry*>(this + 1); }

  void mark_entries() noexcept {
    receiver_entry* e = entries();
    for (receiver_entry* end = e + size(); e != end; ++e)
      if (const type_id t = e->type.load(std::memory_order_relaxed); t != nullptr)
        e->type.store(marked_type(t), std::memory_order_relaxed);
  }

  // Writes entry number `i` (not yet visible to readers).
  void place(std::size_t i, const receiver_entry& e) noexcept {
    ::new (static_cast<void*>(entries() + i))
        receiver_entry{{e.type.load(std::memory_order_relaxed)}, e.invoke, e.target, e.key};
  }
  // Copies the live entries to the front; returns how many. Sets `retaining` when one of
  // them keeps events (one pass for both: compaction walks every entry of a long list).
  std::size_t copy_live_from(const receiver_list& from, bool& retaining) noexcept {
    std::size_t n = 0;
    const receiver_entry* e = from.entries();
    for (const receiver_entry* end = e + from.size(); e != end; ++e) {
      if (e->type.load(std::memory_order_relaxed) == nullptr) continue;
      place(n++, *e);
      if (!e->compact() && e->target->retains) retaining = true;
    }
    return n;
  }
  void publish_shape(std::size_t size, bool retaining) noexcept {
    const std::uint64_t flags = retaining ? retaining_bit : (size != 0 ? plain_bit : 0);
    shape_.store(static_cast<std::uint64_t>(size) << 2 | flags, std::memory_order_release);
  }
  // Search by key (entries are in key order, tombstones keep theirs). Ids are handed out in
  // order by the whole router, so a topic's keys grow roughly evenly: a few interpolation
  // probes usually land on the entry (O(log log n) expected, one probe when a topic's ids are
  // consecutive), where a plain binary search mispredicts about half of its log2(n) branches
  // (~40 ns at 100 000 entries here). Uneven keys fall back to binary search after 3 probes.
  static const receiver_entry* find_in(const receiver_entry* first, std::size_t n, std::uint64_t key) noexcept {
    std::size_t lo = 0, hi = n;
    for (int probe = 0; probe < 3 && hi - lo > 8; ++probe) {
      const std::uint64_t low_key = first[lo].key, high_key = first[hi - 1].key;
      if (key < low_key || key > high_key) return nullptr;
      const double fraction = double(key - low_key) / double(high_key - low_key);  // keys are distinct
      std::size_t guess = lo + static_cast<std::size_t>(fraction * double(hi - 1 - lo));
      if (guess >= hi) guess = hi - 1;  // rounding
      const std::uint64_t at = first[guess].key;
      if (at == key) return first + guess;
      if (at < key) lo = guess + 1;
      else hi = guess;
    }
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (first[mid].key < key) lo = mid + 1;
      else hi = mid;
    }
    return lo < n && first[lo].key == key ? first + lo : nullptr;
  }

  // 24 bytes: the size lives in `shape_` only; counts are 32-bit (a list of 2^31 entries would
  // be 64 GiB; make() refuses one).
  std::atomic<std::uint64_t> shape_{0};  // size << 2 | retaining_bit | plain_bit
  std::atomic<receiver_list*> successor_{nullptr};  // set once, when replaced
  std::uint32_t dead_ = 0;
  const std::uint32_t capacity_;
};

static_assert(sizeof(receiver_entry) == 32, "two entries per cache line");
static_assert(sizeof(receiver_list) == 24, "a topic's list header stays small: most topics have one receiver");

inline const receiver_entry* receiver_view::begin() const noexcept { return list->entries(); }

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP
