// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_CRC32C_HPP
#define AGENTBUS_JOURNAL_DETAIL_CRC32C_HPP

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every journal record.
//
// Two implementations give identical results:
// - a portable one, "slicing by 8" (eight 256-entry tables built at compile time, eight bytes
//   per step);
// - on x86-64, the SSE4.2 `crc32` instruction, chosen at run time when the CPU has it. One
//   instruction has a latency of three cycles but a throughput of one per cycle, so long
//   inputs are cut into three lanes computed side by side and then stitched together with a
//   "shift by N zero bytes" table (CRC is linear, so crc(A||B) = shift(crc(A), |B|) ^ crc(B)
//   for the raw register value). That is what lets a 1 KiB record be checked in ~50 ns.
//
// Convention: crc32c(data, seed) extends a previous result, so
// crc32c(b, crc32c(a)) == crc32c(a || b), and crc32c("123456789") == 0xE3069283.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace agentbus::detail {

/// @brief The reflected CRC32C polynomial.
inline constexpr std::uint32_t crc32c_polynomial = 0x82F63B78u;

namespace crc32c_impl {

/// Eight tables: table[0] is the classic byte-at-a-time table, table[k][b] is the CRC of byte
/// b followed by k zero bytes (what slicing by 8 looks up for the byte k places back).
struct slice_tables {
  std::uint32_t t[8][256];
};

constexpr slice_tables make_slice_tables() {
  slice_tables s{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c & 1u) ? (c >> 1) ^ crc32c_polynomial : c >> 1;
    s.t[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (std::uint32_t b = 0; b < 256; ++b) s.t[k][b] = (s.t[k - 1][b] >> 8) ^ s.t[0][s.t[k - 1][b] & 0xFFu];
  return s;
}

inline constexpr slice_tables slices = make_slice_tables();

/// A 32x32 matrix over GF(2), as 32 columns: column i is the image of bit i.
using gf2_matrix = std::array<std::uint32_t, 32>;

constexpr std::uint32_t apply(const gf2_matrix& m, std::uint32_t v) {
  std::uint32_t r = 0;
  for (int i = 0; v != 0; ++i, v >>= 1)
    if (v & 1u) r ^= m[static_cast<std::size_t>(i)];
  return r;
}

constexpr gf2_matrix multiply(const gf2_matrix& a, const gf2_matrix& b) {  // a after b
  gf2_matrix r{};
  for (std::size_t i = 0; i < 32; ++i) r[i] = apply(a, b[i]);
  return r;
}

/// The operator "feed `bytes` zero bytes into the raw CRC register".
constexpr gf2_matrix zeros_operator(std::size_t bytes) {
  gf2_matrix one_bit{};  // one zero bit: shift right, fold the polynomial in when bit 0 falls out
  one_bit[0] = crc32c_polynomial;
  for (std::size_t i = 1; i < 32; ++i) one_bit[i] = std::uint32_t{1} << (i - 1);
  gf2_matrix result{};
  for (std::size_t i = 0; i < 32; ++i) result[i] = std::uint32_t{1} << i;
  gf2_matrix power = one_bit;
  for (std::size_t bits = bytes * 8; bits != 0; bits >>= 1) {  // square and multiply
    if (bits & 1u) result = multiply(power, result);
    power = multiply(power, power);
  }
  return result;
}

/// shift(c) = table[0][c & 255] ^ table[1][(c >> 8) & 255] ^ ... : the raw register c moved
/// past `bytes` zero bytes, four lookups instead of `bytes` steps.
struct shift_table {
  std::uint32_t t[4][256];
};

constexpr shift_table make_shift_table(std::size_t bytes) {
  const gf2_matrix op = zeros_operator(bytes);
  shift_table s{};
  for (std::size_t k = 0; k < 4; ++k)
    for (std::uint32_t b = 0; b < 256; ++b) s.t[k][b] = apply(op, b << (8 * k));
  return s;
}

constexpr std::uint32_t shift(const shift_table& s, std::uint32_t c) {
  return s.t[0][c & 0xFFu] ^ s.t[1][(c >> 8) & 0xFFu] ^ s.t[2][(c >> 16) & 0xFFu] ^ s.t[3][c >> 24];
}

/// Lane lengths for the three-lane hardware loop: long lanes for big inputs, short ones so
/// that a record of a few hundred bytes already runs three lanes.
inline constexpr std::size_t long_lane = 4096;
inline constexpr std::size_t short_lane = 128;
inline constexpr shift_table shift_long = make_shift_table(long_lane);
inline constexpr shift_table shift_short = make_shift_table(short_lane);

inline std::uint64_t load_u64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // the CRC consumes bytes in address order: little-endian hosts only (below)
}

}  // namespace crc32c_impl

/// @brief Portable CRC32C (slicing by 8); identical results to the hardware path.
inline std::uint32_t crc32c_sw(std::span<const std::byte> data, std::uint32_t seed = 0) noexcept {
  using crc32c_impl::slices;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  std::uint32_t c = ~seed;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (n >= 8) {
    const std::uint64_t w = crc32c_impl::load_u64(p) ^ c;
    c = slices.t[7][w & 0xFFu] ^ slices.t[6][(w >> 8) & 0xFFu] ^ slices.t[5][(w >> 16) & 0xFFu] ^
        slices.t[4][(w >> 24) & 0xFFu] ^ slices.t[3][(w >> 32) & 0xFFu] ^ slices.t[2][(w >> 40) & 0xFFu] ^
        slices.t[1][(w >> 48) & 0xFFu] ^ slices.t[0][w >> 56];
    p += 8;
    n -= 8;
  }
#endif
  while (n-- != 0) c = slices.t[0][(c ^ *p++) & 0xFFu] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AGENTBUS_CRC32C_HW 1

namespace crc32c_impl {
/// Three lanes of `lane` bytes side by side while at least 3 * lane bytes remain.
__attribute__((target("sse4.2"))) inline std::uint64_t hw_three_lanes(std::uint64_t c, const unsigned char*& p,
                                                                       std::size_t& n, std::size_t lane,
                                                                       const shift_table& table) noexcept {
  while (n >= 3 * lane) {
    std::uint64_t c1 = 0, c2 = 0;
    const unsigned char* end = p + lane;
    for (; p != end; p += 8) {
      c = __builtin_ia32_crc32di(c, load_u64(p));
      c1 = __builtin_ia32_crc32di(c1, load_u64(p + lane));
      c2 = __builtin_ia32_crc32di(c2, load_u64(p + 2 * lane));
    }
    c = shift(table, static_cast<std::uint32_t>(c)) ^ c1;
    c = shift(table, static_cast<std::uint32_t>(c)) ^ c2;
    p += 2 * lane;
    n -= 3 * lane;
  }
  return c;
}
}  // namespace crc32c_impl

/// @brief CRC32C with the SSE4.2 instruction. Only call when crc32c_hw_available().
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_hw(std::span<const std::byte> data,
                                                                  std::uint32_t seed = 0) noexcept {
  using namespace crc32c_impl;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  std::uint32_t c32 = ~seed;
  // Align to 8 bytes so the lanes' 8-byte loads do not straddle cache lines.
  while (n != 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
    --n;
  }
  std::uint64_t c = hw_three_lanes(c32, p, n, long_lane, shift_long);
  c = hw_three_lanes(c, p, n, short_lane, shift_short);
  for (; n >= 8; n -= 8, p += 8) c = __builtin_ia32_crc32di(c, load_u64(p));
  c32 = static_cast<std::uint32_t>(c);
  while (n-- != 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}

/// @brief True when this CPU has SSE4.2 (checked once).
inline bool crc32c_hw_available() noexcept {
  static const bool available = [] {
    __builtin_cpu_init();  // needed when asked from a static initializer, harmless otherwise
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return available;
}
#else
#define AGENTBUS_CRC32C_HW 0
/// @brief No hardware CRC32C on this target.
inline bool crc32c_hw_available() noexcept { return false; }
#endif

/// @brief CRC32C of `data`, extending `seed` (the CRC of what came before; 0 to start).
inline std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed = 0) noexcept {
#if AGENTBUS_CRC32C_HW
  if (crc32c_hw_available()) return crc32c_hw(data, seed);
#endif
  return crc32c_sw(data, seed);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_CRC32C_HPP
