// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_SUBSCRIPTION_SET_HPP
#define AGENTBUS_BUS_SUBSCRIPTION_SET_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "agentbus/bus/subscription.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

/// @brief Many subscriptions that end together, with one grace period per bus.
///
/// Most of what an unsubscribe costs is its wait for the handler calls running on other
/// threads (the guarantee in subscription). Ending N handles one by one waits N times; a set
/// ends them all with one wait per bus, with the same guarantee for each: once clear() (or
/// the destructor) returns, none of their handlers is called again or still running on
/// another thread. Use it for what is torn down at once: an agent's subscriptions, a
/// request's reply routes, a test fixture.
///
/// `set += bus.subscribe(...)`. A set may hold handles of several buses, and outlive them.
/// Move-only; like any object, not to be used from two threads at once.
class subscription_set {
 public:
  subscription_set() noexcept = default;
  subscription_set(const subscription_set&) = delete;
  subscription_set& operator=(const subscription_set&) = delete;
  /// @brief Takes over `other`'s subscriptions; `other` is left empty.
  subscription_set(subscription_set&&) noexcept = default;
  /// @brief Ends the current subscriptions, then takes over `other`'s.
  subscription_set& operator=(subscription_set&& other) noexcept {
    if (this != &other) {
      clear();
      handles_ = std::move(other.handles_);
    }
    return *this;
  }
  ~subscription_set() { clear(); }

  /// @brief Takes over `s` (an empty handle is ignored). Throws std::bad_alloc only; `s`
  /// then still holds its subscription.
  void add(subscription&& s) {
    if (!s.active()) return;
    handles_.push_back(std::move(s));
  }
  /// @brief Same as add().
  subscription_set& operator+=(subscription&& s) {
    add(std::move(s));
    return *this;
  }

  /// @brief Reserves room for `n` handles.
  void reserve(std::size_t n) { handles_.reserve(n); }
  /// @brief Number of handles held.
  std::size_t size() const noexcept { return handles_.size(); }
  /// @brief True when the set holds no handle.
  bool empty() const noexcept { return handles_.empty(); }

  /// @brief Ends every subscription in the set (one grace period per bus); the set is empty
  /// afterwards. See the class comment for the guarantee.
  void clear() noexcept {
    std::vector<detail::subscription_key> ids;
    try {
      ids.reserve(handles_.size());
    } catch (...) {
      handles_.clear();  // out of memory: one by one (each handle's own destructor)
      return;
    }
    // Handles of one bus are usually all together: end each run of same-bus handles at once.
    for (std::size_t i = 0; i < handles_.size();) {
      std::shared_ptr<detail::router> owner = handles_[i].router_;  // kept until the run has ended
      std::size_t j = i;
      ids.clear();
      for (; j < handles_.size(); ++j) {
        subscription& h = handles_[j];
        if (h.router_ != owner) break;
        ids.push_back(h.key());
        h.detach();
      }
      if (owner) owner->unsubscribe(std::span<const detail::subscription_key>(ids));  // never throws
      i = j;
    }
    handles_.clear();
  }

 private:
  std::vector<subscription> handles_;
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_SUBSCRIPTION_SET_HPP
