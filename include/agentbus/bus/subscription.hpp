// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BUS_SUBSCRIPTION_HPP
#define AGENTBUS_BUS_SUBSCRIPTION_HPP

#include <cstdint>
#include <memory>
#include <utility>

#include "agentbus/router/router.hpp"

namespace agentbus {

namespace detail {
struct bus_access;
}
class subscription_set;

/// @brief RAII handle of one subscription: unsubscribes when destroyed.
///
/// The guarantee: once unsubscribe() (or the destructor) returns, the handler is never called
/// again, and no call of it is still running on another thread, so the caller may free what
/// the handler captured. Exceptions, both only when called from inside a handler:
///   - a handler unsubscribing itself returns at once; its own current call goes on;
///   - two handlers on two threads unsubscribing each other at the same moment cannot both
///     wait for the other to finish (that would deadlock): a call made while the other thread
///     is itself blocked in unsubscribe() does not wait for that thread.
/// Unsubscribing waits for every handler call running on other threads when it starts (of any
/// bus), not just this subscription's, so keep handlers short or move long work to a mailbox.
///
/// A handle may outlive its bus: unsubscribing then does nothing (until it is destroyed, the
/// handle keeps the bus's emptied topic tables; every handler and hook went with the bus).
/// Handles are move-only and, like any object, not to be used from two threads at once.
class subscription {
 public:
  /// @brief An empty handle.
  subscription() noexcept = default;
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  /// @brief Takes over `other`'s subscription.
  subscription(subscription&& other) noexcept
      : router_(std::move(other.router_)), id_(std::exchange(other.id_, 0)), node_(std::exchange(other.node_, nullptr)) {}
  /// @brief Unsubscribes the current subscription, then takes over `other`'s.
  subscription& operator=(subscription&& other) noexcept {
    if (this != &other) {
      unsubscribe();
      router_ = std::move(other.router_);
      id_ = std::exchange(other.id_, 0);
      node_ = std::exchange(other.node_, nullptr);
    }
    return *this;
  }
  ~subscription() { unsubscribe(); }

  /// @brief Ends the subscription (idempotent). See the class comment for the guarantee.
  void unsubscribe() noexcept {
    if (id_ == 0) return;
    const detail::subscription_key key{std::exchange(id_, 0), std::exchange(node_, nullptr)};
    router_->unsubscribe(key);  // never throws; after the bus's shutdown: finds nothing, does nothing
    router_.reset();
  }

  /// @brief Lets the subscription live as long as the bus; the handle becomes empty.
  void detach() noexcept {
    id_ = 0;
    node_ = nullptr;
    router_.reset();
  }

  /// @brief True while the handle holds a subscription (the bus may still have gone away).
  bool active() const noexcept { return id_ != 0; }
  /// @brief The subscription's id (0 when empty); matches handler_failure::subscription_id.
  std::uint64_t id() const noexcept { return id_; }

 private:
  friend struct detail::bus_access;  // the only way to make one that holds a subscription
  friend class subscription_set;     // ends many with one grace period
  subscription(std::shared_ptr<detail::router> r, std::uint64_t id) noexcept : router_(std::move(r)), id_(id) {}
  subscription(std::shared_ptr<detail::router> r, detail::subscription_key key) noexcept
      : router_(std::move(r)), id_(key.id), node_(key.node) {}
  detail::subscription_key key() const noexcept { return {id_, node_}; }

  // Shared, not weak: unsubscribing then needs no lock() (two atomic operations less). A
  // handle that outlives its bus keeps only the router's emptied tables: the bus's shutdown
  // freed every receiver and handler, so the unsubscribe finds nothing.
  std::shared_ptr<detail::router> router_;
  std::uint64_t id_ = 0;
  detail::topic_node* node_ = nullptr;  // a compact subscription's topic (router.hpp)
};

}  // namespace agentbus

#endif  // AGENTBUS_BUS_SUBSCRIPTION_HPP
