// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_RECOVERY_HPP
#define AGENTBUS_JOURNAL_DETAIL_RECOVERY_HPP

// Opening a journal directory as its writer: find the segments, check them, repair what a
// crash can leave behind, and say what was found.
//
// - Leftovers of an interrupted roll (prepared-* files) and index files of deleted segments are
//   deleted. An index file newer than every segment is evidence, read before it is deleted:
//   its segment was deleted from outside (or its directory entry lost with the power), and
//   appends continue past every offset it may have held (as for a cut, below). One case is
//   left alone: an index with no entries right after an unsealed last segment is a roll
//   interrupted between its two renames (segment::adopt), in which nothing was written.
// - The last segment is walked record by record (segment_scan.hpp). A torn tail is zeroed
//   (the bytes and frames are counted in the report); damage with good records after it is
//   reported and left for readers to skip; its index is rebuilt from the walk.
// - A sealed segment is checked cheaply: its header, its first record, its index entries
//   from the last one that points at a valid record, and its tail from there to the seal;
//   a missing seal is written. verify_on_open walks all of it instead. Offsets must continue
//   from one segment to the next; gaps are reported.
// - Segments are never resized or re-indexed with today's options: an index keeps the
//   interval in its header and is sized from its own segment file; the active segment keeps
//   its size too (it rolls when full, into segments of today's segment_bytes), so reopening
//   needs no disk space. Opening leaves a sealed segment's files byte for byte as they were,
//   unless something in them needs repair.
// - A missing or damaged index (bad header, a damaged entry, entries that name no record) is
//   rebuilt from the records and reported in recovery_report::index_repairs, a class apart
//   from record damage (problems): the index is an accelerator, no record is lost with it.
// - The index is also evidence: when the active segment's index names records beyond the end
//   of its data (the file was shortened or overwritten from outside), they are reported lost
//   (problems, truncated_records) and appends continue, in a new segment, past every offset
//   that may have been acknowledged: past the last entry's offset plus the most records that
//   can follow an entry (max_records_after_index_entry). Offsets are never used twice.
//
// - Segment files are sparse beyond what their writer allocated (segment::allocate_to): a
//   repair allocates the bytes it writes first (a full disk is then journal_error{io}, never a
//   SIGBUS), and a new segment (a fresh journal's, a successor) gets `first_allocation` bytes.
//
// Every repair is flushed before the journal accepts appends.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "agentbus/journal/detail/file_header.hpp"
#include "agentbus/journal/options.hpp"
#include "agentbus/journal/detail/posix_file.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_catalog.hpp"
#include "agentbus/journal/detail/segment_index.hpp"
#include "agentbus/journal/detail/segment_scan.hpp"

namespace agentbus::detail {

/// @brief The state recovery hands to the writer.
struct recovered_journal {
  std::vector<segment_entry> catalog;  ///< every retained segment, oldest first; the last is pinned
  recovery_report report;              ///< what was found and repaired
};

/// @brief The index slots of `seg` that may hold something: those below the end of the data
/// its .idx file held when opened (beyond, a hole; see segment::index_data_extent).
inline std::size_t index_slots_with_data(const segment& seg) noexcept {
  const std::uint64_t extent = seg.index_data_extent();
  const std::size_t slots =
      extent <= file_header_bytes ? 0 : static_cast<std::size_t>((extent - file_header_bytes + index_entry_bytes - 1) / index_entry_bytes);
  return std::min(slots, seg.index_capacity_entries());
}

/// @brief Writes a segment's index from `kept` existing entries plus `added`, growing the file
/// if needed and clearing whatever stale entries follow (a reader must never pick them up).
/// Only slots whose bytes differ are written, so an index that was right is left untouched
/// (a sealed segment's files do not change on reopen). The size of a grown file comes from the
/// segment itself (its mapped size and its own interval), never from today's options.
/// Returns true when anything in the file changed.
inline bool rewrite_index(segment& seg, std::size_t kept, const std::vector<index_entry>& added,
                          std::uint64_t interval) {
  bool changed = false;
  const std::size_t needed = kept + added.size();
  if (needed + index_spare_entries > seg.index_capacity_entries()) {
    seg.grow_index(std::max<std::uint64_t>(index_file_bytes(seg.capacity(), interval),
                                           (file_header_bytes + (needed + 2 * index_spare_entries) * index_entry_bytes + 4095) &
                                               ~std::uint64_t{4095}));
    changed = true;
  }
  std::array<std::byte, index_entry_bytes> entry{};
  bool allocated = false;  // the slots written, allocated first (the file may be sparse there)
  for (std::size_t i = 0; i < added.size(); ++i) {
    write_index_entry(entry.data(), added[i]);
    std::byte* slot = seg.index_entry_slot(kept + i);
    if (std::memcmp(slot, entry.data(), index_entry_bytes) != 0) {
      if (!allocated)
        seg.allocate_index_range(file_header_bytes + (kept + i) * index_entry_bytes,
                                 file_header_bytes + needed * index_entry_bytes);
      allocated = true;
      std::memcpy(slot, entry.data(), index_entry_bytes);
      changed = true;
    }
  }
  // Stale entries can only be where the file held data when it was opened (beyond, a hole:
  // zeros, not read, see segment::index_data_extent).
  const std::size_t cap = index_slots_with_data(seg);
  for (std::size_t i = needed; i < cap; ++i) {
    std::byte* slot = seg.index_entry_slot(i);
    bool zero = true;
    for (std::size_t k = 0; k < index_entry_bytes && zero; ++k) zero = slot[k] == std::byte{0};
    if (!zero) {
      std::memset(slot, 0, index_entry_bytes);
      changed = true;
    }
  }
  seg.index_count.store(needed, std::memory_order_release);
  return changed;
}

/// @brief The first index slot at or after `from` that is not all zero, or SIZE_MAX.
inline std::size_t first_nonzero_index_slot(const segment& seg, std::size_t from) noexcept {
  for (std::size_t k = from; k < index_slots_with_data(seg); ++k) {
    const std::byte* slot = seg.index_entry_slot(k);
    for (std::size_t b = 0; b < index_entry_bytes; ++b)
      if (slot[b] != std::byte{0}) return k;
  }
  return SIZE_MAX;
}

/// @brief The most records that can follow the last index entry of a segment written with
/// `interval`: the writer adds an entry to the first record that starts `interval` bytes or
/// more after the previous entry, and every frame takes at least min_frame_bytes; one more for
/// a record whose entry a crash kept from being written (it was never acknowledged).
constexpr std::uint64_t max_records_after_index_entry(std::uint64_t interval) noexcept {
  return (interval == 0 ? 0 : (interval - 1) / min_frame_bytes) + 1;
}

/// @brief What an index file whose segment file is gone says about that segment: its base
/// (from the file name), the interval it was written with (0 when its header is damaged) and
/// its last valid entry.
struct orphan_index {
  std::uint64_t base = 0;
  std::uint64_t interval = 0;
  std::optional<index_entry> last_entry;
};

/// @brief Reads the orphaned index `path` of the segment based at `base` (read, not mapped: it
/// may be sparse, see read_at).
inline orphan_index read_orphan_index(const std::filesystem::path& path, std::uint64_t base) {
  orphan_index out;
  out.base = base;
  unique_fd fd = open_file(path, O_RDONLY, true);
  if (!fd) return out;
  std::vector<std::byte> bytes(static_cast<std::size_t>(data_extent_end(fd.get(), file_size(fd.get(), path))));
  bytes.resize(read_at(fd.get(), bytes, 0, path));
  file_header h;
  if (read_file_header(bytes, h) != header_status::ok || h.kind != file_kind::index || h.base_offset != base ||
      h.parameter < 1 || h.parameter > std::numeric_limits<std::uint32_t>::max())
    return out;
  out.interval = h.parameter;
  const std::byte* entries = bytes.data() + file_header_bytes;
  const std::size_t n = count_valid_index_entries(entries, (bytes.size() - file_header_bytes) / index_entry_bytes);
  if (n > 0) out.last_entry = index_view{entries, n}.at(n - 1);
  return out;
}

/// @brief True when `gone`, an index newer than every segment, is what a roll killed between
/// its two renames leaves (segment::adopt renames the index first, and the old segment is
/// sealed after both): no entries, named for the offset after the last segment's records,
/// and that segment unsealed. Nothing was written to it. Anything else: a deleted segment.
inline bool is_interrupted_roll(const orphan_index& gone, std::uint64_t next_offset, bool last_sealed) noexcept {
  return !gone.last_entry && gone.base == next_offset && !last_sealed;
}

/// @brief Where appends continue so that no offset `gone` may have held is used again, and
/// how many of its records are known to be lost (those up to its last entry, from `from`,
/// where the surviving records end). `fallback_interval` when its own interval is unknown.
struct orphan_loss {
  std::uint64_t continue_at = 0;
  std::uint64_t known_lost = 0;
};
inline orphan_loss loss_from_orphan(const orphan_index& gone, std::uint64_t from, std::uint64_t fallback_interval) {
  const std::uint64_t known_end = gone.last_entry ? gone.last_entry->offset + 1 : gone.base;
  const std::uint64_t after = gone.last_entry ? gone.last_entry->offset + 1 : gone.base + 1;
  return {std::max(after + max_records_after_index_entry(gone.interval != 0 ? gone.interval : fallback_interval),
                   from),
          known_end > from ? known_end - from : 0};
}

/// @brief The problem text for the deleted segment `gone`.
inline std::string orphan_loss_text(const orphan_index& gone, std::uint64_t from, const orphan_loss& l) {
  std::string t = segment_file_name(gone.base, segment_extension) + " is missing but its index " +
                  segment_file_name(gone.base, index_extension) +
                  " remains (the segment was deleted outside the journal, or its directory entry was lost with the "
                  "power)";
  if (l.known_lost > 0)
    t += ": record" + std::string(l.known_lost == 1 ? " " : "s ") + std::to_string(from) +
         (l.known_lost == 1 ? "" : ".." + std::to_string(from + l.known_lost - 1)) +
         (l.known_lost == 1 ? " is" : " are") + " lost";
  const std::uint64_t maybe = l.continue_at - from - l.known_lost;
  if (maybe > 0 && l.known_lost > 0)
    t += ", and up to " + std::to_string(maybe) + " after them may be";
  else if (maybe > 0)
    t += ": up to " + std::to_string(maybe) + " records from offset " + std::to_string(from) + " on may be lost";
  return t;
}

/// @brief Recovers the journal in `dir` (see the file comment). `segment_bytes` is the
/// normalized option; `first_allocation` the bytes allocated in a segment recovery creates.
/// Throws journal_error on I/O failure or a segment of a newer format.
inline recovered_journal recover_journal(const std::filesystem::path& dir, std::uint64_t segment_bytes,
                                         std::uint32_t interval, bool verify_all, unsigned file_mode,
                                         std::uint64_t first_allocation) {
  recovered_journal out;
  auto& report = out.report;
  std::error_code ec;

  // Leftovers: prepared files of a roll that never happened, indexes of deleted segments. The
  // indexes newer than every segment are kept until the offsets they vouch for are on record.
  std::vector<std::uint64_t> bases = list_segment_bases(dir);
  std::vector<std::filesystem::path> evidence_files;
  std::optional<orphan_index> newest_orphan;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().native();
    if (name.starts_with(prepared_prefix)) {
      std::filesystem::remove(it->path(), ec);
      continue;
    }
    const auto base = parse_segment_file_name(name, index_extension);
    if (!base || std::filesystem::exists(dir / segment_file_name(*base, segment_extension))) continue;
    if (!bases.empty() && *base <= bases.back()) {
      std::filesystem::remove(it->path(), ec);  // an older segment's (retention deletes the .log first)
      continue;
    }
    evidence_files.push_back(it->path());
    if (!newest_orphan || *base > newest_orphan->base) newest_orphan = read_orphan_index(it->path(), *base);
  }
  auto clear_evidence = [&] {
    for (const auto& p : evidence_files) std::filesystem::remove(p, ec);
  };
  const std::uint64_t idx_bytes = index_file_bytes(segment_bytes, interval);
  if (bases.empty()) {
    // A new journal: segment 0 (or, when only an index is left of the last segment, past what it
    // may have held), created under a temporary name so that no reader ever sees a half-made file.
    std::uint64_t first = 0;
    if (newest_orphan) {
      const orphan_loss l = loss_from_orphan(*newest_orphan, 0, interval);
      first = l.continue_at;
      report.truncated_records += l.known_lost;
      report.problems.push_back(orphan_loss_text(*newest_orphan, 0, l) + "; appends continue at offset " +
                                std::to_string(first) + ", so that no acknowledged offset is used twice");
    }
    auto seg = segment::create_prepared(dir, segment_bytes, idx_bytes, first_allocation, interval, 0, file_mode);
    try {
      seg->adopt(first, interval);
    } catch (...) {
      seg->discard_prepared();
      throw;
    }
    seg->sync(true);
    sync_directory(dir);
    clear_evidence();
    segment_entry e;
    e.base = first;
    e.pinned = std::move(seg);
    out.catalog.push_back(std::move(e));
    report.segments = 1;
    return out;
  }

  report.segments = bases.size();
  for (std::size_t i = 0; i < bases.size(); ++i) {
    const std::uint64_t base = bases[i];
    const bool last = i + 1 == bases.size();
    auto seg = std::make_shared<segment>(dir, base);
    const std::string name = seg->log_path().filename().string();
    const std::string idx_name = seg->idx_path().filename().string();
    // Every segment keeps its size, the active one too (it rolls when full, into segments of
    // today's segment_bytes): reopening needs no disk space. Only an active segment of a size
    // no writer makes (missing, ragged: cut from outside) is grown to today's size.
    std::error_code size_ec;
    const std::uint64_t size_now = std::filesystem::file_size(seg->log_path(), size_ec);
    const bool whole = !size_ec && size_now >= 4096 && size_now % 4096 == 0;
    seg->open_for_writing(last && !whole ? segment_bytes : 0, 0, file_mode);
    std::byte* data = seg->writable_data();
    bool modified = false;

    // Headers.
    file_header h;
    switch (read_file_header(seg->bytes(), h)) {
      case header_status::newer_version:
        throw journal_error(journal_error::code::corrupt,
                            "agentbus journal: segment '" + seg->log_path().string() + "' has format version " +
                                std::to_string(h.version) + ", newer than this build understands (" +
                                std::to_string(journal_format_version) +
                                "): open the journal with the agentbus version that wrote it");
      case header_status::ok:
        if (h.kind == file_kind::segment && h.base_offset == base) break;
        [[fallthrough]];
      case header_status::bad:
        report.problems.push_back(name + ": damaged file header (rewritten; its records are checked one by one)");
        [[fallthrough]];
      case header_status::zero:
        if (seg->capacity() < file_header_bytes)
          throw journal_error(journal_error::code::corrupt,
                              "agentbus journal: segment '" + seg->log_path().string() +
                                  "' is too short to be a segment: move it out of the directory");
        seg->allocate_log_range(0, file_header_bytes);
        write_file_header(data, {file_kind::segment, journal_format_version, base, 0});
        modified = true;
        break;
    }

    // The index. Its interval is the segment's own (recorded in its header when the segment
    // was created): the segment keeps it, whatever today's options say (they apply to the
    // segments created from now on).
    file_header ih;
    const auto ihs = read_file_header(seg->index_file_bytes_view(), ih);
    const bool index_header_ok = ihs == header_status::ok && ih.kind == file_kind::index && ih.base_offset == base &&
                                 ih.parameter >= 1 && ih.parameter <= std::numeric_limits<std::uint32_t>::max();
    const std::uint64_t written_interval = index_header_ok ? ih.parameter : interval;
    const std::uint32_t seg_interval = static_cast<std::uint32_t>(written_interval);
    std::size_t valid_entries = 0;
    std::string index_damage;  // why the index is rebuilt (empty: it was fine)
    if (index_header_ok) {
      valid_entries = count_valid_index_entries(seg->index_entry_slot(0), index_slots_with_data(*seg));
      const std::size_t junk = first_nonzero_index_slot(*seg, valid_entries);
      // The active segment's entry right after the valid ones may be torn by a crash (the
      // writer died while writing it): harmless and cleared. Anything else is damage.
      const bool torn_entry = last && junk == valid_entries && first_nonzero_index_slot(*seg, junk + 1) == SIZE_MAX;
      if (junk != SIZE_MAX && !torn_entry)
        index_damage = "damaged or out-of-order entry " + std::to_string(junk) + " (the entries after it were unusable)";
    } else {
      index_damage = seg->index_file_bytes_view().size() < file_header_bytes ? "missing or shorter than its header"
                     : ihs == header_status::newer_version                  ? "of a newer format than this build"
                                                                            : "damaged file header";
    }
    // Evidence of what the segment held, read before anything is rewritten: the last entry.
    std::optional<index_entry> last_entry;
    if (valid_entries > 0) last_entry = index_view{seg->index_entry_slot(0), valid_entries}.at(valid_entries - 1);
    // Room for a rebuilt index, sized from the segment itself.
    const std::uint64_t own_idx_bytes = index_file_bytes(seg->capacity(), seg_interval);
    if (!index_header_ok || (last && seg->index_file_bytes_view().size() < own_idx_bytes)) {
      if (seg->index_file_bytes_view().size() < own_idx_bytes) seg->grow_index(own_idx_bytes);
    }
    if (!index_header_ok || ih.parameter != seg_interval) {
      seg->allocate_index_range(0, file_header_bytes);
      write_file_header(seg->writable_index_file(), {file_kind::index, journal_format_version, base, seg_interval});
      if (!index_header_ok) valid_entries = 0;
      modified = true;
    }

    // Where to start walking: the whole last segment; a sealed one from its last index entry
    // that points at the record it names.
    scan_input in;
    in.data = seg->bytes();
    in.expected = base;
    in.index_interval = seg_interval;
    in.name = name;
    in.nonzero_limit = seg->data_extent();
    std::size_t kept = 0;
    std::int64_t first_time = 0;
    if (!last && !verify_all) {
      const index_view idx{seg->index_entry_slot(0), valid_entries};
      for (std::size_t j = valid_entries; j-- > 0;) {
        const index_entry e = idx.at(j);
        if (e.position < file_header_bytes || e.position >= seg->capacity() || e.offset < base) continue;
        const decode_result d = decode_record(seg->bytes().subspan(static_cast<std::size_t>(e.position)));
        if (d.status == decode_status::ok && d.rec.offset == e.offset) {
          in.start = e.position;
          in.expected = e.offset;
          in.last_index_pos = e.position;
          in.running_max = e.max_time;
          kept = j + 1;
          break;
        }
      }
      if (in.start != file_header_bytes) {  // the first record is not walked over: check it
        const decode_result d = decode_record(seg->bytes().subspan(file_header_bytes));
        if (d.status == decode_status::ok && d.rec.offset == base)
          first_time = d.rec.published_ns;
        else
          report.problems.push_back(name + ": damaged first record (offset " + std::to_string(base) +
                                    "): readers report it as corrupt and skip it");
      }
    }
    scan_output s = scan_segment(in);
    if (in.start == file_header_bytes) first_time = s.first_time;
    for (auto& p : s.problems) report.problems.push_back(std::move(p));

    // The last segment shorter than what its index describes: a file cut or overwritten from
    // outside (a crash cannot do this: an entry is written after its record). The records the
    // index names beyond the data are lost, and so may be a few after the last entry; their
    // offsets may have been acknowledged, so appends go on past them, in a segment of their
    // own (the gap is then on record: every later recovery and reader reports it).
    std::uint64_t continue_at = s.next_offset;
    std::shared_ptr<segment> successor;
    std::string loss;  // the problem message, when the segment was cut
    if (last && last_entry && last_entry->offset >= s.next_offset && last_entry->position >= s.end &&
        last_entry->offset - s.next_offset <= (last_entry->position - s.end) / min_frame_bytes + 1) {
      const std::uint64_t lost = last_entry->offset + 1 - s.next_offset;
      // How many records may have followed the last entry's: at most what fits before the
      // next entry would have been due; and when the file still reaches that far and still
      // holds data there (it was cut, not overwritten with zeros), at most what fits in its
      // non-zero bytes after the entry's record.
      const std::uint64_t p = last_entry->position;
      std::uint64_t more = max_records_after_index_entry(written_interval);
      const std::uint64_t data_end = std::max(s.end, s.torn_end);
      if (seg->size_found() >= p + written_interval && data_end > p) {
        const std::uint64_t fit =
            data_end > p + min_frame_bytes ? (data_end - p - min_frame_bytes + min_frame_bytes - 1) / min_frame_bytes : 0;
        more = std::min(more, fit);
      }
      continue_at = last_entry->offset + 1 + more;
      report.truncated_records += lost;
      loss = name + ": its index lists offset " + std::to_string(last_entry->offset) + " at byte " +
             std::to_string(last_entry->position) + ", but its records end at byte " + std::to_string(s.end) +
             " (the file was shortened or overwritten outside the journal): record" + (lost == 1 ? " " : "s ") +
             std::to_string(s.next_offset) + (lost == 1 ? "" : ".." + std::to_string(last_entry->offset)) +
             (lost == 1 ? " is" : " are") + " lost" +
             (more == 0 ? std::string() : ", and up to " + std::to_string(more) + " after it may be");
    } else if (last && seg->size_found() >= file_header_bytes && seg->size_found() % 4096 != 0) {
      // No entry beyond the data, but a file of a ragged size: only a cut makes one (segments
      // are created in whole 4 KiB pages). When the data reaches the cut, records may have
      // followed it: as many as can follow the last entry (or the start of the segment).
      const std::uint64_t found = seg->size_found();
      const std::uint32_t len = s.end + 4 <= seg->capacity() ? load_le<std::uint32_t>(data + s.end) : 0;
      const bool runs_past = len >= record_fixed_bytes && len <= max_record_body_bytes && s.end + frame_bytes(len) > found;
      if (runs_past || s.end + min_frame_bytes > (found & ~std::uint64_t{7})) {
        const std::uint64_t from = last_entry ? last_entry->offset + 1 : base + 1;
        continue_at = std::max(s.next_offset + (runs_past ? 1 : 0), from + max_records_after_index_entry(written_interval));
        const std::uint64_t lost = runs_past ? 1 : 0;
        report.truncated_records += lost;
        loss = name + ": the file was cut to " + std::to_string(found) +
               " bytes outside the journal (segments are whole 4 KiB pages)" +
               (runs_past ? ": record " + std::to_string(s.next_offset) + ", which ran past the cut, is lost"
                          : std::string()) +
               (continue_at > s.next_offset + lost
                    ? ", and up to " + std::to_string(continue_at - s.next_offset - lost) + " after it may be"
                    : std::string());
      }
    }
    // A newer segment that is gone but for its index (see the file comment for the one case
    // that is no loss: a roll interrupted between its renames).
    if (last && newest_orphan && (!loss.empty() || !is_interrupted_roll(*newest_orphan, s.next_offset, s.sealed))) {
      const orphan_loss l = loss_from_orphan(*newest_orphan, s.next_offset, written_interval);
      report.truncated_records += l.known_lost;
      loss += (loss.empty() ? "" : "; ") + orphan_loss_text(*newest_orphan, s.next_offset, l);
      continue_at = std::max(continue_at, l.continue_at);
    }
    if (!loss.empty() && continue_at == s.next_offset) report.problems.push_back(loss + "; nothing else was lost");
    if (continue_at > s.next_offset) {
      report.problems.push_back(loss + "; appends continue at offset " + std::to_string(continue_at) +
                                " in a new segment, so that no acknowledged offset is used twice");
      successor = segment::create_prepared(dir, segment_bytes, index_file_bytes(segment_bytes, interval),
                                           first_allocation, interval, 0, file_mode);
      try {
        successor->adopt(continue_at, interval);
      } catch (...) {
        successor->discard_prepared();
        throw;
      }
      successor->sync(true);
      sync_directory(dir);  // the gap is on record before the evidence is cleared below
      ++report.segments;
    }
    if (last) clear_evidence();
    const bool sealed_now = !last || successor;

    if (index_damage.empty() && seg->index_file_bytes_view().size() % 4096 != 0)
      index_damage = "shortened (" + std::to_string(seg->index_file_bytes_view().size()) +
                     " bytes, not a whole number of 4 KiB pages)";
    if (index_damage.empty()) {
      // The entries the records call for (kept + s.entries) against those found: an entry
      // found that names something else, or more than a few missing (the entry of a record a
      // crash kept from being written; those recovery adds where it resumes after damage).
      const index_view found{seg->index_entry_slot(0), valid_entries};
      std::vector<index_entry> want;
      for (std::size_t k = 0; k < kept; ++k) want.push_back(found.at(k));
      want.insert(want.end(), s.entries.begin(), s.entries.end());
      auto same = [](const index_entry& x, const index_entry& y) {
        return x.offset == y.offset && x.position == y.position;
      };
      std::size_t matched = 0, w = 0;
      bool stray = false;
      for (std::size_t k = 0; k < valid_entries; ++k) {
        const index_entry e = found.at(k);
        while (w < want.size() && want[w].position < e.position) ++w;
        if (w < want.size() && same(want[w], e)) {
          ++matched;
          ++w;
        } else if (!(successor && e.position >= s.end)) {  // beyond a cut: the evidence above
          stray = true;
        }
      }
      const std::size_t allowed = (last ? 1 : 0) + s.problems.size();
      if (stray)
        index_damage = "entries that name no record of the segment";
      else if (want.size() > matched + allowed)
        index_damage = std::to_string(want.size() - matched) + " entries missing";
    }
    if (!index_damage.empty())
      report.index_repairs.push_back(idx_name + ": " + index_damage + "; rebuilt from the records of " + name);
    if (kept + s.entries.size() != valid_entries || !s.entries.empty() || !index_damage.empty()) {
      if (rewrite_index(*seg, kept, s.entries, seg_interval)) modified = true;
    } else {
      seg->index_count.store(kept, std::memory_order_release);
    }

    const std::uint64_t next_base =
        successor ? continue_at : last ? std::numeric_limits<std::uint64_t>::max() : bases[i + 1];
    if (!sealed_now) {
      if (s.sealed) {
        // Sealed, yet nothing follows it (the next segment was removed by hand?): remove the
        // seal and write on here; whatever lies beyond it is a torn tail like any other.
        const std::uint64_t nz = last_nonzero_end(seg->bytes(), s.end + seal_bytes, seg->data_extent());
        seg->allocate_log_range(s.end, nz);
        std::memset(data + s.end, 0, static_cast<std::size_t>(nz - s.end));
        if (nz > s.end + seal_bytes) {
          report.truncated_bytes += nz - s.end - seal_bytes;
          report.truncated_records += 1;
        }
        modified = true;
      }
      if (s.torn_end > s.torn_begin) {
        seg->allocate_log_range(s.torn_begin, s.torn_end);
        std::memset(data + s.torn_begin, 0, static_cast<std::size_t>(s.torn_end - s.torn_begin));
        report.truncated_bytes += s.torn_end - s.torn_begin;
        report.truncated_records += s.torn_records;
        modified = true;
      }
    } else {
      if (successor) {
        // What was cut is a tail like any other: zeroed (counted above, through the index).
        if (s.torn_end > s.torn_begin) {
          seg->allocate_log_range(s.torn_begin, s.torn_end);
          std::memset(data + s.torn_begin, 0, static_cast<std::size_t>(s.torn_end - s.torn_begin));
          report.truncated_bytes += s.torn_end - s.torn_begin;
        }
      } else if (s.torn_end > s.torn_begin) {
        report.problems.push_back(name + ": sealed segment with " + std::to_string(s.torn_end - s.torn_begin) +
                                  " unreadable bytes at its end (from byte " + std::to_string(s.torn_begin) +
                                  "); resealed after its last good record, offset " +
                                  (s.next_offset == 0 ? std::string("none") : std::to_string(s.next_offset - 1)));
      }
      // The roll was cut short, or the tail was damaged: seal it here (a segment filled to the
      // last byte needs no seal: readers move on at its end).
      if (!s.sealed && s.end + seal_bytes <= seg->capacity()) {
        seg->allocate_log_range(s.end, s.end + seal_bytes);
        std::memset(data + s.end + 4, 0, 4);
        store_release_u32(data + s.end, seal_marker);
        modified = true;
      }
      if (successor) {
        // Reported above.
      } else if (s.next_offset < next_base)
        report.problems.push_back(name + ": records " + std::to_string(s.next_offset) + ".." +
                                  std::to_string(next_base - 1) +
                                  " are missing before the next segment (readers report them as corrupt)");
      else if (s.next_offset > next_base)
        report.problems.push_back(name + ": holds offsets up to " + std::to_string(s.next_offset - 1) +
                                  ", beyond the start of the next segment (" + std::to_string(next_base) +
                                  "); readers skip the overlap");
    }
    report.records += s.next_offset - std::min(s.next_offset, base) - s.lost_records;
    if (modified) seg->sync(true);

    segment_entry e;
    e.base = base;
    e.first_time = first_time;
    e.max_time = s.running_max;
    e.bytes = s.end + (sealed_now ? seal_bytes : 0);
    seg->end.store(s.end, std::memory_order_relaxed);
    seg->first_time.store(first_time, std::memory_order_relaxed);
    seg->max_time.store(s.running_max, std::memory_order_relaxed);
    if (!sealed_now) {
      seg->next_offset = s.next_offset;
      seg->running_max = s.running_max;
      seg->index_interval = seg_interval;
      const index_view idx = seg->index();
      seg->last_index_pos = idx.count == 0 ? file_header_bytes : idx.at(idx.count - 1).position;
      e.pinned = std::move(seg);
    } else {
      seg->close_files();  // sealed: readers map it again when they need it
    }
    out.catalog.push_back(std::move(e));
    if (successor) {
      segment_entry n;
      n.base = continue_at;
      n.pinned = std::move(successor);
      out.catalog.push_back(std::move(n));
    }
  }
  return out;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_RECOVERY_HPP
