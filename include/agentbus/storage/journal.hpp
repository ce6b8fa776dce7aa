// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_JOURNAL_HPP
#define AGENTBUS_STORAGE_JOURNAL_HPP

// storage::journal: the bus writes every published event to an event journal on disk
// (agentbus/journal/journal.hpp) before delivering it, and reads it back for replay and for
// history subscriptions. Payloads go through their codec (agentbus/storage/codec.hpp); each
// record keeps the schema name, version and codec fingerprint, so that reading checks them:
//   - another schema name: the record is another event type, skipped (counted);
//   - same version, other fingerprint: the type changed without a version bump; reported,
//     never decoded;
//   - other version: an upcaster registered with upcast<T>(from_version, fn) converts it,
//     else it is reported.

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <span>
#include <vector>

#include "agentbus/core/detail/wall_clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/codec.hpp"
#include "agentbus/storage/upcast.hpp"
#include "agentbus/storage/dedup.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/journal/journal.hpp"

namespace agentbus {

/// @brief The header in which a journal keeps an event's deadline (publish_options::ttl), as
/// nanoseconds of wall-clock time since the epoch: replayed events keep their deadline.
inline constexpr std::string_view deadline_header = "agentbus-deadline";

namespace detail {

/// The bus's side of a journal: typed appends and typed readers over the byte-level engine.
class journal_store : public dedup_store {
 public:
  /// Events are encoded from the publisher's stack event; no shared block is needed.
  static constexpr bool keeps_blocks = false;

  explicit journal_store(const journal_options& options) : journal_(options) {}

  /// Encodes and appends `ev`, sets its offset and returns it. Durable per the journal's
  /// durability policy when it returns.
  template <class T>
  std::uint64_t append(event<T>& ev) {
    if constexpr (!require_codec<T>()) {
      return 0;  // never compiled: require_codec explains (the only error)
    } else {
      // One buffer per thread: encoding allocates only until the buffer has grown enough.
      thread_local byte_writer buffer;
      buffer.clear();
      codec<T>::encode(buffer, ev.payload());
      record_input in;
      in.topic = ev.topic();
      in.schema = event_traits<T>::name();
      in.schema_version = event_traits<T>::version();
      in.fingerprint = codec_fingerprint<T>();
      in.published_ns = offset_setter::published_ns(ev);
      in.event_id = ev.id();
      in.correlation_id = ev.correlation_id();
      in.source = ev.source();
      in.priority = static_cast<std::uint8_t>(ev.priority());
      in.headers = ev.headers();
      // A deadline (publish_options::ttl) is kept as a header holding the wall-clock time, so
      // that an event read back after a restart is still known to be stale.
      thread_local std::vector<header> with_deadline;
      thread_local std::string deadline_text;
      if (const auto deadline = ev.deadline()) {
        deadline_text = unix_ns_text(deadline_unix_ns(*deadline));
        with_deadline.assign(ev.headers().begin(), ev.headers().end());
        with_deadline.push_back({deadline_header, deadline_text});
        in.headers = with_deadline;
      }
      in.payload = buffer.bytes();
      const std::uint64_t offset = journal_.append(in);
      offset_setter::set(ev, offset);
      return offset;
    }
  }

  /// The offset the next event will get.
  std::uint64_t next_offset() const noexcept { return journal_.next_offset(); }

  /// Configures the dedup window and refills it from the newest records (at most max_keys of
  /// them, and only those stored within the window), so that it survives a restart.
  void open_dedup(const dedup_options& options) {
    dedup_.configure(options);
    if (options.max_keys == 0) return;
    const std::uint64_t next = journal_.next_offset();
    const std::uint64_t first = journal_.first_offset();
    const std::uint64_t from = next - first > options.max_keys ? next - options.max_keys : first;
    const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    journal_reader reader = journal_.read(from);
    record r{};
    for (;;) {
      const read_status status = reader.next(r);
      if (status == read_status::end) break;
      if (status != read_status::ok) continue;  // damage is the readers' to report; skip it here
      for (const header& h : r.headers) {
        if (h.key != idempotency_header) continue;
        const std::chrono::nanoseconds age = now_ns - std::chrono::nanoseconds(r.published_ns);
        if (age < dedup_.window()) dedup_.restore(h.value, r.offset, age < age.zero() ? age.zero() : age);
        break;
      }
    }
  }
  /// The journal itself: sync(), stats(), recovery(), first_offset(), ...
  agentbus::journal& engine() noexcept { return journal_; }
  /// The journal itself.
  const agentbus::journal& engine() const noexcept { return journal_; }

  /// Registers `convert`, which turns the bytes of schema version `from_version` of T into a
  /// T of the current version: `T convert(byte_reader&)`. Replaces a previous one.
  template <class T, class F>
  void upcast(std::uint32_t from_version, F convert) {
    upcasters_.add<T>(from_version, std::move(convert));
  }

  /// A typed reader of the journal; it follows new records as they are appended.
  template <class T>
  class cursor {
   public:
    using event_type = event<T>;

    cursor(const journal_store& store, journal_reader reader, history start, std::optional<topic_pattern> filter)
        : store_(&store), reader_(std::move(reader)), start_(start), filter_(std::move(filter)) {}
    cursor(cursor&&) noexcept = default;  // only before the first next(): current() refers into it
    cursor& operator=(cursor&&) = delete;

    /// Moves to the next event of type T that matches; false when there is none (yet).
    bool next() {
      for (;;) {
        switch (reader_.next(record_)) {
          case read_status::end:
            return false;
          case read_status::corrupt:
            ++stats_.corrupt;
            stats_.note(std::string(reader_.error()));
            continue;
          case read_status::truncated_by_retention:
            stats_.truncated_by_retention = true;
            stats_.note(std::string(reader_.error()));
            continue;
          case read_status::ok:
            break;
        }
        if (start_.from == history::start::time &&
            record_.published_ns < std::chrono::duration_cast<std::chrono::nanoseconds>(start_.time.time_since_epoch()).count())
          continue;
        if (filter_ && !matches_filter(record_.topic)) {
          ++stats_.other_topics;
          continue;
        }
        if (record_.schema != event_traits<T>::name()) {
          ++stats_.other_types;
          continue;
        }
        if (!decode_current()) continue;
        options_ = publish_options{};
        options_.source = record_.source;
        options_.correlation_id = record_.correlation_id;
        options_.prio = static_cast<priority>(record_.priority > 2 ? 1 : record_.priority);
        options_.headers = user_headers();
        event_.emplace(*value_, record_.topic, options_, record_.event_id, stored_deadline(), nullptr, record_.offset);
        offset_setter::set_published(*event_, record_.published_ns == 0 ? 1 : record_.published_ns);
        ++stats_.delivered;
        return true;
      }
    }
    /// The event next() moved to; valid until the next call.
    const event<T>& current() const noexcept { return *event_; }
    /// The current event moved into a shared block (the decoded payload is moved, not
    /// copied); current() is not valid afterwards, until the next call to next().
    shared_event<T> share() {
      shared_event<T> held = adopt_block(event_block<T>::make(*event_, std::move(*value_)));
      event_.reset();
      return held;
    }
    /// The offset the next record would come from.
    std::uint64_t position() const noexcept { return reader_.position(); }
    /// What the reader found so far.
    const replay_stats& stats() const noexcept { return stats_; }
    /// What the reader found so far.
    replay_stats& stats() noexcept { return stats_; }

   private:
    // The record's headers but the journal's own deadline header: the deadline is the event's
    // (ev.deadline()), not a header that code republishing the event copies along (a dead
    // letter made of it then expired with the original, where a memory ring's did not).
    std::span<const header> user_headers() {
      const std::span<const header> all = record_.headers;
      if (std::none_of(all.begin(), all.end(), [](const header& h) { return h.key == deadline_header; })) return all;
      visible_headers_.clear();
      for (const header& h : all)
        if (h.key != deadline_header) visible_headers_.push_back(h);
      return visible_headers_;
    }

    // The deadline a record was stored with (the header append writes), on this process's
    // steady clock; none when it had none or the header does not parse.
    deadline_clock::time_point stored_deadline() const {
      for (const header& h : record_.headers) {
        if (h.key != deadline_header) continue;
        const std::optional<std::int64_t> ns = parse_unix_ns(h.value);
        if (!ns) return no_deadline;
        return deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(time_until_unix_ns(*ns));
      }
      return no_deadline;
    }

    // Consecutive records are often on one topic: the last answer is kept (a comparison of
    // the topic's bytes is cheaper than matching the pattern again).
    bool matches_filter(std::string_view topic) {
      if (topic != last_topic_) {
        last_topic_.assign(topic);
        last_match_ = filter_->matches(topic);
      }
      return last_match_;
    }

    std::string where() const {
      return "record " + std::to_string(record_.offset) + " (topic '" + std::string(record_.topic) + "', schema '" +
             std::string(record_.schema) + "' version " + std::to_string(record_.schema_version) + ")";
    }

    bool decode_current() {
      event_.reset();
      value_.reset();
      try {
        if (record_.schema_version == event_traits<T>::version()) {
          if (record_.fingerprint != codec_fingerprint<T>()) {
            ++stats_.fingerprint_mismatches;
            stats_.note("agentbus: journal: " + where() +
                        ": the codec fingerprint differs from this program's type at the same schema version (the "
                        "type changed without a version bump); not decoded");
            return false;
          }
          value_.emplace(decode<T>(record_.payload));
          return true;
        }
        const auto convert = store_->find_upcaster<T>(record_.schema_version);
        if (!convert) {
          ++stats_.version_mismatches;
          stats_.note("agentbus: journal: " + where() + ": this program reads version " +
                      std::to_string(event_traits<T>::version()) +
                      " and no upcaster is registered for this version (journal_store::upcast<T>)");
          return false;
        }
        byte_reader in(record_.payload);
        value_.emplace((*convert)(in));
        ++stats_.upcast;
        return true;
      } catch (const std::exception& e) {
        ++stats_.decode_errors;
        stats_.note("agentbus: journal: " + where() + ": cannot decode: " + e.what());
        return false;
      }
    }

    const journal_store* store_;
    journal_reader reader_;
    history start_;
    std::optional<topic_pattern> filter_;
    std::string last_topic_;  // matches_filter's memo
    bool last_match_ = false;
    record record_{};
    std::vector<header> visible_headers_;  // user_headers()'s, when it has to leave one out
    std::optional<T> value_;
    publish_options options_;
    std::optional<event<T>> event_;
    replay_stats stats_;
  };

  /// A reader of events of type T from `start`, optionally only on topics matching `filter`.
  template <class T>
  cursor<T> open(history start, std::optional<topic_pattern> filter) const {
    if constexpr (!require_codec<T>()) std::terminate();  // never compiled: require_codec explains
    switch (start.from) {
      case history::start::offset:
        return cursor<T>(*this, journal_.read(start.offset), start, std::move(filter));
      case history::start::time:
        return cursor<T>(*this, journal_.read_since(start.time), start, std::move(filter));
      case history::start::all:
        break;
    }
    return cursor<T>(*this, journal_.read(journal_.first_offset()), start, std::move(filter));
  }

 private:
  template <class T>
  std::shared_ptr<const upcaster_registry::converter<T>> find_upcaster(std::uint32_t from_version) const {
    return upcasters_.find<T>(from_version);
  }

  agentbus::journal journal_;
  upcaster_registry upcasters_;
};

}  // namespace detail

namespace storage {

/// @brief Write every published event to an event journal (segmented files with checksums)
/// before delivering it: `basic_bus<storage::journal> bus(journal_options{.directory = "events"})`.
/// Event types need a codec (agentbus/storage/codec.hpp). publish() returns the event's
/// offset; when it returns, the event is as durable as the journal's durability policy says.
struct journal {
  /// @brief Marks this type as a storage policy (storage/policy.hpp).
  using storage_tag = void;
  /// @brief Events are kept: the bus offers offsets, replay and history.
  static constexpr bool persists = true;
  /// @brief The journal's directory, segment size, durability and retention.
  using options = journal_options;
  /// @brief What the bus owns: the journal and its upcasters.
  class store : public detail::journal_store {
   public:
    using detail::journal_store::journal_store;
  };
};

}  // namespace storage

static_assert(storage_policy<storage::journal>);

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_JOURNAL_HPP
