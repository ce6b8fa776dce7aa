// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_DEDUP_HPP
#define AGENTBUS_STORAGE_DEDUP_HPP

// Publish-side deduplication on a bus that stores events:
//
//   auto r = bus.publish("orders.placed", o, {.idempotency_key = "order-4711"});
//   if (r.duplicate) ...  // a publish with that key was stored within the window: r.offset is its offset
//
// Within the window (dedup_options: the last max_keys keys, each for `window` after it was
// stored) a second publish with the same key is neither stored nor delivered; it returns the
// first one's offset with `duplicate` set. The key travels with the event as the header
// `agentbus-msg-id` (as Nats-Msg-Id does for JetStream), so a journal bus rebuilds the window
// from its newest records when it opens: it survives a restart. Publishes without a key do
// not touch the window.
//
// Thread safety: keyed publishes of one bus take the window's mutex from the check to the
// store (two concurrent publishes of one key store it once); unkeyed ones never take it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agentbus/core/clock.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus {

/// @brief The header that carries a publish's idempotency key.
inline constexpr std::string_view idempotency_header = "agentbus-msg-id";

/// @brief Settings of publish-side deduplication (bus_options::dedup; see storage/dedup.hpp).
struct dedup_options {
  std::size_t max_keys = 65536;  ///< keys remembered at most (the oldest go first); 0 turns dedup off
  std::chrono::milliseconds window =
      std::chrono::minutes(2);    ///< how long a key is remembered after its event was stored
  clock_source* clock = nullptr;  ///< the window's clock (null: clock_source::steady())
};

namespace detail {

/// The keys seen recently, with the offsets their events were stored at.
class dedup_window {
 public:
  using time_point = clock_source::time_point;

  void configure(const dedup_options& options) {
    std::lock_guard lock(mutex_);
    options_ = options;
    // On the clock's own duration, saturated: a window too long for its nanoseconds
    // (milliseconds::max(): for ever) wrapped around to a negative one and forgot every key at once.
    using D = clock_source::duration;
    window_ = options.window <= std::chrono::milliseconds::zero() ? D::zero()
              : options.window >= std::chrono::duration_cast<std::chrono::milliseconds>(D::max())
                  ? D::max()
                  : std::chrono::duration_cast<D>(options.window);
    clock_ = &clock_source::or_steady(options.clock);
    evict(clock_->now());
  }

  bool enabled() const noexcept { return options_.max_keys != 0; }
  /// How long a key is remembered, on the clock's duration (saturated).
  clock_source::duration window() const noexcept { return window_; }
  std::mutex& mutex() noexcept { return mutex_; }
  time_point now() const noexcept { return clock_->now(); }

  /// The offset a publish with `key` was stored at within the window (caller holds mutex()).
  std::optional<std::uint64_t> find(std::string_view key, time_point now) {
    evict(now);
    const auto it = offsets_.find(key);
    if (it == offsets_.end()) return std::nullopt;
    return it->second;
  }

  /// Remembers `key` (caller holds mutex()), stored at `at` (a time of this window's clock).
  void insert(std::string_view key, std::uint64_t offset, time_point at) {
    if (!enabled()) return;
    auto [it, fresh] = offsets_.try_emplace(std::string(key), offset);
    if (!fresh) return;
    order_.push_back({&it->first, at});
    evict(now());
  }

  /// Remembers a key found in storage when the bus opened, stored `age` ago.
  void restore(std::string_view key, std::uint64_t offset, std::chrono::nanoseconds age) {
    std::lock_guard lock(mutex_);
    insert(key, offset, clock_->now() - std::chrono::duration_cast<clock_source::duration>(age));
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return offsets_.size();
  }

 private:
  struct transparent_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct stamp {
    const std::string* key;  // the map's own key (node-based map: stable)
    time_point at;
  };

  void evict(time_point now) {
    while (!order_.empty() && (order_.size() > options_.max_keys || now - order_.front().at >= window_)) {
      offsets_.erase(*order_.front().key);
      order_.pop_front();
    }
  }

  mutable std::mutex mutex_;
  dedup_options options_{};
  clock_source::duration window_ = std::chrono::duration_cast<clock_source::duration>(dedup_options{}.window);
  clock_source* clock_ = &clock_source::steady();
  std::unordered_map<std::string, std::uint64_t, transparent_hash, std::equal_to<>> offsets_;
  std::deque<stamp> order_;  // insertion order = storage order
};

/// What the bus's stores derive from: their dedup window. A store that keeps events beyond
/// the process (the journal) also refills it from its newest records in open_dedup.
class dedup_store {
 public:
  dedup_window& dedup() noexcept { return dedup_; }
  /// Called once by the bus after opening the store.
  void open_dedup(const dedup_options& options) { dedup_.configure(options); }

 protected:
  ~dedup_store() = default;
  dedup_window dedup_;
};

}  // namespace detail
}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_DEDUP_HPP
