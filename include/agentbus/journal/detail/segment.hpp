// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_SEGMENT_HPP
#define AGENTBUS_JOURNAL_DETAIL_SEGMENT_HPP

// A segment: one <base>.log file of records and its <base>.idx sparse index, both mapped.
//
// The writer maps the segment it appends to read-write and appends by copying records into the
// mapping: a memcpy into the page cache, no system call, and the record survives the death of
// the process as soon as it is copied. fdatasync on the file descriptor flushes those pages
// (on Linux it covers pages dirtied through a shared mapping). A segment file has its full
// size (its capacity) from the start, so the size never changes while appending, but its
// blocks are allocated in steps ahead of the writer (allocate_to, allocation_ahead): the
// writer only ever writes below allocated(), so the mapping never meets a hole (no SIGBUS on a
// full disk: a failed allocation is an append's journal_error), and a journal of five events
// takes a few KiB of disk, not a whole segment. The index file is allocated along with it. The
// journal's background thread allocates and populates the pages ahead of the writer
// (populate_step), so that the append path rarely pays for either.
//
// The same object is what readers in the writer's process read from (they share the mapping,
// and synchronize with the writer through the records' length words and index_count); readers
// elsewhere map the files read-only for themselves.
//
// A sealed segment ends with a seal marker (length word 0xFFFFFFFF) right after its last
// record: "continue in the next segment". A zero length word means "no record here yet".

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "agentbus/journal/detail/file_header.hpp"
#include "agentbus/journal/detail/little_endian.hpp"
#include "agentbus/journal/detail/posix_file.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/segment_index.hpp"

namespace agentbus::detail {

/// @brief Length word of the seal marker that ends a sealed segment.
inline constexpr std::uint32_t seal_marker = 0xFFFFFFFFu;
/// @brief Bytes of the seal marker (the length word and four zero bytes).
inline constexpr std::size_t seal_bytes = 8;
/// @brief File name extensions.
inline constexpr std::string_view segment_extension = ".log";
inline constexpr std::string_view index_extension = ".idx";
/// @brief Name prefix of the temporary files of a prepared segment (recovery deletes them).
inline constexpr std::string_view prepared_prefix = "prepared-";
/// @brief Digits of a segment file name: every 64-bit offset, zero-padded so names sort.
inline constexpr std::size_t segment_name_digits = 20;

/// @brief "00000000000000000042.log" for base 42 and ".log".
inline std::string segment_file_name(std::uint64_t base, std::string_view extension) {
  std::string digits = std::to_string(base);
  std::string name(segment_name_digits - std::min(digits.size(), segment_name_digits), '0');
  name += digits;
  name += extension;
  return name;
}

/// @brief The base offset a segment or index file name encodes, if it is one.
inline std::optional<std::uint64_t> parse_segment_file_name(std::string_view name, std::string_view extension) {
  if (name.size() != segment_name_digits + extension.size() || !name.ends_with(extension)) return std::nullopt;
  std::uint64_t base = 0;
  const char* first = name.data();
  const char* last = name.data() + segment_name_digits;
  if (std::any_of(first, last, [](char c) { return c < '0' || c > '9'; })) return std::nullopt;
  const auto [ptr, ec] = std::from_chars(first, last, base);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  return base;
}

/// @brief Smallest step in which a writer's segment files are allocated (64 KiB): the first
/// allocation of a new segment, and the least it keeps allocated ahead of its last record.
inline constexpr std::uint64_t allocation_min_step = std::uint64_t{64} << 10;
/// @brief Largest step (8 MiB): beyond that much written, allocation keeps this far ahead.
inline constexpr std::uint64_t allocation_max_step = std::uint64_t{8} << 20;

/// @brief How far beyond `end` (the end of its records) a writer's segment keeps its files
/// allocated: as much as is written already (so allocation doubles), within
/// [allocation_min_step, allocation_max_step].
constexpr std::uint64_t allocation_ahead(std::uint64_t end) noexcept {
  const std::uint64_t rounded = (end + 4095) & ~std::uint64_t{4095};
  return rounded < allocation_min_step ? allocation_min_step : rounded > allocation_max_step ? allocation_max_step : rounded;
}

/// @brief One segment's mapped files, shared by the writer and in-process readers.
class segment {
 public:
  /// @brief An unopened segment of `base` in `dir`.
  segment(const std::filesystem::path& dir, std::uint64_t base)
      : base_(base),
        log_path_(dir / segment_file_name(base, segment_extension)),
        idx_path_(dir / segment_file_name(base, index_extension)) {}
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;

  /// @brief First offset of the segment (its name).
  std::uint64_t base() const noexcept { return base_; }
  /// @brief Path of the .log file.
  const std::filesystem::path& log_path() const noexcept { return log_path_; }
  /// @brief Path of the .idx file.
  const std::filesystem::path& idx_path() const noexcept { return idx_path_; }
  /// @brief The whole mapped .log file.
  std::span<const std::byte> bytes() const noexcept { return data_.bytes(); }
  /// @brief Writable pointer into the mapping (writer only).
  std::byte* writable_data() const noexcept { return data_.data(); }
  /// @brief Size of the mapped .log file.
  std::uint64_t capacity() const noexcept { return data_.size(); }
  /// @brief Whether index entry `e` can be a reader's starting point here: an offset of this
  /// segment and an 8-byte aligned position inside its data (index files are not trusted).
  bool usable_index_entry(const index_entry& e) const noexcept {
    return e.offset >= base_ && e.position >= file_header_bytes && e.position < data_.size() && (e.position & 7u) == 0;
  }
  /// @brief True for the writer's own segments (index_count is maintained).
  bool live() const noexcept { return live_; }

  /// @brief The valid index entries. Live segments publish their count; for files opened by
  /// a reader the entries are validated (and new ones a writer elsewhere added are picked up).
  index_view index() noexcept {
    if (index_.size() <= file_header_bytes) return {};
    const std::byte* entries = index_.data() + file_header_bytes;
    if (live_) return {entries, index_count.load(std::memory_order_acquire)};
    // Several in-process readers may share a sealed segment: the count is atomic, and any
    // thread's recount is as good as another's.
    const std::size_t cap = (index_.size() - file_header_bytes) / index_entry_bytes;
    const std::size_t known = reader_index_count_.load(std::memory_order_relaxed);
    const std::size_t n = count_valid_index_entries(entries, cap, known);
    if (n != known) reader_index_count_.store(n, std::memory_order_relaxed);
    return {entries, n};
  }

  /// @brief Capacity of the index, in entries.
  std::size_t index_capacity_entries() const noexcept {
    return index_.size() <= file_header_bytes ? 0 : (index_.size() - file_header_bytes) / index_entry_bytes;
  }
  /// @brief Writable pointer to index entry i (writer only).
  std::byte* index_entry_slot(std::size_t i) const noexcept {
    return index_.data() + file_header_bytes + i * index_entry_bytes;
  }

  /// @brief Maps both files read-only for a reader; false if the .log file is gone (deleted by
  /// retention). The descriptors are closed again: a mapping keeps its file alive on its own.
  bool open_for_reading() {
    unique_fd fd = open_file(log_path_, O_RDONLY, true);
    if (!fd) return false;
    data_ = mapping::map(fd.get(), file_size(fd.get(), log_path_), false, log_path_);
    unique_fd ifd = open_file(idx_path_, O_RDONLY, true);
    if (ifd) {
      const std::uint64_t n = file_size(ifd.get(), idx_path_);
      if (n > file_header_bytes) index_ = mapping::map(ifd.get(), n, false, idx_path_);
      file_header h;
      if (read_file_header(index_.bytes(), h) != header_status::ok || h.kind != file_kind::index ||
          h.base_offset != base_)
        index_.reset();  // not a usable index: readers go without
    }
    return true;
  }

  /// @brief Opens (creating if needed) both files read-write for the writer, grows them to at
  /// least the given sizes (sparsely: nothing is allocated, see allocate_to), and maps them.
  /// A file created gets `file_mode`. Nothing is known allocated yet (allocated() is 0).
  void open_for_writing(std::uint64_t min_log_bytes, std::uint64_t min_idx_bytes, unsigned file_mode) {
    live_ = true;
    log_fd_ = open_file(log_path_, O_RDWR | O_CREAT, false, file_mode);
    std::uint64_t size = file_size(log_fd_.get(), log_path_);
    // Before the pages are populated: populated pages make the whole file look like data.
    data_extent_ = data_extent_end(log_fd_.get(), size);
    size_found_ = size;
    if (size < min_log_bytes) resize_file(log_fd_.get(), size = min_log_bytes, log_path_);
    size &= ~std::uint64_t{7};  // frames are 8-byte aligned: a ragged end is unusable
    data_ = mapping::map(log_fd_.get(), size, true, log_path_);
    idx_fd_ = open_file(idx_path_, O_RDWR | O_CREAT, false, file_mode);
    std::uint64_t isize = file_size(idx_fd_.get(), idx_path_);
    index_extent_ = data_extent_end(idx_fd_.get(), isize);
    if (isize < min_idx_bytes) resize_file(idx_fd_.get(), isize = min_idx_bytes, idx_path_);
    index_ = mapping::map(idx_fd_.get(), isize, true, idx_path_);
  }

  /// @brief Creates a segment's files under temporary names (prepared-<serial>.log/.idx), at
  /// their full sizes but allocated only up to `allocate_bytes` of the .log (and the index
  /// that needs; see allocate_to), mapped but not yet populated: what the background thread
  /// keeps ready so that a roll costs two renames instead of file creation on the append
  /// path. `interval` is the index interval the segment will be adopted with. Both files get
  /// `file_mode` (journal_options::file_mode).
  static std::shared_ptr<segment> create_prepared(const std::filesystem::path& dir, std::uint64_t log_bytes,
                                                  std::uint64_t idx_bytes, std::uint64_t allocate_bytes,
                                                  std::uint32_t interval, unsigned serial, unsigned file_mode) {
    auto seg = std::make_shared<segment>(dir, std::numeric_limits<std::uint64_t>::max());
    const std::string stem = std::string(prepared_prefix) + std::to_string(serial);
    seg->log_path_ = dir / (stem + std::string(segment_extension));
    seg->idx_path_ = dir / (stem + std::string(index_extension));
    seg->live_ = true;
    seg->index_interval = interval;
    try {
      seg->log_fd_ = open_file(seg->log_path_, O_RDWR | O_CREAT | O_TRUNC, false, file_mode);
      resize_file(seg->log_fd_.get(), log_bytes, seg->log_path_);
      seg->data_ = mapping::map(seg->log_fd_.get(), log_bytes, true, seg->log_path_);
      seg->idx_fd_ = open_file(seg->idx_path_, O_RDWR | O_CREAT | O_TRUNC, false, file_mode);
      resize_file(seg->idx_fd_.get(), idx_bytes, seg->idx_path_);
      seg->index_ = mapping::map(seg->idx_fd_.get(), idx_bytes, true, seg->idx_path_);
      seg->allocate_to(allocate_bytes);
    } catch (...) {
      seg->discard_prepared();
      throw;
    }
    return seg;
  }

  /// @brief Bytes of the .log file, from its start, whose blocks are known to be allocated
  /// (the writer's segments): the writer writes below this only. The index file is allocated
  /// as far as that many bytes of records can need.
  std::uint64_t allocated() const noexcept { return allocated_.load(std::memory_order_acquire); }

  /// @brief Allocates the .log file up to `log_bytes` (rounded up to 4 KiB, at most its
  /// capacity) and the index as far as that many bytes of records can need (index_file_bytes
  /// with the segment's own interval, at most its size). Nothing when already that far.
  /// Called by the writer (under its append lock) and the background thread; throws
  /// journal_error{io} when the disk is full (allocated() is then unchanged).
  void allocate_to(std::uint64_t log_bytes) {
    std::lock_guard lock(allocation_mutex_);
    const std::uint64_t have = allocated_.load(std::memory_order_relaxed);
    const std::uint64_t target = std::min<std::uint64_t>((log_bytes + 4095) & ~std::uint64_t{4095}, data_.size());
    if (target <= have || !log_fd_) return;
    const std::uint64_t idx_target =
        std::min<std::uint64_t>(index_file_bytes(target, index_interval), index_.size());
    if (idx_target > index_allocated_ && idx_fd_) {
      allocate_range(idx_fd_.get(), index_allocated_, idx_target - index_allocated_, idx_path_);
      index_allocated_ = idx_target;
    }
    allocate_range(log_fd_.get(), have, target - have, log_path_);
    allocated_.store(target, std::memory_order_release);
  }

  /// @brief Allocates the blocks of [from, to) of the .log file (recovery, before it writes
  /// there: a seal, a header, zeros over a torn tail). Throws journal_error{io}.
  void allocate_log_range(std::uint64_t from, std::uint64_t to) {
    to = std::min<std::uint64_t>(to, data_.size());
    if (to > from && log_fd_) allocate_range(log_fd_.get(), from, to - from, log_path_);
  }

  /// @brief Allocates the blocks of [from, to) of the .idx file (recovery, before it writes
  /// there: a header, entries). Throws journal_error{io}.
  void allocate_index_range(std::uint64_t from, std::uint64_t to) {
    to = std::min<std::uint64_t>(to, index_.size());
    if (to > from && idx_fd_) allocate_range(idx_fd_.get(), from, to - from, idx_path_);
  }

  /// @brief Background thread: when less than half of allocation_ahead(at) is left allocated
  /// beyond `at`, allocates that far ahead of it (the whole segment when `whole`). `at` is
  /// the writer's end in this segment, or, for the prepared next segment, the writer's end in
  /// the active one: the next segment is allocated as far as the active one is filled, so a
  /// busy writer rolls into allocated (and populated) space while a small journal's next
  /// segment stays small. Returns true when it allocated. Throws journal_error{io} (the writer
  /// then allocates for itself when it needs to, and reports the error to its caller).
  bool allocate_ahead(std::uint64_t at, bool whole) {
    const std::uint64_t have = allocated();
    if (have >= data_.size()) return false;
    const std::uint64_t ahead = allocation_ahead(at);
    if (!whole && have >= std::min<std::uint64_t>(at + ahead / 2, data_.size())) return false;
    allocate_to(whole ? data_.size() : at + ahead);
    return true;
  }

  /// @brief Where the writer should wake the background thread for the next allocation step:
  /// once its records pass half of the allocated space ahead of them (max: nothing left to allocate).
  std::uint64_t allocation_wake_point() const noexcept {
    const std::uint64_t have = allocated();
    if (have >= data_.size()) return std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t half = allocation_ahead(end.load(std::memory_order_relaxed)) / 2;
    return have > half ? have - half : 0;
  }

  /// @brief Turns a prepared segment into the segment based at `base`: writes the file headers
  /// and renames the files to their real names.
  void adopt(std::uint64_t base, std::uint32_t interval) {
    write_file_header(data_.data(), {file_kind::segment, journal_format_version, base, 0});
    write_file_header(index_.data(), {file_kind::index, journal_format_version, base, interval});
    const std::filesystem::path dir = log_path_.parent_path();
    const std::filesystem::path log_path = dir / segment_file_name(base, segment_extension);
    const std::filesystem::path idx_path = dir / segment_file_name(base, index_extension);
    std::error_code ec;
    std::filesystem::rename(idx_path_, idx_path, ec);
    if (ec) throw_io("rename a prepared index file to", idx_path, ec.value());
    std::filesystem::rename(log_path_, log_path, ec);
    if (ec) {
      std::error_code ignored;
      std::filesystem::rename(idx_path, idx_path_, ignored);
      throw_io("rename a prepared segment file to", log_path, ec.value());
    }
    base_ = base;
    log_path_ = log_path;
    idx_path_ = idx_path;
    next_offset = base;
    last_index_pos = file_header_bytes;
    index_interval = interval;
  }

  /// @brief Deletes the files of a prepared segment that will not be used.
  void discard_prepared() noexcept {
    std::error_code ec;
    std::filesystem::remove(log_path_, ec);
    std::filesystem::remove(idx_path_, ec);
  }

  /// @brief Populates the next chunk of pages ahead of the writer (background thread only),
  /// as far as the file is allocated; false when all of that is populated.
  bool populate_step(std::size_t chunk) noexcept {
    const std::uint64_t written = end.load(std::memory_order_relaxed) & ~std::uint64_t{4095};
    const std::uint64_t limit = allocated();
    if (populated_ < written) populated_ = written;  // the writer got there first: skip ahead
    if (populated_ >= limit) return false;
    const std::uint64_t n = std::min<std::uint64_t>(chunk, limit - populated_);
    populate_pages(data_.data() + populated_, static_cast<std::size_t>(n));
    populated_ += n;
    return true;
  }

  /// @brief fdatasync of the .log and (when `with_index`) the .idx file; false if already closed.
  bool sync(bool with_index) const {
    if (!log_fd_) return false;
    datasync(log_fd_.get(), log_path_);
    if (with_index && idx_fd_) datasync(idx_fd_.get(), idx_path_);
    return true;
  }

  /// @brief Makes the `window` bytes after the writer's position writable ahead of it, as far
  /// as the file is allocated (background thread only; see populate_pages_for_write).
  /// `refresh`: a flush has write-protected the pages again, redo the whole window. Sets
  /// wake_at, the position past which the writer asks for the next window (or allocation
  /// step). False when there was nothing to do.
  bool prepare_write_window(std::size_t window, bool refresh) noexcept {
    const std::uint64_t at = end.load(std::memory_order_relaxed) & ~std::uint64_t{4095};
    const std::uint64_t limit = allocated();
    const std::uint64_t target = std::min<std::uint64_t>(at + window, limit);
    const std::uint64_t from = refresh ? at : std::max(window_done_, at);
    // Cut short by the allocation: the next allocation step (allocation_wake_point) is what
    // widens it, so that is when to wake.
    const std::uint64_t window_wake = target > at + window / 2 ? target - window / 2
                                      : target < at + window && limit < data_.size() ? allocation_wake_point()
                                                                                     : at;
    wake_at.store(std::min(window_wake, allocation_wake_point()), std::memory_order_relaxed);
    if (from >= target) return false;
    populate_pages_for_write(data_.data() + from, static_cast<std::size_t>(target - from));
    window_done_ = target;
    return true;
  }

  /// @brief Drops this process's page-table entries for the whole pages the writer has
  /// finished with (all of them once `sealed`), before their write-back: see
  /// drop_mapped_pages. Callable from any thread; readers sharing the mapping fault the
  /// pages back in, read-only.
  void drop_written_pages(bool sealed) noexcept {
    if (!live_ || data_.size() == 0) return;
    const std::uint64_t to = sealed ? data_.size() : end.load(std::memory_order_acquire) & ~std::uint64_t{4095};
    const std::uint64_t from = dropped_.load(std::memory_order_relaxed);
    if (to <= from) return;
    drop_mapped_pages(data_.data() + from, static_cast<std::size_t>(to - from));
    dropped_.store(to, std::memory_order_relaxed);  // a racing caller only drops twice: harmless
  }

  /// @brief Starts writing the .log file's dirty pages back, without waiting.
  void start_writeback() const noexcept {
    if (log_fd_) detail::start_writeback(log_fd_.get());
  }

  /// @brief Closes the descriptors (the mappings stay): for sealed segments once synced.
  void close_files() noexcept {
    log_fd_.reset();
    idx_fd_.reset();
  }

  /// @brief Replaces the index mapping with a bigger file (recovery rebuilding an index),
  /// grown sparsely: recovery allocates the slots it writes (allocate_index_slots).
  void grow_index(std::uint64_t bytes) {
    index_.reset();
    if (file_size(idx_fd_.get(), idx_path_) < bytes) resize_file(idx_fd_.get(), bytes, idx_path_);
    index_ = mapping::map(idx_fd_.get(), bytes, true, idx_path_);
  }

  /// @brief End of the .log file's data extents when open_for_writing opened it: beyond it
  /// the file held only zeros (lets recovery skip the untouched tail, allocated or sparse).
  std::uint64_t data_extent() const noexcept { return data_extent_; }
  /// @brief The same for the .idx file: beyond it, only zeros (a hole, or never written).
  /// Recovery reads no further: on tmpfs, reading a hole through a mapping allocates a page,
  /// and on a full one fails with SIGBUS.
  std::uint64_t index_data_extent() const noexcept { return index_extent_; }
  /// @brief Size of the .log file when open_for_writing found it (before growing it).
  std::uint64_t size_found() const noexcept { return size_found_; }
  /// @brief The mapped .idx file (header included).
  std::span<const std::byte> index_file_bytes_view() const noexcept { return index_.bytes(); }
  /// @brief Writable pointer to the mapped .idx file (writer only).
  std::byte* writable_index_file() const noexcept { return index_.data(); }

  /// @brief File descriptor of the .log file (writer only, -1 when closed).
  int log_fd() const noexcept { return log_fd_.get(); }

  // Writer-maintained state, published to in-process readers.
  std::atomic<std::size_t> index_count{0};   ///< valid index entries (release after writing one)
  std::atomic<std::uint64_t> end{file_header_bytes};  ///< bytes up to the end of the last record
  std::atomic<std::int64_t> max_time{std::numeric_limits<std::int64_t>::min()};  ///< newest publish time
  std::atomic<std::int64_t> first_time{0};   ///< publish time of the first record (0 if none)
  /// The writer wakes the background thread when it appends past this (write window, next
  /// allocation step).
  std::atomic<std::uint64_t> wake_at{std::numeric_limits<std::uint64_t>::max()};

  // Writer-only state (under the journal's append lock).
  std::uint64_t next_offset = 0;       ///< offset the next record here gets
  std::uint64_t last_index_pos = 0;    ///< position of the last index entry (0: none yet)
  /// Bytes between index entries: the segment's own (its index header), whatever the options
  /// of a later writer say, so that its index follows one rule from start to end.
  std::uint32_t index_interval = 4096;
  std::int64_t running_max = std::numeric_limits<std::int64_t>::min();  ///< max publish time so far

 private:
  std::uint64_t base_;
  std::uint64_t populated_ = 0;    // bytes from the start known populated (background thread only)
  std::uint64_t window_done_ = 0;  // end of the write window populated last (background thread only)
  std::atomic<std::uint64_t> dropped_{0};  // page-table entries dropped below this (drop_written_pages)
  std::mutex allocation_mutex_;             // allocate_to: the writer and the background thread
  std::atomic<std::uint64_t> allocated_{0};  // .log bytes known allocated (allocate_to)
  std::uint64_t index_allocated_ = 0;       // .idx bytes allocated by allocate_to (under allocation_mutex_)
  std::filesystem::path log_path_;
  std::filesystem::path idx_path_;
  mapping data_;
  mapping index_;
  unique_fd log_fd_;
  unique_fd idx_fd_;
  bool live_ = false;
  std::uint64_t data_extent_ = 0;
  std::uint64_t index_extent_ = 0;
  std::uint64_t size_found_ = 0;
  std::atomic<std::size_t> reader_index_count_{0};  // validated entries (reader-opened segments)
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_SEGMENT_HPP
