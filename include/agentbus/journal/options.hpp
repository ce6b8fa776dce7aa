// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_OPTIONS_HPP
#define AGENTBUS_JOURNAL_OPTIONS_HPP

// The journal's vocabulary types: options, the error type, what goes in and what comes out.
// They are public (namespace agentbus) and documented as part of the journal's API; include
// "agentbus/journal/journal.hpp" to use them. They live here, apart from the journal
// classes, because the record codec and the file-level details need them too.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus {

/// @brief What went wrong in the journal. what() says what was wrong and what to do.
class journal_error : public std::runtime_error {
 public:
  /// @brief The kind of failure.
  enum class code {
    locked,            ///< another writer holds the directory
    io,                ///< a system call failed (disk full, permissions, fsync error ...)
    invalid_options,   ///< journal_options that cannot work (the message names the field)
    corrupt,           ///< data that cannot be used (e.g. a segment of a newer format)
    not_found,         ///< no journal where one was expected
    invalid_argument,  ///< a record that cannot be stored (a field too long, too big overall)
  };

  /// @brief An error of kind `which` with a complete message.
  journal_error(code which, const std::string& message) : std::runtime_error(message), which_(which) {}

  /// @brief The kind of failure.
  code which() const noexcept { return which_; }

 private:
  code which_;
};

/// @brief When appended records reach the disk.
///
/// Whatever the mode, a record is in the operating system's page cache when append()
/// returns: it survives the crash of the process (even SIGKILL). The mode decides when it
/// also survives a power loss or a kernel crash.
struct durability {
  /// @brief The flush policy.
  enum class mode : std::uint8_t {
    never,     ///< the OS writes back when it likes (typically within 30 s)
    interval,  ///< a background thread flushes every `period`
    every,     ///< the append that completes a batch of `records` records flushes
    always,    ///< every append returns once its record is on disk (group commit)
  };

  mode kind = mode::never;             ///< the policy
  std::chrono::milliseconds period{0};  ///< for mode::interval
  std::uint32_t records = 0;            ///< for mode::every

  /// @brief The OS decides (data is in the page cache when append returns: survives a process
  /// crash, not a power loss).
  static constexpr durability never() noexcept { return {}; }
  /// @brief A background thread flushes every `p` (data older than ~p survives a power loss).
  static constexpr durability interval(std::chrono::milliseconds p) noexcept {
    return {mode::interval, p, 0};
  }
  /// @brief The append that completes a batch of `n` records flushes before it returns
  /// (a batch ends at every offset o with (o + 1) % n == 0).
  static constexpr durability every(std::uint32_t n) noexcept { return {mode::every, {}, n}; }
  /// @brief append() returns after the record is on disk. Concurrent appenders share one
  /// fdatasync: a leader syncs for every record queued behind it (group commit).
  static constexpr durability always() noexcept { return {mode::always, {}, 0}; }
};

/// @brief How much history the journal keeps. Whole sealed segments are deleted, oldest
/// first; the segment being written is never deleted. 0 = unlimited.
struct retention {
  /// Total bytes of records (all segments, the active one included) above which the oldest
  /// sealed segments are deleted. Disk use is this plus the space allocated ahead of the
  /// writer (journal_options::preallocate_segments): by default up to 8 MiB beyond the last
  /// record and the prepared next segment as far as the active one is filled, at most about
  /// one segment in all; up to two whole segments when pre-allocating.
  std::uint64_t max_bytes = 0;
  /// Sealed segments whose newest record (by publish time) is older than this are deleted.
  std::chrono::seconds max_age{0};
};

/// @brief Settings of a journal writer.
struct journal_options {
  /// Where the segment files live; created (with parents) if missing.
  std::filesystem::path directory{};
  /// Size at which a segment is sealed and a new one started (rounded up to 4 KiB; at least
  /// 4 KiB; default 64 MiB). A segment file has this size from the start, but its disk space
  /// is allocated in steps as it fills (see preallocate_segments). A record bigger than a
  /// segment gets a segment of its own. Applies to the segments a writer creates: existing
  /// ones, the active segment of a reopened journal included, keep the size they were created
  /// with.
  std::uint64_t segment_bytes = 64ull << 20;
  /// How a segment's disk space is allocated. false (the default): in steps ahead of the
  /// writer. A new segment gets its first 64 KiB (and its index file what those need); the
  /// journal's background thread then keeps as many bytes allocated beyond the last record as
  /// the segment already holds (doubling), at least 64 KiB and at most 8 MiB ahead, and the
  /// prepared next segment as far as the active one is filled (a busy writer rolls into
  /// allocated, populated space); the rest of each file is sparse (a hole: no disk space,
  /// reads as zeros). A journal of five events thus takes about 140 KiB of disk (the active
  /// segment, the prepared next one, their indexes), not 129 MiB, and the append path keeps
  /// writing into allocated space: when the background thread falls behind, the append
  /// allocates for itself, and a full disk is journal_error{io} from append() (nothing is
  /// appended), never a crash. `ls -l` shows the files' full size; `du` and st_blocks what
  /// they take. true: every segment is allocated
  /// whole when it is created (disk use grows by segment_bytes at a time, as it always did
  /// before this option; a full disk is then found at a roll rather than within a segment).
  /// Either way, journals written with the other setting open as they are.
  bool preallocate_segments = false;
  /// When appended records reach the disk.
  agentbus::durability durability = durability::never();
  /// How much history is kept.
  agentbus::retention retention{};
  /// Sparse index: one entry (offset -> byte position, time) per this many bytes of records.
  /// Like segment_bytes, for the segments a writer creates (each index records its interval).
  std::uint32_t index_interval_bytes = 4096;
  /// Also check every record of every sealed segment on open (slow for big journals: reads
  /// everything). By default only the last segment is scanned in full and sealed segments
  /// have their tails, their first record and their index checked.
  bool verify_on_open = false;
  /// Permission bits of the files the writer creates (segments, indexes, the lock file):
  /// 0600 by default, owner-only, as the events may be confidential; 0640 lets the file's
  /// group read (an operator's agentbus-journal, say: readers need no write access). The
  /// journal directory, when the writer creates it, gets the same with search added where
  /// read is granted (0700, 0750); an existing directory and existing files keep their modes.
  /// The process umask applies on top. The owner must have read and write, and only read and
  /// write bits are allowed: anything else is journal_error{invalid_options}.
  std::uint32_t file_mode = 0600;
};

/// @brief What append() stores. Views: copied into the journal during append().
struct record_input {
  std::string_view topic{};                ///< concrete topic
  std::string_view schema{};               ///< schema name of the payload
  std::uint32_t schema_version = 0;      ///< schema version
  std::uint64_t fingerprint = 0;         ///< schema fingerprint
  std::int64_t published_ns = 0;         ///< publish time: system_clock ns since the epoch
  std::uint64_t event_id = 0;            ///< event id
  std::uint64_t correlation_id = 0;      ///< 0 = none
  std::string_view source{};               ///< publishing agent
  std::uint8_t priority = 1;             ///< agentbus::priority as a number
  std::span<const header> headers{};       ///< string headers
  std::span<const std::byte> payload{};    ///< the encoded payload
};

/// @brief A record read back. Views into the journal's files: valid until the reader that
/// returned it is called again (or destroyed).
struct record {
  std::uint64_t offset = 0;              ///< position in the journal (0, 1, 2, ...)
  std::string_view topic{};                ///< concrete topic
  std::string_view schema{};               ///< schema name of the payload
  std::uint32_t schema_version = 0;      ///< schema version
  std::uint64_t fingerprint = 0;         ///< schema fingerprint
  std::int64_t published_ns = 0;         ///< publish time: system_clock ns since the epoch
  std::uint64_t event_id = 0;            ///< event id
  std::uint64_t correlation_id = 0;      ///< 0 = none
  std::string_view source{};               ///< publishing agent
  std::uint8_t priority = 1;             ///< agentbus::priority as a number
  std::span<const header> headers{};       ///< string headers
  std::span<const std::byte> payload{};    ///< the encoded payload

  /// @brief The publish time as a time point.
  std::chrono::system_clock::time_point published() const noexcept {
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds{published_ns})};
  }
};

/// @brief What journal_reader::next() found.
enum class read_status {
  ok,                      ///< a record was returned
  end,                     ///< nothing more now; call again later to follow the writer
  corrupt,                 ///< a damaged record (never returned); error() says where; the
                           ///< reader skips to the next valid point on the following call
  truncated_by_retention,  ///< the position was deleted by retention; the reader moved to the
                           ///< oldest retained record
};

/// @brief What opening a journal found and repaired.
struct recovery_report {
  std::uint64_t segments = 0;           ///< segment files found
  std::uint64_t records = 0;            ///< records retained after recovery
  std::uint64_t truncated_bytes = 0;    ///< bytes of torn/corrupt tail that were zeroed
  /// Torn/corrupt tail records dropped. When the active segment's index names records beyond
  /// the end of its data (the file was shortened or overwritten from outside: a crash cannot do
  /// that), those records are counted here too, the loss is described in `problems`, and
  /// appends continue past every offset that may have been acknowledged (offsets are never
  /// used twice: the skipped ones are a gap that readers report as read_status::corrupt).
  /// The same holds for a segment file deleted from outside while its index remains.
  std::uint64_t truncated_records = 0;
  /// Human-readable findings about records that were not repaired by truncation: corruption
  /// in the middle of a segment (readers report it as read_status::corrupt and skip it), gaps
  /// in offsets, records lost from a shortened segment.
  std::vector<std::string> problems;
  /// Index files (`<base>.idx`) found missing or damaged and rebuilt from their segment's
  /// records, one message each. No record is lost by index damage (the index is an
  /// accelerator), so this is a class of its own, apart from `problems`. A sealed segment's
  /// files are otherwise never changed by opening (the index keeps the size and interval it
  /// was written with, whatever today's journal_options say).
  std::vector<std::string> index_repairs;

  /// @brief True when nothing was truncated and nothing was found wrong (records or indexes).
  bool clean() const noexcept {
    return truncated_bytes == 0 && truncated_records == 0 && problems.empty() && index_repairs.empty();
  }
  /// @brief True when every record is as it was written: clean() but for index repairs.
  bool records_intact() const noexcept { return truncated_bytes == 0 && truncated_records == 0 && problems.empty(); }
};

/// @brief A snapshot of a journal's counters.
struct journal_stats {
  std::uint64_t segments = 0;     ///< segment files retained
  std::uint64_t records = 0;      ///< next_offset - first_offset (records retained)
  std::uint64_t bytes = 0;        ///< bytes of records in all retained segments
  std::uint64_t first_offset = 0;  ///< oldest retained offset
  std::uint64_t next_offset = 0;   ///< the offset the next append gets
  std::int64_t first_time_ns = 0;  ///< publish time of the oldest retained record (0 if none)
  std::int64_t last_time_ns = 0;   ///< publish time of the newest record (0 if none)
  std::uint64_t syncs = 0;         ///< fdatasync calls made by this writer
};

}  // namespace agentbus

#endif  // AGENTBUS_JOURNAL_OPTIONS_HPP
