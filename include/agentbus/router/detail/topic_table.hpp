// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_TOPIC_TABLE_HPP
#define AGENTBUS_ROUTER_DETAIL_TOPIC_TABLE_HPP

// The per-topic cache: concrete topic -> node holding that topic's resolved receivers.
//
// Readers (publishers) look topics up without a lock: an open-addressing table of node
// pointers behind one atomic pointer. Only the router's writer mutex inserts: into an empty
// slot (a release store, so readers see either nothing or a complete node) or, when the table
// is half full, into a rebuilt copy that replaces it (the old array is retired).
//
// Nodes are reclaimed: a node that nothing anchors (no exact subscription lives in its list,
// no channel pins it) holds only what the pattern trie can give back, so the router may drop
// it (sweep) and build it again on the next publish. A sweep rebuilds the slots without the
// dropped nodes and retires the old array and the nodes through quiescence, so a publisher
// still holding one finishes with it safely. Channels pin their node (topic_pin): pinning and
// reclaiming race on one atomic, and whoever comes second backs off.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"

namespace agentbus::detail {

/// A concrete topic and its resolved receivers; the topic's characters follow the node's
/// fields in the same allocation (one allocation per cached topic, whatever its length, and
/// 27 bytes besides the text: a node is most of what a topic with one subscriber costs).
struct topic_node {
  /// A node for `text` (copied, at most max_topic_length bytes), owning `r`.
  static topic_node* make(std::string_view text, std::uint64_t h, receiver_list* r) {
    // The text may start inside the struct's tail padding; a short one still gets the whole struct.
    void* raw = ::operator new(std::max(sizeof(topic_node), text_offset + text.size()));
    auto* n = ::new (raw) topic_node(h, r, static_cast<std::uint8_t>(text.size()));
    if (!text.empty()) std::memcpy(n->chars(), text.data(), text.size());
    return n;
  }
  /// Frees a node made by make() (and its list).
  static void destroy(topic_node* n) noexcept {
    if (n == nullptr) return;
    receiver_list::delete_erased(n->receivers.load(std::memory_order_relaxed));
    n->~topic_node();
    ::operator delete(static_cast<void*>(n));
  }
  static void destroy_erased(void* p) noexcept { destroy(static_cast<topic_node*>(p)); }
  topic_node(const topic_node&) = delete;
  topic_node& operator=(const topic_node&) = delete;

  /// The topic (the characters after the fields).
  AGENTBUS_ALWAYS_INLINE std::string_view name() const noexcept {
    return {reinterpret_cast<const char*>(this) + text_offset, size_};
  }

  /// True when this is the node of `text` (hashes already compared equal); marks it in use
  /// (a publish found it: the next sweep keeps it). The mark costs nothing on the way: the
  /// size compared is the mark's word, which equals the topic's size only once marked, so
  /// only the first match after a sweep takes the branch that marks. (It marks before the
  /// text is compared: a different topic with the same hash and size would keep this one a
  /// sweep longer, nothing worse.)
  AGENTBUS_ALWAYS_INLINE bool is(std::string_view text) const noexcept {
    const std::size_t marked = match_size_.load(std::memory_order_relaxed);
    if (AGENTBUS_UNLIKELY(marked != text.size())) {
      if (marked != (text.size() | unused_bit)) return false;
      match_size_.store(static_cast<std::uint16_t>(text.size()), std::memory_order_relaxed);
    }
    return std::memcmp(reinterpret_cast<const char*>(this) + text_offset, text.data(), size_) == 0;
  }
  /// The same, leaving the mark alone (writers: subscribing or unsubscribing is not a use).
  bool names(std::string_view text) const noexcept {
    return size_ == text.size() && std::memcmp(reinterpret_cast<const char*>(this) + text_offset, text.data(), size_) == 0;
  }

  /// Adds a pin unless the node was reclaimed (then false: look the topic up again under the
  /// writer mutex, which finds or makes its live node). Any thread, inside a read section.
  bool try_pin() {
    const std::uint32_t before = pins_.fetch_add(1, std::memory_order_relaxed);
    if (before & reclaimed_bit) return false;  // the count no longer matters: the node is going
    if (before == max_pins) {
      pins_.fetch_sub(1, std::memory_order_relaxed);
      throw std::length_error("agentbus: more than 2^31 - 1 channels on one topic");
    }
    return true;
  }
  /// Writer side (a sweep): whether a publish found the topic since the last call (is()), and
  /// clears that.
  bool take_used() noexcept {
    if (match_size_.load(std::memory_order_relaxed) != size_) return false;
    match_size_.store(size_ | unused_bit, std::memory_order_relaxed);
    return true;
  }

  /// Drops a pin taken by try_pin (the node may be reclaimed from then on).
  void unpin() noexcept { pins_.fetch_sub(1, std::memory_order_release); }
  /// Writer side (the router's mutex held): claims an unpinned node for reclamation; from
  /// then on try_pin fails. False when pinned.
  bool try_claim() noexcept {
    std::uint32_t expected = 0;
    return pins_.compare_exchange_strong(expected, reclaimed_bit, std::memory_order_acquire, std::memory_order_relaxed);
  }

  const std::uint64_t hash;
  std::atomic<receiver_list*> receivers;
  /// Writer side: the live exact subscriptions in `receivers` (receivers on this topic's own
  /// name, compact ones included). Zero: the list is what the pattern trie would build.
  std::uint32_t exact = 0;

 private:
  static constexpr std::uint32_t reclaimed_bit = std::uint32_t{1} << 31, max_pins = reclaimed_bit - 1;

  static constexpr std::uint16_t unused_bit = 0x100;  // above any topic size

  topic_node(std::uint64_t h, receiver_list* r, std::uint8_t size) noexcept
      : hash(h), receivers(r), match_size_(static_cast<std::uint16_t>(size | unused_bit)), size_(size) {}
  ~topic_node() = default;
  char* chars() noexcept { return reinterpret_cast<char*>(this) + text_offset; }

  std::atomic<std::uint32_t> pins_{0};  // channels holding the node; reclaimed_bit once claimed
  // size_ once a publish found the node since the last sweep, size_ | unused_bit before.
  mutable std::atomic<std::uint16_t> match_size_;
  const std::uint8_t size_;  // topics are at most max_topic_length (255) bytes

 public:
  // Where the characters start: right after size_, not after the struct's padding.
  static constexpr std::size_t text_offset = 2 * sizeof(std::uint64_t) + 2 * sizeof(std::uint32_t) + 3;
};

/// A pin on a topic node (what a channel holds): while it lives, the node is not reclaimed.
/// Copying adds a pin; the moved-from pin holds nothing.
class topic_pin {
 public:
  topic_pin() noexcept = default;
  /// Takes over a pin already added to `n` (router::pinned_node).
  static topic_pin adopt(topic_node* n) noexcept { return topic_pin(n); }
  topic_pin(const topic_pin& o) : node_(o.node_) {
    if (node_ != nullptr) (void)node_->try_pin();  // cannot find it reclaimed: o's pin keeps it
  }
  topic_pin(topic_pin&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  topic_pin& operator=(topic_pin o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~topic_pin() {
    if (node_ != nullptr) node_->unpin();
  }
  topic_node* get() const noexcept { return node_; }
  topic_node* operator->() const noexcept { return node_; }
  topic_node& operator*() const noexcept { return *node_; }

 private:
  explicit topic_pin(topic_node* n) noexcept : node_(n) {}
  topic_node* node_ = nullptr;
};

class topic_table {
 public:
  topic_table() : slots_(make_slots(initial_capacity)) {}
  ~topic_table() {
    slots* s = slots_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i <= s->mask; ++i) topic_node::destroy(s->at(i).load(std::memory_order_relaxed));
    free_slots(s);
  }
  topic_table(const topic_table&) = delete;
  topic_table& operator=(const topic_table&) = delete;

  /// Lock-free lookup for a publish, which marks the node in use (topic_node::is); call
  /// inside a read section. nullptr when absent.
  AGENTBUS_ALWAYS_INLINE topic_node* find(std::string_view name, std::uint64_t hash) const noexcept {
    const slots* s = slots_.load(std::memory_order_acquire);
    for (std::size_t i = hash & s->mask;; i = (i + 1) & s->mask) {
      topic_node* n = s->at(i).load(std::memory_order_acquire);
      if (n == nullptr) return nullptr;
      if (n->hash == hash && n->is(name)) return n;
    }
  }
  /// The same, not a use (writers under the mutex: subscribe, unsubscribe).
  topic_node* find_unmarked(std::string_view name, std::uint64_t hash) const noexcept {
    const slots* s = slots_.load(std::memory_order_acquire);
    for (std::size_t i = hash & s->mask;; i = (i + 1) & s->mask) {
      topic_node* n = s->at(i).load(std::memory_order_acquire);
      if (n == nullptr) return nullptr;
      if (n->hash == hash && n->names(name)) return n;
    }
  }

  /// Inserts a new node (caller holds the writer mutex and checked that it is absent). When
  /// the table is half full it is rebuilt first, without the nodes `reclaimable` claims
  /// (see sweep(); what it retires goes to `retired`), and at twice the size only if what is
  /// left needs it. True when that sweep ran.
  template <class Reclaimable, class Dropped>
  bool insert(topic_node* node, Reclaimable&& reclaimable, Dropped&& dropped,
              std::vector<retired_record::object>& retired) {
    const bool swept = (size_ + 1) * 2 > capacity();
    if (swept) sweep(reclaimable, dropped, retired);
    place(slots_.load(std::memory_order_relaxed), node);
    ++size_;
    return swept;
  }
  /// Inserts with no reclamation, retiring a replaced array at once (a table of its own; the
  /// router uses the one above).
  void insert(topic_node* node) {
    std::vector<retired_record::object> retired;
    (void)insert(node, [](topic_node&) { return false; }, [](topic_node&) noexcept {}, retired);
    quiescence_domain::instance().retire(std::move(retired));
  }

  /// Rebuilds the slots without the nodes for which `reclaimable(node)` returns true (it must
  /// claim them: topic_node::try_claim), sized for what is left: a quarter full at most, so
  /// that the next rebuild comes after as many inserts again (O(1) amortized per insert).
  /// `dropped(node)` (noexcept) sees each removed node; the removed nodes and the old slots
  /// are added to `retired`, for the caller to retire through quiescence once it released the
  /// mutex (readers may still hold them; and freeing under the mutex could run a deleter that
  /// unsubscribes from this router). Each node is read once (a sweep of a big table is mostly
  /// cache misses); only when much was dropped are the rest placed again, in a smaller array.
  /// Caller holds the writer mutex. Throws only std::bad_alloc, before changing anything.
  template <class Reclaimable, class Dropped>
  void sweep(Reclaimable&& reclaimable, Dropped&& dropped, std::vector<retired_record::object>& retired) {
    slots* s = slots_.load(std::memory_order_relaxed);
    retired.reserve(retired.size() + size_ + 1);
    slots* rebuilt = make_slots(fitting(size_));  // what nothing is dropped from would need
    // Nothing throws from here on: a claimed node is gone for good.
    std::size_t live = 0;
    for (std::size_t i = 0; i <= s->mask; ++i) {
      topic_node* n = s->at(i).load(std::memory_order_relaxed);
      if (n == nullptr) continue;
      if (reclaimable(*n)) {
        dropped(*n);
        retired.push_back({n, &topic_node::destroy_erased});
      } else {
        place(rebuilt, n);
        ++live;
      }
    }
    if (const std::size_t fitted = fitting(live); fitted * 8 <= rebuilt->mask + 1)
      if (slots* smaller = try_make_slots(fitted)) {  // much was reclaimed: give the room back
        for (std::size_t i = 0; i <= rebuilt->mask; ++i)
          if (topic_node* n = rebuilt->at(i).load(std::memory_order_relaxed)) place(smaller, n);
        free_slots(rebuilt);
        rebuilt = smaller;
      }
    size_ = live;
    slots_.store(rebuilt, std::memory_order_release);
    retired.push_back({s, &free_slots_erased});
  }

  /// Slots in the table (writer side, or a test): twice the nodes at least.
  std::size_t capacity() const noexcept { return slots_.load(std::memory_order_relaxed)->mask + 1; }

  /// Number of cached topics.
  std::size_t size() const noexcept { return size_; }

  /// Visits every node (caller holds the writer mutex).
  template <class F>
  void for_each(F&& f) const {
    const slots* s = slots_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i <= s->mask; ++i)
      if (topic_node* n = s->at(i).load(std::memory_order_relaxed)) f(*n);
  }

 private:
  static constexpr std::size_t initial_capacity = 64;

  struct slots {
    std::size_t mask;
    std::atomic<topic_node*>& at(std::size_t i) noexcept {
      return reinterpret_cast<std::atomic<topic_node*>*>(this + 1)[i];
    }
    const std::atomic<topic_node*>& at(std::size_t i) const noexcept {
      return reinterpret_cast<const std::atomic<topic_node*>*>(this + 1)[i];
    }
  };

  // Slots for `n` nodes, a quarter full at most.
  static std::size_t fitting(std::size_t n) noexcept {
    std::size_t c = initial_capacity;
    while (c < 4 * n) c *= 2;
    return c;
  }

  static slots* make_slots(std::size_t capacity) {
    slots* s = try_make_slots(capacity);
    if (s == nullptr) throw std::bad_alloc();
    return s;
  }
  static slots* try_make_slots(std::size_t capacity) noexcept {
    void* raw = ::operator new(sizeof(slots) + capacity * sizeof(std::atomic<topic_node*>), std::nothrow);
    if (raw == nullptr) return nullptr;
    auto* s = ::new (raw) slots{capacity - 1};
    for (std::size_t i = 0; i < capacity; ++i) ::new (static_cast<void*>(&s->at(i))) std::atomic<topic_node*>(nullptr);
    return s;
  }
  static void free_slots(slots* s) noexcept { ::operator delete(s); }
  static void free_slots_erased(void* p) noexcept { free_slots(static_cast<slots*>(p)); }

  static void place(slots* s, topic_node* n) noexcept {
    std::size_t i = n->hash & s->mask;
    while (s->at(i).load(std::memory_order_relaxed) != nullptr) i = (i + 1) & s->mask;
    s->at(i).store(n, std::memory_order_release);
  }

  std::atomic<slots*> slots_;
  std::size_t size_ = 0;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_TOPIC_TABLE_HPP
