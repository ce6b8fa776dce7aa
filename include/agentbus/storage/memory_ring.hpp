// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_MEMORY_RING_HPP
#define AGENTBUS_STORAGE_MEMORY_RING_HPP

// storage::memory_ring<N>: the last N published events, kept in memory for late joiners and
// replay. Nothing is encoded: the ring shares the published event's block (one reference per
// kept event), so any event type works and keeping history costs no copy of the payload.
//
// Threading: append and the readers take one mutex for a few instructions (the ring holds
// pointers); replay copies the wanted part of the ring out (adding references) and reads it
// outside the lock, so handlers never run under it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/dedup.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/policy.hpp"

namespace agentbus {

namespace detail {

/// The ring itself, independent of N (the capacity is a constructor argument).
class ring_store : public dedup_store {
  struct entry {
    std::uint64_t offset = 0;
    type_id type = nullptr;
    block_header* block = nullptr;
  };

 public:
  /// The event reaches the ring inside a shared block (publish builds one for it).
  static constexpr bool keeps_blocks = true;

  explicit ring_store(std::size_t capacity) : slots_(capacity) {}
  ring_store(const ring_store&) = delete;
  ring_store& operator=(const ring_store&) = delete;
  ~ring_store() {
    for (entry& e : slots_)
      if (e.block != nullptr) e.block->release();
  }

  /// Keeps `ev` (which lives in a block) and gives it the next offset. Called before the event
  /// is dispatched, so setting its offset races with no reader.
  template <class T>
  std::uint64_t append(event<T>& ev) {
    auto* block = const_cast<block_header*>(ev.block());
    block->add_ref();
    block_header* evicted = nullptr;
    std::uint64_t offset;
    {
      std::lock_guard lock(mutex_);
      offset = next_;
      offset_setter::set(ev, offset);
      entry& slot = slots_[offset % slots_.size()];
      evicted = slot.block;
      slot = entry{offset, type_id_of<T>(), block};
      ++next_;
    }
    if (evicted != nullptr) evicted->release();
    return offset;
  }

  /// The offset the next event will get.
  std::uint64_t next_offset() const {
    std::lock_guard lock(mutex_);
    return next_;
  }
  /// The oldest offset still in the ring.
  std::uint64_t first_offset() const {
    std::lock_guard lock(mutex_);
    return first_locked();
  }
  /// How many events the ring keeps at most.
  std::size_t capacity() const noexcept { return slots_.size(); }

  /// A reader of the ring for events of type T; it follows new events as they come.
  template <class T>
  class cursor {
   public:
    using event_type = event<T>;

    cursor(const ring_store& ring, history start, std::optional<topic_pattern> filter)
        : ring_(&ring), start_(start), filter_(std::move(filter)) {
      // An offset not assigned yet starts at the end, as the journal's readers do: the history
      // seam opens at the cursor's position, and live events from the end on must get through.
      position_ = start.from == history::start::offset ? std::min(start.offset, ring.next_offset()) : 0;
    }
    cursor(cursor&& other) noexcept
        : ring_(other.ring_), start_(other.start_), filter_(std::move(other.filter_)),
          batch_(std::move(other.batch_)), at_(other.at_), position_(other.position_), started_(other.started_),
          stats_(std::move(other.stats_)) {
      other.batch_.clear();
    }
    cursor& operator=(cursor&&) = delete;
    ~cursor() { drop_batch(); }

    /// Moves to the next matching event; false when there is none (yet).
    bool next() {
      for (;;) {
        if (at_ == batch_.size() && !refill()) return false;
        const entry e = batch_[at_++];
        const event_core& core = *e.block->core;
        position_ = e.offset + 1;
        if (filter_ && !filter_->matches(core.topic())) {
          ++stats_.other_topics;
          continue;
        }
        if (start_.from == history::start::time && core.published() < start_.time) continue;
        if (!is_type(e)) {
          ++stats_.other_types;
          continue;
        }
        current_ = static_cast<const event<T>*>(&core);
        ++stats_.delivered;
        return true;
      }
    }
    /// The event next() moved to.
    const event<T>& current() const noexcept { return *current_; }
    /// The current event as a shared_event (the ring's block: no copy).
    shared_event<T> share() const { return current_->retain(); }
    /// The offset the next event would come from.
    std::uint64_t position() const noexcept { return position_; }
    /// What the reader found so far.
    const replay_stats& stats() const noexcept { return stats_; }
    /// What the reader found so far.
    replay_stats& stats() noexcept { return stats_; }

   private:
    static bool is_type(const entry& e) noexcept { return e.type == type_id_of<T>(); }

    bool refill() {
      drop_batch();
      std::lock_guard lock(ring_->mutex_);
      const std::uint64_t first = ring_->first_locked();
      if (position_ < first && !started_ && start_.from != history::start::offset) {
        position_ = first;  // "all" or "since": the oldest kept is where they start
      } else if (position_ < first) {
        stats_.truncated_by_retention = true;
        stats_.overwritten += first - position_;  // counted, not only told in a note
        stats_.note("agentbus: memory_ring: offsets " + std::to_string(position_) + ".." + std::to_string(first - 1) +
                    " were overwritten before they were read (the ring keeps " +
                    std::to_string(ring_->slots_.size()) + " events)");
        position_ = first;
      }
      started_ = true;
      for (std::uint64_t o = position_; o < ring_->next_; ++o) {
        const entry& e = ring_->slots_[o % ring_->slots_.size()];
        e.block->add_ref();
        batch_.push_back(e);
      }
      return !batch_.empty();
    }
    void drop_batch() noexcept {
      // The current event (already handed out) is released here too: it stays valid until the
      // next call, as documented.
      for (const entry& e : batch_) e.block->release();
      batch_.clear();
      at_ = 0;
    }

    const ring_store* ring_;
    history start_;
    std::optional<topic_pattern> filter_;
    std::vector<entry> batch_;
    std::size_t at_ = 0;
    std::uint64_t position_ = 0;
    bool started_ = false;
    const event<T>* current_ = nullptr;
    replay_stats stats_;
  };

  /// A reader of events of type T from `start`, optionally only on topics matching `filter`.
  template <class T>
  cursor<T> open(history start, std::optional<topic_pattern> filter) const {
    return cursor<T>(*this, start, std::move(filter));
  }

 private:
  std::uint64_t first_locked() const noexcept { return next_ > slots_.size() ? next_ - slots_.size() : 0; }

  mutable std::mutex mutex_;
  std::vector<entry> slots_;
  std::uint64_t next_ = 0;
};

}  // namespace detail

namespace storage {

/// @brief Keep the last N published events in memory, for history subscriptions and replay.
/// Any event type works (no codec needed); the ring shares each event's block, so keeping
/// history copies no payload. Offsets count published events from 0.
template <std::size_t N>
struct memory_ring {
  static_assert(N > 0, "agentbus: storage::memory_ring<N>: N (how many events to keep) must be at least 1");
  /// @brief Marks this type as a storage policy (storage/policy.hpp).
  using storage_tag = void;
  /// @brief Events are kept: the bus offers offsets, replay and history.
  static constexpr bool persists = true;

  /// @brief Nothing to configure: the capacity is N.
  struct options {};

  /// @brief What the bus owns: the ring.
  class store : public detail::ring_store {
   public:
    /// @brief An empty ring of N events.
    explicit store(const options& = {}) : detail::ring_store(N) {}
  };
};

}  // namespace storage

static_assert(storage_policy<storage::memory_ring<1>>);

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_MEMORY_RING_HPP
