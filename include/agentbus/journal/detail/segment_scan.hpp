// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_SEGMENT_SCAN_HPP
#define AGENTBUS_JOURNAL_DETAIL_SEGMENT_SCAN_HPP

// Walking a segment's records to find where the good data ends: what recovery does to the
// last segment (and to the tails of sealed ones), a pure function of the bytes. The way past
// damage (find_resume_point) is shared with readers and agentbus-journal verify.
//
// From a starting point whose offset is known, frames are decoded one after the other; each
// must be intact and carry the next offset. The walk stops at a zero length word (if nothing
// but zeros follows: the clean end) or at a seal marker. At damage it looks for a way past:
//
// - the damaged frame's own length, if a valid frame with the next offset follows it;
// - otherwise every 8-byte aligned position up to the last non-zero byte, for a valid frame
//   whose offset is plausible (not below the expected one, not further above it than the
//   damaged bytes could have held records).
//
// Found: the damage sits in the middle of good data (a flipped bit, a page the disk lost):
// it is reported as a problem, recovery forces an index entry at the resume point (readers
// find their way past the damage through the index) and the walk goes on. Not found: it is a
// torn tail, the remains of the record being written when the process or machine died, and
// recovery zeroes it. Records acknowledged to a caller are never behind a torn tail: a record
// is published by its length word, written last.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentbus/journal/detail/file_header.hpp"
#include "agentbus/journal/detail/little_endian.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_index.hpp"

namespace agentbus::detail {

/// @brief Where and how to scan.
struct scan_input {
  std::span<const std::byte> data;  ///< the whole segment file
  std::uint64_t start = file_header_bytes;  ///< byte position to start at (a frame start)
  std::uint64_t expected = 0;       ///< offset of the record at `start`
  /// Bytes at or beyond this position are known to be zero (end of the file's data extents).
  std::uint64_t nonzero_limit = std::numeric_limits<std::uint64_t>::max();
  std::uint32_t index_interval = 4096;  ///< bytes between index entries
  std::uint64_t last_index_pos = file_header_bytes;  ///< position of the last index entry before start
  std::int64_t running_max = std::numeric_limits<std::int64_t>::min();  ///< max publish time before start
  std::string_view name;            ///< file name for messages
};

/// @brief What the scan found.
struct scan_output {
  std::uint64_t end = file_header_bytes;  ///< position after the last good record
  std::uint64_t next_offset = 0;          ///< offset after the last good record
  std::uint64_t records = 0;              ///< good records walked over
  std::uint64_t lost_records = 0;         ///< offsets skipped over damage in the middle
  std::int64_t first_time = 0;            ///< publish time of the first good record
  std::int64_t running_max = std::numeric_limits<std::int64_t>::min();  ///< max publish time
  bool sealed = false;                    ///< a seal marker sits at `end`
  std::uint64_t torn_begin = 0;           ///< torn tail: [torn_begin, torn_end) holds non-zero bytes
  std::uint64_t torn_end = 0;
  std::uint64_t torn_records = 0;         ///< frames counted in the torn tail (at least 1 if any)
  std::vector<index_entry> entries;       ///< index entries for the walked range
  std::vector<std::string> problems;      ///< damage found in the middle (resumed after)
};

/// @brief Position just past the last non-zero byte in [from, limit), or `from` if all zero.
inline std::uint64_t last_nonzero_end(std::span<const std::byte> data, std::uint64_t from, std::uint64_t limit) noexcept {
  limit = std::min<std::uint64_t>(limit, data.size());
  if (from >= limit) return from;
  std::uint64_t p = limit;
  while (p > from && (p & 7u) != 0) {
    if (data[p - 1] != std::byte{0}) return p;
    --p;
  }
  while (p >= from + 8) {
    if (load_le<std::uint64_t>(data.data() + p - 8) != 0) break;
    p -= 8;
  }
  while (p > from) {
    if (data[p - 1] != std::byte{0}) return p;
    --p;
  }
  return from;
}

/// @brief Where to resume after damage at `pos` (where the record with offset `expected`
/// should be): `pos` == 0 when nothing valid follows.
struct resume_point {
  std::uint64_t pos = 0;     ///< byte position of the frame to resume at (0: none)
  std::uint64_t offset = 0;  ///< its offset
};

/// @brief The rule recovery, readers and `agentbus-journal verify` share for finding their
/// way past damage at `pos`, so that all three tell the same story: the damaged frame's own
/// length, if a valid frame with the next offset follows it; otherwise the first 8-byte
/// aligned position before `limit` holding a valid frame whose offset is plausible (not below
/// `expected`, not further above it than the bytes in between could have held records).
inline resume_point find_resume_point(std::span<const std::byte> data, std::uint64_t pos, std::uint64_t expected,
                                      std::uint64_t limit) {
  const std::uint64_t size = data.size() & ~std::uint64_t{7};
  limit = std::min(limit, size);
  auto valid_at = [&](std::uint64_t q, std::uint64_t lo, std::uint64_t hi, decode_result& d) {
    if (q + min_frame_bytes > size) return false;
    const std::uint32_t len = load_le<std::uint32_t>(data.data() + q);
    if (len < record_fixed_bytes || len > max_record_body_bytes || q + frame_bytes(len) > size) return false;
    d = decode_record(data.subspan(static_cast<std::size_t>(q)));
    return d.status == decode_status::ok && d.rec.offset >= lo && d.rec.offset <= hi;
  };
  decode_result r;
  if (pos + 4 <= size) {
    const std::uint32_t len = load_le<std::uint32_t>(data.data() + pos);
    if (len >= record_fixed_bytes && len <= max_record_body_bytes &&
        valid_at(pos + frame_bytes(len), expected + 1, expected + 1, r))
      return {pos + frame_bytes(len), r.rec.offset};
  }
  for (std::uint64_t q = pos + 8; q + min_frame_bytes <= limit; q += 8)
    if (valid_at(q, expected, expected + (q - pos) / min_frame_bytes, r)) return {q, r.rec.offset};
  return {};
}

/// @brief Walks the records of a segment from `in.start` (see the file comment).
inline scan_output scan_segment(const scan_input& in) {
  scan_output out;
  const auto data = in.data;
  const std::uint64_t size = data.size() & ~std::uint64_t{7};
  std::uint64_t pos = in.start;
  std::uint64_t expected = in.expected;
  std::uint64_t last_index_pos = in.last_index_pos;
  std::int64_t running_max = in.running_max;
  bool first = true;

  auto accept = [&](const decode_result& d, std::uint64_t at, bool forced_entry) {
    running_max = std::max(running_max, d.rec.published_ns);
    if (first) out.first_time = d.rec.published_ns;
    first = false;
    if (forced_entry || at >= last_index_pos + in.index_interval) {
      out.entries.push_back({d.rec.offset, at, running_max});
      last_index_pos = at;
    }
    ++out.records;
    expected = d.rec.offset + 1;
  };
  while (pos + 4 <= size) {
    const std::uint32_t len = load_le<std::uint32_t>(data.data() + pos);
    if (len == seal_marker) {
      out.sealed = true;
      break;
    }
    decode_result d = decode_record(data.subspan(static_cast<std::size_t>(pos)));
    if (d.status == decode_status::ok && d.rec.offset == expected) {
      accept(d, pos, false);
      pos += d.size;
      continue;
    }
    const std::uint64_t nz = last_nonzero_end(data, pos, in.nonzero_limit);
    if (d.status == decode_status::end && nz == pos) break;  // the clean end
    const char* reason = d.status == decode_status::end   ? "zero length word followed by data"
                         : d.status == decode_status::ok ? "record with an unexpected offset"
                                                         : d.reason;
    // Look for a way past the damage.
    const resume_point rp = find_resume_point(data, pos, expected, nz);
    decode_result r;
    const std::uint64_t resume = rp.pos;
    if (resume != 0) r = decode_record(data.subspan(static_cast<std::size_t>(resume)));
    if (resume != 0) {
      const std::uint64_t lost = r.rec.offset - expected;
      out.problems.push_back(std::string(in.name) + ": damaged bytes " + std::to_string(pos) + ".." +
                             std::to_string(resume - 1) + " (" + reason + "); " +
                             (lost == 0 ? std::string("no record lost")
                                        : "record" + std::string(lost == 1 ? " " : "s ") + std::to_string(expected) +
                                              (lost == 1 ? "" : ".." + std::to_string(r.rec.offset - 1)) +
                                              " unreadable (readers report them as corrupt and skip them)"));
      out.lost_records += lost;
      accept(r, resume, true);
      pos = resume + r.size;
      continue;
    }
    // A torn tail: count the frames it seems to hold, zeroing is the caller's business.
    out.torn_begin = pos;
    out.torn_end = std::max(nz, pos + 1);
    for (std::uint64_t q = pos; q < out.torn_end;) {
      ++out.torn_records;
      const std::uint32_t l = q + 4 <= size ? load_le<std::uint32_t>(data.data() + q) : 0;
      if (l < record_fixed_bytes || l > max_record_body_bytes) break;
      q += frame_bytes(l);
    }
    break;
  }
  out.end = pos;
  out.next_offset = expected;
  out.running_max = running_max;
  return out;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_SEGMENT_SCAN_HPP
