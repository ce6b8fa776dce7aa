// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_FILE_HEADER_HPP
#define AGENTBUS_JOURNAL_DETAIL_FILE_HEADER_HPP

// The 64-byte header at the start of every segment (.log) and index (.idx) file:
//
//   +0  8 bytes  magic "agentbus"
//   +8  u32      kind: 1 = segment, 2 = index
//   +12 u32      format version (1)
//   +16 u64      base offset: the offset of the segment's first record (also its file name)
//   +24 u64      parameter: index interval in bytes for an index, 0 for a segment
//   +32 28 bytes zero (reserved)
//   +60 u32      CRC32C of bytes 0..59
//
// It lets tools recognise the files, refuses files of a newer format instead of misreading
// them, and catches a segment renamed by hand (the base offset must match the name).

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "agentbus/journal/detail/crc32c.hpp"
#include "agentbus/journal/detail/little_endian.hpp"

namespace agentbus::detail {

/// @brief Bytes of the file header; records (or index entries) start right after it.
inline constexpr std::size_t file_header_bytes = 64;
/// @brief The format version this code writes and reads.
inline constexpr std::uint32_t journal_format_version = 1;

/// @brief Which file a header belongs to.
enum class file_kind : std::uint32_t { segment = 1, index = 2 };

/// @brief The decoded header.
struct file_header {
  file_kind kind = file_kind::segment;  ///< segment or index
  std::uint32_t version = journal_format_version;  ///< format version
  std::uint64_t base_offset = 0;        ///< first offset of the segment
  std::uint64_t parameter = 0;          ///< index interval (index files)
};

/// @brief What reading a header found.
enum class header_status { ok, zero, bad, newer_version };

inline constexpr std::array<char, 8> file_magic = {'a', 'g', 'e', 'n', 't', 'b', 'u', 's'};

/// @brief Writes `h` into the first 64 bytes of `out`.
inline void write_file_header(std::byte* out, const file_header& h) noexcept {
  std::memset(out, 0, file_header_bytes);
  std::memcpy(out, file_magic.data(), file_magic.size());
  store_le<std::uint32_t>(out + 8, static_cast<std::uint32_t>(h.kind));
  store_le<std::uint32_t>(out + 12, h.version);
  store_le<std::uint64_t>(out + 16, h.base_offset);
  store_le<std::uint64_t>(out + 24, h.parameter);
  store_le<std::uint32_t>(out + 60, crc32c({out, 60}));
}

/// @brief Reads the header at the start of `in` into `h`: zero (never written), bad
/// (damaged or not ours), newer_version (a format this code does not know), or ok.
inline header_status read_file_header(std::span<const std::byte> in, file_header& h) noexcept {
  if (in.size() < file_header_bytes) return header_status::bad;
  bool all_zero = true;
  for (std::size_t i = 0; i < file_header_bytes; ++i)
    if (in[i] != std::byte{0}) {
      all_zero = false;
      break;
    }
  if (all_zero) return header_status::zero;
  if (std::memcmp(in.data(), file_magic.data(), file_magic.size()) != 0) return header_status::bad;
  if (crc32c(in.first(60)) != load_le<std::uint32_t>(in.data() + 60)) return header_status::bad;
  h.kind = static_cast<file_kind>(load_le<std::uint32_t>(in.data() + 8));
  h.version = load_le<std::uint32_t>(in.data() + 12);
  h.base_offset = load_le<std::uint64_t>(in.data() + 16);
  h.parameter = load_le<std::uint64_t>(in.data() + 24);
  if (h.version > journal_format_version) return header_status::newer_version;
  if (h.version == 0) return header_status::bad;
  return header_status::ok;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_FILE_HEADER_HPP
