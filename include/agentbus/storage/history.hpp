// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_HISTORY_HPP
#define AGENTBUS_STORAGE_HISTORY_HPP

// Reading back what a storage policy kept: where a replay starts (history), what it found
// (replay_stats), and replay_range, the iterable form of a replay.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus {

/// @brief Where a replay, or the history part of a subscription, starts.
///
/// `bus.subscribe<T>("tasks.>", handler, history::all())` first hands the handler every
/// retained event, then live ones, with no gap and no duplicate at the seam.
struct history {
  /// @brief The kinds of starting points.
  enum class start : std::uint8_t { all, offset, time };
  start from = start::all;                            ///< which of the fields below applies
  std::uint64_t offset = 0;                           ///< start::offset: the first offset wanted
  std::chrono::system_clock::time_point time{};       ///< start::time: the first publish time wanted

  /// @brief Everything still retained.
  static history all() noexcept { return {}; }
  /// @brief From `offset` on. An offset deleted by retention starts at the oldest retained;
  /// one not assigned yet starts at the end: it replays nothing, and a subscription gets
  /// every live event.
  static history from_offset(std::uint64_t offset) noexcept { return {start::offset, offset, {}}; }
  /// @brief Events published at or after `time`.
  static history since(std::chrono::system_clock::time_point time) noexcept { return {start::time, 0, time}; }
};

/// @brief What a replay found. Every record that was not delivered is counted in one field;
/// `problems` keeps the first messages (up to max_problems) that explain them.
struct replay_stats {
  std::uint64_t delivered = 0;               ///< events handed out
  std::uint64_t other_topics = 0;            ///< records skipped: the topic did not match the pattern
  std::uint64_t other_types = 0;             ///< records skipped: another schema (event type) than the one asked for
  std::uint64_t delayed = 0;                 ///< records a history subscription skipped: delayed events (publish_options::delay), for durable consumers only
  std::uint64_t upcast = 0;                  ///< delivered after an upcaster converted an older schema version
  std::uint64_t version_mismatches = 0;      ///< not delivered: another schema version and no upcaster registered
  std::uint64_t fingerprint_mismatches = 0;  ///< not delivered: same version but the codec layout differs
  std::uint64_t decode_errors = 0;           ///< not delivered: the codec (or an upcaster) rejected the bytes
  std::uint64_t corrupt = 0;                 ///< damaged records found (checksum); never delivered
  std::uint64_t handler_failures = 0;        ///< handler calls that threw (replay into a handler)
  bool truncated_by_retention = false;       ///< the start had been deleted by retention; replay began at the oldest retained
  std::uint64_t overwritten = 0;             ///< records a memory ring overwrote before this reader got to them (any topic or type)
  std::vector<std::string> problems;         ///< the first messages explaining the counts above

  /// @brief How many problem messages are kept.
  static constexpr std::size_t max_problems = 32;
  /// @brief True when nothing was lost: no mismatch, decode error, corruption or handler failure.
  bool clean() const noexcept {
    return version_mismatches == 0 && fingerprint_mismatches == 0 && decode_errors == 0 && corrupt == 0 &&
           handler_failures == 0 && !truncated_by_retention;
  }
  /// @brief Records a problem message (kept while fewer than max_problems are).
  void note(std::string message) {
    if (problems.size() < max_problems) problems.push_back(std::move(message));
  }
};

/// @brief A replay as a range: `for (const event<T>& ev : bus.records<T>(history::all()))`.
///
/// Single pass (an input range). Each event is valid until the iterator advances; call
/// retain() to keep one. `stats()` tells what was skipped, so far. Cursor is the storage
/// policy's reader; this type only adapts it to range-for.
template <class Cursor>
class replay_range {
 public:
  /// @brief The event type the range yields.
  using event_type = typename Cursor::event_type;

  /// @brief Wraps a storage cursor.
  explicit replay_range(Cursor cursor) : cursor_(std::move(cursor)) {}

  /// @brief Input iterator over the replayed events.
  class iterator {
   public:
    /// @brief Single pass: advancing moves the underlying cursor.
    using iterator_category = std::input_iterator_tag;
    /// @brief The replayed event type.
    using value_type = event_type;
    /// @brief Required by the iterator concepts; unused.
    using difference_type = std::ptrdiff_t;
    /// @brief Pointer to the current event.
    using pointer = const event_type*;
    /// @brief The current event, valid until the next increment.
    using reference = const event_type&;

    iterator() noexcept = default;
    /// @brief The current event.
    reference operator*() const noexcept { return cursor_->current(); }
    /// @brief The current event's members.
    pointer operator->() const noexcept { return &cursor_->current(); }
    /// @brief Moves to the next event (becomes the end iterator after the last).
    iterator& operator++() {
      if (!cursor_->next()) cursor_ = nullptr;
      return *this;
    }
    /// @brief Same as prefix ++ (input iterator: no copy of the old position).
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.cursor_ == b.cursor_; }

   private:
    friend class replay_range;
    explicit iterator(Cursor* c) noexcept : cursor_(c) {}
    Cursor* cursor_ = nullptr;
  };

  /// @brief Starts the replay (reads the first event). Call once.
  iterator begin() { return cursor_.next() ? iterator(&cursor_) : iterator(); }
  /// @brief The end of the replay.
  iterator end() noexcept { return iterator(); }
  /// @brief What the replay found so far.
  const replay_stats& stats() const noexcept { return cursor_.stats(); }
  /// @brief The offset the next event would be read from.
  std::uint64_t position() const noexcept { return cursor_.position(); }

 private:
  Cursor cursor_;
};

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_HISTORY_HPP
