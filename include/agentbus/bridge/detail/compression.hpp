// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_DETAIL_COMPRESSION_HPP
#define AGENTBUS_BRIDGE_DETAIL_COMPRESSION_HPP

// Compressed payloads (nats_options::compress_above): a payload of at least that many codec
// bytes goes out as a zstd frame with the header `Agentbus-Encoding: zstd`, when that makes it
// smaller; a receiver decompresses before decoding (docs/wire-format.md, "Compression"). Any
// receiver built with zstd reads compressed payloads, whatever its own options say.
//
// zstd comes from Debian libzstd-dev: CMake links it into agentbus::nats and defines
// AGENTBUS_NATS_ZSTD=1 when pkg-config finds it. Without it a bridge given compress_above
// throws nats_error at construction, and a compressed message that arrives is a decode error
// that says why.

#include "agentbus/transport/nats.hpp"

#if AGENTBUS_HAS_NATS

#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#if defined(AGENTBUS_NATS_ZSTD) && AGENTBUS_NATS_ZSTD
#include <zstd.h>
#define AGENTBUS_HAS_NATS_ZSTD 1
#else
#define AGENTBUS_HAS_NATS_ZSTD 0
#endif

namespace agentbus::detail {

/// The largest payload a receiver decompresses (a frame that claims more is refused: a small
/// message must not make a receiver allocate without bound).
inline constexpr std::size_t max_decompressed_payload = std::size_t{64} << 20;

/// When and how payloads are compressed on the way out (above == 0: never).
struct payload_compression {
  std::size_t above = 0;
  int level = 3;

  /// Checks that this program can compress when asked to; nats_error otherwise.
  static payload_compression from(std::size_t above, int level) {
#if !AGENTBUS_HAS_NATS_ZSTD
    if (above != 0)
      throw nats_error(
          "agentbus: nats: nats_options::compress_above needs zstd, and this program was built without it (install "
          "libzstd-dev and link agentbus::nats, which then defines AGENTBUS_NATS_ZSTD=1)",
          0);
#endif
    return {above, level};
  }

  /// `bytes` as a zstd frame in `out`, when compression is on, they are at least `above`
  /// bytes and the frame is smaller; else false (send them as they are).
  bool compress(std::span<const std::byte> bytes, std::vector<std::byte>& out) const {
#if AGENTBUS_HAS_NATS_ZSTD
    if (above == 0 || bytes.size() < above) return false;
    out.resize(ZSTD_compressBound(bytes.size()));
    const std::size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), level);
    if (ZSTD_isError(n) || n >= bytes.size()) return false;
    out.resize(n);
    return true;
#else
    (void)bytes;
    (void)out;
    return false;
#endif
  }
};

/// The payload bytes of `msg` as its codec wrote them: decompressed into `scratch` when it
/// says `Agentbus-Encoding: zstd`. Throws std::runtime_error for an unknown encoding, a frame
/// that does not decompress or claims more than max_decompressed_payload, or zstd missing here.
inline std::span<const std::byte> codec_bytes(natsMsg* msg, std::vector<std::byte>& scratch) {
  const char* data = natsMsg_GetData(msg);
  const auto size = data != nullptr ? static_cast<std::size_t>(natsMsg_GetDataLength(msg)) : 0;
  const std::span<const std::byte> raw(reinterpret_cast<const std::byte*>(data), size);
  const char* encoding = nullptr;
  if (natsMsgHeader_Get(msg, nats_header::encoding, &encoding) != NATS_OK || encoding == nullptr) return raw;
  if (std::string_view(encoding) != "zstd")
    throw std::runtime_error(std::string("unknown Agentbus-Encoding '") + encoding + "' (this version reads zstd)");
#if AGENTBUS_HAS_NATS_ZSTD
  const unsigned long long claimed = ZSTD_getFrameContentSize(raw.data(), raw.size());
  if (claimed == ZSTD_CONTENTSIZE_ERROR || claimed == ZSTD_CONTENTSIZE_UNKNOWN)
    throw std::runtime_error("Agentbus-Encoding zstd: not a zstd frame with its size");
  if (claimed > max_decompressed_payload)
    throw std::runtime_error("Agentbus-Encoding zstd: the frame claims " + std::to_string(claimed) +
                             " bytes, more than the 64 MiB a receiver decompresses");
  scratch.resize(static_cast<std::size_t>(claimed));
  const std::size_t n = ZSTD_decompress(scratch.data(), scratch.size(), raw.data(), raw.size());
  if (ZSTD_isError(n) || n != scratch.size())
    throw std::runtime_error(std::string("Agentbus-Encoding zstd: the frame does not decompress: ") +
                             (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short"));
  return std::span<const std::byte>(scratch.data(), n);
#else
  (void)scratch;
  throw std::runtime_error(
      "Agentbus-Encoding zstd: this program was built without zstd (libzstd-dev; AGENTBUS_NATS_ZSTD)");
#endif
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_DETAIL_COMPRESSION_HPP
