// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_SEGMENT_CATALOG_HPP
#define AGENTBUS_JOURNAL_DETAIL_SEGMENT_CATALOG_HPP

// Where a reader gets its segments from. Two sources:
//
// - the writer's catalog (journal_core), for readers created by journal::read(): segments
//   come from memory, the one being written is the writer's own mapping;
// - a journal directory (directory_source), for open_journal_reader(): no lock, no writer
//   needed; it lists the directory when it has to move to another segment and maps files
//   read-only. A writer in another process may be appending meanwhile.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <vector>

#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_index.hpp"

namespace agentbus::detail {

/// @brief What the catalog knows about one retained segment without opening it.
struct segment_entry {
  std::uint64_t base = 0;      ///< first offset
  std::uint64_t bytes = 0;     ///< bytes used (header, records, seal) once sealed
  std::int64_t first_time = 0;  ///< publish time of its first record
  std::int64_t max_time = std::numeric_limits<std::int64_t>::min();  ///< newest publish time in it
  std::shared_ptr<segment> pinned;  ///< the segment being written (always open)
  std::weak_ptr<segment> cached;    ///< a sealed segment some reader has open, to share it
};

/// @brief The result of looking a segment up for an offset.
struct segment_lookup {
  std::shared_ptr<segment> seg;   ///< the last segment with base <= offset (null if none)
  bool deleted = false;           ///< the offset is older than everything retained
  std::uint64_t first_offset = 0;  ///< oldest retained offset
};

/// @brief A provider of segments for readers.
class segment_source {
 public:
  virtual ~segment_source() = default;
  /// @brief Oldest retained offset as far as cheaply known (0 when it is not).
  virtual std::uint64_t first_offset() const noexcept = 0;
  /// @brief The segment that holds `offset`.
  virtual segment_lookup segment_for(std::uint64_t offset) = 0;
  /// @brief The first segment after the one based at `base`, or null (not there yet).
  virtual std::shared_ptr<segment> segment_after(std::uint64_t base) = 0;
  /// @brief Whether the segment based at `base` is still retained.
  virtual bool retained(std::uint64_t base) = 0;
};

/// @brief Base offsets of the segment files in `dir`, sorted.
inline std::vector<std::uint64_t> list_segment_bases(const std::filesystem::path& dir) {
  std::vector<std::uint64_t> bases;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (auto base = parse_segment_file_name(it->path().filename().native(), segment_extension)) bases.push_back(*base);
  std::sort(bases.begin(), bases.end());
  return bases;
}

/// @brief Newest publish time in a segment opened for reading (min() when it has no record):
/// its last index entry's running maximum, raised by the records after that entry (about an
/// index interval of them), decoded up to the end, a seal or damage.
inline std::int64_t newest_publish_time(segment& seg) {
  std::int64_t newest = std::numeric_limits<std::int64_t>::min();
  const auto data = seg.bytes();
  std::uint64_t pos = file_header_bytes;
  std::uint64_t expected = seg.base();
  const index_view idx = seg.index();
  if (idx.count > 0) {
    const index_entry e = idx.at(idx.count - 1);
    if (seg.usable_index_entry(e)) {
      pos = e.position;
      expected = e.offset;
      newest = e.max_time;
    }
  }
  while (pos + min_frame_bytes <= data.size()) {
    const decode_result d = decode_record(data.subspan(static_cast<std::size_t>(pos)));
    if (d.status != decode_status::ok || d.rec.offset != expected) break;
    newest = std::max(newest, d.rec.published_ns);
    pos += d.size;
    ++expected;
  }
  return newest;
}

/// @brief Segments straight from a journal directory (open_journal_reader).
class directory_source final : public segment_source {
 public:
  /// @brief Reads the journal in `dir`.
  explicit directory_source(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::uint64_t first_offset() const noexcept override { return 0; }

  segment_lookup segment_for(std::uint64_t offset) override {
    segment_lookup r;
    // Retention may delete a segment between the listing and the opening: list again then.
    for (int attempt = 0; attempt < 8; ++attempt) {
      const auto bases = list_segment_bases(dir_);
      if (bases.empty()) return r;
      r.first_offset = bases.front();
      if (offset < bases.front()) {
        r.deleted = true;
        return r;
      }
      const auto it = std::upper_bound(bases.begin(), bases.end(), offset) - 1;
      auto seg = std::make_shared<segment>(dir_, *it);
      if (seg->open_for_reading()) {
        r.seg = std::move(seg);
        return r;
      }
    }
    return r;
  }

  std::shared_ptr<segment> segment_after(std::uint64_t base) override {
    for (int attempt = 0; attempt < 8; ++attempt) {
      const auto bases = list_segment_bases(dir_);
      const auto it = std::upper_bound(bases.begin(), bases.end(), base);
      if (it == bases.end()) return nullptr;
      auto seg = std::make_shared<segment>(dir_, *it);
      if (seg->open_for_reading()) return seg;
    }
    return nullptr;
  }

  bool retained(std::uint64_t base) override {
    std::error_code ec;
    return std::filesystem::exists(dir_ / segment_file_name(base, segment_extension), ec);
  }

  /// @brief Where a reader of the records published at or after `t_ns` starts: the base of
  /// the first segment whose newest record reaches `t_ns` (journal_core's answer, without
  /// its in-memory catalog), else of the last segment (the reader's index seek then lands
  /// near its end); nullopt when there is no segment.
  std::optional<std::uint64_t> start_for_time(std::int64_t t_ns) {
    const auto bases = list_segment_bases(dir_);
    for (std::uint64_t base : bases) {
      segment seg(dir_, base);
      if (!seg.open_for_reading()) continue;  // deleted by retention since the listing
      if (newest_publish_time(seg) >= t_ns) return base;
    }
    if (bases.empty()) return std::nullopt;
    return bases.back();
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_SEGMENT_CATALOG_HPP
