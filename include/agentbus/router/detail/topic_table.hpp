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

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/router/detail/receiver.hpp"

namespace agentbus::detail {

/// A concrete topic and its resolved receivers; the topic's characters follow the node in the
/// same allocation (one allocation per cached topic, whatever its length).
struct topic_node {
  /// A node for `text` (copied), owning `r`.
  static topic_node* make(std::string_view text, std::uint64_t h, receiver_list* r) {
    void* raw = ::operator new(sizeof(topic_node) + text.size());
    char* chars = static_cast<char*>(raw) + sizeof(topic_node);
    if (!text.empty()) std::memcpy(chars, text.data(), text.size());
    return ::new (raw) topic_node(std::string_view(chars, text.size()), h, r);
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

  const std::string_view name;  // the characters after the node
  const std::uint64_t hash;
  std::atomic<receiver_list*> receivers;

 private:
  topic_node(std::string_view t, std::uint64_t h, receiver_list* r) noexcept : name(t), hash(h), receivers(r) {}
  ~topic_node() = default;
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
      if (n->hash == hash && n->name == name) return n;
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
