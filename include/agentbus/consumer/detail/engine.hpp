// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DETAIL_ENGINE_HPP
#define AGENTBUS_CONSUMER_DETAIL_ENGINE_HPP

// The one engine behind durable_consumer and consumer_group (a durable consumer is a group of
// one member): a storage cursor, the table of unsettled deliveries, the redelivery timers and
// the stored cursor.
//
// Pull, not push: events are read from the bus's storage, which is the source of truth, by
// whichever member polls. So a member that is busy simply takes fewer events (least-loaded by
// construction), a member that stops polling holds only what it was given, and a restart reads
// the same storage again from the stored floor. The bus's live dispatch only rings a doorbell
// (a synchronous subscription that counts arrivals) for members blocked in poll_for.
//
// State, all under one mutex:
//   pending_   deliveries not settled yet plus settled ones above the floor, in offset order
//              (a deque: appended at the back as the cursor reads, popped at the front as the
//              floor advances; found by binary search)
//   deadlines_ the ack deadlines of fresh deliveries, one per batch (first..last offset): a FIFO,
//              since a batch handed out later has a later deadline; no per-event timer
//   timers_    a min-heap of (time, offset, attempt) for the rest: the due time of a delivery
//              waiting for redelivery, the deadline of a redelivery or an extended one; stale
//              entries (settled, re-timed) are skipped lazily
//   restored_  what the stored cursor said about offsets the cursor has not reached again
//
// Handlers never run under the mutex: poll takes a batch under it, runs the handlers, then
// settles the batch under it again. Dead letters are published outside it too (publishing may
// run synchronous handlers that use this consumer).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/bus/detail/bus_access.hpp"
#include "agentbus/bus/options.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/consumer/delivered.hpp"
#include "agentbus/consumer/detail/backoff.hpp"
#include "agentbus/consumer/detail/cursor_file.hpp"
#include "agentbus/consumer/options.hpp"
#include "agentbus/core/clock.hpp"
#include "agentbus/core/detail/wall_clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/history.hpp"

namespace agentbus {

/// @brief Header names on a dead-lettered event (published on `$dlq.<original topic>`).
namespace dead_letter_header {
inline constexpr std::string_view reason = "agentbus-dlq-reason";  ///< why: "max_deliver: <last error>", "term: ..."
inline constexpr std::string_view attempts = "agentbus-dlq-attempts";  ///< deliveries it had
inline constexpr std::string_view consumer = "agentbus-dlq-consumer";  ///< the consumer or group that gave up
inline constexpr std::string_view offset = "agentbus-dlq-offset";      ///< its offset in storage
inline constexpr std::string_view topic = "agentbus-dlq-topic";        ///< the topic it was published on
}  // namespace dead_letter_header

/// @brief A durable consumer's or group's counters and position (consumer.info()).
struct consumer_info {
  std::string name;                    ///< the consumer's or group's name
  std::string pattern;                 ///< its topic pattern
  std::uint64_t floor = 0;             ///< every matching offset below this is settled
  std::uint64_t position = 0;          ///< the offset the cursor reads next
  std::uint64_t lag = 0;               ///< stored records not read yet (storage's next offset − position)
  std::size_t pending = 0;             ///< unsettled deliveries: out, or waiting for redelivery
  std::size_t waiting = 0;             ///< of those, waiting for their redelivery time
  std::size_t delayed = 0;             ///< delayed events (publish_options::delay) read but not due yet
  std::size_t members = 0;             ///< members joined (1 for a durable_consumer)
  std::uint64_t delivered = 0;         ///< deliveries handed out (first ones and redeliveries)
  std::uint64_t redelivered = 0;       ///< of those, redeliveries
  std::uint64_t acked = 0;             ///< events acknowledged
  std::uint64_t nacked = 0;            ///< attempts failed by nack or by a throwing handler
  std::uint64_t handler_failures = 0;  ///< of those, handlers that threw
  std::uint64_t ack_timeouts = 0;      ///< attempts whose ack deadline passed
  std::uint64_t terminated = 0;        ///< events given up by term
  std::uint64_t expired = 0;        ///< events not delivered (again): their deadline (publish_options::ttl) had passed
  std::uint64_t dead_lettered = 0;  ///< events published to the dead-letter topic
  std::uint64_t dead_letter_failures = 0;  ///< dead-letter publishes that threw (the publish alone is retried after a backoff; the event is not handed out again)
  std::uint64_t repeated_settles = 0;      ///< settles that found the event already settled (ack_status::already)
  std::uint64_t cursor_writes = 0;         ///< cursor files written by this process
  bool resumed = false;                    ///< a stored cursor was found when the consumer opened
  std::string cursor_problem;  ///< when the stored cursor was damaged: what was wrong (it restarted from its start)
  std::map<std::string, std::uint64_t, std::less<>> dead_letters_by_topic;  ///< dead letters per original topic
  /// What the storage cursor passed without delivering, since this process opened the consumer:
  /// version_mismatches, fingerprint_mismatches, decode_errors and corrupt count records that
  /// cannot be read as the consumer's type (not delivered, not dead-lettered: the floor moves
  /// past them), with the first messages in `problems`; other_topics and other_types are
  /// records that were never the consumer's.
  replay_stats unreadable;
};

/// @brief What a consumer's stored cursor says (list_consumers, agentbus-journal consumers).
struct stored_consumer {
  std::string name;                 ///< the consumer's name (the file's stem)
  std::string pattern;              ///< its topic pattern
  std::string schema;               ///< its event type's schema name
  std::uint64_t floor = 0;          ///< every matching offset below this is settled
  std::uint64_t delivered_end = 0;  ///< offsets below this were handed out at least once
  std::size_t settled_above = 0;    ///< settled offsets at or above the floor (acks out of order)
  std::size_t retrying = 0;         ///< unsettled events delivered more than once when it was written
  std::uint64_t writes = 0;         ///< how many times it was written
  std::string problem;              ///< non-empty: the file is damaged (what was wrong)
};

namespace detail {

/// The handler forms a durable consumer accepts.
template <class T, class F>
inline constexpr bool durable_handler = std::is_invocable_v<F&, const delivered<T>&>;

template <class T, class F>
outcome run_durable_handler(F& f, const delivered<T>& d) {
  using R = std::invoke_result_t<F&, const delivered<T>&>;
  if constexpr (std::is_convertible_v<R, outcome>) {
    return f(d);
  } else {
    f(d);
    return outcome::ack();
  }
}

/// Reserved topics (is_reserved_topic: dead letters, breaker events) are reached only by a
/// pattern that is reserved itself, so a consumer of ">" does not eat dead letters.
inline bool reaches(std::string_view pattern, std::string_view topic) noexcept {
  return !is_reserved_topic(topic) || is_reserved_topic(pattern);
}

/// A handler, by reference and type-erased: what the engine calls for each delivery.
template <class T>
class handler_ref {
 public:
  template <class F>
  explicit handler_ref(F& f) noexcept
      : target_(std::addressof(f)),
        call_([](void* t, const delivered<T>& d) { return run_durable_handler<T>(*static_cast<F*>(t), d); }) {}
  outcome operator()(const delivered<T>& d) const { return call_(target_, d); }

 private:
  void* target_;
  outcome (*call_)(void*, const delivered<T>&);
};

using member_id = std::uint32_t;

/// What durable_consumer<T> and consumer_group<T> hold: the engine without its bus type.
template <class T>
class consumer_core {
 public:
  virtual ~consumer_core() = default;
  virtual member_id join(std::string member_name) = 0;
  virtual void leave(member_id id) = 0;
  virtual std::size_t poll(member_id id, handler_ref<T> handler, std::size_t max) = 0;
  virtual std::size_t poll_for(member_id id, handler_ref<T> handler, std::size_t max,
                               clock_source::duration timeout) = 0;
  virtual consumer_info info() const = 0;
  virtual void flush() = 0;
  virtual std::filesystem::path cursor_path() const = 0;
  virtual const std::string& name() const noexcept = 0;
};

template <class T, class Bus>
class consumer_engine final : public consumer_core<T>,
                              public settle_sink,
                              public std::enable_shared_from_this<consumer_engine<T, Bus>> {
  using store_type = typename std::remove_cvref_t<decltype(*bus_access::store_of(std::declval<Bus&>()))>;
  using cursor_type =
      decltype(std::declval<const store_type&>().template open<T>(history{}, std::optional<topic_pattern>{}));
  using time_point = clock_source::time_point;

 public:
  consumer_engine(Bus& bus, std::string name, std::string_view pattern, consumer_options options)
      : bus_(bus),
        store_(bus_access::store_of(bus)),
        name_(std::move(name)),
        pattern_text_(pattern),
        pattern_(pattern),
        options_(std::move(options)),
        clock_(clock_source::or_steady(options_.clock)) {
    if (!valid_consumer_name(name_))
      throw std::invalid_argument("agentbus: consumer name '" + name_ +
                                  "' is not valid: use 1-128 characters of [A-Za-z0-9_.-], not starting with '.'");
    rng_ = options_.jitter_seed != 0
               ? options_.jitter_seed
               : reinterpret_cast<std::uintptr_t>(this) ^
                     static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    open_cursor_file();
    history from = options_.start.from;
    if (restored_) {
      from = history::from_offset(restored_->floor);
    } else if (options_.start.new_only) {
      from = history::from_offset(store_->next_offset());
    }
    cursor_.emplace(store_->template open<T>(from, filter_of(pattern_text_)));
    position_ = cursor_->position();
    if (file_) persist_locked();  // a new consumer exists from now on, at its start
  }

  /// Called once the shared_ptr owns this engine: rings the doorbell on live publishes.
  void start_doorbell() {
    // delayed: a delayed publish rings too, so that a waiting poll_for reads it and wakes when due.
    doorbell_ = bus_.template subscribe<T>(pattern_text_, [this](const agentbus::event<T>&) {
      // seq_cst with poll_for's (sleepers_ then arrivals_): one of the two sees the other.
      arrivals_.fetch_add(1);
      if (sleepers_.load() != 0) {
        std::lock_guard lock(mutex_);
        wake_.notify_all();
      }
    }, subscribe_options{.delayed = true});
    self_ = this->weak_from_this();
  }

  ~consumer_engine() override {
    doorbell_.unsubscribe();
    try {
      flush();       // settles made by tokens since the last poll
    } catch (...) {  // a destructor must not throw; the next open redelivers what was not recorded
    }
  }

  const std::string& name() const noexcept override { return name_; }

  member_id join(std::string member_name) override {
    std::lock_guard lock(mutex_);
    ++live_members_;
    // A slot a member left is reused, so that joining and leaving for ever (a worker per job)
    // keeps the table as large as the most members live at once. Safe: a handle that left can
    // no longer poll (group_member drops its core), and no entry is out to a member that left.
    if (!free_members_.empty()) {
      const member_id id = free_members_.back();
      free_members_.pop_back();
      members_[id] = member{std::move(member_name), true};
      return id;
    }
    if (members_.size() > std::numeric_limits<member_id>::max())
      throw std::length_error("agentbus: consumer '" + name_ + "': too many members at once");
    members_.push_back(member{std::move(member_name), true});
    return static_cast<member_id>(members_.size() - 1);
  }

  /// The member's deliveries that are out go back to the group, due now (their attempt
  /// counts): the next poll hands them out again, or dead-letters those that have had
  /// max_deliver attempts (take_due). Not here: a durable consumer closing is a member leaving
  /// too, and its held events are judged when it opens again (attempts before a restart).
  void leave(member_id id) override {
    std::lock_guard lock(mutex_);
    if (id >= members_.size() || !members_[id].live) return;
    members_[id].live = false;
    members_[id].name = std::string();  // its memory too
    free_members_.push_back(id);
    --live_members_;
    const time_point now = clock_.now();
    for (entry& e : pending_)
      if (e.state == entry_state::out && e.member == id) {
        e.state = entry_state::waiting;
        e.when = now;
        push_timer(e);
      }
    wake_.notify_all();
  }

  /// Hands out up to `max` due redeliveries and new events to member `id`, runs `handler` on
  /// each on this thread, settles them. Returns how many were handled.
  std::size_t poll(member_id id, handler_ref<T> handler, std::size_t max) override {
    check_member(id);
    std::vector<handout> batch;
    std::vector<dead_letter> dead;
    std::string_view member_name;
    {
      std::lock_guard lock(mutex_);
      // Looked up under the mutex: the element stays where it is, but operator[] reads the
      // deque's block map, which a join on another thread may reallocate.
      member_name = members_[id].name;
      const time_point now = clock_.now();
      take_dead_retries(now, dead);
      take_due(id, now, max, batch, dead);
      take_new(id, now, max, batch, dead);
      if (dirty_) persist_locked();  // before handing out: the attempts count even if we crash now
    }
    publish_dead(dead);
    if (batch.empty()) return 0;

    // Acks, the common outcome, are kept apart from the rest: no outcome object each.
    std::vector<std::pair<std::uint64_t, std::uint32_t>> acks;
    acks.reserve(batch.size());
    std::vector<settlement> others;
    for (handout& h : batch) {
      delivered<T> d(*h.event, h.offset, h.attempt, h.first, name_, member_name, self_);
      try {
        outcome o = handler(d);
        if (d.deferred()) continue;
        if (o.decision() == outcome::kind::ack)
          acks.emplace_back(h.offset, h.attempt);
        else
          others.push_back({h.offset, h.attempt, std::move(o), false});
      } catch (const std::exception& e) {
        if (!d.deferred()) others.push_back({h.offset, h.attempt, outcome::nack(e.what()), true});
      } catch (...) {
        if (!d.deferred()) others.push_back({h.offset, h.attempt, outcome::nack("a non-standard exception"), true});
      }
    }
    const std::size_t handled = batch.size();
    batch.clear();
    {
      std::lock_guard lock(mutex_);
      for (const auto& [offset, attempt] : acks) ack_locked(offset);
      const time_point now = clock_.now();
      for (settlement& s : others) {
        if (s.threw) ++counters_.handler_failures;
        settle_locked(s.offset, s.attempt, std::move(s.decision), now, dead);
      }
      if (dead.empty() && dirty_) persist_locked();
      // As a token's settle (settle()): an ack frees max_ack_pending room and a nack sets a
      // redelivery time that another member waiting in poll_for does not know of.
      if (!acks.empty() || !others.empty()) {
        arrivals_.fetch_add(1);
        if (sleepers_.load() != 0) wake_.notify_all();
      }
    }
    publish_dead(dead);
    return handled;
  }

  /// As poll, but when nothing is due waits (on the clock) until something may be: a live
  /// publish on the pattern, the next redelivery time, or `timeout`.
  std::size_t poll_for(member_id id, handler_ref<T> handler, std::size_t max, clock_source::duration timeout) override {
    const time_point until = deadline_after(clock_.now(), timeout);
    for (;;) {
      const std::uint64_t seen = arrivals_.load(std::memory_order_acquire);
      if (const std::size_t n = poll(id, handler, max); n != 0) return n;
      std::unique_lock lock(mutex_);
      const time_point now = clock_.now();
      if (now >= until) return 0;
      if (arrivals_.load(std::memory_order_acquire) != seen) continue;  // something came meanwhile
      time_point wake_at = until;
      if (!timers_.empty()) wake_at = std::min(wake_at, timers_.front().when);
      if (!deadlines_.empty()) wake_at = std::min(wake_at, deadlines_.front().when);
      for (const dead_letter_retry& r : dead_retries_) wake_at = std::min(wake_at, r.when);
      if (wake_at <= now) continue;
      sleepers_.fetch_add(1);
      if (arrivals_.load() == seen) clock_.wait_until(lock, wake_, wake_at);
      sleepers_.fetch_sub(1);
    }
  }

  ack_status settle(std::uint64_t offset, std::uint32_t attempt, outcome decision) override {
    std::vector<dead_letter> dead;
    ack_status status;
    {
      std::lock_guard lock(mutex_);
      status = settle_locked(offset, attempt, std::move(decision), clock_.now(), dead);
      if (dead.empty() && dirty_) persist_locked();
      // A token settled from another thread may free max_ack_pending room or set a nack's
      // redelivery sooner than a waiting poll_for's wake-up time: it looks again. Under the
      // mutex: a poll_for about to wait sees the count change, one waiting is woken.
      if (status == ack_status::accepted) {
        arrivals_.fetch_add(1);
        if (sleepers_.load() != 0) wake_.notify_all();
      }
    }
    publish_dead(dead);
    return status;
  }

  ack_status extend(std::uint64_t offset, std::uint32_t attempt) override {
    std::lock_guard lock(mutex_);
    entry* e = find(offset);
    if (e == nullptr || e->state == entry_state::settled || e->state == entry_state::dying) return ack_status::already;
    if (e->state != entry_state::out || e->attempts != attempt) return ack_status::stale;
    e->when = deadline_after(clock_.now(), options_.ack_wait);
    push_timer(*e);
    return ack_status::accepted;
  }

  /// Writes the cursor now if it changed (poll does this itself; for a deferred ack's last word).
  void flush() override {
    std::lock_guard lock(mutex_);
    if (dirty_) persist_locked();
  }

  consumer_info info() const override {
    std::lock_guard lock(mutex_);
    consumer_info out = counters_;
    out.name = name_;
    out.pattern = pattern_text_;
    out.floor = floor_locked();
    out.position = position_;
    const std::uint64_t next = store_->next_offset();
    out.lag = next > position_ ? next - position_ : 0;
    for (const entry& e : pending_)
      if (e.state == entry_state::out || e.state == entry_state::waiting || e.state == entry_state::dying) {
        if (e.delayed) {
          ++out.delayed;
          continue;
        }
        ++out.pending;
        if (e.state == entry_state::waiting) ++out.waiting;
      }
    out.members = live_members_;
    if (cursor_) out.unreadable = cursor_->stats();
    return out;
  }

  /// Where this consumer's cursor is stored (empty when it is not).
  std::filesystem::path cursor_path() const override { return file_ ? file_->path() : std::filesystem::path{}; }

 private:
  enum class entry_state : std::uint8_t { out, waiting, dying, settled };

  struct entry {
    std::uint64_t offset;
    shared_event<T> event;  // released once settled
    std::uint32_t attempts;
    entry_state state;
    member_id member;
    time_point first;
    time_point when;       // out: the ack deadline; waiting: the redelivery time (or a delayed event's due time)
    bool delayed = false;  // waiting for publish_options::delay, never handed out yet
  };
  struct timer {
    time_point when;
    std::uint64_t offset;
    std::uint32_t attempts;
    friend bool operator>(const timer& a, const timer& b) noexcept { return a.when > b.when; }
  };
  struct batch_deadline {
    time_point when;
    std::uint64_t first;
    std::uint64_t last;
  };
  struct handout {
    shared_event<T> event;
    std::uint64_t offset;
    std::uint32_t attempt;
    time_point first;
  };
  struct settlement {
    std::uint64_t offset;
    std::uint32_t attempt;
    outcome decision;
    bool threw;
  };
  struct dead_letter {
    shared_event<T> event;
    std::uint64_t offset;
    std::uint32_t attempts;
    std::string reason;
  };
  struct dead_letter_retry {  // a dead letter whose publish failed, published again at `when`
    time_point when;
    dead_letter letter;
  };
  struct member {
    std::string name;
    bool live;
  };
  struct restored_state {
    std::uint64_t floor;
    std::uint64_t delivered_end;
    std::vector<offset_run> settled;                                // not reached again yet
    std::vector<std::pair<std::uint64_t, std::uint32_t>> attempts;  // not reached again yet
  };

  static std::optional<topic_pattern> filter_of(std::string_view pattern) {
    if (pattern == ">") return std::nullopt;
    return topic_pattern(pattern);
  }

  // Past its deadline on the consumer's clock (options.clock), as a mailbox judges it.
  bool stale(const agentbus::event<T>& ev) const noexcept { return ev.expired(clock_); }

  void check_member(member_id id) const {
    std::lock_guard lock(mutex_);
    if (id >= members_.size() || !members_[id].live)
      throw std::logic_error("agentbus: consumer '" + name_ + "': poll by a member that left");
  }

  void open_cursor_file() {
    std::filesystem::path dir = options_.directory;
    if (dir.empty()) {
      if constexpr (requires { store_->engine().directory(); })
        dir = std::filesystem::path(store_->engine().directory()) / "consumers";
    }
    if (dir.empty()) return;  // no files: the cursor lives in memory
    file_.emplace(dir, name_, options_.sync);
    cursor_load loaded = file_->load();
    if (loaded.result == cursor_load::status::damaged) {
      counters_.cursor_problem = "cursor file " + file_->path().string() + ": " + loaded.problem +
                                 "; the consumer starts again from its start position (events may come twice)";
      return;
    }
    if (loaded.result != cursor_load::status::ok) return;
    cursor_state& s = loaded.state;
    if (s.pattern != pattern_text_ || s.schema != event_traits<T>::name())
      throw std::invalid_argument("agentbus: consumer '" + name_ + "' exists for pattern '" + s.pattern +
                                  "' and event type '" + s.schema + "', not for '" + pattern_text_ + "' and '" +
                                  std::string(event_traits<T>::name()) +
                                  "': use another name, or remove_consumer() it first");
    counters_.resumed = true;
    writes_ = s.writes;
    // A cursor ahead of the storage (the journal lost its newest records in a power loss while
    // the cursor was synced, or the storage is a new one: a memory ring with a directory) would
    // skip the events that get those offsets again: what it says from the storage's end on is
    // dropped, and reported.
    if (const std::uint64_t end = store_->next_offset(); s.floor > end || s.delivered_end > end) {
      counters_.cursor_problem = "cursor file " + file_->path().string() + ": it is ahead of the storage (floor " +
                                 std::to_string(s.floor) + ", delivered up to " + std::to_string(s.delivered_end) +
                                 ", the storage ends at " + std::to_string(end) +
                                 "); offsets from " + std::to_string(end) + " on are taken as never delivered";
      s.floor = std::min(s.floor, end);
      s.delivered_end = std::min(s.delivered_end, end);
      auto& r = s.settled;
      r.erase(std::find_if(r.begin(), r.end(), [end](const offset_run& x) { return x.first >= end; }), r.end());
      if (!r.empty() && r.back().end() > end) r.back().count = end - r.back().first;
      auto& a = s.attempts;
      a.erase(std::lower_bound(a.begin(), a.end(), std::pair<std::uint64_t, std::uint32_t>{end, 0}), a.end());
    }
    restored_.emplace(restored_state{s.floor, s.delivered_end, std::move(s.settled), std::move(s.attempts)});
    delivered_end_ = s.delivered_end;
  }

  // Attempt n failed: wait min(max, initial * multiplier^(n-1)) ± jitter.
  clock_source::duration backoff_for(std::uint32_t attempt) { return backoff_wait(options_.backoff, attempt, rng_); }

  // A delayed event's due time on this consumer's clock (the header publish_marked writes);
  // none when it is due already or has no delay.
  std::optional<time_point> due_time(const agentbus::event<T>& ev, time_point now) const {
    const auto text = ev.header_value(not_before_header);
    if (!text) return std::nullopt;
    const std::optional<std::int64_t> ns = parse_unix_ns(*text);
    if (!ns) return std::nullopt;  // not ours: deliver now
    const auto left = time_until_unix_ns(*ns);
    if (left <= std::chrono::nanoseconds::zero()) return std::nullopt;
    return deadline_after(now, std::chrono::duration_cast<clock_source::duration>(left));
  }

  // The first entry at or after `offset`. Offsets are dense when the pattern matches every
  // stored event, so the direct guess usually hits; else binary search.
  std::size_t index_of(std::uint64_t offset) const {
    if (pending_.empty() || offset <= pending_.front().offset) return 0;
    const std::uint64_t guess = offset - pending_.front().offset;
    if (guess < pending_.size() && pending_[static_cast<std::size_t>(guess)].offset == offset)
      return static_cast<std::size_t>(guess);
    return static_cast<std::size_t>(std::lower_bound(pending_.begin(), pending_.end(), offset,
                                                     [](const entry& e, std::uint64_t o) { return e.offset < o; }) -
                                    pending_.begin());
  }

  entry* find(std::uint64_t offset) {
    const std::size_t i = index_of(offset);
    return i < pending_.size() && pending_[i].offset == offset ? &pending_[i] : nullptr;
  }

  void push_timer(const entry& e) {
    timers_.push_back({e.when, e.offset, e.attempts});
    std::push_heap(timers_.begin(), timers_.end(), std::greater<>{});
  }

  std::uint64_t floor_locked() const noexcept { return pending_.empty() ? position_ : pending_.front().offset; }

  // A fresh delivery's deadline is its batch's (deadlines_); a redelivery gets a timer.
  void hand_out(entry& e, member_id id, time_point now, std::vector<handout>& batch, bool fresh) {
    e.state = entry_state::out;
    e.member = id;
    e.when = deadline_after(now, options_.ack_wait);
    if (fresh) {
      if (!deadlines_.empty() && deadlines_.back().when == e.when)
        deadlines_.back().last = e.offset;
      else
        deadlines_.push_back({e.when, e.offset, e.offset});
    } else {
      push_timer(e);
    }
    batch.push_back({e.event, e.offset, e.attempts, e.first});
    ++counters_.delivered;
    if (e.attempts > 1) ++counters_.redelivered;
    if (e.offset + 1 > delivered_end_) delivered_end_ = e.offset + 1;
    dirty_ = true;
  }

  // `<dead_letter_prefix>.<topic>`; when that is longer than a topic may be, cut to the leading
  // tokens of `topic` that fit (the dead letter's agentbus-dlq-topic header keeps it whole, and
  // replay uses that).
  std::string dead_letter_topic(std::string_view topic) const {
    const std::string& prefix = options_.dead_letter_prefix;
    if (prefix.size() + 1 + topic.size() <= max_topic_length) return prefix + "." + std::string(topic);
    std::string_view keep = topic.substr(0, max_topic_length - std::min(prefix.size() + 1, max_topic_length));
    if (const auto dot = keep.rfind('.'); dot != std::string_view::npos && dot > 0) keep = keep.substr(0, dot);
    return prefix + "." + std::string(keep);
  }

  // Dead letters whose publish failed and whose retry time came: published again (publish_dead).
  void take_dead_retries(time_point now, std::vector<dead_letter>& dead) {
    for (auto it = dead_retries_.begin(); it != dead_retries_.end();) {
      if (it->when <= now) {
        dead.push_back(std::move(it->letter));
        it = dead_retries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void kill(entry& e, std::string reason, std::vector<dead_letter>& dead) {
    e.state = entry_state::dying;
    dead.push_back({e.event, e.offset, e.attempts, std::move(reason)});
  }

  // The ack deadline of an attempt that is out passed: that attempt failed.
  // The event has had every attempt max_deliver allows (0: no limit).
  bool exhausted(const entry& e) const noexcept {
    return options_.max_deliver != 0 && e.attempts >= options_.max_deliver;
  }

  void expire(entry& e, std::vector<dead_letter>& dead) {
    ++counters_.ack_timeouts;
    if (exhausted(e)) {
      kill(e, "max_deliver: " + std::to_string(e.attempts) + " attempts, the last one not settled within ack_wait",
           dead);
      return;
    }
    e.state = entry_state::waiting;
    e.when = deadline_after(e.when, backoff_for(e.attempts));
    push_timer(e);
    dirty_ = true;
  }

  // Deadlines and timers that are due: failed attempts, then redeliveries (up to max).
  void take_due(member_id id, time_point now, std::size_t max, std::vector<handout>& batch,
                std::vector<dead_letter>& dead) {
    while (!deadlines_.empty() && deadlines_.front().when <= now) {
      const batch_deadline d = deadlines_.front();
      deadlines_.pop_front();
      for (std::size_t i = index_of(d.first); i < pending_.size() && pending_[i].offset <= d.last; ++i) {
        entry& e = pending_[i];
        if (e.state == entry_state::out && e.when == d.when) expire(e, dead);  // else settled or re-timed since
      }
    }
    while (!timers_.empty() && timers_.front().when <= now) {
      const timer t = timers_.front();
      entry* e = find(t.offset);
      const bool current = e != nullptr && e->attempts == t.attempts && e->when == t.when &&
                           (e->state == entry_state::out || e->state == entry_state::waiting);
      if (!current) {  // settled, re-timed or handed out again since: a stale timer
        std::pop_heap(timers_.begin(), timers_.end(), std::greater<>{});
        timers_.pop_back();
        continue;
      }
      if (e->state == entry_state::out) {
        std::pop_heap(timers_.begin(), timers_.end(), std::greater<>{});
        timers_.pop_back();
        expire(*e, dead);
        continue;
      }
      if (batch.size() >= max) return;
      std::pop_heap(timers_.begin(), timers_.end(), std::greater<>{});
      timers_.pop_back();
      if (stale(*e->event)) {  // went stale while waiting for its redelivery
        ++counters_.expired;
        mark_settled(*e);
        continue;
      }
      if (e->delayed) {  // its due time came: a first delivery
        e->delayed = false;
        --delayed_;
      }
      if (exhausted(*e)) {  // returned by a member that left with its last attempt
        kill(*e, "max_deliver: " + std::to_string(e->attempts) + " attempts, the last one's member left without settling it",
             dead);
        continue;
      }
      ++e->attempts;
      hand_out(*e, id, now, batch, /*fresh=*/false);
    }
  }

  // New events from the cursor, up to max in the batch and max_ack_pending unsettled.
  void take_new(member_id id, time_point now, std::size_t max, std::vector<handout>& batch,
                std::vector<dead_letter>& dead) {
    while (batch.size() < max && (options_.max_ack_pending == 0 || unsettled_ - delayed_ < options_.max_ack_pending)) {
      if (!cursor_->next()) {
        position_ = cursor_->position();
        break;
      }
      const agentbus::event<T>& ev = cursor_->current();
      const std::uint64_t offset = ev.offset().value_or(cursor_->position() - 1);
      position_ = cursor_->position();
      if (!reaches(pattern_text_, ev.topic())) continue;
      std::uint32_t before = 0;  // deliveries before this process, from the stored cursor
      if (restored_) {
        const bool was_settled = contains_offset(restored_->settled, offset);
        if (!was_settled && offset < restored_->delivered_end) {
          before = 1;  // handed out at least once; the stored count says how often
          const auto& a = restored_->attempts;
          auto it = std::lower_bound(a.begin(), a.end(), std::pair<std::uint64_t, std::uint32_t>{offset, 0});
          if (it != a.end() && it->first == offset) before = it->second;  // 0: a delayed event not handed out yet
        }
        forget_restored_below(offset + 1);
        if (was_settled) {  // acked before the restart
          // While an earlier offset is unsettled (the floor is below this one), it stays on
          // record as a settled entry: otherwise the next cursor write forgot it, and the
          // restart after that delivered it again.
          if (!pending_.empty()) {
            pending_.push_back(entry{offset, {}, 0, entry_state::settled, 0, now, now});
            dirty_ = true;
          }
          continue;
        }
      }
      // After the stored cursor's word: an event acked before a restart is not counted expired.
      if (stale(ev)) {  // stale (its ttl passed): settled without delivery, like a mailbox drops it
        ++counters_.expired;
        dirty_ = true;
        continue;
      }
      const std::optional<time_point> due = due_time(ev, now);
      pending_.push_back(entry{offset, cursor_->share(), before, entry_state::waiting, 0, now, now});
      ++unsettled_;
      entry& e = pending_.back();
      if (due) {  // delayed: waits for its due time like a redelivery, in due order
        e.delayed = true;
        e.when = *due;
        ++delayed_;
        push_timer(e);
        continue;
      }
      if (options_.max_deliver != 0 && before >= options_.max_deliver) {
        kill(e, "max_deliver: " + std::to_string(before) + " attempts before a restart, none settled", dead);
        continue;
      }
      ++e.attempts;
      hand_out(e, id, now, batch, /*fresh=*/true);
    }
  }

  void forget_restored_below(std::uint64_t end) {
    auto& s = restored_->settled;
    drop_offsets_below(s, end);
    auto& a = restored_->attempts;
    a.erase(a.begin(), std::lower_bound(a.begin(), a.end(), std::pair<std::uint64_t, std::uint32_t>{end, 0}));
    if (end >= restored_->delivered_end && s.empty() && a.empty()) restored_.reset();
  }

  ack_status settle_locked(std::uint64_t offset, std::uint32_t attempt, outcome decision, time_point now,
                           std::vector<dead_letter>& dead) {
    if (decision.decision() == outcome::kind::ack) return ack_locked(offset);
    entry* e = find(offset);
    if (e == nullptr || e->state == entry_state::settled || e->state == entry_state::dying) {
      ++counters_.repeated_settles;
      return ack_status::already;
    }
    switch (decision.decision()) {
      case outcome::kind::ack: break;  // above
      case outcome::kind::nack:
        if (e->state != entry_state::out || e->attempts != attempt) return ack_status::stale;
        ++counters_.nacked;
        if (options_.max_deliver != 0 && e->attempts >= options_.max_deliver) {
          kill(*e,
               "max_deliver: " + std::to_string(e->attempts) +
                   " attempts, the last: " + (decision.reason().empty() ? std::string("nack") : decision.reason()),
               dead);
          return ack_status::accepted;
        }
        e->state = entry_state::waiting;
        e->when = deadline_after(now, decision.has_delay() ? decision.delay() : backoff_for(e->attempts));
        push_timer(*e);
        dirty_ = true;
        return ack_status::accepted;
      case outcome::kind::term:
        if (e->state != entry_state::out || e->attempts != attempt) return ack_status::stale;
        ++counters_.terminated;
        kill(*e, "term: " + (decision.reason().empty() ? std::string("given up by the handler") : decision.reason()),
             dead);
        return ack_status::accepted;
    }
    return ack_status::stale;
  }

  // An ack of any attempt is accepted while the event is unsettled: the work was done.
  ack_status ack_locked(std::uint64_t offset) {
    entry* e = find(offset);
    if (e == nullptr || e->state == entry_state::settled || e->state == entry_state::dying) {
      ++counters_.repeated_settles;
      return ack_status::already;
    }
    ++counters_.acked;
    mark_settled(*e);
    return ack_status::accepted;
  }

  void mark_settled(entry& e) {
    if (e.delayed) {
      e.delayed = false;
      --delayed_;
    }
    e.state = entry_state::settled;
    e.event = {};
    --unsettled_;
    while (!pending_.empty() && pending_.front().state == entry_state::settled) pending_.pop_front();
    dirty_ = true;
  }

  // Publishes dead letters (outside the mutex), then settles them: a crash in between leaves
  // the event unsettled, so it may be dead-lettered twice, never lost.
  void publish_dead(std::vector<dead_letter>& dead) {
    if (dead.empty()) return;
    for (dead_letter& d : dead) {
      bool published = false;
      try {
        const agentbus::event<T>& ev = *d.event;
        const std::string attempts = std::to_string(d.attempts);
        const std::string offset = std::to_string(d.offset);
        std::vector<header> headers(ev.headers().begin(), ev.headers().end());
        headers.push_back({dead_letter_header::reason, d.reason});
        headers.push_back({dead_letter_header::attempts, attempts});
        headers.push_back({dead_letter_header::consumer, name_});
        headers.push_back({dead_letter_header::offset, offset});
        headers.push_back({dead_letter_header::topic, ev.topic()});
        publish_options opts;
        opts.source = ev.source();
        opts.correlation_id = ev.correlation_id();
        opts.prio = ev.priority();
        opts.headers = headers;
        T copy = ev.payload();
        bus_.publish(dead_letter_topic(ev.topic()), std::move(copy), opts);
        published = true;
      } catch (...) {}
      std::lock_guard lock(mutex_);
      entry* e = find(d.offset);
      if (e == nullptr || e->state != entry_state::dying) continue;
      if (published) {
        ++counters_.dead_lettered;
        auto [it, fresh] = counters_.dead_letters_by_topic.try_emplace(std::string(d.event->topic()), 0);
        ++it->second;
        (void)fresh;
        mark_settled(*e);
      } else {
        // Try the publish again later, with the same reason: the event stays dying, never handed
        // to a handler again (it was, and a term'd one counted as terminated once more, and its
        // dead letter's reason was rewritten by the later path that killed it).
        ++counters_.dead_letter_failures;
        dead_retries_.push_back({deadline_after(clock_.now(), backoff_for(e->attempts)), std::move(d)});
      }
    }
    dead.clear();
    std::lock_guard lock(mutex_);
    if (dirty_) persist_locked();
  }

  void persist_locked() {
    dirty_ = false;
    if (!file_) return;
    cursor_state s;
    s.floor = floor_locked();
    s.delivered_end = delivered_end_;
    s.writes = ++writes_;
    s.pattern = pattern_text_;
    s.schema = std::string(event_traits<T>::name());
    // A run of settled entries also covers the offsets between them: those are not pending_
    // entries because they do not match the pattern, had expired, or were settled before a
    // restart, and a restart skips them again before it asks whether they were settled. So a
    // consumer of every other topic stores one run, not one per event.
    bool extend = false;
    for (const entry& e : pending_) {
      if (e.state == entry_state::settled) {
        if (extend)
          s.settled.back().count = e.offset + 1 - s.settled.back().first;
        else
          append_offset(s.settled, e.offset);
        extend = true;
        continue;
      }
      extend = false;
      if (e.attempts > 1 || (e.attempts == 0 && e.offset < delivered_end_))
        s.attempts.emplace_back(e.offset, e.attempts);  // one delivery below delivered_end is implied
    }
    if (restored_) {  // what the cursor has not read again yet stays on record
      s.delivered_end = std::max(s.delivered_end, restored_->delivered_end);
      // The cursor has read every pending_ offset and none of restored_'s: the runs stay ascending.
      for (const offset_run& r : restored_->settled) append_run(s.settled, r);
      s.attempts.insert(s.attempts.end(), restored_->attempts.begin(), restored_->attempts.end());
      std::sort(s.attempts.begin(), s.attempts.end());
    }
    file_->store(s);
    ++counters_.cursor_writes;
  }

  Bus& bus_;
  std::shared_ptr<store_type> store_;
  std::string name_;
  std::string pattern_text_;
  topic_pattern pattern_;
  consumer_options options_;
  clock_source& clock_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<cursor_type> cursor_;
  std::uint64_t position_ = 0;
  std::deque<entry> pending_;
  std::size_t unsettled_ = 0;  // entries not settled, delayed ones included
  std::size_t delayed_ = 0;    // of those, delayed events not due yet
  std::deque<batch_deadline> deadlines_;
  std::vector<dead_letter_retry> dead_retries_;  // few: only while the dead-letter topic refuses
  std::vector<timer> timers_;
  std::deque<member> members_;  // stable addresses: a poll looks its member up under the mutex, then
                                // reads the name outside it while a join may append
  std::size_t live_members_ = 0;
  std::vector<member_id> free_members_;  // slots of members that left, for the next joins
  std::optional<cursor_file> file_;
  std::optional<restored_state> restored_;
  std::uint64_t delivered_end_ = 0;
  std::uint64_t writes_ = 0;
  bool dirty_ = false;
  std::uint64_t rng_ = 0;
  consumer_info counters_;
  std::weak_ptr<settle_sink> self_;
  std::atomic<std::uint64_t> arrivals_{0};
  std::atomic<int> sleepers_{0};
  subscription doorbell_;  // last: ended first, before anything its handler touches
};

}  // namespace detail
}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_DETAIL_ENGINE_HPP
