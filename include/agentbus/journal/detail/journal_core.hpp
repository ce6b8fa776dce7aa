// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_JOURNAL_CORE_HPP
#define AGENTBUS_JOURNAL_DETAIL_JOURNAL_CORE_HPP

// The writer's engine behind agentbus::journal: the append path, segment rolls, flushing,
// retention, the background thread, and the catalog of segments its readers draw from.
//
// Append path (one short critical section under append_mutex_, no system call, no allocation):
// check room, take the next offset, encode the record straight into the mapped segment (its
// length word last, with release: that is the commit readers see), maybe write an index entry,
// publish next_offset. Durability work happens after the lock is released.
//
// Allocation: segment files have their full size from the start but their blocks are
// allocated in steps (segment::allocate_to), the background thread keeping allocation_ahead
// bytes allocated beyond the writer; an append that finds too little allocated allocates for
// itself (a system call, rarely taken), and fails with journal_error{io} when the disk is full.
// journal_options::preallocate_segments allocates every segment whole instead.
//
// Rolls: when a record does not fit, the segment is sealed (a seal marker after its last
// record) and a segment the background thread prepared in advance (created, allocated as far
// as its first step and mapped under a temporary name) is renamed into place. The new segment is in the catalog
// before the seal is written, so a reader that sees the seal finds what follows.
//
// Locks, always taken in this order: append_mutex_ -> catalog_mutex_ -> bg_mutex_.
// Retention takes retention_mutex_ then catalog_mutex_; the group commit's mutex is never held
// while taking another.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "agentbus/detail/chrono.hpp"
#include "agentbus/journal/detail/group_commit.hpp"
#include "agentbus/journal/options.hpp"
#include "agentbus/journal/detail/posix_file.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/recovery.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_catalog.hpp"
#include "agentbus/journal/detail/segment_index.hpp"

namespace agentbus::detail {

/// @brief Smallest and largest accepted segment sizes.
inline constexpr std::uint64_t min_segment_bytes = 4096;
inline constexpr std::uint64_t max_segment_bytes = std::uint64_t{1} << 40;

/// @brief Checks `o` and rounds segment_bytes up to 4 KiB; throws journal_error{invalid_options}.
inline journal_options normalized_options(journal_options o) {
  auto bad = [](const std::string& what) {
    throw journal_error(journal_error::code::invalid_options, "agentbus journal: invalid journal_options: " + what);
  };
  if (o.directory.empty()) bad("directory is empty; set it to the directory that holds (or will hold) the journal");
  if (o.segment_bytes < min_segment_bytes || o.segment_bytes > max_segment_bytes)
    bad("segment_bytes = " + std::to_string(o.segment_bytes) + " is outside [4096, 2^40]; the default is 64 MiB");
  o.segment_bytes = (o.segment_bytes + 4095) & ~std::uint64_t{4095};
  if (o.index_interval_bytes == 0) bad("index_interval_bytes = 0; use at least 1 (the default is 4096)");
  if (o.durability.kind == durability::mode::interval && o.durability.period <= std::chrono::milliseconds::zero())
    bad("durability::interval needs a period > 0");
  if (o.durability.kind == durability::mode::every && o.durability.records == 0)
    bad("durability::every needs a batch of at least 1 record");
  if (o.retention.max_age < std::chrono::seconds::zero()) bad("retention.max_age is negative");
  if ((o.file_mode & ~std::uint32_t{0666}) != 0 || (o.file_mode & 0600) != 0600) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(o.file_mode));
    bad(std::string("file_mode = ") + mode +
        ": the owner needs read and write (0600), and only read/write bits are allowed (0600 owner-only, the "
        "default; 0640 group-readable)");
  }
  return o;
}

/// @brief The mode of a journal directory the writer creates: file_mode with search (x) added
/// wherever it grants read (0600 -> 0700, 0640 -> 0750, 0644 -> 0755).
constexpr std::uint32_t journal_directory_mode(std::uint32_t file_mode) noexcept {
  return file_mode | ((file_mode & 0444) >> 2);
}

/// @brief The writer's engine (see the file comment). Shared with its readers, which may
/// outlive the journal object: they keep reading what is there.
class journal_core final : public segment_source {
 public:
  /// @brief Recovers the journal in `o.directory` (normalized options; the caller holds the
  /// directory lock) and starts the background thread.
  explicit journal_core(journal_options o)
      : opts_(std::move(o)), idx_bytes_(index_file_bytes(opts_.segment_bytes, opts_.index_interval_bytes)) {
    recovered_journal r = recover_journal(opts_.directory, opts_.segment_bytes, opts_.index_interval_bytes,
                                          opts_.verify_on_open, opts_.file_mode, first_allocation(opts_.segment_bytes));
    report_ = std::move(r.report);
    catalog_ = std::move(r.catalog);
    active_ = catalog_.back().pinned;
    first_offset_.store(catalog_.front().base, std::memory_order_relaxed);
    next_offset_.store(active_->next_offset, std::memory_order_relaxed);
    for (auto it = catalog_.rbegin(); it != catalog_.rend(); ++it) {
      const std::int64_t t = it->pinned ? it->pinned->max_time.load(std::memory_order_relaxed) : it->max_time;
      if (t != std::numeric_limits<std::int64_t>::min()) {
        last_time_.store(t, std::memory_order_relaxed);
        break;
      }
    }
    // Space ahead of the writer in a reopened active segment. Best effort: a full disk must
    // not keep a journal from opening (recovery needs no space); the first append that needs
    // the space tries again and reports the failure.
    try {
      active_->allocate_ahead(active_->end.load(std::memory_order_relaxed), opts_.preallocate_segments);
    } catch (const journal_error&) {
    }
    commit_ = std::make_unique<group_commit>(active_->next_offset);
    populating_ = active_;
    window_seg_ = active_;
    write_window_ = opts_.durability.kind == durability::mode::never || opts_.durability.kind == durability::mode::interval;
    background_ = std::thread([this] { background(); });
    if (opts_.durability.kind == durability::mode::interval) {
      try {
        flusher_ = std::thread([this] { flusher(); });
      } catch (...) {  // no second thread: stop the first before giving up
        shutdown();
        throw;
      }
    }
  }

  journal_core(const journal_core&) = delete;
  journal_core& operator=(const journal_core&) = delete;
  ~journal_core() override { shutdown(); }

  /// @brief Stops the background thread, flushes per the durability policy, closes the files
  /// (mappings stay for readers still open). Idempotent, never throws.
  void shutdown() noexcept {
    {
      std::lock_guard lock(bg_mutex_);
      if (bg_stop_) return;
      bg_stop_ = true;
    }
    bg_cv_.notify_all();
    flush_cv_.notify_all();
    if (background_.joinable()) background_.join();
    if (flusher_.joinable()) flusher_.join();
    if (opts_.durability.kind != durability::mode::never) {
      try {
        sync();
      } catch (...) {  // a destructor must not throw; the failure was recorded
      }
    }
    std::lock_guard lock(append_mutex_);
    std::lock_guard bg(bg_mutex_);
    if (prepared_) prepared_->discard_prepared();
    prepared_.reset();
    retired_.clear();
    populating_.reset();
    window_seg_.reset();
    active_->close_files();
  }

  /// @brief Appends one record; returns its offset. See journal::append.
  std::uint64_t append(const record_input& in) {
    if (const char* problem = record_input_problem(in)) [[unlikely]]
      throw journal_error(journal_error::code::invalid_argument,
                          std::string("agentbus journal: cannot append to topic '") +
                              std::string(in.topic.substr(0, 200)) + "': " + problem);
    const std::uint64_t body = record_body_bytes(in);
    const std::uint64_t size = frame_bytes(body);
    std::uint64_t offset;
    bool rolled = false;
    {
      std::lock_guard lock(append_mutex_);
      if (failed_.load(std::memory_order_relaxed)) [[unlikely]]
        throw journal_error(journal_error::code::io, commit_->failure());
      segment* seg = active_.get();
      std::uint64_t pos = seg->end.load(std::memory_order_relaxed);
      if (pos + size + seal_bytes > seg->capacity()) [[unlikely]] {
        roll(size);
        rolled = true;
        seg = active_.get();
        pos = seg->end.load(std::memory_order_relaxed);
      }
      if (pos + size + seal_bytes > seg->allocated()) [[unlikely]]  // the background thread fell behind
        seg->allocate_to(pos + size + seal_bytes + allocation_ahead(pos + size));  // throws: nothing appended
      // The last offset value means "no offset" to the bus (no_offset): the offset space ends
      // before it. Reached only through a segment named near the end of it (a stray or renamed
      // file), as 2^64 appends never happen: an error, not a wrap-around to offset 0.
      if (seg->next_offset == std::numeric_limits<std::uint64_t>::max()) [[unlikely]]
        throw journal_error(journal_error::code::corrupt,
                            "agentbus journal: no offset left to append at: the newest segment of '" +
                                opts_.directory.string() + "' starts at offset " + std::to_string(seg->base()) +
                                " (a segment file named or renamed near the end of the offset space?)");
      offset = seg->next_offset++;
      encode_record(seg->writable_data() + pos, in, offset, body);
      if (in.published_ns > seg->running_max) {
        seg->running_max = in.published_ns;
        seg->max_time.store(in.published_ns, std::memory_order_relaxed);
      }
      if (pos == file_header_bytes) seg->first_time.store(in.published_ns, std::memory_order_relaxed);
      if (pos >= seg->last_index_pos + seg->index_interval) [[unlikely]]
        add_index_entry(*seg, {offset, pos, seg->running_max});
      seg->end.store(pos + size, std::memory_order_release);
      last_time_.store(in.published_ns, std::memory_order_relaxed);
      next_offset_.store(offset + 1, std::memory_order_release);
      if (pos + size > seg->wake_at.load(std::memory_order_relaxed)) [[unlikely]] {
        seg->wake_at.store(std::numeric_limits<std::uint64_t>::max(), std::memory_order_relaxed);
        bg_cv_.notify_one();  // time for the next write window
      }
    }
    if (rolled) [[unlikely]] {
      try {
        apply_retention(false);
      } catch (...) {  // the record is stored: a retention failure must not look like a failed append
      }
    }
    switch (opts_.durability.kind) {
      case durability::mode::never:
      case durability::mode::interval:
        break;
      case durability::mode::every:
        if ((offset + 1) % opts_.durability.records == 0) wait_durable(offset + 1);
        break;
      case durability::mode::always:
        wait_durable(offset + 1);
        break;
    }
    return offset;
  }

  /// @brief Makes everything appended so far durable.
  void sync() { wait_durable(next_offset_.load(std::memory_order_acquire)); }

  /// @brief Deletes sealed segments beyond the retention limits, oldest first.
  void apply_retention(bool throw_errors) {
    const auto& ret = opts_.retention;
    if (ret.max_bytes == 0 && ret.max_age <= std::chrono::seconds::zero()) return;
    std::lock_guard guard(retention_mutex_);
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    const std::int64_t max_age_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ret.max_age).count();
    std::vector<segment_entry> removed;
    {
      std::lock_guard lock(catalog_mutex_);
      std::uint64_t total = 0;
      for (const auto& e : catalog_) total += e.pinned ? e.pinned->end.load(std::memory_order_acquire) : e.bytes;
      while (catalog_.size() > 1 && !catalog_.front().pinned) {
        const segment_entry& e = catalog_.front();
        const bool over_size = ret.max_bytes != 0 && total > ret.max_bytes;
        const bool too_old = max_age_ns > 0 && e.max_time != std::numeric_limits<std::int64_t>::min() &&
                             e.max_time < now - max_age_ns;
        if (!over_size && !too_old) break;
        total -= e.bytes;
        removed.push_back(std::move(catalog_.front()));
        catalog_.erase(catalog_.begin());
      }
      if (removed.empty()) return;
      first_offset_.store(catalog_.front().base, std::memory_order_release);
    }
    // Unlinked after leaving the catalog, so a reader never opens a file that is going away;
    // readers that have one open keep their mapping.
    std::error_code first_error;
    std::filesystem::path failed_path;
    for (const auto& e : removed) {
      for (auto ext : {segment_extension, index_extension}) {
        const auto path = opts_.directory / segment_file_name(e.base, ext);
        std::error_code ec;
        std::filesystem::remove(path, ec);
        if (ec && !first_error) {
          first_error = ec;
          failed_path = path;
        }
      }
    }
    if (first_error && throw_errors) throw_io("delete (retention)", failed_path, first_error.value());
  }

  /// @brief A snapshot of the counters.
  journal_stats stats() const {
    journal_stats s;
    {
      std::lock_guard lock(catalog_mutex_);
      s.segments = catalog_.size();
      for (const auto& e : catalog_) s.bytes += e.pinned ? e.pinned->end.load(std::memory_order_acquire) : e.bytes;
      const auto& front = catalog_.front();
      s.first_time_ns = front.pinned ? front.pinned->first_time.load(std::memory_order_relaxed) : front.first_time;
      s.first_offset = first_offset_.load(std::memory_order_acquire);
    }
    s.next_offset = next_offset_.load(std::memory_order_acquire);
    s.records = s.next_offset - std::min(s.next_offset, s.first_offset);
    s.last_time_ns = s.records == 0 ? 0 : last_time_.load(std::memory_order_relaxed);
    if (s.records == 0) s.first_time_ns = 0;
    s.syncs = syncs_.load(std::memory_order_relaxed);
    return s;
  }

  /// @brief The offset the next append gets.
  std::uint64_t next_offset() const noexcept { return next_offset_.load(std::memory_order_acquire); }
  /// @brief What recovery found.
  const recovery_report& recovery() const noexcept { return report_; }
  /// @brief The journal's directory.
  const std::filesystem::path& directory() const noexcept { return opts_.directory; }

  /// @brief Base of the first segment holding a record published at or after `t_ns`.
  std::optional<std::uint64_t> first_segment_reaching(std::int64_t t_ns) const {
    std::lock_guard lock(catalog_mutex_);
    for (const auto& e : catalog_) {
      const std::int64_t max = e.pinned ? e.pinned->max_time.load(std::memory_order_relaxed) : e.max_time;
      if (max >= t_ns && max != std::numeric_limits<std::int64_t>::min()) return e.base;
    }
    return std::nullopt;
  }

  // segment_source, for this writer's readers.
  std::uint64_t first_offset() const noexcept override { return first_offset_.load(std::memory_order_acquire); }

  segment_lookup segment_for(std::uint64_t offset) override {
    segment_lookup r;
    std::lock_guard lock(catalog_mutex_);
    r.first_offset = catalog_.front().base;
    if (offset < r.first_offset) {
      r.deleted = true;
      return r;
    }
    auto it = std::upper_bound(catalog_.begin(), catalog_.end(), offset,
                               [](std::uint64_t o, const segment_entry& e) { return o < e.base; });
    r.seg = open_entry(*(it - 1));
    return r;
  }

  std::shared_ptr<segment> segment_after(std::uint64_t base) override {
    std::lock_guard lock(catalog_mutex_);
    auto it = std::upper_bound(catalog_.begin(), catalog_.end(), base,
                               [](std::uint64_t o, const segment_entry& e) { return o < e.base; });
    if (it == catalog_.end()) return nullptr;
    return open_entry(*it);
  }

  bool retained(std::uint64_t base) override { return base >= first_offset(); }

 private:
  // Under catalog_mutex_: the entry's segment, shared if someone has it open.
  std::shared_ptr<segment> open_entry(segment_entry& e) {
    if (e.pinned) return e.pinned;
    if (auto s = e.cached.lock()) return s;
    auto s = std::make_shared<segment>(opts_.directory, e.base);
    if (!s->open_for_reading()) return nullptr;
    e.cached = s;
    return s;
  }

  // Under append_mutex_.
  void add_index_entry(segment& seg, const index_entry& e) noexcept {
    const std::size_t n = seg.index_count.load(std::memory_order_relaxed);
    if (n >= seg.index_capacity_entries()) return;  // full (cannot happen with sane sizes): stay sparse
    write_index_entry(seg.index_entry_slot(n), e);
    seg.last_index_pos = e.position;
    seg.index_count.store(n + 1, std::memory_order_release);
  }

  // Under append_mutex_: seals the active segment and starts the next one, with room for a
  // frame of `frame_size` bytes.
  void roll(std::uint64_t frame_size) {
    const std::uint64_t needed = file_header_bytes + frame_size + seal_bytes;
    std::shared_ptr<segment> seg;
    {
      std::lock_guard lock(bg_mutex_);
      if (prepared_ && prepared_->capacity() >= needed) seg = std::move(prepared_);
    }
    if (!seg) {  // none ready (or too small for this record): make one now
      const std::uint64_t log_bytes = std::max(opts_.segment_bytes, (needed + 4095) & ~std::uint64_t{4095});
      seg = segment::create_prepared(opts_.directory, log_bytes, index_file_bytes(log_bytes, opts_.index_interval_bytes),
                                     opts_.preallocate_segments ? log_bytes : needed + allocation_ahead(needed),
                                     opts_.index_interval_bytes,
                                     prepare_serial_.fetch_add(1, std::memory_order_relaxed), opts_.file_mode);
    }
    segment& old = *active_;
    const std::uint64_t base = old.next_offset;
    try {
      seg->adopt(base, opts_.index_interval_bytes);
    } catch (...) {
      seg->discard_prepared();
      throw;
    }
    const std::uint64_t old_end = old.end.load(std::memory_order_relaxed);
    {
      std::lock_guard lock(catalog_mutex_);
      segment_entry& cur = catalog_.back();
      cur.bytes = old_end + seal_bytes;
      cur.first_time = old.first_time.load(std::memory_order_relaxed);
      cur.max_time = old.running_max;
      cur.cached = cur.pinned;
      cur.pinned.reset();
      segment_entry next;
      next.base = base;
      next.pinned = seg;
      catalog_.push_back(std::move(next));
    }
    store_release_u32(old.writable_data() + old_end, seal_marker);  // readers now move on
    {
      std::lock_guard lock(bg_mutex_);
      unsynced_.push_back(old.log_path());  // for the next flush
      dir_dirty_ = true;
      retired_.push_back(std::move(active_));  // written back and unmapped by the background thread
      populating_ = seg;
      window_seg_ = seg;
    }
    active_ = std::move(seg);
    bg_cv_.notify_all();
  }

  // Group commit: returns once offsets below `target` are durable.
  void wait_durable(std::uint64_t target) {
    commit_->wait(target, [this] { return flush(); });
  }

  // The leader's flush: everything appended so far (returns the offset it covers).
  std::uint64_t flush() {
    std::vector<std::filesystem::path> sealed;
    std::shared_ptr<segment> active;
    std::uint64_t target;
    bool dir = false;
    {
      std::lock_guard lock(append_mutex_);
      target = next_offset_.load(std::memory_order_relaxed);
      active = active_;
      std::lock_guard bg(bg_mutex_);
      sealed.swap(unsynced_);
      dir = std::exchange(dir_dirty_, false);
    }
    try {
      // Sealed segments first (their records come before the active segment's), through
      // descriptors of their own: the writer closed its ones when it moved on.
      for (const auto& path : sealed)
        if (datasync_path(path)) syncs_.fetch_add(1, std::memory_order_relaxed);
      if (dir) sync_directory(opts_.directory);  // the new segments' names
      active->drop_written_pages(false);  // the write-back then has no mapped page to protect
      if (active->sync(false)) syncs_.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
      failed_.store(true, std::memory_order_relaxed);
      throw;
    }
    return target;
  }

  // The first allocation of a segment the writer creates: its first step, or all of it.
  std::uint64_t first_allocation(std::uint64_t log_bytes) const noexcept {
    return opts_.preallocate_segments ? log_bytes : allocation_min_step;
  }

  // The background thread, in order of urgency: allocate ahead of the writer, retire sealed
  // segments (start their write-back, unmap them), keep a prepared segment ready, and populate
  // pages ahead of the writer (the active segment, then the prepared one).
  void background() {
    constexpr std::size_t populate_chunk = std::size_t{1} << 20;
    constexpr std::size_t write_window_bytes = 256 * 1024;
    std::unique_lock lock(bg_mutex_);
    while (!bg_stop_) {
      if (window_seg_) {
        auto seg = window_seg_;
        auto next = prepared_;
        lock.unlock();
        bool did = false, next_did = false;
        try {
          const std::uint64_t at = seg->end.load(std::memory_order_relaxed);
          did = seg->allocate_ahead(at, opts_.preallocate_segments);
          // The next segment as far as this one is filled (see segment::allocate_ahead).
          if (next) next_did = next->allocate_ahead(at, opts_.preallocate_segments);
        } catch (...) {  // the disk is full: the append that needs the space reports it
        }
        // Where the writer wakes us for the next step (the write window, below, folds it in).
        if (!write_window_) seg->wake_at.store(seg->allocation_wake_point(), std::memory_order_relaxed);
        lock.lock();
        if (next_did && next == prepared_) prepared_populated_ = false;  // more pages to populate
        if (did || next_did) {
          if (did && seg == window_seg_ && !populating_) populating_ = seg;
          continue;
        }
      }
      if (!retired_.empty()) {
        auto retired = std::move(retired_);
        retired_.clear();
        lock.unlock();
        // Unmapped (and its descriptors closed) first, or when a reader or a flush still has
        // it, its page-table entries dropped: write-back of pages still mapped write-protects
        // them one by one, each with a TLB shootdown that interrupts the writer's CPU. Then
        // the write-back is started through a descriptor of our own (best effort: a flush
        // reports errors).
        std::vector<std::filesystem::path> paths;
        paths.reserve(retired.size());
        for (auto& seg : retired) {
          seg->drop_written_pages(true);  // a flush may still hold it (mapped): see drop_mapped_pages
          paths.push_back(seg->log_path());
        }
        retired.clear();
        for (const auto& path : paths) {
          try {
            if (unique_fd fd = open_file(path, O_RDONLY, true)) detail::start_writeback(fd.get());
          } catch (...) {
          }
        }
        lock.lock();
        continue;
      }
      if (!prepared_) {
        lock.unlock();
        std::shared_ptr<segment> p;
        try {
          p = segment::create_prepared(opts_.directory, opts_.segment_bytes, idx_bytes_,
                                       first_allocation(opts_.segment_bytes), opts_.index_interval_bytes,
                                       prepare_serial_.fetch_add(1, std::memory_order_relaxed), opts_.file_mode);
        } catch (...) {  // the roll makes its own and reports the error to the appender
        }
        lock.lock();
        if (p && !bg_stop_ && !prepared_) {
          prepared_ = std::move(p);
          prepared_populated_ = false;
        } else if (p) {
          p->discard_prepared();
        }
        // Could not: retry later, not in a loop. bg_stop_ is checked under the lock that the
        // wait releases: a shutdown that came while we were creating the segment (its notify
        // then woke nobody) must not wait out the second.
        if (!prepared_ && !bg_stop_) bg_cv_.wait_for(lock, std::chrono::seconds(1));
        continue;
      }
      // The write window just ahead of the writer (durability never/interval only: with
      // every/always each flush would write the window's zero pages out).
      if (write_window_ && window_seg_) {
        const std::uint64_t syncs = syncs_.load(std::memory_order_relaxed);
        auto seg = window_seg_;
        lock.unlock();
        const bool did = seg->prepare_write_window(write_window_bytes, syncs != window_syncs_);
        lock.lock();
        window_syncs_ = syncs;
        if (did) continue;
      }
      std::shared_ptr<segment> work = populating_;
      if (!work && !prepared_populated_) work = prepared_;
      if (work) {
        lock.unlock();
        const bool more = work->populate_step(populate_chunk);
        lock.lock();
        if (!more) {
          if (work == populating_) populating_.reset();
          if (work == prepared_) prepared_populated_ = true;
        }
        continue;
      }
      // A shutdown while the lock was released above (in a step that found nothing to do)
      // notified nobody: without this check the wait below would outlast it (for ever with no
      // write window). Checked under the lock the wait releases, so no notify can slip between.
      if (bg_stop_) break;
      // With a write window, also wake up now and then: a flush may have write-protected it.
      if (write_window_) bg_cv_.wait_for(lock, std::chrono::milliseconds(20));
      else bg_cv_.wait(lock);
    }
  }

  // durability::interval: flushes every period, on a thread of its own so that a slow
  // fdatasync never holds up the populating above. Nothing new: nothing to do.
  void flusher() {
    const auto period = opts_.durability.period;
    std::unique_lock lock(bg_mutex_);
    while (!bg_stop_) {
      if (flush_cv_.wait_for(lock, period, [this] { return bg_stop_; })) break;
      lock.unlock();
      try {
        sync();
      } catch (...) {  // recorded by the group commit; appends now fail with it
      }
      lock.lock();
    }
  }

  journal_options opts_;
  std::uint64_t idx_bytes_;
  recovery_report report_;

  std::mutex append_mutex_;
  std::shared_ptr<segment> active_;  // under append_mutex_

  mutable std::mutex catalog_mutex_;
  std::vector<segment_entry> catalog_;  // under catalog_mutex_; oldest first, the last is active_

  std::atomic<std::uint64_t> first_offset_{0};
  std::atomic<std::uint64_t> next_offset_{0};
  std::atomic<std::int64_t> last_time_{0};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<bool> failed_{false};
  std::atomic<unsigned> prepare_serial_{1};
  std::unique_ptr<group_commit> commit_;
  std::mutex retention_mutex_;

  std::mutex bg_mutex_;  // guards what follows
  std::condition_variable bg_cv_;
  std::condition_variable flush_cv_;
  bool bg_stop_ = false;
  bool dir_dirty_ = false;                     // a segment was created since the last flush
  std::shared_ptr<segment> prepared_;          // the next segment, ready to be adopted
  bool prepared_populated_ = false;            // prepared_ is fully populated
  std::shared_ptr<segment> populating_;        // the active segment while it is being populated
  std::shared_ptr<segment> window_seg_;        // the active segment, for allocation and the write window
  bool write_window_ = false;                  // keep a write window (never/interval)
  std::uint64_t window_syncs_ = 0;             // syncs_ when the window was last refreshed
  std::vector<std::filesystem::path> unsynced_;  // sealed segments not flushed yet
  std::vector<std::shared_ptr<segment>> retired_;  // sealed segments to write back and unmap
  std::thread background_;
  std::thread flusher_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_JOURNAL_CORE_HPP
