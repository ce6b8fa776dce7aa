// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP
#define AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP

// A subscription's receiver, type-erased, and the immutable receiver lists that topics point to.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <utility>

#include "agentbus/core/event.hpp"
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
      : type(t), invoke(inv), destroy(des), retains(keeps_events), hand_over(hand_over_fn), pattern(std::move(pat)) {}

  // Hot fields first: dispatch reads type, alive and invoke, all on the first cache line.
  type_id type;
  std::atomic<bool> alive{true};
  invoke_fn invoke;
  destroy_fn destroy;
  /// True when the receiver keeps events beyond the publish call: publish then builds the
  /// event once in a shared block (shared_event) instead of on its stack.
  bool retains;
  std::uint64_t id = 0;
  /// Retaining receivers: called instead of `destroy` once unsubscribed (see above).
  destroy_fn hand_over;
  router* owner = nullptr;  // the router that reports this receiver's failures
  topic_pattern pattern;

  static void delete_erased(void* p) noexcept {
    auto* r = static_cast<receiver*>(p);
    r->destroy(r);
  }
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
    for (receiver* r : *this) retaining_ = retaining_ || r->retains;
    plain_ = size_ != 0 && !retaining_;
  }
  std::size_t size_;
  bool retaining_ = false;
  bool plain_ = false;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_RECEIVER_HPP
