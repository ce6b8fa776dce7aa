// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_LITTLE_ENDIAN_HPP
#define AGENTBUS_JOURNAL_DETAIL_LITTLE_ENDIAN_HPP

// Fixed-width little-endian fields in byte buffers: every integer in the journal's files is
// stored this way, whatever the host, so files move between machines. On little-endian hosts
// (all the ones we build for) these compile to plain unaligned loads and stores.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace agentbus::detail {

/// @brief Reverses the bytes of an unsigned integer (std::byteswap is C++23).
template <class T>
constexpr T byte_swap(T v) noexcept {
  static_assert(std::is_unsigned_v<T>);
  if constexpr (sizeof(T) == 1) return v;
  else if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
  else if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
  else return static_cast<T>(__builtin_bswap64(v));
}

/// @brief Stores `v` little-endian at `p` (no alignment needed).
template <class T>
inline void store_le(std::byte* p, T v) noexcept {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  if constexpr (std::endian::native == std::endian::big) u = byte_swap(u);
  std::memcpy(p, &u, sizeof(U));
}

/// @brief Loads a little-endian `T` from `p` (no alignment needed).
template <class T>
inline T load_le(const std::byte* p) noexcept {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  U u;
  std::memcpy(&u, p, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) u = byte_swap(u);
  return static_cast<T>(u);
}

/// @brief Atomically loads the 4-byte little-endian word at `p` (4-byte aligned) with acquire
/// ordering: the commit point of a record that another thread or process writes.
inline std::uint32_t load_acquire_u32(const std::byte* p) noexcept {
  std::uint32_t u = __atomic_load_n(reinterpret_cast<const std::uint32_t*>(p), __ATOMIC_ACQUIRE);
  if constexpr (std::endian::native == std::endian::big) u = byte_swap(u);
  return u;
}

/// @brief Atomically stores the 4-byte little-endian word at `p` (4-byte aligned) with release
/// ordering: everything written before it is visible to whoever sees this value.
inline void store_release_u32(std::byte* p, std::uint32_t v) noexcept {
  if constexpr (std::endian::native == std::endian::big) v = byte_swap(v);
  __atomic_store_n(reinterpret_cast<std::uint32_t*>(p), v, __ATOMIC_RELEASE);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_JOURNAL_DETAIL_LITTLE_ENDIAN_HPP
