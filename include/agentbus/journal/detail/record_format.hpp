// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_RECORD_FORMAT_HPP
#define AGENTBUS_JOURNAL_DETAIL_RECORD_FORMAT_HPP

// The on-disk record: how one record_input is framed in a segment, and the decoder that
// recovery, readers and the fuzz harness share. docs/journal-format.md is the reference.
//
//   frame  +0  u32 length     bytes of the body (what follows these 8 bytes, padding excluded)
//          +4  u32 crc32c     CRC32C of the body and the padding (every byte after this word)
//   body   +0  u64 offset         +8  i64 published_ns   +16 u64 event_id
//          +24 u64 correlation_id +32 u64 fingerprint    +40 u32 schema_version
//          +44 u8  version (1)    +45 u8  priority       +46 u16 header_count
//          +48 u16 topic_len      +50 u16 schema_len     +52 u16 source_len
//          +54 u16 reserved (0)   +56 u32 payload_len    +60 u32 headers_len
//          +64 payload, topic, schema, source, headers (per header: u32 key_len,
//              u32 value_len, key, value)
//   then zero padding up to a multiple of 8 bytes.
//
// All integers little-endian. Frames start 8-byte aligned, so the length word can be read and
// written atomically and the payload starts 8-byte aligned too. The length is written last,
// with release ordering: a non-zero length means the whole frame is there (a reader in this
// or another process that sees it sees the body), and zero means "no record here (yet)".

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "agentbus/journal/detail/crc32c.hpp"
#include "agentbus/journal/options.hpp"
#include "agentbus/journal/detail/little_endian.hpp"

namespace agentbus::detail {

/// @brief Bytes before the body: length and CRC.
inline constexpr std::size_t frame_prefix_bytes = 8;
/// @brief Fixed part of the body.
inline constexpr std::size_t record_fixed_bytes = 64;
/// @brief Frames are padded to a multiple of this.
inline constexpr std::size_t frame_alignment = 8;
/// @brief The record format this code writes.
inline constexpr std::uint8_t record_format_version = 1;
/// @brief Largest body accepted (1 GiB): keeps every size computation far from overflow.
inline constexpr std::uint64_t max_record_body_bytes = std::uint64_t{1} << 30;
/// @brief Smallest possible frame.
inline constexpr std::size_t min_frame_bytes = frame_prefix_bytes + record_fixed_bytes;

/// @brief Rounds up to the frame alignment.
constexpr std::uint64_t align_frame(std::uint64_t n) noexcept {
  return (n + frame_alignment - 1) & ~std::uint64_t{frame_alignment - 1};
}

/// @brief Body bytes `in` will take, or 0 if it cannot be stored (see record_input_problem).
inline std::uint64_t record_body_bytes(const record_input& in) noexcept {
  std::uint64_t n = record_fixed_bytes + in.payload.size() + in.topic.size() + in.schema.size() + in.source.size();
  for (const auto& h : in.headers) n += 8 + h.key.size() + h.value.size();
  return n;
}

/// @brief Why `in` cannot be stored, or nullptr when it can.
inline const char* record_input_problem(const record_input& in) noexcept {
  if (in.topic.size() > 0xFFFF) return "topic is longer than 65535 bytes";
  if (in.schema.size() > 0xFFFF) return "schema name is longer than 65535 bytes";
  if (in.source.size() > 0xFFFF) return "source is longer than 65535 bytes";
  if (in.headers.size() > 0xFFFF) return "more than 65535 headers";
  if (in.payload.size() > max_record_body_bytes) return "payload is larger than 1 GiB";
  for (const auto& h : in.headers)
    if (h.key.size() > max_record_body_bytes || h.value.size() > max_record_body_bytes)
      return "a header is larger than 1 GiB";
  if (record_body_bytes(in) > max_record_body_bytes) return "the record is larger than 1 GiB";
  return nullptr;
}

/// @brief Bytes of the whole frame (prefix, body, padding) for a body of `body_bytes`.
constexpr std::uint64_t frame_bytes(std::uint64_t body_bytes) noexcept {
  return align_frame(frame_prefix_bytes + body_bytes);
}

/// @brief Writes the frame of `in` at `frame` (8-byte aligned, frame_bytes(body_bytes) bytes
/// available, all zero or not: padding is written). The length word is stored last with
/// release ordering, which is what publishes the record. Precondition: record_input_problem
/// returned nullptr and body_bytes == record_body_bytes(in).
inline void encode_record(std::byte* frame, const record_input& in, std::uint64_t offset,
                          std::uint64_t body_bytes) noexcept {
  std::byte* b = frame + frame_prefix_bytes;
  store_le<std::uint64_t>(b + 0, offset);
  store_le<std::int64_t>(b + 8, in.published_ns);
  store_le<std::uint64_t>(b + 16, in.event_id);
  store_le<std::uint64_t>(b + 24, in.correlation_id);
  store_le<std::uint64_t>(b + 32, in.fingerprint);
  store_le<std::uint32_t>(b + 40, in.schema_version);
  store_le<std::uint8_t>(b + 44, record_format_version);
  store_le<std::uint8_t>(b + 45, in.priority);
  store_le<std::uint16_t>(b + 46, static_cast<std::uint16_t>(in.headers.size()));
  store_le<std::uint16_t>(b + 48, static_cast<std::uint16_t>(in.topic.size()));
  store_le<std::uint16_t>(b + 50, static_cast<std::uint16_t>(in.schema.size()));
  store_le<std::uint16_t>(b + 52, static_cast<std::uint16_t>(in.source.size()));
  store_le<std::uint16_t>(b + 54, 0);
  store_le<std::uint32_t>(b + 56, static_cast<std::uint32_t>(in.payload.size()));
  std::byte* p = b + record_fixed_bytes;
  auto put = [&p](const void* src, std::size_t n) {
    if (n != 0) std::memcpy(p, src, n);
    p += n;
  };
  put(in.payload.data(), in.payload.size());
  put(in.topic.data(), in.topic.size());
  put(in.schema.data(), in.schema.size());
  put(in.source.data(), in.source.size());
  std::byte* headers_begin = p;
  for (const auto& h : in.headers) {
    store_le<std::uint32_t>(p, static_cast<std::uint32_t>(h.key.size()));
    store_le<std::uint32_t>(p + 4, static_cast<std::uint32_t>(h.value.size()));
    p += 8;
    put(h.key.data(), h.key.size());
    put(h.value.data(), h.value.size());
  }
  store_le<std::uint32_t>(b + 60, static_cast<std::uint32_t>(p - headers_begin));
  const std::size_t padding = static_cast<std::size_t>(frame_bytes(body_bytes) - frame_prefix_bytes - body_bytes);
  if (padding != 0) std::memset(p, 0, padding);
  store_le<std::uint32_t>(frame + 4, crc32c({b, static_cast<std::size_t>(body_bytes) + padding}));
  store_release_u32(frame, static_cast<std::uint32_t>(body_bytes));
}

/// @brief What decode_record found at the start of a byte span.
enum class decode_status {
  ok,         ///< a valid record
  end,        ///< no record: the length word is zero (or fewer than 4 bytes are left)
  truncated,  ///< the frame claims more bytes than the span holds (a torn tail)
  corrupt,    ///< checksum mismatch or an impossible structure
};

/// @brief Result of decode_record.
struct decode_result {
  decode_status status = decode_status::end;  ///< what was found
  agentbus::record rec{};                     ///< the record (views into the span) when ok
  std::uint64_t size = 0;  ///< bytes of the frame with padding, when ok; else 0
  const char* reason = "";  ///< why not ok, for messages
};

/// @brief Reads the length word at the start of `bytes` (acquire), 0 when fewer than 4 bytes.
inline std::uint32_t peek_frame_length(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < 4) return 0;
  if ((reinterpret_cast<std::uintptr_t>(bytes.data()) & 3u) == 0) return load_acquire_u32(bytes.data());
  return load_le<std::uint32_t>(bytes.data());  // unaligned input (fuzzing): no concurrency there
}

/// @brief Decodes the frame at the start of `bytes`, a pure function of the bytes.
///
/// Checks the CRC and that every length adds up exactly; never reads outside `bytes`.
/// Header views are written to `*header_storage` (cleared first) when given; with nullptr the
/// headers are still validated but `rec.headers` is empty. The result's views point into
/// `bytes` and `*header_storage`.
inline decode_result decode_record(std::span<const std::byte> bytes,
                                   std::vector<header>* header_storage = nullptr) {
  decode_result r;
  const std::uint32_t length = peek_frame_length(bytes);
  if (length == 0) return r;  // end
  if (length < record_fixed_bytes || length > max_record_body_bytes) {
    r.status = decode_status::corrupt;
    r.reason = "impossible record length";
    return r;
  }
  const std::uint64_t size = frame_bytes(length);
  if (size > bytes.size()) {
    r.status = decode_status::truncated;
    r.reason = "record runs past the end of the data";
    return r;
  }
  const std::byte* b = bytes.data() + frame_prefix_bytes;
  r.status = decode_status::corrupt;  // until every check has passed
  // The cheap structural checks come before the checksum: recovery probes garbage for frames,
  // and this way random bytes are turned down without hashing what they claim to hold.
  if (load_le<std::uint8_t>(b + 44) != record_format_version) {
    r.reason = "unknown record format version";
    return r;
  }
  const std::size_t topic_len = load_le<std::uint16_t>(b + 48);
  const std::size_t schema_len = load_le<std::uint16_t>(b + 50);
  const std::size_t source_len = load_le<std::uint16_t>(b + 52);
  const std::uint64_t payload_len = load_le<std::uint32_t>(b + 56);
  const std::uint64_t headers_len = load_le<std::uint32_t>(b + 60);
  if (record_fixed_bytes + payload_len + topic_len + schema_len + source_len + headers_len != length) {
    r.reason = "field lengths do not add up to the record length";
    return r;
  }
  if (crc32c({b, static_cast<std::size_t>(size - frame_prefix_bytes)}) != load_le<std::uint32_t>(bytes.data() + 4)) {
    r.reason = "checksum mismatch";
    return r;
  }
  auto& out = r.rec;
  out.offset = load_le<std::uint64_t>(b + 0);
  out.published_ns = load_le<std::int64_t>(b + 8);
  out.event_id = load_le<std::uint64_t>(b + 16);
  out.correlation_id = load_le<std::uint64_t>(b + 24);
  out.fingerprint = load_le<std::uint64_t>(b + 32);
  out.schema_version = load_le<std::uint32_t>(b + 40);
  out.priority = load_le<std::uint8_t>(b + 45);
  const std::size_t header_count = load_le<std::uint16_t>(b + 46);
  const std::byte* p = b + record_fixed_bytes;
  auto text = [&p](std::size_t n) {
    std::string_view s{reinterpret_cast<const char*>(p), n};
    p += n;
    return s;
  };
  out.payload = {p, static_cast<std::size_t>(payload_len)};
  p += payload_len;
  out.topic = text(topic_len);
  out.schema = text(schema_len);
  out.source = text(source_len);
  if (header_storage != nullptr) header_storage->clear();
  const std::byte* headers_end = p + headers_len;
  for (std::size_t i = 0; i < header_count; ++i) {
    if (headers_end - p < 8) {
      r.reason = "header block too short";
      return r;
    }
    const std::uint64_t key_len = load_le<std::uint32_t>(p);
    const std::uint64_t value_len = load_le<std::uint32_t>(p + 4);
    p += 8;
    if (static_cast<std::uint64_t>(headers_end - p) < key_len + value_len) {
      r.reason = "header runs past the header block";
      return r;
    }
    const std::string_view key = text(static_cast<std::size_t>(key_len));
    const std::string_view value = text(static_cast<std::size_t>(value_len));
    if (header_storage != nullptr) header_storage->push_back({key, value});
  }
  if (p != headers_end) {
    r.reason = "header block longer than its headers";
    return r;
  }
  if (header_storage != nullptr) out.headers = {header_storage->data(), header_storage->size()};
  r.status = decode_status::ok;
  r.size = size;
  r.reason = "";
  return r;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_RECORD_FORMAT_HPP
