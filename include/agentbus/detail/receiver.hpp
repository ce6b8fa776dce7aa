// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_RECEIVER_HPP
#define AGENTBUS_DETAIL_RECEIVER_HPP

// A subscribed handler, type-erased, and the immutable receiver lists that topics point to.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <type_traits>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus::detail {

class mailbox;  // agent/mailbox.hpp
class router;   // router/router.hpp

/// One subscription's handler. Lives until unsubscribe's grace period ends (synchronous
/// receivers) or until its mailbox holds no more events for it (asynchronous receivers).
struct receiver {
  /// Delivers an event: calls the handler (synchronous) or queues it (asynchronous).
  /// Returns false when a mailbox refused the event.
  using invoke_fn = bool (*)(receiver*, const event_core&);
  /// Runs the handler on an event taken from a mailbox (asynchronous receivers only).
  using handle_fn = void (*)(receiver*, const event_core&);
  using destroy_fn = void (*)(receiver*) noexcept;

  receiver(type_id t, invoke_fn inv, destroy_fn des, topic_pattern pat) noexcept
      : type(t), invoke(inv), destroy(des), pattern(std::move(pat)) {}

  // Hot fields first: dispatch reads type, alive and invoke, all on the first cache line.
  type_id type;
  std::atomic<bool> alive{true};
  invoke_fn invoke;
  destroy_fn destroy;
  std::uint64_t id = 0;
  mailbox* home = nullptr;           // asynchronous receivers: the mailbox events go to
  handle_fn handle = nullptr;        // asynchronous receivers: runs the handler
  destroy_fn hand_over = nullptr;    // asynchronous receivers: returns it to its mailbox
  router* owner = nullptr;     // the router that reports this receiver's failures
  topic_pattern pattern;

  /// True when the receiver keeps events beyond the publish call (needs a shared block).
  bool retains() const noexcept { return home != nullptr; }

  static void delete_erased(void* p) noexcept {
    auto* r = static_cast<receiver*>(p);
    r->destroy(r);
  }
};

/// Calls a handler taking `const event<T>&` or `const T&`.
template <class T, class F>
inline void call_handler(F& fn, const event<T>& ev) {
  if constexpr (std::is_invocable_v<F&, const event<T>&>)
    fn(ev);
  else
    fn(ev.payload());
}

/// A synchronous receiver: the handler runs inside publish().
template <class T, class F>
struct receiver_impl final : receiver {
  template <class G>
  receiver_impl(G&& g, topic_pattern pat)
      : receiver(type_id_of<T>(), &call, &destroy_self, std::move(pat)), fn(std::forward<G>(g)) {}

  static bool call(receiver* r, const event_core& e) {
    call_handler<T>(static_cast<receiver_impl*>(r)->fn, static_cast<const event<T>&>(e));
    return true;
  }
  static void destroy_self(receiver* r) noexcept { delete static_cast<receiver_impl*>(r); }

  F fn;
};

/// An immutable array of receivers, in subscription order. Swapped whole (copy-on-write).
class receiver_list {
 public:
  static receiver_list* make(std::size_t n) {
    void* raw = ::operator new(sizeof(receiver_list) + n * sizeof(receiver*));
    return ::new (raw) receiver_list(n);
  }
  /// A list holding `items` (in id order).
  template <class Range>
  static receiver_list* make_from(const Range& items) {
    receiver_list* out = make(std::size(items));
    std::size_t j = 0;
    for (receiver* r : items) out->items()[j++] = r;
    out->finish();
    return out;
  }
  /// The shared empty list; never freed.
  static receiver_list* empty() noexcept {
    static receiver_list e(0);
    return &e;
  }
  static void delete_erased(void* p) noexcept {
    auto* l = static_cast<receiver_list*>(p);
    if (l != empty()) ::operator delete(l);
  }

  std::size_t size() const noexcept { return size_; }
  /// True when some receiver keeps events (a mailbox): publish then builds a shared block once.
  bool retaining() const noexcept { return retaining_; }
  /// True when the list is not empty and only synchronous: the publish fast path (one test).
  bool plain() const noexcept { return plain_; }
  receiver* const* begin() const noexcept { return items(); }
  receiver* const* end() const noexcept { return items() + size_; }
  receiver** items() noexcept { return reinterpret_cast<receiver**>(this + 1); }
  receiver* const* items() const noexcept { return reinterpret_cast<receiver* const*>(this + 1); }

  /// A copy with `r` inserted in id order.
  receiver_list* with(receiver* r) const {
    receiver_list* out = make(size_ + 1);
    std::size_t j = 0;
    bool placed = false;
    for (receiver* x : *this) {
      if (!placed && r->id < x->id) {
        out->items()[j++] = r;
        placed = true;
      }
      out->items()[j++] = x;
    }
    if (!placed) out->items()[j] = r;
    out->finish();
    return out;
  }
  /// A copy without `r`.
  receiver_list* without(const receiver* r) const {
    receiver_list* out = make(size_ - 1);
    std::size_t j = 0;
    for (receiver* x : *this)
      if (x != r) out->items()[j++] = x;
    out->finish();
    return out;
  }

 private:
  explicit receiver_list(std::size_t n) noexcept : size_(n) {}
  void finish() noexcept {
    for (receiver* r : *this) retaining_ = retaining_ || r->retains();
    plain_ = size_ != 0 && !retaining_;
  }
  std::size_t size_;
  bool retaining_ = false;
  bool plain_ = false;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_RECEIVER_HPP
