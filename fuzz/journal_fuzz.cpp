// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// libFuzzer harness for the journal's readers of untrusted bytes: the record decoder, the
// segment scan and recovery (a journal opened on a segment file made of the input), readers
// in and out of the writer's process.
//
// Input layout (so that the fuzzer can reach past the file header checks):
//   byte 0     flags: 1 = the segment bytes bring their own 64-byte file header (otherwise a
//              valid one is put in front), 2 = an index file follows, 4 = verify_on_open,
//              8 = also read with open_journal_reader before the writer opens it
//   bytes 1-2  length of the index part (little-endian), when flag 2
//   then       the segment file's bytes, then the index part (entries; a valid index header
//              is put in front unless flag 1)
//
// Besides "no crash, no sanitizer report", it checks:
//   - decode_record agrees with itself: a frame it accepts decodes the same way again;
//   - recovery only throws journal_error, and a second recovery finds nothing left to cut
//     and the same next offset;
//   - readers return strictly increasing offsets and terminate;
//   - the journal goes on after recovery: a record appended then reads back intact.
//
// Build and run: scripts/fuzz.sh [seconds]

#include <agentbus/journal/detail/record_format.hpp>
#include <agentbus/journal/detail/segment_scan.hpp>
#include <agentbus/journal/journal.hpp>

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace agentbus;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "journal_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

const fs::path& work_dir() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("agentbus_journal_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void write_file(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Walks frames like a reader would, from the start of `bytes` (8-byte aligned storage).
void fuzz_decoder(std::span<const std::byte> bytes) {
  std::vector<header> hs;
  std::size_t pos = 0;
  for (int guard = 0; pos + 4 <= bytes.size() && guard < 100000; ++guard) {
    const auto d = detail::decode_record(bytes.subspan(pos), &hs);
    if (d.status != detail::decode_status::ok) {
      pos += 8;  // probe on, like recovery does
      continue;
    }
    check(d.size >= detail::min_frame_bytes && d.size % 8 == 0 && d.size <= bytes.size() - pos, "frame size");
    const auto again = detail::decode_record(bytes.subspan(pos));
    check(again.status == detail::decode_status::ok && again.rec.offset == d.rec.offset &&
              again.rec.payload.size() == d.rec.payload.size() && again.size == d.size,
          "decode is deterministic");
    check(d.rec.headers.size() == hs.size(), "headers returned");
    pos += static_cast<std::size_t>(d.size);
  }
}

// Reads everything; returns the number of ok records. Offsets must increase.
std::uint64_t read_all(journal_reader r) {
  record rec;
  std::uint64_t n = 0, last = 0;
  bool any = false;
  for (int guard = 0; guard < 200000; ++guard) {
    const read_status s = r.next(rec);
    if (s == read_status::end) return n;
    if (s != read_status::ok) continue;
    check(!any || rec.offset > last, "reader offsets increase");
    any = true;
    last = rec.offset;
    ++n;
  }
  check(false, "reader terminates");
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t flags = data[0];
  std::size_t idx_len = (flags & 2) ? (data[1] | (std::size_t{data[2]} << 8)) : 0;
  const std::size_t body_len = size - 3;
  idx_len = std::min(idx_len, body_len);
  const auto* body = reinterpret_cast<const std::byte*>(data + 3);
  const std::size_t seg_len = body_len - idx_len;

  // The segment file image: header (given or made) + bytes.
  std::vector<std::byte> seg;
  if (!(flags & 1)) {
    seg.resize(detail::file_header_bytes);
    detail::write_file_header(seg.data(), {detail::file_kind::segment, detail::journal_format_version, 0, 0});
  }
  seg.insert(seg.end(), body, body + seg_len);

  // 1. The decoder and the scan, on aligned storage.
  {
    std::vector<std::uint64_t> aligned((seg.size() + 7) / 8 + 1, 0);
    if (!seg.empty()) std::memcpy(aligned.data(), seg.data(), seg.size());
    const std::span<const std::byte> image(reinterpret_cast<const std::byte*>(aligned.data()), seg.size());
    fuzz_decoder(image);
    if (image.size() >= detail::file_header_bytes) {
      detail::scan_input in;
      in.data = image;
      in.name = "fuzz.log";
      const auto out = detail::scan_segment(in);
      check(out.end >= detail::file_header_bytes && out.end <= image.size(), "scan end inside the data");
      check(out.torn_end >= out.torn_begin, "torn range");
    }
  }

  // 2. Recovery: a journal directory holding this segment (and index).
  const fs::path dir = work_dir() / "j";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  write_file(dir / detail::segment_file_name(0, ".log"), seg);
  if (flags & 2) {
    std::vector<std::byte> idx;
    if (!(flags & 1)) {
      idx.resize(detail::file_header_bytes);
      detail::write_file_header(idx.data(), {detail::file_kind::index, detail::journal_format_version, 0, 4096});
    }
    idx.insert(idx.end(), body + seg_len, body + body_len);
    write_file(dir / detail::segment_file_name(0, ".idx"), idx);
  }
  journal_options o;
  o.directory = dir;
  o.segment_bytes = 4096;
  o.verify_on_open = (flags & 4) != 0;
  try {
    if (flags & 8) {  // before any repair; the time seek reads index entries and tails as found
      (void)read_all(open_journal_reader(dir));
      const std::chrono::system_clock::time_point t{std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(static_cast<std::int64_t>(std::uint64_t{data[size - 1]} << 56)))};  // any sign
      (void)read_all(open_journal_reader_since(dir, t));
    }
    std::uint64_t next = 0;
    {
      journal j(o);
      next = j.next_offset();
      (void)read_all(j.read(0));
      (void)read_all(open_journal_reader(dir));
    }
    {
      journal j(o);  // a second recovery has nothing left to cut
      check(j.recovery().truncated_bytes == 0 && j.recovery().truncated_records == 0, "recovery is idempotent");
      check(j.next_offset() == next, "next offset stable across recoveries");
      const std::vector<std::byte> payload(37, std::byte{0x42});
      const std::uint64_t off = j.append({.topic = "fuzz.after", .event_id = 7, .payload = payload});
      check(off == next, "append continues at next_offset");
      auto r = j.read(off);
      record rec;
      check(r.next(rec) == read_status::ok && rec.offset == off && rec.topic == "fuzz.after" &&
                rec.payload.size() == payload.size(),
            "appended record reads back");
    }
  } catch (const journal_error&) {
    // A refusal with a message (e.g. a segment of a newer format) is a fine answer to garbage.
  }
  fs::remove_all(dir, ec);
  return 0;
}
