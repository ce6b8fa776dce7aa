// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// The journal's building blocks as pure functions: CRC32C (both implementations), the record
// codec, file headers, index entries and the segment scan that recovery relies on.
#include <agentbus/journal/detail/crc32c.hpp>
#include <agentbus/journal/detail/file_header.hpp>
#include <agentbus/journal/detail/record_format.hpp>
#include <agentbus/journal/detail/segment_index.hpp>
#include <agentbus/journal/detail/segment_scan.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace agentbus;
using namespace agentbus::detail;

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// The definition, one bit at a time: the reference both implementations are checked against.
std::uint32_t crc32c_bitwise(std::span<const std::byte> data, std::uint32_t seed) {
  std::uint32_t c = ~seed;
  for (std::byte b : data) {
    c ^= static_cast<std::uint32_t>(b);
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng() & 0xFFu);
  return v;
}

// Encodes `in` at offset `offset` into a fresh 8-byte aligned buffer of exactly one frame.
std::vector<std::uint64_t> encode(const record_input& in, std::uint64_t offset, std::size_t* size = nullptr) {
  const std::uint64_t body = record_body_bytes(in);
  const std::uint64_t n = frame_bytes(body);
  std::vector<std::uint64_t> buf(static_cast<std::size_t>(n / 8));
  encode_record(reinterpret_cast<std::byte*>(buf.data()), in, offset, body);
  if (size) *size = static_cast<std::size_t>(n);
  return buf;
}

std::span<std::byte> as_span(std::vector<std::uint64_t>& v) {
  return {reinterpret_cast<std::byte*>(v.data()), v.size() * 8};
}

}  // namespace

TEST_CASE("crc32c matches the standard check value with both implementations", "[journal][crc]") {
  const auto check = bytes_of("123456789");
  CHECK(crc32c(check) == 0xE3069283u);
  CHECK(crc32c_sw(check) == 0xE3069283u);
#if AGENTBUS_CRC32C_HW
  if (crc32c_hw_available()) CHECK(crc32c_hw(check) == 0xE3069283u);
  else WARN("no SSE4.2 on this CPU: only the portable CRC32C was checked");
#endif
  CHECK(crc32c({}) == 0u);
  // 32 zero bytes and 32 0xFF bytes: the published CRC32C test vectors (RFC 3720, B.4).
  const std::vector<std::byte> zeros(32, std::byte{0}), ones(32, std::byte{0xFF});
  CHECK(crc32c(zeros) == 0x8A9136AAu);
  CHECK(crc32c(ones) == 0x62A8AB43u);
}

TEST_CASE("crc32c hardware and portable paths agree on every length and alignment", "[journal][crc]") {
  const auto data = random_bytes(40000, 7);
  const std::span<const std::byte> all(data);
  for (std::size_t len = 0; len < 30000; len += (len < 1200 ? 1 : 331)) {
    for (std::size_t align = 0; align < 3; ++align) {
      const auto s = all.subspan(align, len);
      const std::uint32_t expect = crc32c_bitwise(s, 0x12345678u);
      REQUIRE(crc32c_sw(s, 0x12345678u) == expect);
#if AGENTBUS_CRC32C_HW
      if (crc32c_hw_available()) REQUIRE(crc32c_hw(s, 0x12345678u) == expect);
#endif
      REQUIRE(crc32c(s, 0x12345678u) == expect);
    }
  }
}

TEST_CASE("crc32c extends a previous result", "[journal][crc]") {
  const auto data = random_bytes(5000, 11);
  const std::span<const std::byte> all(data);
  for (std::size_t cut : {0u, 1u, 7u, 8u, 100u, 383u, 384u, 2500u, 5000u}) {
    CHECK(crc32c(all.subspan(cut), crc32c(all.first(cut))) == crc32c(all));
    CHECK(crc32c_sw(all.subspan(cut), crc32c_sw(all.first(cut))) == crc32c(all));
  }
}

TEST_CASE("record codec round trips every field", "[journal][codec]") {
  const std::array<header, 3> hs{{{"traceparent", "00-abc-def-01"}, {"", ""}, {"k", std::string_view("v\0x", 3)}}};
  const auto payload = random_bytes(333, 3);
  record_input in;
  in.topic = "tasks.planner.created";
  in.schema = "test.task";
  in.schema_version = 7;
  in.fingerprint = 0x0123456789ABCDEFull;
  in.published_ns = -5;  // before the epoch: signed on disk
  in.event_id = 0xFFFFFFFFFFFFFFFFull;
  in.correlation_id = 42;
  in.source = "planner";
  in.priority = 2;
  in.headers = hs;
  in.payload = payload;
  std::size_t size = 0;
  auto buf = encode(in, 1234567, &size);
  REQUIRE(size % 8 == 0);
  std::vector<header> storage;
  const decode_result d = decode_record(as_span(buf), &storage);
  REQUIRE(d.status == decode_status::ok);
  CHECK(d.size == size);
  const record& r = d.rec;
  CHECK(r.offset == 1234567);
  CHECK(r.topic == in.topic);
  CHECK(r.schema == in.schema);
  CHECK(r.schema_version == 7);
  CHECK(r.fingerprint == in.fingerprint);
  CHECK(r.published_ns == -5);
  CHECK(r.event_id == in.event_id);
  CHECK(r.correlation_id == 42);
  CHECK(r.source == "planner");
  CHECK(r.priority == 2);
  REQUIRE(r.headers.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(r.headers[i].key == hs[i].key);
    CHECK(r.headers[i].value == hs[i].value);
  }
  REQUIRE(r.payload.size() == payload.size());
  CHECK(std::equal(r.payload.begin(), r.payload.end(), payload.begin()));
  CHECK(reinterpret_cast<std::uintptr_t>(r.payload.data()) % 8 == 0);  // payloads start aligned

  // Without header storage the headers are validated but not returned.
  const decode_result bare = decode_record(as_span(buf));
  CHECK(bare.status == decode_status::ok);
  CHECK(bare.rec.headers.empty());
}

TEST_CASE("record codec rejects every damaged byte and every short span", "[journal][codec]") {
  const std::array<header, 1> hs{{{"key", "value"}}};
  const auto payload = random_bytes(21, 5);  // padding at the end of the frame
  record_input in{.topic = "a.b", .schema = "s", .source = "src", .headers = hs, .payload = payload};
  std::size_t size = 0;
  auto buf = encode(in, 9, &size);
  auto frame = as_span(buf);
  for (std::size_t i = 0; i < size; ++i) {
    for (unsigned flip : {0x01u, 0x80u, 0xFFu}) {
      frame[i] ^= static_cast<std::byte>(flip);
      const decode_result d = decode_record(frame);
      frame[i] ^= static_cast<std::byte>(flip);
      // The length word may become zero (end) or too big (truncated); otherwise corrupt.
      INFO("byte " << i << " flip " << int(flip));
      REQUIRE(d.status != decode_status::ok);
    }
  }
  for (std::size_t cut = 0; cut < size; ++cut) {
    const decode_result d = decode_record(frame.first(cut));
    INFO("cut at " << cut);
    REQUIRE(d.status != decode_status::ok);
    if (cut >= 4) REQUIRE(d.status == decode_status::truncated);
  }
  CHECK(decode_record(frame).status == decode_status::ok);
  const std::vector<std::byte> zeros(64, std::byte{0});
  CHECK(decode_record(zeros).status == decode_status::end);
}

TEST_CASE("record input limits are enforced before encoding", "[journal][codec]") {
  const std::string long_topic(70000, 'x');
  record_input in{.topic = long_topic};
  CHECK(record_input_problem(in) != nullptr);
  in.topic = "ok";
  CHECK(record_input_problem(in) == nullptr);
  CHECK(record_body_bytes(in) == record_fixed_bytes + 2);
}

TEST_CASE("file headers and index entries validate themselves", "[journal][codec]") {
  std::array<std::byte, 64> h{};
  file_header out;
  CHECK(read_file_header(h, out) == header_status::zero);
  write_file_header(h.data(), {file_kind::index, journal_format_version, 77, 4096});
  REQUIRE(read_file_header(h, out) == header_status::ok);
  CHECK(out.kind == file_kind::index);
  CHECK(out.base_offset == 77);
  CHECK(out.parameter == 4096);
  h[20] ^= std::byte{1};
  CHECK(read_file_header(h, out) == header_status::bad);

  std::array<std::byte, 32 * 4> entries{};
  write_index_entry(entries.data(), {10, 64, 5});
  write_index_entry(entries.data() + 32, {20, 4200, 9});
  write_index_entry(entries.data() + 64, {15, 8400, 9});  // offsets must increase: the end
  CHECK(count_valid_index_entries(entries.data(), 4) == 2);
  const index_view v{entries.data(), 2};
  CHECK(v.last_at_or_before(15) == 0);
  CHECK(v.last_at_or_before(9) == 2);  // none
  CHECK(v.first_after_position(64) == 1);
  CHECK(v.last_before_time(9) == 0);
  CHECK(v.last_before_time(5) == 2);  // none
}

TEST_CASE("segment scan finds the clean end, a torn tail and damage in the middle", "[journal][codec]") {
  // A segment image: header, five records, zeros.
  std::vector<std::uint64_t> image(4096 / 8, 0);
  auto seg = as_span(image);
  write_file_header(seg.data(), {file_kind::segment, journal_format_version, 100, 0});
  const auto payload = random_bytes(40, 1);
  std::vector<std::uint64_t> positions;
  std::uint64_t pos = file_header_bytes;
  for (std::uint64_t i = 0; i < 5; ++i) {
    record_input in{.topic = "t", .published_ns = static_cast<std::int64_t>(1000 + i), .payload = payload};
    const std::uint64_t body = record_body_bytes(in);
    encode_record(seg.data() + pos, in, 100 + i, body);
    positions.push_back(pos);
    pos += frame_bytes(body);
  }
  scan_input in{.data = seg, .expected = 100, .index_interval = 1, .name = "test.log"};
  {
    const scan_output s = scan_segment(in);
    CHECK(s.end == pos);
    CHECK(s.next_offset == 105);
    CHECK(s.records == 5);
    CHECK(s.torn_end == s.torn_begin);
    CHECK(s.problems.empty());
    CHECK(s.entries.size() == 4);  // every record but the first starts an interval
    CHECK(s.running_max == 1004);
    CHECK(s.first_time == 1000);
  }
  {  // the last record torn: a tail to zero
    auto copy = image;
    auto c = as_span(copy);
    c[positions[4] + 30] ^= std::byte{0x40};
    in.data = c;
    const scan_output s = scan_segment(in);
    CHECK(s.next_offset == 104);
    CHECK(s.end == positions[4]);
    CHECK(s.torn_begin == positions[4]);
    CHECK(s.torn_end > positions[4] + 30);  // up to the last non-zero byte of the torn frame
    CHECK(s.torn_end <= pos);
    CHECK(s.torn_records == 1);
    CHECK(s.problems.empty());
  }
  {  // the second record damaged: reported, the walk resumes after it
    auto copy = image;
    auto c = as_span(copy);
    c[positions[1] + 90] ^= std::byte{0x40};
    in.data = c;
    const scan_output s = scan_segment(in);
    CHECK(s.next_offset == 105);
    CHECK(s.records == 4);
    CHECK(s.lost_records == 1);
    CHECK(s.torn_end == s.torn_begin);
    REQUIRE(s.problems.size() == 1);
    CHECK(s.problems[0].find("test.log") != std::string::npos);
    CHECK(s.problems[0].find("record 101") != std::string::npos);
  }
  {  // the second record's length word zeroed: found again by probing
    auto copy = image;
    auto c = as_span(copy);
    std::memset(c.data() + positions[1], 0, 4);
    in.data = c;
    const scan_output s = scan_segment(in);
    CHECK(s.next_offset == 105);
    CHECK(s.lost_records == 1);
    CHECK(s.problems.size() == 1);
  }
}
