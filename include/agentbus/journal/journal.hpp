// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_JOURNAL_HPP
#define AGENTBUS_JOURNAL_JOURNAL_HPP

/// @file
/// @brief The journal: a durable, append-only log of records (bytes in, bytes out) in a
/// directory of segment files, with crash recovery, retention and replay by offset or time.
///
/// ```
/// agentbus::journal j({.directory = "/var/lib/app/journal",
///                      .durability = agentbus::durability::interval(std::chrono::milliseconds(50))});
/// std::uint64_t offset = j.append({.topic = "tasks.created", .published_ns = now_ns, .payload = bytes});
/// auto reader = j.read(0);
/// agentbus::record r;
/// while (reader.next(r) == agentbus::read_status::ok) use(r.offset, r.topic, r.payload);
/// ```
///
/// ## What is guaranteed
/// - Offsets are dense (0, 1, 2, ...) and never reused, across segment rolls and reopening.
///   Even when a segment file was shortened or overwritten from outside (a bad copy, a disk
///   tool: a crash cannot do it), recovery uses the index as evidence of what was there,
///   reports those records lost and continues past every offset that may have been
///   acknowledged (readers report the gap as corrupt).
/// - A record is in the page cache when append() returns: it survives the death of the
///   process (even SIGKILL) whatever the durability policy; the policy decides when it also
///   survives a power loss (durability).
/// - A damaged record is never returned: readers report read_status::corrupt, say where in
///   error(), and continue after it.
/// - Opening recovers: the torn tail a crash leaves is zeroed and counted in recovery(), damage
///   elsewhere is reported in recovery().problems; a missing or damaged index file is rebuilt
///   and reported apart, in recovery().index_repairs (no record is lost with an index).
/// - Opening never changes a sealed segment's files (unless they need repair): an index keeps
///   the size and interval it was written with, whatever today's journal_options say.
/// - Readers (this process or another, with or without a writer) and `agentbus-journal
///   verify` find their way past damage by one rule (detail::find_resume_point): they agree
///   on which records are readable.
/// - One writer per directory (an flock on journal.lock); any number of readers, in this
///   process (read(), read_since()) or in others (open_journal_reader(),
///   open_journal_reader_since()), while it appends.
///
/// ## How (docs/journal-format.md has the byte-level format)
/// - Segment files `<first offset, 20 digits>.log`, segment_bytes long, allocated in steps ahead
///   of the writer (journal_options::preallocate_segments) and mapped:
///   an append encodes the record straight into the mapping inside one short critical section
///   (no system call, no allocation). Each record is framed by a length word and a CRC32C;
///   the length word is written last and is what publishes the record.
/// - A sparse index `<first offset>.idx` per segment (one entry per index_interval_bytes)
///   maps offsets to byte positions and carries a running maximum of publish times, for
///   read(offset) and read_since(time).
/// - Flushing is fdatasync on the segment file; with durability::always concurrent appenders
///   share one (group commit).
/// - Linux/POSIX only (mmap, fdatasync, posix_fallocate, flock).
///
/// Thread safety: journal is safe to use from any number of threads at once. A journal_reader
/// is used by one thread at a time (each thread makes its own).

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/journal/detail/file_lock.hpp"
#include "agentbus/journal/detail/journal_core.hpp"
#include "agentbus/journal/options.hpp"
#include "agentbus/journal/detail/little_endian.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_catalog.hpp"
#include "agentbus/journal/detail/segment_scan.hpp"

namespace agentbus {

class journal;

/// @brief Reads a journal's records in offset order, from a writer's journal (read(),
/// read_since()) or straight from a directory (open_journal_reader()).
///
/// Safe to use while the writer appends: each next() sees at least every record whose append
/// returned before the call. At the end it returns read_status::end; call again later to
/// follow the writer (tailing). Movable, not copyable; one thread at a time.
class journal_reader {
 public:
  /// @brief A reader of nothing (next() returns end).
  journal_reader() noexcept = default;
  journal_reader(journal_reader&&) noexcept = default;
  journal_reader& operator=(journal_reader&&) noexcept = default;
  journal_reader(const journal_reader&) = delete;
  journal_reader& operator=(const journal_reader&) = delete;

  /// @brief Reads the next record into `out`.
  ///
  /// - ok: `out` holds the record; its views stay valid until the next call on this reader.
  /// - end: nothing more now.
  /// - corrupt: a damaged record (or missing records) at position(); it is never returned.
  ///   error() says which file and byte; the reader has moved past it to the next valid point
  ///   (the record after it, the next index entry, or the next segment) and the following call
  ///   goes on from there. If nothing valid follows yet, the following calls return end.
  /// - truncated_by_retention: the records at position() were deleted by retention; the
  ///   reader moved to the oldest retained record (error() says which were lost).
  ///
  /// Throws journal_error{io} if a segment file cannot be opened or mapped.
  read_status next(record& out);

  /// @brief What the last corrupt or truncated_by_retention result was about.
  std::string_view error() const noexcept { return error_; }

  /// @brief Offset of the next record next() will return (for read_since, before the first
  /// record is found: a lower bound, the first offset of the segment it starts in).
  std::uint64_t position() const noexcept { return target_; }

 private:
  friend class journal;
  friend journal_reader open_journal_reader(const std::filesystem::path& dir, std::uint64_t from_offset);
  friend journal_reader open_journal_reader_since(const std::filesystem::path& dir,
                                                  std::chrono::system_clock::time_point t);

  journal_reader(std::shared_ptr<detail::segment_source> source, std::uint64_t from) noexcept
      : source_(std::move(source)), target_(from), expect_(from) {}

  enum class step { go_on, done };

  // Places pos_/expect_ in the freshly opened seg_ at (or before) target_ / the time filter.
  void position_in_segment() {
    pos_ = detail::file_header_bytes;
    expect_ = seg_->base();
    const detail::index_view idx = seg_->index();
    const std::size_t i = since_ ? idx.last_before_time(since_ns_) : idx.last_at_or_before(target_);
    if (i < idx.count) {
      const detail::index_entry e = idx.at(i);
      if (seg_->usable_index_entry(e)) {
        pos_ = e.position;
        expect_ = e.offset;
      }
    }
    stuck_ = false;
  }

  read_status deleted_by_retention(std::uint64_t first) {
    error_ = "records " + std::to_string(target_) + ".." + std::to_string(first - 1) +
             " were deleted by retention before they were read; continuing at offset " + std::to_string(first);
    seg_.reset();
    target_ = expect_ = first;
    return read_status::truncated_by_retention;
  }

  std::string where() const {
    return "segment '" + seg_->log_path().string() + "' at byte " + std::to_string(pos_) + " (offset " +
           std::to_string(expect_) + ")";
  }

  // At a seal (or the end of a mapping): moves to the next segment. `status` is set when
  // the move itself has something to report.
  step move_to_next_segment(read_status& status) {
    auto next = source_->segment_after(seg_->base());
    if (!next) {
      status = read_status::end;
      return step::done;
    }
    const std::uint64_t old_base = seg_->base();
    seg_ = std::move(next);
    pos_ = detail::file_header_bytes;
    expect_ = seg_->base();
    stuck_ = false;
    if (expect_ > target_) {
      const std::string lost = std::to_string(target_) + ".." + std::to_string(expect_ - 1);
      const bool retained = source_->retained(old_base);
      error_ = retained ? "records " + lost + " are missing before segment '" + seg_->log_path().string() +
                              "' (the end of the previous segment was damaged)"
                        : "records " + lost + " were deleted by retention before they were read";
      target_ = expect_;
      status = retained ? read_status::corrupt : read_status::truncated_by_retention;
      return step::done;
    }
    return step::go_on;
  }

  // A zero length word at pos_: the end of the data, or damage? Damage when an index entry
  // lies beyond it, or when bytes follow it where no record has been written: in the writer's
  // own segment (in this process) below its end; elsewhere, non-zero bytes in the page after
  // the word, in a segment that has a successor (nobody writes there any more), with no
  // writer running, or that stay there while no length word appears (a writer in another
  // process writes a frame's body first and its length word last: microseconds; after 20 ms
  // here, a writer may still be descheduled mid-record, so then only after a second, over
  // later calls: a one-shot reader of a journal a writer has open ends there instead, and
  // `agentbus-journal verify` still reports the bytes).
  bool zero_length_is_damage(std::span<const std::byte> data) {
    const detail::index_view idx = seg_->index();
    if (idx.first_after_position(pos_) != idx.count) return true;
    if (seg_->live()) return pos_ < seg_->end.load(std::memory_order_acquire);
    // Only the rest of the page holding the word: it is in the file (we just read the word),
    // while the next page may be a hole of a sparse segment, and reading a hole through the
    // mapping on a full tmpfs is a SIGBUS (the full-disk test hit it in about one run in four).
    constexpr std::uint64_t page = 4096;
    const std::uint64_t from = pos_ + 4, to = std::min<std::uint64_t>((pos_ / page + 1) * page, data.size());
    bool bytes_after = false;
    for (std::uint64_t q = from; q < to && !bytes_after; ++q) bytes_after = data[q] != std::byte{0};
    if (!bytes_after) return false;
    if (stuck_ && stuck_base_ == seg_->base() && stuck_pos_ == pos_) return true;  // already waited
    if (source_->segment_after(seg_->base())) return true;
    if (!detail::writer_may_be_running(seg_->log_path().parent_path())) return true;
    for (int k = 0; k < 20; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (detail::load_acquire_u32(data.data() + pos_) != 0) return false;  // the writer was at it
    }
    // Still no length word: a writer descheduled in the middle of a record (a loaded machine)
    // or damage. Damage once it has stayed so for a second, over this and later calls.
    const auto now = std::chrono::steady_clock::now();
    if (!pending_ || pending_base_ != seg_->base() || pending_pos_ != pos_) {
      pending_ = true;
      pending_base_ = seg_->base();
      pending_pos_ = pos_;
      pending_since_ = now;
      return false;
    }
    return now - pending_since_ >= std::chrono::seconds(1);
  }

  // At damage (pos_ in seg_): report it once and move past it if anything valid follows.
  step damaged(const std::string& reason, read_status& status) {
    const bool already_reported = stuck_ && stuck_base_ == seg_->base() && stuck_pos_ == pos_;
    const auto data = seg_->bytes();
    std::uint64_t resume_pos = 0, resume_offset = 0;
    // (a) The rule recovery and `agentbus-journal verify` use too (find_resume_point): the
    // damaged frame's own length, or the first valid frame with a plausible offset after it;
    // searched up to the next index entry (recovery puts one wherever it resumed after damage)
    // or, without one, up to the last non-zero byte of the segment. (b) That index entry.
    const detail::index_view idx = seg_->index();
    const std::size_t i = idx.first_after_position(pos_);
    std::optional<detail::index_entry> next_entry;
    if (i < idx.count) {
      const detail::index_entry e = idx.at(i);
      if (e.offset >= expect_ && e.position < data.size() && (e.position & 7u) == 0) next_entry = e;
    }
    const std::uint64_t limit = next_entry ? next_entry->position + detail::min_frame_bytes
                                           : detail::last_nonzero_end(data, pos_, data.size());
    const detail::resume_point rp = detail::find_resume_point(data, pos_, expect_, limit);
    if (rp.pos != 0 && (!next_entry || rp.pos <= next_entry->position)) {
      resume_pos = rp.pos;
      resume_offset = rp.offset;
    } else if (next_entry) {
      resume_pos = next_entry->position;
      resume_offset = next_entry->offset;
    }
    if (resume_pos != 0) {
      const std::uint64_t from = std::max(target_, expect_);
      if (!already_reported)
        error_ = where() + ": " + reason + "; skipped to offset " + std::to_string(resume_offset) +
                 (resume_offset > from + 1 ? " (records " + std::to_string(from) + ".." +
                                                 std::to_string(resume_offset - 1) + " unreadable)"
                  : resume_offset == from + 1 ? " (record " + std::to_string(from) + " unreadable)"
                                              : "");
      pos_ = resume_pos;
      expect_ = resume_offset;
      target_ = std::max(target_, resume_offset);
      stuck_ = false;
      status = read_status::corrupt;
      return already_reported ? step::go_on : step::done;
    }
    // (c) The next segment, if there is one: the rest of this one is unreadable.
    if (auto next = source_->segment_after(seg_->base())) {
      if (!already_reported) error_ = where() + ": " + reason + "; skipped to the next segment";
      seg_ = std::move(next);
      pos_ = detail::file_header_bytes;
      expect_ = seg_->base();
      target_ = std::max(target_, expect_);
      stuck_ = false;
      status = read_status::corrupt;
      return already_reported ? step::go_on : step::done;
    }
    // Nothing valid after it (yet): report once, then end until that changes.
    status = already_reported ? read_status::end : read_status::corrupt;
    if (!already_reported) error_ = where() + ": " + reason + "; no valid record follows it yet";
    stuck_ = true;
    stuck_base_ = seg_->base();
    stuck_pos_ = pos_;
    return step::done;
  }

  std::shared_ptr<detail::segment_source> source_;
  std::shared_ptr<detail::segment> seg_;  // current segment, null until needed
  std::uint64_t pos_ = 0;                 // byte position in seg_ of the record with offset expect_
  std::uint64_t target_ = 0;              // offset of the next record to return
  std::uint64_t expect_ = 0;              // offset of the record at pos_
  std::int64_t since_ns_ = 0;             // time filter (read_since) until the first match
  bool since_ = false;
  bool pending_ = false;  // bytes after a zero length word while a writer runs, seen since pending_since_
  std::uint64_t pending_base_ = 0;
  std::uint64_t pending_pos_ = 0;
  std::chrono::steady_clock::time_point pending_since_{};
  bool stuck_ = false;  // damage reported with nothing valid after it, at (stuck_base_, stuck_pos_)
  std::uint64_t stuck_base_ = 0;
  std::uint64_t stuck_pos_ = 0;
  std::string error_;
  std::vector<header> headers_;
};

inline read_status journal_reader::next(record& out) {
  if (!source_) return read_status::end;
  read_status status = read_status::end;
  for (;;) {
    const std::uint64_t first = source_->first_offset();
    if (target_ < first) return deleted_by_retention(first);
    if (!seg_) {
      detail::segment_lookup l = source_->segment_for(target_);
      if (l.deleted) return deleted_by_retention(l.first_offset);
      if (!l.seg) return read_status::end;
      seg_ = std::move(l.seg);
      position_in_segment();
    }
    const auto data = seg_->bytes();
    if (pos_ + detail::seal_bytes > data.size()) {  // a segment filled to its last byte
      if (move_to_next_segment(status) == step::done) return status;
      continue;
    }
    const std::uint32_t len = detail::load_acquire_u32(data.data() + pos_);
    if (len == detail::seal_marker) {
      if (move_to_next_segment(status) == step::done) return status;
      continue;
    }
    if (len == 0) {
      // The end of the data, unless the zero length word is damage: an index entry beyond it
      // (recovery resumed after damage here), or bytes after it where nothing was written yet.
      if (!zero_length_is_damage(data)) {
        if (detail::load_acquire_u32(data.data() + pos_) != 0) continue;  // appended meanwhile
        return read_status::end;
      }
      if (detail::load_acquire_u32(data.data() + pos_) != 0) continue;  // appended meanwhile
      if (damaged("zero length word followed by data", status) == step::done) return status;
      continue;
    }
    const detail::decode_result d = detail::decode_record(data.subspan(static_cast<std::size_t>(pos_)), &headers_);
    if (d.status == detail::decode_status::ok && d.rec.offset == expect_) {
      pos_ += d.size;
      ++expect_;
      stuck_ = false;
      if (d.rec.offset < target_) continue;  // seeking
      target_ = expect_;
      if (since_) {
        if (d.rec.published_ns < since_ns_) continue;
        since_ = false;
      }
      out = d.rec;
      return read_status::ok;
    }
    const std::string reason = d.status == detail::decode_status::ok
                                   ? "record carries offset " + std::to_string(d.rec.offset)
                                   : std::string(d.reason);
    if (damaged(reason, status) == step::done) return status;
  }
}

/// @brief The journal writer. Thread-safe: any number of threads may append at once.
class journal {
 public:
  /// @brief Opens (creating it if needed) the journal in options.directory: takes the
  /// directory's lock (journal_error{locked} if another writer, in this process or another,
  /// has it), recovers (see recovery()) and starts the background thread that allocates
  /// segments and flushes. Throws journal_error{invalid_options} for unusable options,
  /// journal_error{io} when the directory cannot be used.
  explicit journal(journal_options options) {
    options = detail::normalized_options(std::move(options));
    std::error_code ec;
    if (!std::filesystem::exists(options.directory, ec)) {
      // The parents as create_directories makes them; the journal directory itself with the
      // mode that file_mode implies (an existing directory keeps its mode).
      const std::filesystem::path parent = options.directory.parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      if (ec) detail::throw_io("create the directory", parent, ec.value());
      if (::mkdir(options.directory.c_str(), static_cast<mode_t>(detail::journal_directory_mode(options.file_mode))) !=
              0 &&
          errno != EEXIST)
        detail::throw_io("create the directory", options.directory, errno);
    }
    if (!std::filesystem::is_directory(options.directory, ec))
      throw journal_error(journal_error::code::invalid_options,
                          "agentbus journal: '" + options.directory.string() +
                              "' exists and is not a directory: choose another journal_options::directory");
    lock_ = detail::directory_lock(options.directory, options.file_mode);
    core_ = std::make_shared<detail::journal_core>(std::move(options));
  }

  /// @brief Flushes per the durability policy (a final fdatasync unless durability::never)
  /// and closes. Never throws. Readers made by read() keep working on what was written.
  ~journal() {
    if (core_) core_->shutdown();
  }

  /// @brief Takes over `other`'s journal (`other` may then only be destroyed or assigned to).
  journal(journal&& other) noexcept = default;
  /// @brief Closes this journal, then takes over `other`'s.
  journal& operator=(journal&& other) noexcept {
    if (this != &other) {
      if (core_) core_->shutdown();
      core_ = std::move(other.core_);
      lock_ = std::move(other.lock_);
    }
    return *this;
  }
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// @brief Appends a record; returns its offset (0, 1, 2, ... dense, never reused).
  ///
  /// The record is copied into the journal; when append returns it is visible to readers and
  /// in the page cache, and durable as the policy says (durability::always and the append
  /// completing a durability::every batch: on disk). Throws journal_error{invalid_argument}
  /// for a record that cannot be stored (a field longer than its length prefix allows, more
  /// than 1 GiB), journal_error{io} on a failure to roll or flush (after a failed flush every
  /// append fails: reopen the journal).
  std::uint64_t append(const record_input& rec) { return core_->append(rec); }

  /// @brief Makes everything appended so far durable (whatever the policy).
  void sync() { core_->sync(); }

  /// @brief Offset of the oldest retained record.
  std::uint64_t first_offset() const noexcept { return core_->first_offset(); }
  /// @brief The offset the next append gets.
  std::uint64_t next_offset() const noexcept { return core_->next_offset(); }

  /// @brief A reader from `from_offset`. Below first_offset(): its first next() returns
  /// truncated_by_retention and it continues at first_offset(); beyond next_offset(): clamped
  /// to next_offset() (it waits for the next append).
  journal_reader read(std::uint64_t from_offset) const {
    return journal_reader(core_, std::min(from_offset, core_->next_offset()));
  }

  /// @brief A reader from the first record (in offset order) published at or after `t`. Finds
  /// the segment by its newest publish time and the spot in it with the sparse index, then
  /// scans; records after that one are all returned, whatever their time.
  journal_reader read_since(std::chrono::system_clock::time_point t) const {
    const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    const auto base = core_->first_segment_reaching(ns);
    if (!base) return journal_reader(core_, core_->next_offset());
    journal_reader r(core_, *base);
    r.since_ = true;
    r.since_ns_ = ns;
    return r;
  }

  /// @brief What opening the journal found and repaired.
  const recovery_report& recovery() const noexcept { return core_->recovery(); }

  /// @brief A snapshot of the journal's counters.
  journal_stats stats() const { return core_->stats(); }

  /// @brief Deletes sealed segments beyond the retention limits (also done after every
  /// segment roll). Throws journal_error{io} if a file cannot be deleted.
  void apply_retention() { core_->apply_retention(true); }

  /// @brief The journal's directory.
  const std::filesystem::path& directory() const noexcept { return core_->directory(); }

 private:
  detail::directory_lock lock_;               // released last, after the core has shut down
  std::shared_ptr<detail::journal_core> core_;
};

namespace detail {
/// Throws journal_error{not_found} unless `dir` holds a journal (open_journal_reader*).
inline void require_journal_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw journal_error(journal_error::code::not_found,
                        "agentbus journal: no journal at '" + dir.string() + "': it is not a directory");
  if (list_segment_bases(dir).empty())
    throw journal_error(journal_error::code::not_found,
                        "agentbus journal: no journal in '" + dir.string() +
                            "': it has no segment files (<20 digits>.log); is this the right directory?");
}
}  // namespace detail

/// @brief A read-only reader of the journal in `dir`, from `from_offset`: no lock, no writer
/// object needed, for tools and other processes, also while a writer appends. Throws
/// journal_error{not_found} when `dir` holds no journal.
inline journal_reader open_journal_reader(const std::filesystem::path& dir, std::uint64_t from_offset = 0) {
  detail::require_journal_directory(dir);
  return journal_reader(std::make_shared<detail::directory_source>(dir), from_offset);
}

/// @brief A read-only reader of the journal in `dir` from the first record (in offset order)
/// published at or after `t`, as journal::read_since: it skips whole segments by their newest
/// publish time (each one's last index entry and the few records after it) and seeks inside
/// the segment with the sparse index, so it does not scan the journal. Records after that
/// first one are all returned, whatever their time. Throws like open_journal_reader.
inline journal_reader open_journal_reader_since(const std::filesystem::path& dir,
                                                std::chrono::system_clock::time_point t) {
  detail::require_journal_directory(dir);
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  auto source = std::make_shared<detail::directory_source>(dir);
  const auto base = source->start_for_time(ns);
  journal_reader r(std::move(source), base.value_or(0));
  r.since_ = true;
  r.since_ns_ = ns;
  return r;
}

}  // namespace agentbus

#endif  // AGENTBUS_JOURNAL_JOURNAL_HPP
