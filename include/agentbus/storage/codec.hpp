// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_CODEC_HPP
#define AGENTBUS_STORAGE_CODEC_HPP

// Codecs turn payloads into bytes and back, for the storage policies that persist events.
//
// Built in: arithmetic types, enums and std::array of them (their bytes as they are in
// memory), std::string, and std::vector<U> of any codec-able U. A user type gets a codec in one
// of three ways:
//   - the bitwise codec, by opting in: a trivially copyable class whose bytes mean the same in
//     another process (no pointers, no std::string_view, no handles) says so with a member
//       static constexpr bool agentbus_bitwise_codec = true;
//     or, for a type you cannot edit, `template <> inline constexpr bool
//     agentbus::enable_bitwise_codec<my_type> = true;`. Class types are never persisted by
//     their bytes implicitly: a struct holding a pointer would replay as a dangling one.
//     Padding bytes are written as zeros (where the compiler can clear them: GCC 11+). On
//     decoding, a bool (alone or in a std::array) must be 00 or 01, else codec_error; the
//     fields of an opted-in class and enum values are taken as they are: give an enum a
//     fixed underlying type (every `enum class` has one), as a value outside the range of
//     one without is undefined behaviour, and avoid bool fields in bitwise classes that may
//     receive bytes from elsewhere;
//   - ADL hooks, found in the type's namespace:
//       void agentbus_encode(agentbus::byte_writer& out, const my_type& value);
//       my_type agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<my_type>);
//   - or a specialization of agentbus::codec<my_type> with static encode/decode/fingerprint.
//
// Every codec has a 64-bit fingerprint of the byte layout it writes. Records store it with the
// schema name and version, so that a reader whose type has changed without a version bump
// finds out (a fingerprint mismatch) instead of decoding garbage. For the bitwise codec the
// fingerprint covers size and alignment; for ADL codecs it is derived from the schema name
// unless the type provides `static constexpr std::uint64_t codec_fingerprint`.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/core/event_traits.hpp"

namespace agentbus {

/// @brief A payload's bytes could not be decoded (too short, bad length, upcaster refused).
class codec_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
/// Runs user code that decodes (a codec's decode, an upcaster) and turns whatever it throws
/// that is not a std::exception into a codec_error; a std::exception passes unchanged. Every
/// reader of stored or received events (journal, NATS import, JetStream, remote replies)
/// counts a failed decode through `catch (const std::exception&)`: a decoder throwing `42`
/// escaped all of them (out of a consumer's poll; swallowed uncounted by the NATS import).
template <class F>
decltype(auto) run_decoder(F&& decoder) {
  try {
    return std::forward<F>(decoder)();
  } catch (const std::exception&) {
    throw;
  } catch (...) {
    throw codec_error("agentbus: codec: the decoder threw an exception that is not a std::exception");
  }
}
}  // namespace detail

/// @brief Appends bytes to a growable buffer; what encoders write into.
class byte_writer {
 public:
  /// @brief Appends `size` bytes from `data`.
  void write(const void* data, std::size_t size) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + size);
    if (size != 0) std::memcpy(bytes_.data() + at, data, size);
  }
  /// @brief Appends the object representation of a trivially copyable value.
  template <class V>
    requires std::is_trivially_copyable_v<V>
  void write_value(const V& value) {
    write(&value, sizeof(V));
  }
  /// @brief Appends a length-prefixed (u32) string.
  void write_string(std::string_view s) {
    if (s.size() > UINT32_MAX) throw codec_error("agentbus: codec: a string longer than 4 GiB cannot be encoded");
    write_value(static_cast<std::uint32_t>(s.size()));
    write(s.data(), s.size());
  }
  /// @brief The bytes written so far.
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  /// @brief Forgets the bytes (keeps the capacity, so a reused writer does not allocate).
  void clear() noexcept { bytes_.clear(); }

 private:
  std::vector<std::byte> bytes_;
};

/// @brief Reads bytes from a span; what decoders read from. Reading past the end throws
/// codec_error, so a truncated or corrupted payload is reported, never read out of bounds.
class byte_reader {
 public:
  /// @brief Reads from `bytes` (not copied: must outlive the reader).
  explicit byte_reader(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}
  /// @brief Copies the next `size` bytes into `out`.
  void read(void* out, std::size_t size) {
    if (size > remaining()) throw codec_error("agentbus: codec: payload ends early (truncated or wrong type)");
    if (size != 0) std::memcpy(out, bytes_.data() + at_, size);
    at_ += size;
  }
  /// @brief Reads a trivially copyable value.
  template <class V>
    requires std::is_trivially_copyable_v<V> && std::is_default_constructible_v<V>
  V read_value() {
    if constexpr (std::is_same_v<V, bool>) {
      // A byte other than 0 or 1 is no bool value (loading it would be undefined behaviour).
      unsigned char b = 0;
      read(&b, 1);
      if (b != 0 && b != 1) throw codec_error("agentbus: codec: a bool byte other than 00 or 01 (corrupted or wrong type)");
      return b == 1;
    } else {
      V v;
      read(&v, sizeof(V));
      return v;
    }
  }
  /// @brief Reads a length-prefixed (u32) string written by byte_writer::write_string.
  std::string read_string() {
    const auto size = read_value<std::uint32_t>();
    if (size > remaining()) throw codec_error("agentbus: codec: string length exceeds the payload");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + at_), size);
    at_ += size;
    return s;
  }
  /// @brief Bytes not read yet.
  std::size_t remaining() const noexcept { return bytes_.size() - at_; }

 private:
  std::span<const std::byte> bytes_;
  std::size_t at_ = 0;
};

/// @brief Tag that selects a type in ADL decode hooks: `agentbus_decode(in, codec_tag<T>{})`.
template <class T>
struct codec_tag {};

/// @brief Opts a trivially copyable class type into the bitwise codec (see the top of this
/// header): specialize as `template <> inline constexpr bool
/// agentbus::enable_bitwise_codec<my_type> = true;`, or give the type a member
/// `static constexpr bool agentbus_bitwise_codec = true;`.
template <class T>
inline constexpr bool enable_bitwise_codec = requires { requires T::agentbus_bitwise_codec; };

namespace detail {

/// 64-bit FNV-1a, usable at compile time: codec fingerprints are constants.
constexpr std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ull) noexcept {
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}
constexpr std::uint64_t fnv1a_value(std::uint64_t v, std::uint64_t h) noexcept {
  for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xffu)) * 1099511628211ull;
  return h;
}

template <class T>
concept has_adl_codec = requires(byte_writer& out, byte_reader& in, const T& value) {
  agentbus_encode(out, value);
  { agentbus_decode(in, codec_tag<T>{}) } -> std::same_as<T>;
};

template <class T>
struct is_std_array : std::false_type {};
template <class U, std::size_t N>
struct is_std_array<std::array<U, N>> : std::true_type {
  using element = U;
};

/// Types whose bytes are their meaning, with no opt-in: arithmetic types, enums, arrays of them.
template <class T>
constexpr bool implicitly_bitwise() noexcept {
  if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) return true;
  else if constexpr (std::is_array_v<T>) return implicitly_bitwise<std::remove_all_extents_t<T>>();
  else if constexpr (is_std_array<T>::value) return implicitly_bitwise<typename is_std_array<T>::element>();
  else return false;
}

template <class T>
concept bitwise_codable = std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
                          (implicitly_bitwise<T>() || enable_bitwise_codec<T>);

/// Appends the bytes of `value` to `out` with its padding zeroed where the compiler can tell
/// which bytes are padding (otherwise as they are). The cleared copy is written from where it
/// was cleared: returning it by value let GCC at -O0 copy it member by member, padding garbage
/// included.
template <class T>
void write_without_padding(byte_writer& out, const T& value) {
  T copy;
  std::memcpy(static_cast<void*>(&copy), static_cast<const void*>(&value), sizeof(T));
#if defined(__has_builtin)
#if __has_builtin(__builtin_clear_padding)
  __builtin_clear_padding(&copy);
#endif
#endif
  out.write_value(copy);
}

}  // namespace detail

/// @brief The codec of T: `static void encode(byte_writer&, const T&)`,
/// `static T decode(byte_reader&)`, `static constexpr std::uint64_t fingerprint()`.
/// Specialize it for a type, or use the ADL hooks described at the top of this header.
template <class T>
struct codec {};  // no codec: has_codec<T> is false (see require_codec for the error users see)

/// @brief The codec of a type with ADL hooks: calls `agentbus_encode` / `agentbus_decode`.
template <class T>
  requires detail::has_adl_codec<T>
struct codec<T> {
  /// @brief Appends the bytes of `value` to `out`.
  static void encode(byte_writer& out, const T& value) { agentbus_encode(out, value); }
  /// @brief Reads one value back from `in` (throws codec_error on malformed bytes).
  static T decode(byte_reader& in) { return agentbus_decode(in, codec_tag<T>{}); }
  /// @brief Identifies the byte layout: recorded with each record and checked on reading.
  static constexpr std::uint64_t fingerprint() noexcept {
    if constexpr (requires { { T::codec_fingerprint } -> std::convertible_to<std::uint64_t>; })
      return static_cast<std::uint64_t>(T::codec_fingerprint);
    else
      return detail::fnv1a(event_traits<T>::name(), detail::fnv1a("adl:"));
  }
};

namespace detail {
/// A std::array of bool: its bytes are checked one by one on decoding (00 or 01), not copied.
template <class T>
constexpr bool is_bool_array() noexcept {
  if constexpr (requires { std::tuple_size<T>::value; })
    return std::is_same_v<std::remove_cvref_t<decltype(std::declval<T&>()[0])>, bool>;
  else
    return false;
}
/// Elements a vector copies in one go: bitwise ones without a codec of their own, except
/// bools (each byte is checked on decoding; std::vector<bool> has no contiguous bytes anyway).
template <class U>
constexpr bool vector_copies_bytes() noexcept {
  if constexpr (std::is_same_v<std::remove_cv_t<U>, bool>)
    return false;
  else
    return bitwise_codable<U> && !has_adl_codec<U> && !is_bool_array<U>();
}
}  // namespace detail

/// @brief The bitwise codec: arithmetic types, enums, `std::array` of them, and opted-in classes.
template <class T>
  requires(!detail::has_adl_codec<T> && detail::bitwise_codable<T>)
struct codec<T> {
  /// @brief Appends the bytes of `value` to `out`.
  static void encode(byte_writer& out, const T& value) {
    if constexpr (std::is_class_v<T>) detail::write_without_padding(out, value);
    else out.write_value(value);
  }
  /// @brief Reads one value back from `in` (throws codec_error on malformed bytes: too few,
  /// or a bool, also in an array, that is neither 00 nor 01).
  static T decode(byte_reader& in) {
    if constexpr (detail::is_bool_array<T>()) {
      T v;
      for (bool& b : v) b = in.read_value<bool>();  // each byte checked (read_value<bool>)
      return v;
    } else {
      return in.read_value<T>();
    }
  }
  /// @brief Identifies the byte layout: recorded with each record and checked on reading.
  static constexpr std::uint64_t fingerprint() noexcept {
    std::uint64_t h = detail::fnv1a("trivial:");
    h = detail::fnv1a_value(sizeof(T), h);
    h = detail::fnv1a_value(alignof(T), h);
    return detail::fnv1a_value(std::is_floating_point_v<T> ? 1u : std::is_integral_v<T> ? 2u : 3u, h);
  }
};

/// @brief `std::string`: a 32-bit length, then the bytes.
template <>
struct codec<std::string> {
  /// @brief Appends the bytes of `value` to `out`.
  static void encode(byte_writer& out, const std::string& value) { out.write_string(value); }
  /// @brief Reads one value back from `in` (throws codec_error on malformed bytes).
  static std::string decode(byte_reader& in) { return in.read_string(); }
  /// @brief Identifies the byte layout: recorded with each record and checked on reading.
  static constexpr std::uint64_t fingerprint() noexcept { return detail::fnv1a("string:u32-length"); }
};

/// @brief True when T can be persisted: codec<T> has encode, decode and fingerprint.
template <class T>
concept has_codec = requires(byte_writer& out, byte_reader& in, const T& value) {
  codec<T>::encode(out, value);
  { codec<T>::decode(in) } -> std::same_as<T>;
  { codec<T>::fingerprint() } -> std::convertible_to<std::uint64_t>;
};

namespace detail {
/// Called by persisting storage policies: the one place that explains a missing codec. Use as
/// `if constexpr (detail::require_codec<T>()) { ... }` so that nothing else is instantiated
/// for a type without one: the explanation is then the only error.
template <class T>
constexpr bool require_codec() noexcept {
  if constexpr (enable_bitwise_codec<T> && !std::is_trivially_copyable_v<T>) {
    static_assert(std::is_trivially_copyable_v<T>,
                  "agentbus: this type opts into the bitwise codec (agentbus_bitwise_codec / enable_bitwise_codec) "
                  "but is not trivially copyable: give it ADL agentbus_encode/agentbus_decode hooks instead "
                  "(see agentbus/storage/codec.hpp)");
    return false;
  } else {
    static_assert(has_codec<T>,
                  "agentbus: this event type has no codec, so it cannot be persisted. A trivially copyable struct "
                  "whose bytes mean the same in another process opts in with `static constexpr bool "
                  "agentbus_bitwise_codec = true;`; otherwise define in its namespace `void "
                  "agentbus_encode(agentbus::byte_writer&, const T&)` and `T agentbus_decode(agentbus::byte_reader&, "
                  "agentbus::codec_tag<T>)`, or specialize agentbus::codec<T> (see agentbus/storage/codec.hpp)");
    return has_codec<T>;
  }
}
}  // namespace detail

/// @brief `std::vector` of a type with a codec: a 32-bit count, then the elements.
template <class U, class A>
  requires has_codec<U>
struct codec<std::vector<U, A>> {
  /// @brief Appends the bytes of `value` to `out`.
  static void encode(byte_writer& out, const std::vector<U, A>& value) {
    if (value.size() > UINT32_MAX) throw codec_error("agentbus: codec: a vector of more than 2^32 elements");
    out.write_value(static_cast<std::uint32_t>(value.size()));
    if constexpr (detail::vector_copies_bytes<U>() && !std::is_class_v<U>)
      out.write(value.data(), value.size() * sizeof(U));  // no padding to clear: one copy
    else
      for (const U& v : value) codec<U>::encode(out, v);
  }
  /// @brief Reads one value back from `in` (throws codec_error on malformed bytes).
  static std::vector<U, A> decode(byte_reader& in) {
    const auto size = in.read_value<std::uint32_t>();
    std::vector<U, A> value;
    if constexpr (detail::vector_copies_bytes<U>()) {
      if (std::size_t{size} * sizeof(U) > in.remaining())
        throw codec_error("agentbus: codec: vector length exceeds the payload");
      value.resize(size);
      in.read(value.data(), std::size_t{size} * sizeof(U));
    } else {
      // Each element takes at least a byte, except for empty types: cap the reservation by the
      // bytes left so a corrupted length cannot make us reserve gigabytes.
      value.reserve(std::min<std::size_t>(size, in.remaining()));
      for (std::uint32_t i = 0; i < size; ++i) value.push_back(codec<U>::decode(in));
    }
    return value;
  }
  /// @brief Identifies the byte layout: recorded with each record and checked on reading.
  static constexpr std::uint64_t fingerprint() noexcept {
    return detail::fnv1a_value(codec<U>::fingerprint(), detail::fnv1a("vector:u32-count:"));
  }
};

/// @brief Encodes `value` with its codec, appending to `out`.
template <class T>
void encode(byte_writer& out, const T& value) {
  codec<T>::encode(out, value);
}

/// @brief Decodes a T from `bytes`; throws codec_error if the bytes are short or have bytes
/// left over (a sign the record was written by another layout), or if the codec threw
/// something that is not a std::exception.
template <class T>
T decode(std::span<const std::byte> bytes) {
  byte_reader in(bytes);
  T value = detail::run_decoder([&] { return codec<T>::decode(in); });
  if (in.remaining() != 0) throw codec_error("agentbus: codec: bytes left over after decoding (wrong type or layout)");
  return value;
}

namespace detail {
/// codec<T>::fingerprint(), computed at compile time: a call at run time may hash on every
/// record that is written or read.
template <class T>
inline constexpr std::uint64_t codec_fingerprint_v = codec<T>::fingerprint();
}  // namespace detail

/// @brief The fingerprint of T's codec.
template <class T>
constexpr std::uint64_t codec_fingerprint() noexcept {
  return detail::codec_fingerprint_v<T>;
}

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_CODEC_HPP
