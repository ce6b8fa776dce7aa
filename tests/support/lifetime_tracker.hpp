// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_TESTS_SUPPORT_LIFETIME_TRACKER_HPP
#define AGENTBUS_TESTS_SUPPORT_LIFETIME_TRACKER_HPP

/// @file
/// @brief Test helper: a value type whose every construction and destruction
/// is recorded, so a test can prove that a container destroys each object it
/// constructed exactly once and never touches a dead one.

#include <cstddef>
#include <mutex>
#include <unordered_set>

namespace agentbus::test {

/// @brief Records which tracked objects are alive. Thread-safe; one registry
/// per test keeps tests independent.
class lifetime_registry {
 public:
  /// @brief Objects constructed so far (any constructor).
  std::size_t constructed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return constructed_;
  }
  /// @brief Objects destroyed so far.
  std::size_t destroyed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return destroyed_;
  }
  /// @brief Objects alive now.
  std::size_t live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.size();
  }
  /// @brief Misuses seen: double construction at one address, destruction
  /// or assignment of an object that is not alive. Must stay 0.
  std::size_t errors() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }

  /// @brief Called by tracked's constructors.
  void on_construct(const void* address) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++constructed_;
    if (!live_.insert(address).second) ++errors_;
  }
  /// @brief Called by tracked's destructor.
  void on_destroy(const void* address) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++destroyed_;
    if (live_.erase(address) != 1) ++errors_;
  }
  /// @brief Called when a live object is used (assigned to or from).
  void on_use(const void* address) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (live_.count(address) != 1) ++errors_;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_set<const void*> live_;
  std::size_t constructed_ = 0;
  std::size_t destroyed_ = 0;
  std::size_t errors_ = 0;
};

/// @brief Copyable, movable value carrying an int, reporting its lifetime to
/// a lifetime_registry. A moved-from object keeps its registration (it is
/// still an object that must be destroyed) and has value -1.
class tracked {
 public:
  /// @brief Creates a live object holding `value`.
  explicit tracked(lifetime_registry& registry, int value = 0) : registry_(&registry), value_(value) {
    registry_->on_construct(this);
  }
  /// @brief Copy: a new live object with the same value.
  tracked(const tracked& other) : registry_(other.registry_), value_(other.value_) {
    registry_->on_use(&other);
    registry_->on_construct(this);
  }
  /// @brief Move: a new live object; the source keeps living with value -1.
  tracked(tracked&& other) noexcept : registry_(other.registry_), value_(other.value_) {
    registry_->on_use(&other);
    registry_->on_construct(this);
    other.value_ = -1;
  }
  /// @brief Copy assignment between two live objects.
  tracked& operator=(const tracked& other) {
    registry_->on_use(this);
    registry_->on_use(&other);
    value_ = other.value_;
    return *this;
  }
  /// @brief Move assignment between two live objects.
  tracked& operator=(tracked&& other) noexcept {
    registry_->on_use(this);
    registry_->on_use(&other);
    value_ = other.value_;
    if (&other != this) other.value_ = -1;
    return *this;
  }
  ~tracked() { registry_->on_destroy(this); }

  /// @brief The carried value (-1 once moved from).
  int value() const noexcept { return value_; }

 private:
  lifetime_registry* registry_;
  int value_;
};

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_SUPPORT_LIFETIME_TRACKER_HPP
