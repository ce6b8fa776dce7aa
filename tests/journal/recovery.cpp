// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// Recovery: torn tails cut or garbled at every byte of the last record, damage in the middle
// of sealed and active segments, rolls cut short, lost index files, newer formats. Whatever
// the damage, a damaged record is never returned as a record.
#include <agentbus/journal/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using agentbus::durability;
using agentbus::journal;
using agentbus::journal_error;
using agentbus::journal_options;
using agentbus::read_status;
using agentbus::record;
using agentbus::record_input;

// File-local helpers have names of their own: the journal module's files are compiled as one
// translation unit (tests/CMakeLists.txt, AGENTBUS_TEST_UNITY_BUILD).
struct recovery_dir : agentbus::test::journal_dir {
  recovery_dir() : journal_dir("journal_recovery") {}
};

journal_options options_for(const fs::path& dir, std::uint64_t segment_bytes = 64 * 1024) {
  journal_options o;
  o.directory = dir;
  o.segment_bytes = segment_bytes;
  o.index_interval_bytes = 512;
  return o;
}

std::vector<std::byte> recovery_payload(std::uint64_t key, std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>((key * 131 + i * 7 + (key >> 8)) & 0xFF);
  // Some zero bytes, also at the very end: recovery must count torn bytes, not just non-zero ones.
  for (std::size_t i = 5; i < size; i += 11) p[i] = std::byte{0};
  return p;
}

std::size_t recovery_size(std::uint64_t i) { return 16 + (i * 37) % 300; }

void append_recovery_record(journal& j, std::uint64_t i) {
  const auto payload = recovery_payload(i, recovery_size(i));
  const std::string topic = "test.numbered." + std::to_string(i % 7);
  REQUIRE(j.append({.topic = topic, .published_ns = static_cast<std::int64_t>(1'000'000 + i), .event_id = i,
                    .payload = payload}) == i);
}

struct read_result {
  std::vector<std::uint64_t> offsets;  // records returned
  int corrupt = 0;                     // corrupt results
  std::string first_error;
};

// Reads until end; every record returned must be exactly the one appended at its offset.
read_result read_everything(agentbus::journal_reader r) {
  read_result out;
  record rec;
  for (int guard = 0; guard < 100000; ++guard) {
    const read_status s = r.next(rec);
    if (s == read_status::end) break;
    if (s == read_status::corrupt) {
      if (out.corrupt++ == 0) out.first_error = std::string(r.error());
      continue;
    }
    REQUIRE(s == read_status::ok);
    REQUIRE(rec.event_id == rec.offset);
    const auto expect = recovery_payload(rec.offset, recovery_size(rec.offset));
    REQUIRE(rec.payload.size() == expect.size());
    REQUIRE(std::equal(rec.payload.begin(), rec.payload.end(), expect.begin()));
    out.offsets.push_back(rec.offset);
  }
  return out;
}

std::vector<std::uint64_t> offsets_between(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

std::vector<std::byte> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

void patch_file(const fs::path& p, std::uint64_t pos, std::span<const std::byte> bytes) {
  std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(pos));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void xor_byte(const fs::path& p, std::uint64_t pos, std::uint8_t mask) {
  auto bytes = read_file(p);
  const std::byte b = bytes.at(pos) ^ std::byte{mask};
  patch_file(p, pos, std::span(&b, 1));
}

// The frames of a segment file: {position, frame bytes} of each record, and where the data ends.
struct frame_pos {
  std::uint64_t pos, size, body;
};
std::vector<frame_pos> frames_of(const fs::path& segment_file, std::uint64_t* seal_pos = nullptr) {
  const auto bytes = read_file(segment_file);
  std::vector<frame_pos> out;
  std::uint64_t pos = agentbus::detail::file_header_bytes;
  while (pos + 8 <= bytes.size()) {
    const auto len = agentbus::detail::load_le<std::uint32_t>(bytes.data() + pos);
    if (len == agentbus::detail::seal_marker) {
      if (seal_pos) *seal_pos = pos;
      break;
    }
    if (len == 0) break;
    out.push_back({pos, agentbus::detail::frame_bytes(len), len});
    pos += agentbus::detail::frame_bytes(len);
  }
  return out;
}

fs::path segment_path(const fs::path& dir, std::uint64_t base) {
  return dir / agentbus::detail::segment_file_name(base, ".log");
}

// Position just past the last non-zero byte of bytes[from, to), relative to `from`.
std::uint64_t nonzero_extent(const std::vector<std::byte>& bytes, std::uint64_t from, std::uint64_t to) {
  std::uint64_t end = from;
  for (std::uint64_t i = from; i < to; ++i)
    if (bytes[i] != std::byte{0}) end = i + 1;
  return end - from;
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

}  // namespace

TEST_CASE("journal recovers a tail torn at every byte of the last record", "[journal][recovery]") {
  recovery_dir tmpl, work;
  constexpr std::uint64_t n = 6;
  {
    journal j(options_for(tmpl.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const fs::path seg = segment_path(tmpl.path, 0);
  const auto frames = frames_of(seg);
  REQUIRE(frames.size() == n);
  const frame_pos last = frames.back();
  const auto original = read_file(seg);
  const std::uint64_t whole = nonzero_extent(original, last.pos, last.pos + last.size);

  for (std::uint64_t k = 0; k <= last.size; ++k) {
    copy_dir(tmpl.path, work.path);
    // What a crash leaves: the record's bytes from k on never made it (the file keeps its
    // size: a crash never shortens a segment; a file cut from outside is the next test case).
    const std::vector<std::byte> lost_bytes(static_cast<std::size_t>(last.size - k), std::byte{0});
    patch_file(segment_path(work.path, 0), last.pos + k, lost_bytes);
    journal j(options_for(work.path));
    const auto& rep = j.recovery();
    const bool intact = k >= whole;  // what was cut off was zeros anyway
    const std::uint64_t torn = intact ? 0 : nonzero_extent(original, last.pos, last.pos + k);
    INFO("cut " << k << " bytes into a " << last.size << "-byte record");
    REQUIRE(j.next_offset() == (intact ? n : n - 1));
    REQUIRE(rep.records == (intact ? n : n - 1));
    REQUIRE(rep.truncated_bytes == torn);
    REQUIRE(rep.truncated_records == (torn > 0 ? 1u : 0u));
    REQUIRE(rep.problems.empty());
    REQUIRE(rep.clean() == (torn == 0));
    const auto r = read_everything(j.read(0));
    REQUIRE(r.corrupt == 0);
    REQUIRE(r.offsets == offsets_between(0, intact ? n : n - 1));
    // The journal goes on where the good data ended: no gap, no garbage behind the new record.
    if (!intact) {
      append_recovery_record(j, n - 1);
      const auto again = read_everything(j.read(0));
      REQUIRE(again.corrupt == 0);
      REQUIRE(again.offsets == offsets_between(0, n));
    }
  }
}

TEST_CASE("journal recovers a last record garbled at every byte", "[journal][recovery]") {
  recovery_dir tmpl, work;
  // Six records: the last one has no index entry (interval 512), like the record a crash can
  // tear. A garbled record the index names is evidence of outside damage (next test case).
  constexpr std::uint64_t n = 6;
  {
    journal j(options_for(tmpl.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(tmpl.path, 0));
  const frame_pos last = frames.back();
  for (std::uint64_t b = 0; b < last.size; ++b) {
    copy_dir(tmpl.path, work.path);
    const fs::path seg = segment_path(work.path, 0);
    xor_byte(seg, last.pos + b, 0xFF);
    const auto garbled = read_file(seg);
    journal j(options_for(work.path));
    const auto& rep = j.recovery();
    INFO("byte " << b << " of a " << last.size << "-byte record");
    REQUIRE(j.next_offset() == n - 1);
    REQUIRE(rep.truncated_records >= 1);
    REQUIRE(rep.truncated_bytes == nonzero_extent(garbled, last.pos, garbled.size()));
    REQUIRE(rep.problems.empty());
    const auto r = read_everything(j.read(0));
    REQUIRE(r.corrupt == 0);
    REQUIRE(r.offsets == offsets_between(0, n - 1));
    // The garbage is gone from the file: the rest of the segment is zero again.
    const auto after = read_file(seg);
    REQUIRE(nonzero_extent(after, last.pos, after.size()) == 0);
  }
}

TEST_CASE("journal zeroes garbage after the last record", "[journal][recovery]") {
  recovery_dir dir;
  {
    journal j(options_for(dir.path));
    for (std::uint64_t i = 0; i < 3; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(dir.path, 0));
  const std::uint64_t end = frames.back().pos + frames.back().size;
  const std::vector<std::byte> junk(100, std::byte{0x5A});
  patch_file(segment_path(dir.path, 0), end + 200, junk);  // not even where a frame would start
  journal j(options_for(dir.path));
  CHECK(j.next_offset() == 3);
  CHECK(j.recovery().truncated_bytes == 300);
  CHECK(j.recovery().truncated_records == 1);
  CHECK(read_everything(j.read(0)).offsets == offsets_between(0, 3));
}

TEST_CASE("journal reports damage in the middle of a sealed segment and readers skip it", "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 120;
  {
    journal j(options_for(dir.path, 4096));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
    REQUIRE(j.stats().segments >= 4);
  }
  const auto frames = frames_of(segment_path(dir.path, 0));
  REQUIRE(frames.size() > 6);
  const std::uint64_t victim = 3;  // in the middle of the first (sealed) segment
  xor_byte(segment_path(dir.path, 0), frames[victim].pos + 80, 0x10);  // a payload byte

  // Recovery checks sealed segments' tails; verify_on_open walks all of them.
  auto verify = options_for(dir.path, 4096);
  verify.verify_on_open = true;
  {
    journal j(verify);
    const auto& rep = j.recovery();
    CHECK(rep.truncated_bytes == 0);
    CHECK(rep.truncated_records == 0);
    REQUIRE(rep.problems.size() == 1);
    CHECK(rep.problems[0].find("00000000000000000000.log") != std::string::npos);
    CHECK(rep.problems[0].find("record 3 ") != std::string::npos);
    CHECK_FALSE(rep.clean());
    CHECK(j.next_offset() == n);
    CHECK(rep.records == n - 1);
  }
  // Readers: the damaged record is reported once, never returned, and everything else is.
  journal j(options_for(dir.path, 4096));
  for (auto reader : {0, 1}) {
    auto result = read_everything(reader == 0 ? j.read(0) : agentbus::open_journal_reader(dir.path));
    INFO(result.first_error);
    CHECK(result.corrupt == 1);
    auto expect = offsets_between(0, n);
    expect.erase(expect.begin() + static_cast<std::ptrdiff_t>(victim));
    CHECK(result.offsets == expect);
    CHECK(result.first_error.find("00000000000000000000.log") != std::string::npos);
    CHECK(result.first_error.find("byte " + std::to_string(frames[victim].pos)) != std::string::npos);
    CHECK(result.first_error.find("checksum") != std::string::npos);
  }
  // A reader stepping on it reports it at the right position and resumes right after it.
  auto r = j.read(2);
  record rec;
  REQUIRE(r.next(rec) == read_status::ok);
  CHECK(rec.offset == 2);
  CHECK(r.next(rec) == read_status::corrupt);
  CHECK(r.position() == 4);
  REQUIRE(r.next(rec) == read_status::ok);
  CHECK(rec.offset == 4);
}

TEST_CASE("journal keeps the good records after damage in the middle of the last segment", "[journal][recovery]") {
  recovery_dir tmpl, work;
  constexpr std::uint64_t n = 30;
  {
    journal j(options_for(tmpl.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(tmpl.path, 0));
  const std::uint64_t victim = 12;
  SECTION("a flipped bit in a payload") {
    copy_dir(tmpl.path, work.path);
    xor_byte(segment_path(work.path, 0), frames[victim].pos + 75, 0x01);
  }
  SECTION("a zeroed length word (a page the disk never wrote)") {
    copy_dir(tmpl.path, work.path);
    const std::vector<std::byte> zero(4, std::byte{0});
    patch_file(segment_path(work.path, 0), frames[victim].pos, zero);
  }
  SECTION("a whole record zeroed") {
    copy_dir(tmpl.path, work.path);
    const std::vector<std::byte> zero(frames[victim].size, std::byte{0});
    patch_file(segment_path(work.path, 0), frames[victim].pos, zero);
  }
  journal j(options_for(work.path));
  const auto& rep = j.recovery();
  CHECK(rep.truncated_bytes == 0);
  CHECK(rep.truncated_records == 0);
  REQUIRE(rep.problems.size() == 1);
  CHECK(rep.problems[0].find("record 12 ") != std::string::npos);
  CHECK(j.next_offset() == n);
  append_recovery_record(j, n);  // the journal goes on after the good records
  auto expect = offsets_between(0, n + 1);
  expect.erase(expect.begin() + static_cast<std::ptrdiff_t>(victim));
  for (auto reader : {0, 1}) {
    const auto result = read_everything(reader == 0 ? j.read(0) : agentbus::open_journal_reader(work.path));
    INFO(result.first_error);
    CHECK(result.corrupt == 1);
    CHECK(result.offsets == expect);
  }
}

TEST_CASE("journal reports records missing at the end of a sealed segment", "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 60;
  {
    journal j(options_for(dir.path, 4096));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(dir.path, 0));
  const std::uint64_t lost = frames.size() - 1;  // the last record of segment 0
  xor_byte(segment_path(dir.path, 0), frames.back().pos + 70, 0x04);
  journal j(options_for(dir.path, 4096));
  const auto& rep = j.recovery();
  REQUIRE_FALSE(rep.problems.empty());
  bool mentions_missing = false;
  for (const auto& p : rep.problems) mentions_missing |= p.find("missing") != std::string::npos;
  CHECK(mentions_missing);
  CHECK(rep.truncated_records == 0);  // sealed segments are never cut: later ones depend on them
  const auto result = read_everything(j.read(0));
  CHECK(result.corrupt == 1);
  auto expect = offsets_between(0, n);
  expect.erase(expect.begin() + static_cast<std::ptrdiff_t>(lost));
  CHECK(result.offsets == expect);
}

TEST_CASE("journal recovers from a roll cut short", "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 40;
  {
    journal j(options_for(dir.path, 4096));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  // Segment 0's seal never written, and the files of a prepared segment left behind.
  std::uint64_t seal = 0;
  frames_of(segment_path(dir.path, 0), &seal);
  REQUIRE(seal != 0);
  const std::vector<std::byte> zero(8, std::byte{0});
  patch_file(segment_path(dir.path, 0), seal, zero);
  std::ofstream(dir.path / "prepared-7.log") << "half made";
  std::ofstream(dir.path / "prepared-7.idx") << "half made";
  journal j(options_for(dir.path, 4096));
  CHECK(j.recovery().clean());
  CHECK(j.recovery().records == n);
  CHECK_FALSE(fs::exists(dir.path / "prepared-7.log"));
  CHECK_FALSE(fs::exists(dir.path / "prepared-7.idx"));
  std::uint64_t resealed = 0;
  frames_of(segment_path(dir.path, 0), &resealed);
  CHECK(resealed == seal);
  const auto result = read_everything(j.read(0));
  CHECK(result.corrupt == 0);
  CHECK(result.offsets == offsets_between(0, n));
}

TEST_CASE("journal rebuilds lost or damaged index files", "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 200;
  {
    journal j(options_for(dir.path, 8192));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  // Segment 0 loses its index; segment 1's second entry is damaged.
  const std::uint64_t second_base = frames_of(segment_path(dir.path, 0)).size();
  fs::remove(dir.path / agentbus::detail::segment_file_name(0, ".idx"));
  xor_byte(dir.path / agentbus::detail::segment_file_name(second_base, ".idx"), 64 + 32 + 5, 0xFF);
  // A third index is cut short.
  const std::uint64_t third_base = second_base + frames_of(segment_path(dir.path, second_base)).size();
  const fs::path third_idx = dir.path / agentbus::detail::segment_file_name(third_base, ".idx");
  fs::resize_file(third_idx, 64 + 32 + 7);
  {
    journal j(options_for(dir.path, 8192));
    CHECK(j.recovery().problems.empty());
    CHECK(j.recovery().records_intact());
    CHECK_FALSE(j.recovery().clean());
    // Index damage is reported in a class of its own, one message per file, naming it.
    const auto& repairs = j.recovery().index_repairs;
    REQUIRE(repairs.size() == 3);
    CHECK(repairs[0].find(agentbus::detail::segment_file_name(0, ".idx") + ": missing") == 0);
    CHECK(repairs[1].find(agentbus::detail::segment_file_name(second_base, ".idx") + ": damaged") == 0);
    CHECK(repairs[2].find(agentbus::detail::segment_file_name(third_base, ".idx") + ": shortened") == 0);
    CHECK(fs::exists(dir.path / agentbus::detail::segment_file_name(0, ".idx")));
    CHECK(fs::file_size(third_idx) % 4096 == 0);
    for (std::uint64_t from : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{55}, std::uint64_t{150}, n - 1}) {
      const auto result = read_everything(j.read(from));
      CHECK(result.corrupt == 0);
      CHECK(result.offsets == offsets_between(from, n));
    }
  }
  // Rebuilt for good: the next open finds nothing to repair.
  journal j(options_for(dir.path, 8192));
  CHECK(j.recovery().clean());
}

TEST_CASE("journal refuses segments of a newer format", "[journal][recovery]") {
  recovery_dir dir;
  {
    journal j(options_for(dir.path));
    append_recovery_record(j, 0);
  }
  std::vector<std::byte> header(64);
  agentbus::detail::write_file_header(header.data(), {agentbus::detail::file_kind::segment, 99, 0, 0});
  patch_file(segment_path(dir.path, 0), 0, header);
  try {
    journal j(options_for(dir.path));
    FAIL("opened a segment of format 99");
  } catch (const journal_error& e) {
    CHECK(e.which() == journal_error::code::corrupt);
    CHECK(std::string(e.what()).find("newer") != std::string::npos);
  }
}

namespace {

// Every file of the sealed segments of `dir` (all but the newest .log/.idx pair), by name.
std::vector<std::pair<std::string, std::vector<std::byte>>> sealed_files(const fs::path& dir) {
  std::vector<std::string> logs;
  for (const auto& e : fs::directory_iterator(dir))
    if (agentbus::detail::parse_segment_file_name(e.path().filename().string(), ".log"))
      logs.push_back(e.path().stem().string());  // not the prepared-* files of a writer
  std::sort(logs.begin(), logs.end());
  if (!logs.empty()) logs.pop_back();
  std::vector<std::pair<std::string, std::vector<std::byte>>> out;
  for (const auto& stem : logs)
    for (const char* ext : {".log", ".idx"}) out.emplace_back(stem + ext, read_file(dir / (stem + ext)));
  return out;
}

}  // namespace

TEST_CASE("journal reopened with other segment and index sizes leaves sealed segments' files alone",
          "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 600;
  {
    journal j(options_for(dir.path, 64 * 1024));  // index interval 512
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
    REQUIRE(j.stats().segments >= 3);
  }
  const auto before = sealed_files(dir.path);
  REQUIRE(before.size() >= 4);
  std::vector<fs::path> logs;
  for (const auto& e : fs::directory_iterator(dir.path))
    if (agentbus::detail::parse_segment_file_name(e.path().filename().string(), ".log")) logs.push_back(e.path());
  std::sort(logs.begin(), logs.end());
  const fs::path active = logs.back();
  // Bigger segments (the default is 64 MiB; 4 MiB keeps the test small), another interval,
  // with and without verify_on_open: the sealed files must stay byte for byte what they were.
  for (const bool verify : {false, true}) {
    INFO("verify_on_open " << verify);
    auto o = options_for(dir.path, 4 << 20);
    o.index_interval_bytes = 4096;
    o.verify_on_open = verify;
    journal j(o);
    CHECK(j.recovery().clean());
    CHECK(j.next_offset() == n);
    // Nor does the active segment grow: reopening needs no disk space.
    CHECK(fs::file_size(active) == 64 * 1024);
    const auto after = sealed_files(dir.path);
    REQUIRE(after.size() == before.size());
    for (std::size_t k = 0; k < before.size(); ++k) {
      INFO(before[k].first);
      CHECK(after[k].first == before[k].first);
      CHECK(after[k].second.size() == before[k].second.size());
      const bool same_bytes = after[k].second == before[k].second;
      CHECK(same_bytes);
    }
    // The sealed segments' indexes still work: seeks into them land where they should.
    for (std::uint64_t from : {std::uint64_t{0}, std::uint64_t{123}, std::uint64_t{401}}) {
      const auto r = read_everything(j.read(from));
      CHECK(r.corrupt == 0);
      CHECK(r.offsets == offsets_between(from, n));
    }
  }
  // Appends fill the active segment, then roll into segments of today's size.
  journal j(options_for(dir.path, 4 << 20));
  for (std::uint64_t i = n; i < n + 300; ++i) append_recovery_record(j, i);
  CHECK(fs::file_size(active) == 64 * 1024);
  const auto r = read_everything(j.read(0));
  CHECK(r.corrupt == 0);
  CHECK(r.offsets == offsets_between(0, n + 300));
  std::vector<fs::path> now;
  for (const auto& e : fs::directory_iterator(dir.path))
    if (agentbus::detail::parse_segment_file_name(e.path().filename().string(), ".log")) now.push_back(e.path());
  std::sort(now.begin(), now.end());
  REQUIRE(now.size() == logs.size() + 1);
  CHECK(fs::file_size(now.back()) == 4 << 20);
}

TEST_CASE("journal never reuses acknowledged offsets after the active segment was shortened from outside",
          "[journal][recovery]") {
  recovery_dir dir;
  constexpr std::uint64_t n = 200;  // ~52 KiB of records in one 64 KiB segment
  {
    auto o = options_for(dir.path, 64 * 1024);
    o.index_interval_bytes = 4096;  // the default
    journal j(o);
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
    REQUIRE(j.stats().segments == 1);
  }
  const fs::path seg = segment_path(dir.path, 0);
  const auto frames = frames_of(seg);
  REQUIRE(frames.size() == n);
  fs::resize_file(seg, 8805);  // a bad copy, a disk tool: not something a crash does
  std::uint64_t kept = 0;
  while (kept < n && frames[kept].pos + frames[kept].size <= 8805) ++kept;
  REQUIRE(kept < n / 4);

  auto o = options_for(dir.path, 64 * 1024);
  o.index_interval_bytes = 4096;
  std::uint64_t resumed = 0;
  {
    journal j(o);
    const auto& rep = j.recovery();
    INFO((rep.problems.empty() ? std::string("no problems reported") : rep.problems.front()));
    // Every offset that was acknowledged stays used: the next append gets a new one.
    CHECK(j.next_offset() >= n);
    resumed = j.next_offset();
    // The index names records up to its last entry: all of them are reported lost.
    CHECK(rep.truncated_records + 64 >= n - kept);
    REQUIRE(rep.problems.size() == 1);
    CHECK(rep.problems[0].find("lost") != std::string::npos);
    CHECK(rep.problems[0].find("appends continue at offset " + std::to_string(resumed)) != std::string::npos);
    CHECK_FALSE(rep.clean());
    const auto payload = recovery_payload(resumed, recovery_size(resumed));
    CHECK(j.append({.topic = "after.cut", .event_id = resumed, .payload = payload}) == resumed);
    // Readers: the records before the cut, the loss reported once, then the new record.
    const auto r = read_everything(j.read(0));
    CHECK(r.corrupt == 1);
    auto expect = offsets_between(0, kept);
    expect.push_back(resumed);
    CHECK(r.offsets == expect);
  }
  // Reopened, the gap stays on record and the offsets go on from where they were.
  journal j(o);
  CHECK(j.next_offset() == resumed + 1);
  REQUIRE_FALSE(j.recovery().problems.empty());
  CHECK(j.recovery().problems[0].find("missing") != std::string::npos);
  const auto again = read_everything(agentbus::open_journal_reader(dir.path));
  CHECK(again.corrupt == 1);
  CHECK(again.offsets.size() == kept + 1);
}

TEST_CASE("journal readers find their way past damage in a last segment no writer has reopened",
          "[journal][recovery]") {
  recovery_dir tmpl, work;
  constexpr std::uint64_t n = 40;
  {
    journal j(options_for(tmpl.path));  // index interval 512
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(tmpl.path, 0));
  REQUIRE(frames.size() == n);
  const std::vector<std::byte> zero(4, std::byte{0});
  // A zeroed length word near the end (after the last index entry: only the bytes tell) and in
  // the middle; a length word that claims too much; garbage after the last record.
  for (const std::uint64_t victim : {n - 2, n / 2}) {
    for (const bool zeroed : {true, false}) {
      INFO("victim " << victim << (zeroed ? " length zeroed" : " length garbled"));
      copy_dir(tmpl.path, work.path);
      if (zeroed) {
        patch_file(segment_path(work.path, 0), frames[victim].pos, zero);
      } else {
        const std::vector<std::byte> big = {std::byte{0x00}, std::byte{0xF0}, std::byte{0x00}, std::byte{0x00}};
        patch_file(segment_path(work.path, 0), frames[victim].pos, big);
      }
      auto expect = offsets_between(0, n);
      expect.erase(expect.begin() + static_cast<std::ptrdiff_t>(victim));
      const auto r = read_everything(agentbus::open_journal_reader(work.path));
      INFO(r.first_error);
      CHECK(r.corrupt == 1);
      CHECK(r.offsets == expect);
      CHECK(r.first_error.find("byte " + std::to_string(frames[victim].pos)) != std::string::npos);
      // The writer's recovery finds the same, and so do its readers.
      journal j(options_for(work.path));
      CHECK(j.recovery().problems.size() == 1);
      const auto again = read_everything(j.read(0));
      CHECK(again.corrupt == 1);
      CHECK(again.offsets == expect);
    }
  }
  copy_dir(tmpl.path, work.path);
  // No writer (the lock file names the last one, this process): the bytes cannot be a record
  // being written.
  fs::remove(work.path / "journal.lock");
  const std::vector<std::byte> junk(40, std::byte{0x5A});
  patch_file(segment_path(work.path, 0), frames.back().pos + frames.back().size + 8, junk);
  const auto r = read_everything(agentbus::open_journal_reader(work.path));
  CHECK(r.corrupt == 1);  // the torn tail, reported (verify reports it too) until a writer cuts it
  CHECK(r.offsets == offsets_between(0, n));
  CHECK(r.first_error.find("no valid record follows") != std::string::npos);
}

TEST_CASE("journal never reuses offsets after a cut inside the last index interval", "[journal][recovery]") {
  recovery_dir tmpl, work;
  constexpr std::uint64_t n = 6;  // the last record has no index entry (interval 512)
  {
    journal j(options_for(tmpl.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const auto frames = frames_of(segment_path(tmpl.path, 0));
  REQUIRE(frames.size() == n);
  const frame_pos last = frames.back();
  // Cut inside the last record (its length word kept, so it visibly ran past the cut) and
  // right after it: either way records may have followed, and were acknowledged.
  for (const std::uint64_t cut : {last.pos + 20, last.pos + last.size}) {
    INFO("cut at byte " << cut);
    copy_dir(tmpl.path, work.path);
    fs::resize_file(segment_path(work.path, 0), cut);
    std::uint64_t resumed = 0;
    {
      journal j(options_for(work.path));
      const auto& rep = j.recovery();
      REQUIRE(rep.problems.size() == 1);
      INFO(rep.problems[0]);
      CHECK(rep.problems[0].find("cut to " + std::to_string(cut) + " bytes") != std::string::npos);
      CHECK(j.next_offset() >= n);
      resumed = j.next_offset();
      CHECK(rep.truncated_records == (cut < last.pos + last.size ? 1u : 0u));
      const auto payload = recovery_payload(resumed, recovery_size(resumed));
      CHECK(j.append({.topic = "after.cut", .event_id = resumed, .payload = payload}) == resumed);
    }
    journal j(options_for(work.path));
    CHECK(j.next_offset() == resumed + 1);
    const auto r = read_everything(j.read(0));
    auto expect = offsets_between(0, cut < last.pos + last.size ? n - 1 : n);
    expect.push_back(resumed);
    CHECK(r.offsets == expect);
  }
}

// A last segment that ends with a seal no successor follows (the next segment removed, or a
// roll that sealed and died), with garbage after the seal: recovery removes the seal and the
// garbage (a torn tail like any other), appends continue there, and no reader ever sees the
// garbage as a record -- neither right away nor after more appends and another reopen.
TEST_CASE("journal recovers a sealed last segment with garbage after the seal", "[journal][recovery]") {
  const std::uint64_t gap = GENERATE(0, 40);  // garbage right after the seal, or further on
  recovery_dir dir;
  constexpr std::uint64_t n = 5;
  {
    journal j(options_for(dir.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  const fs::path seg = segment_path(dir.path, 0);
  const auto frames = frames_of(seg);
  REQUIRE(frames.size() == n);
  const std::uint64_t end = frames.back().pos + frames.back().size;
  std::vector<std::byte> seal(8, std::byte{0});
  agentbus::detail::store_le<std::uint32_t>(seal.data(), agentbus::detail::seal_marker);
  patch_file(seg, end, seal);
  // Garbage that looks like a frame: a plausible length word, then bytes.
  std::vector<std::byte> junk(600, std::byte{0x5A});
  agentbus::detail::store_le<std::uint32_t>(junk.data(), 40);
  patch_file(seg, end + 8 + gap, junk);
  std::uint64_t seal_pos = 0;
  frames_of(seg, &seal_pos);
  REQUIRE(seal_pos == end);
  {
    journal j(options_for(dir.path));
    CHECK(j.next_offset() == n);
    CHECK(j.recovery().truncated_records == 1);
    CHECK(j.recovery().truncated_bytes == gap + junk.size());
    const auto bytes = read_file(seg);
    CHECK(nonzero_extent(bytes, end, end + 8 + gap + junk.size()) == 0);  // seal and garbage zeroed
    CHECK(read_everything(j.read(0)).offsets == offsets_between(0, n));
    // One append writes on where the seal was, shorter than the garbage: garbage left behind
    // would follow the new record.
    append_recovery_record(j, n);
    REQUIRE(frames_of(seg).back().size < 8 + gap + junk.size());
    const auto after = read_everything(j.read(0));
    CHECK(after.corrupt == 0);
    CHECK(after.offsets == offsets_between(0, n + 1));
  }
  journal j(options_for(dir.path));
  CHECK(j.recovery().clean());
  CHECK(j.recovery().truncated_records == 0);
  CHECK(j.next_offset() == n + 1);
  const auto again = read_everything(j.read(0));
  CHECK(again.corrupt == 0);
  CHECK(again.offsets == offsets_between(0, n + 1));
}

TEST_CASE("journal refuses to append past the end of the offset space instead of wrapping to 0", "[journal][recovery]") {
  // A stray segment file named near 2^64 (copied or renamed by hand) put the next offsets at
  // the end of the space: appends went on at 2^64 - 1, the bus's "no offset", then at 0.
  recovery_dir dir;
  {
    journal j(options_for(dir.path));
    append_recovery_record(j, 0);
  }
  fs::copy_file(segment_path(dir.path, 0), segment_path(dir.path, ~std::uint64_t{0} - 1));
  journal j(options_for(dir.path));
  std::vector<std::uint64_t> offsets;
  bool refused = false;
  for (int i = 0; i < 4 && !refused; ++i) {
    try {
      offsets.push_back(j.append({.topic = "after"}));
    } catch (const agentbus::journal_error& e) {
      refused = true;
      CHECK(e.which() == agentbus::journal_error::code::corrupt);
      CHECK(std::string(e.what()).find("no offset left") != std::string::npos);
    }
  }
  CHECK(refused);
  for (const std::uint64_t o : offsets) CHECK(o >= ~std::uint64_t{0} - 1);  // never wrapped
  for (const std::uint64_t o : offsets) CHECK(o != ~std::uint64_t{0});      // never the bus's no_offset
}

namespace {

// The bases of the segment files in `dir`, oldest first.
std::vector<std::uint64_t> segment_bases_in(const fs::path& dir) {
  std::vector<std::uint64_t> bases;
  for (const auto& e : fs::directory_iterator(dir))
    if (auto b = agentbus::detail::parse_segment_file_name(e.path().filename().native(), ".log")) bases.push_back(*b);
  std::sort(bases.begin(), bases.end());
  return bases;
}

fs::path index_path(const fs::path& dir, std::uint64_t base) {
  return dir / agentbus::detail::segment_file_name(base, ".idx");
}

}  // namespace

TEST_CASE("journal never reuses offsets after the active segment's file was deleted from outside",
          "[journal][recovery]") {
  // The index file outlives the segment (a cleanup script, `rm *.log`): it names records whose
  // offsets were acknowledged. It used to be deleted as a leftover, and appends went on from
  // the previous segment's end, handing those offsets out a second time.
  const bool only_segment = GENERATE(false, true);
  const bool zeroed = GENERATE(false, true);  // or its bytes overwritten with zeros, size kept
  CAPTURE(only_segment, zeroed);
  recovery_dir dir;
  const std::uint64_t n = only_segment ? 200 : 60;
  const auto options = options_for(dir.path, only_segment ? 64 * 1024 : 4096);
  {
    journal j(options);
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
    REQUIRE((j.stats().segments == 1) == only_segment);
  }
  const std::uint64_t gone = segment_bases_in(dir.path).back();
  REQUIRE(gone == (only_segment ? 0 : gone));
  REQUIRE(n - gone >= 4);  // the deleted segment held records its index names
  if (zeroed) {
    const std::vector<std::byte> zeros(fs::file_size(segment_path(dir.path, gone)), std::byte{0});
    patch_file(segment_path(dir.path, gone), 0, zeros);
  } else {
    fs::remove(segment_path(dir.path, gone));
  }
  REQUIRE(fs::exists(index_path(dir.path, gone)));

  std::uint64_t resumed = 0;
  {
    journal j(options);
    const auto& rep = j.recovery();
    REQUIRE(rep.problems.size() == 1);
    INFO(rep.problems[0]);
    CHECK(j.next_offset() >= n);  // no acknowledged offset is handed out again
    resumed = j.next_offset();
    CHECK(rep.problems[0].find(zeroed ? "overwritten outside the journal" : "is missing but its index") !=
          std::string::npos);
    CHECK(rep.problems[0].find("appends continue at offset " + std::to_string(resumed)) != std::string::npos);
    // The records up to the index's last entry are known lost; a few after it may be.
    CHECK(rep.truncated_records >= (n - gone) / 2);
    CHECK(rep.truncated_records <= n - gone);
    CHECK_FALSE(rep.clean());
    if (!zeroed) CHECK_FALSE(fs::exists(index_path(dir.path, gone)));  // the gap is on record instead
    const auto payload = recovery_payload(resumed, recovery_size(resumed));
    CHECK(j.append({.topic = "after.delete", .event_id = resumed, .payload = payload}) == resumed);
    // (Reading from 0 when nothing before the gap is left: truncated_by_retention, the status of
    // any position before the oldest record.)
    const auto r = read_everything(j.read(only_segment ? resumed : 0));
    auto expect = offsets_between(0, gone);
    expect.push_back(resumed);
    CHECK(r.offsets == expect);
    CHECK(r.corrupt == (only_segment ? 0 : 1));  // the gap, when something came before it
  }
  // Reopened: the offsets go on from where they were.
  journal j(options);
  CHECK(j.next_offset() == resumed + 1);
  // The gap is reported again, when a segment before it is left to report it.
  CHECK(j.recovery().problems.size() == (only_segment && !zeroed ? 0U : 1U));
}

TEST_CASE("journal tells a roll cut between its two renames from a deleted segment", "[journal][recovery]") {
  // segment::adopt renames the new index into place, then the segment file, and only then seals
  // the old segment. Killed between the renames, a writer leaves an empty index right after an
  // unsealed last segment: nothing was written there, and recovery says nothing. The same
  // index after a sealed segment means the roll finished and the segment is gone: its offsets
  // may have been handed out.
  const bool sealed = GENERATE(false, true);
  CAPTURE(sealed);
  recovery_dir dir;
  constexpr std::uint64_t n = 5;
  {
    journal j(options_for(dir.path));
    for (std::uint64_t i = 0; i < n; ++i) append_recovery_record(j, i);
  }
  if (sealed) {
    const auto frames = frames_of(segment_path(dir.path, 0));
    std::vector<std::byte> seal(8, std::byte{0});
    agentbus::detail::store_le<std::uint32_t>(seal.data(), agentbus::detail::seal_marker);
    patch_file(segment_path(dir.path, 0), frames.back().pos + frames.back().size, seal);
  }
  std::vector<std::byte> idx(4096, std::byte{0});
  agentbus::detail::write_file_header(idx.data(), {agentbus::detail::file_kind::index,
                                                   agentbus::detail::journal_format_version, n, 512});
  std::ofstream(index_path(dir.path, n), std::ios::binary)
      .write(reinterpret_cast<const char*>(idx.data()), static_cast<std::streamsize>(idx.size()));

  journal j(options_for(dir.path));
  CHECK_FALSE(fs::exists(index_path(dir.path, n)));
  CHECK(j.recovery().records == n);
  if (!sealed) {
    CHECK(j.recovery().clean());
    CHECK(j.next_offset() == n);
  } else {
    REQUIRE(j.recovery().problems.size() == 1);
    CHECK(j.recovery().problems[0].find("may be lost") != std::string::npos);
    CHECK(j.next_offset() > n);
    CHECK(j.recovery().truncated_records == 0);  // none known lost: the index had no entry
  }
  CHECK(read_everything(j.read(0)).offsets == offsets_between(0, n));
}
