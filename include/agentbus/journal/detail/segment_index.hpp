// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_SEGMENT_INDEX_HPP
#define AGENTBUS_JOURNAL_DETAIL_SEGMENT_INDEX_HPP

// The sparse index of a segment (<base>.idx): after the 64-byte file header, fixed 32-byte
// entries, one each time the records have advanced index_interval_bytes since the last one:
//
//   +0 u64 offset     a record's offset
//   +8 u64 position   its byte position in the segment file
//   +16 i64 max_time  the largest publish time of the segment's records up to this one
//   +24 u32 reserved  (0)
//   +28 u32 crc32c    of bytes 0..27 (an all-zero or torn entry is invalid: the end)
//
// Offsets and positions increase from entry to entry, and so does max_time, which is why it is
// a running maximum rather than the record's own time: publish times need not be monotonic
// (concurrent publishers), yet "the last entry whose max_time < t" is then a safe place to
// start looking for the first record published at or after t.
//
// Readers use it to seek to an offset or a time, and to resume after a damaged record.
// It is an accelerator, never the truth: every position it gives is checked by decoding the
// record there, and recovery rebuilds what it cannot trust (recovery_report::index_repairs;
// `agentbus-journal verify` reports the same damage as warnings, exit status 3 when alone).
// The interval is the segment's own, in the index's file header: a writer reopening with
// another index_interval_bytes keeps it for the existing segments (their indexes follow one
// rule from start to end, which is what lets verify tell a missing entry) and uses the new
// one for segments it creates. The file is sized from its segment (index_file_bytes of the
// segment's size), never from the options of a later writer. The format is unchanged by
// this (version 1): files written before these rules open as they are.

#include <cstddef>
#include <cstdint>
#include <limits>

#include "agentbus/journal/detail/crc32c.hpp"
#include "agentbus/journal/detail/file_header.hpp"
#include "agentbus/journal/detail/little_endian.hpp"
#include "agentbus/journal/detail/record_format.hpp"

namespace agentbus::detail {

/// @brief Bytes of one index entry.
inline constexpr std::size_t index_entry_bytes = 32;
/// @brief Room kept for entries recovery adds where it resumes after damaged bytes.
inline constexpr std::size_t index_spare_entries = 64;

/// @brief One decoded index entry.
struct index_entry {
  std::uint64_t offset = 0;    ///< record offset
  std::uint64_t position = 0;  ///< byte position of that record in the segment file
  std::int64_t max_time = std::numeric_limits<std::int64_t>::min();  ///< running max publish time
};

/// @brief Encodes `e` at `out` (32 bytes); the CRC goes last.
inline void write_index_entry(std::byte* out, const index_entry& e) noexcept {
  store_le<std::uint64_t>(out, e.offset);
  store_le<std::uint64_t>(out + 8, e.position);
  store_le<std::int64_t>(out + 16, e.max_time);
  store_le<std::uint32_t>(out + 24, 0);
  store_le<std::uint32_t>(out + 28, crc32c({out, 28}));
}

/// @brief Decodes the entry at `in`; false when it is invalid (never written, torn, damaged).
inline bool read_index_entry(const std::byte* in, index_entry& e) noexcept {
  if (crc32c({in, 28}) != load_le<std::uint32_t>(in + 28)) return false;
  e.offset = load_le<std::uint64_t>(in);
  e.position = load_le<std::uint64_t>(in + 8);
  e.max_time = load_le<std::int64_t>(in + 16);
  return true;
}

/// @brief Index entries a segment of `segment_bytes` can need with `interval` bytes between them.
constexpr std::uint64_t index_capacity(std::uint64_t segment_bytes, std::uint64_t interval) noexcept {
  const std::uint64_t step = interval < min_frame_bytes ? min_frame_bytes : interval;
  return segment_bytes / step + 2 + index_spare_entries;
}

/// @brief Size of the index file for a segment of `segment_bytes` (rounded up to 4 KiB).
constexpr std::uint64_t index_file_bytes(std::uint64_t segment_bytes, std::uint64_t interval) noexcept {
  const std::uint64_t raw = file_header_bytes + index_capacity(segment_bytes, interval) * index_entry_bytes;
  return (raw + 4095) & ~std::uint64_t{4095};
}

/// @brief The first `count` entries of an index file (all known valid), with binary searches.
struct index_view {
  const std::byte* entries = nullptr;  ///< first entry (right after the file header)
  std::size_t count = 0;               ///< valid entries

  /// @brief Entry i (i < count).
  index_entry at(std::size_t i) const noexcept {
    index_entry e;
    const std::byte* p = entries + i * index_entry_bytes;
    e.offset = load_le<std::uint64_t>(p);
    e.position = load_le<std::uint64_t>(p + 8);
    e.max_time = load_le<std::int64_t>(p + 16);
    return e;
  }

  /// @brief Index of the last entry with offset <= `offset`, or count if none.
  std::size_t last_at_or_before(std::uint64_t offset) const noexcept {
    std::size_t lo = 0, hi = count;  // first entry with offset > target
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (at(mid).offset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo == 0 ? count : lo - 1;
  }

  /// @brief Index of the first entry with position > `position`, or count if none.
  std::size_t first_after_position(std::uint64_t position) const noexcept {
    std::size_t lo = 0, hi = count;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (at(mid).position <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /// @brief Index of the last entry whose max_time < `t`, or count if none.
  std::size_t last_before_time(std::int64_t t) const noexcept {
    std::size_t lo = 0, hi = count;  // first entry with max_time >= t
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (at(mid).max_time < t) lo = mid + 1;
      else hi = mid;
    }
    return lo == 0 ? count : lo - 1;
  }
};

/// @brief Counts the valid entries at the start of an index file's entry area `entries`
/// (capacity entries), stopping at the first invalid one or one that does not increase.
inline std::size_t count_valid_index_entries(const std::byte* entries, std::size_t capacity,
                                             std::size_t known = 0) noexcept {
  std::size_t n = known;
  index_entry prev{}, e{};
  if (n > 0) prev = index_view{entries, n}.at(n - 1);
  for (; n < capacity; ++n) {
    if (!read_index_entry(entries + n * index_entry_bytes, e)) break;
    if (n > 0 && (e.offset <= prev.offset || e.position <= prev.position || e.max_time < prev.max_time)) break;
    prev = e;
  }
  return n;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_SEGMENT_INDEX_HPP
