// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_REGISTRY_HPP
#define AGENTBUS_ROUTER_DETAIL_REGISTRY_HPP

// Every live subscription of a router, by id: an open-addressing table of receiver pointers
// keyed by the receiver's own id (8 bytes a slot, at most half full), instead of a node-based
// map's allocation per subscription. Linear probing with backward-shift deletion, so that
// there are no tombstones and a lookup stops at the first empty slot. Used only under the
// router's writer mutex.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "agentbus/router/detail/receiver.hpp"

namespace agentbus::detail {

class receiver_registry {
 public:
  receiver_registry() = default;
  receiver_registry(const receiver_registry&) = delete;
  receiver_registry& operator=(const receiver_registry&) = delete;

  /// Adds `r` (its id must not be present).
  void insert(receiver* r) {
    if ((size_ + 1) * 2 > capacity_) grow();
    place(r);
    ++size_;
  }
  /// The receiver with `id`, or null.
  receiver* find(std::uint64_t id) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = home(id);; i = (i + 1) & mask()) {
      receiver* r = slots_[i];
      if (r == nullptr) return nullptr;
      if (r->id == id) return r;
    }
  }
  /// Removes and returns the receiver with `id`, or null.
  receiver* erase(std::uint64_t id) noexcept {
    if (size_ == 0) return nullptr;
    std::size_t i = home(id);
    for (;; i = (i + 1) & mask()) {
      if (slots_[i] == nullptr) return nullptr;
      if (slots_[i]->id == id) break;
    }
    receiver* out = slots_[i];
    // Backward shift: move later entries of the cluster into the hole when their home slot
    // is not between the hole and them (cyclically), so that every lookup still finds them.
    for (std::size_t j = (i + 1) & mask(); slots_[j] != nullptr; j = (j + 1) & mask()) {
      const std::size_t h = home(slots_[j]->id);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = nullptr;
    --size_;
    return out;
  }
  /// Calls `f(receiver*)` for every receiver.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i] != nullptr) f(slots_[i]);
  }
  /// Forgets every receiver (frees nothing of them).
  void clear() noexcept {
    slots_.reset();
    capacity_ = size_ = 0;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  std::size_t mask() const noexcept { return capacity_ - 1; }
  // Ids are consecutive: Fibonacci hashing spreads them over the table.
  std::size_t home(std::uint64_t id) const noexcept {
    return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_) & mask();
  }
  void place(receiver* r) noexcept {
    std::size_t i = home(r->id);
    while (slots_[i] != nullptr) i = (i + 1) & mask();
    slots_[i] = r;
  }
  void grow() {
    const std::size_t bigger = capacity_ == 0 ? 16 : capacity_ * 2;
    auto old = std::exchange(slots_, std::make_unique<receiver*[]>(bigger));  // zeroed
    const std::size_t old_capacity = std::exchange(capacity_, bigger);
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(bigger));
    for (std::size_t i = 0; i < old_capacity; ++i)
      if (old[i] != nullptr) place(old[i]);
  }

  std::unique_ptr<receiver*[]> slots_;
  std::size_t capacity_ = 0;  // a power of two, or 0
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_REGISTRY_HPP
