// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_TOPIC_TABLE_HPP
#define AGENTBUS_ROUTER_DETAIL_TOPIC_TABLE_HPP

// The per-topic cache: concrete topic -> node holding that topic's resolved receivers.
//
// Readers (publishers) look topics up without a lock: an open-addressing table of node
// pointers behind one atomic pointer. Only the router's writer mutex inserts: into an empty
// slot (a release store, so readers see either nothing or a complete node) or, when the table
// is half full, into a doubled copy that replaces it (the old array is retired). Nodes are
// never moved or freed while the router lives, so channels can keep pointers to them.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"

namespace agentbus::detail {

/// A concrete topic and its resolved receivers; the topic's characters follow the node's
/// fields in the same allocation (one allocation per cached topic, whatever its length, and
/// 20 bytes besides the text: a node is most of what a topic with one subscriber costs).
struct topic_node {
  /// A node for `text` (copied), owning `r`.
  static topic_node* make(std::string_view text, std::uint64_t h, receiver_list* r) {
    // The text may start inside the struct's tail padding; a short one still gets the whole struct.
    void* raw = ::operator new(std::max(sizeof(topic_node), text_offset + text.size()));
    auto* n = ::new (raw) topic_node(h, r, static_cast<std::uint32_t>(text.size()));
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
  topic_node(const topic_node&) = delete;
  topic_node& operator=(const topic_node&) = delete;

  /// The topic (the characters after the fields).
  AGENTBUS_ALWAYS_INLINE std::string_view name() const noexcept {
    return {reinterpret_cast<const char*>(this) + text_offset, size_};
  }

  /// True when this is the node of `text` (hashes already compared equal).
  AGENTBUS_ALWAYS_INLINE bool is(std::string_view text) const noexcept {
    return size_ == text.size() && std::memcmp(reinterpret_cast<const char*>(this) + text_offset, text.data(), size_) == 0;
  }

  const std::uint64_t hash;
  std::atomic<receiver_list*> receivers;

 private:
  topic_node(std::uint64_t h, receiver_list* r, std::uint32_t size) noexcept : hash(h), receivers(r), size_(size) {}
  ~topic_node() = default;
  char* chars() noexcept { return reinterpret_cast<char*>(this) + text_offset; }

  const std::uint32_t size_;  // topics are at most max_topic_length (255) bytes

 public:
  // Where the characters start: right after size_, not after the struct's padding.
  static constexpr std::size_t text_offset = 2 * sizeof(std::uint64_t) + sizeof(std::uint32_t);
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

  /// Lock-free lookup; call inside a read section. nullptr when absent.
  AGENTBUS_ALWAYS_INLINE topic_node* find(std::string_view name, std::uint64_t hash) const noexcept {
    const slots* s = slots_.load(std::memory_order_acquire);
    for (std::size_t i = hash & s->mask;; i = (i + 1) & s->mask) {
      topic_node* n = s->at(i).load(std::memory_order_acquire);
      if (n == nullptr) return nullptr;
      if (n->hash == hash && n->is(name)) return n;
    }
  }

  /// Inserts a new node (caller holds the writer mutex and checked that it is absent).
  void insert(topic_node* node) {
    slots* s = slots_.load(std::memory_order_relaxed);
    if ((size_ + 1) * 2 > s->mask + 1) {
      slots* bigger = make_slots((s->mask + 1) * 2);
      for (std::size_t i = 0; i <= s->mask; ++i)
        if (topic_node* n = s->at(i).load(std::memory_order_relaxed)) place(bigger, n);
      slots_.store(bigger, std::memory_order_release);
      quiescence_domain::instance().retire({{s, &free_slots_erased}});
      s = bigger;
    }
    place(s, node);
    ++size_;
  }

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

  static slots* make_slots(std::size_t capacity) {
    void* raw = ::operator new(sizeof(slots) + capacity * sizeof(std::atomic<topic_node*>));
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
