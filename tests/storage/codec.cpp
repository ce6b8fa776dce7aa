// SPDX-License-Identifier: MIT
// Codecs: built-in types, ADL hooks, specializations, fingerprints, and malformed bytes.
#include <agentbus/storage/codec.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <string>
#include <vector>

namespace codec_test {

struct point {
  static constexpr bool agentbus_bitwise_codec = true;  // its bytes mean the same anywhere
  std::int32_t x = 0;
  double y = 0;
};
struct wide_point {  // a later layout of point: another size
  static constexpr bool agentbus_bitwise_codec = true;
  std::int64_t x = 0;
  double y = 0;
  double z = 0;
};
struct aligned_point {  // same size as point, stricter alignment
  static constexpr bool agentbus_bitwise_codec = true;
  alignas(16) std::int32_t x = 0;
  std::int32_t y = 0;
};

struct task {
  static constexpr std::string_view event_name = "codec_test.task";
  std::string title;
  std::vector<std::string> tags;
  point where;
};
void agentbus_encode(agentbus::byte_writer& out, const task& t) {
  agentbus::encode(out, t.title);
  agentbus::encode(out, t.tags);
  agentbus::encode(out, t.where);
}
task agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<task>) {
  task t;
  t.title = agentbus::codec<std::string>::decode(in);
  t.tags = agentbus::codec<std::vector<std::string>>::decode(in);
  t.where = agentbus::codec<point>::decode(in);
  return t;
}

// Two ADL-codec types: one named differently from task, one that states its layout's fingerprint.
struct labelled {
  static constexpr std::string_view event_name = "codec_test.labelled";
  std::string label;
};
void agentbus_encode(agentbus::byte_writer& out, const labelled& l) { agentbus::encode(out, l.label); }
labelled agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<labelled>) {
  return {agentbus::codec<std::string>::decode(in)};
}
struct pinned_layout {
  static constexpr std::string_view event_name = "codec_test.pinned_layout";
  static constexpr std::uint64_t codec_fingerprint = 0x5eed'0001ull;
  std::string text;
};
void agentbus_encode(agentbus::byte_writer& out, const pinned_layout& p) { agentbus::encode(out, p.text); }
pinned_layout agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<pinned_layout>) {
  return {agentbus::codec<std::string>::decode(in)};
}

struct custom {
  int value = 0;
};
struct no_codec {
  std::string text;
};
// Trivially copyable, but its bytes name memory of this process: no implicit codec.
struct borrowed_text {
  std::string_view text;
};
struct raw_pointer {
  const char* name = nullptr;
  int size = 0;
};
// Trivially copyable and meaningful anywhere, but not ours to edit: opted in from outside.
struct foreign_pair {
  std::int16_t a = 0;
  std::int64_t b = 0;  // 6 padding bytes before it
};
enum class colour : std::uint8_t { red, green };

}  // namespace codec_test

template <>
inline constexpr bool agentbus::enable_bitwise_codec<codec_test::foreign_pair> = true;

namespace codec_test {

}  // namespace codec_test

template <>
struct agentbus::codec<codec_test::custom> {
  static void encode(byte_writer& out, const codec_test::custom& c) { out.write_value(static_cast<std::int64_t>(c.value) * 2); }
  static codec_test::custom decode(byte_reader& in) { return {static_cast<int>(in.read_value<std::int64_t>() / 2)}; }
  static constexpr std::uint64_t fingerprint() noexcept { return 42; }
};

static_assert(agentbus::has_codec<int>);
static_assert(agentbus::has_codec<codec_test::point>);
static_assert(agentbus::has_codec<std::string>);
static_assert(agentbus::has_codec<std::vector<codec_test::point>>);
static_assert(agentbus::has_codec<std::vector<std::vector<std::string>>>);
static_assert(agentbus::has_codec<codec_test::task>);
static_assert(agentbus::has_codec<codec_test::custom>);
static_assert(!agentbus::has_codec<codec_test::no_codec>, "no codec: persisting it must not compile");
static_assert(!agentbus::has_codec<int*>, "pointers are trivially copyable but meaningless on disk");
// Class types opt in (issue: a struct holding a string_view or a pointer replayed as a dangling one).
static_assert(!agentbus::has_codec<codec_test::borrowed_text>, "class types are not bitwise without opting in");
static_assert(!agentbus::has_codec<codec_test::raw_pointer>, "class types are not bitwise without opting in");
static_assert(agentbus::has_codec<codec_test::foreign_pair>, "opted in with enable_bitwise_codec");
static_assert(agentbus::has_codec<codec_test::colour>, "enums need no opt-in");
static_assert(agentbus::has_codec<std::array<double, 3>>, "arrays of arithmetic types need no opt-in");
static_assert(!agentbus::has_codec<std::array<codec_test::borrowed_text, 2>>);
static_assert(!agentbus::has_codec<std::vector<codec_test::no_codec>>);

TEST_CASE("codec: trivially copyable values round trip", "[storage][codec]") {
  agentbus::byte_writer out;
  agentbus::encode(out, codec_test::point{7, 2.5});
  REQUIRE(out.bytes().size() == sizeof(codec_test::point));
  const auto p = agentbus::decode<codec_test::point>(out.bytes());
  CHECK(p.x == 7);
  CHECK(p.y == 2.5);
}

TEST_CASE("codec: strings and nested vectors round trip", "[storage][codec]") {
  const std::vector<std::vector<std::string>> value{{"a", ""}, {}, {std::string(1000, 'x')}};
  agentbus::byte_writer out;
  agentbus::encode(out, value);
  CHECK(agentbus::decode<std::vector<std::vector<std::string>>>(out.bytes()) == value);
}

TEST_CASE("codec: ADL hooks and specializations are used", "[storage][codec]") {
  agentbus::byte_writer out;
  agentbus::encode(out, codec_test::task{"plan", {"x", "y"}, {1, 2}});
  const auto t = agentbus::decode<codec_test::task>(out.bytes());
  CHECK(t.title == "plan");
  CHECK(t.tags == std::vector<std::string>{"x", "y"});
  CHECK(t.where.x == 1);

  out.clear();
  agentbus::encode(out, codec_test::custom{21});
  CHECK(out.bytes().size() == 8);
  CHECK(agentbus::decode<codec_test::custom>(out.bytes()).value == 21);
  CHECK(agentbus::codec_fingerprint<codec_test::custom>() == 42);
}

TEST_CASE("codec: fingerprints tell layouts apart", "[storage][codec]") {
  using agentbus::codec_fingerprint;
  // Without reflection, a trivially copyable type's fingerprint covers size and alignment: a
  // change that keeps both (renaming or swapping fields of one size) needs a version bump.
  CHECK(codec_fingerprint<codec_test::point>() != codec_fingerprint<codec_test::wide_point>());
  CHECK(codec_fingerprint<codec_test::point>() != codec_fingerprint<codec_test::aligned_point>());
  CHECK(codec_fingerprint<std::int32_t>() != codec_fingerprint<float>());
  CHECK(codec_fingerprint<std::int32_t>() != codec_fingerprint<std::int64_t>());
  CHECK(codec_fingerprint<std::vector<int>>() != codec_fingerprint<std::vector<long long>>());
  CHECK(codec_fingerprint<std::string>() != codec_fingerprint<std::vector<char>>());
  constexpr auto fp = codec_fingerprint<codec_test::task>();  // usable at compile time
  static_assert(fp != 0);
  // An ADL codec's fingerprint comes from its schema name unless the type states its own.
  CHECK(fp != codec_fingerprint<codec_test::labelled>());
  CHECK(codec_fingerprint<codec_test::pinned_layout>() == 0x5eed'0001ull);
}

TEST_CASE("codec: short, oversized and left-over bytes are errors, not garbage", "[storage][codec]") {
  agentbus::byte_writer out;
  agentbus::encode(out, std::string("hello"));
  const auto bytes = out.bytes();
  for (std::size_t n = 0; n < bytes.size(); ++n)
    CHECK_THROWS_AS(agentbus::decode<std::string>(bytes.first(n)), agentbus::codec_error);
  CHECK_THROWS_AS(agentbus::decode<std::int32_t>(bytes), agentbus::codec_error);  // left over

  // A corrupted length must not make the decoder reserve or read gigabytes.
  agentbus::byte_writer lying;
  lying.write_value(std::uint32_t{0xFFFFFFF0u});
  CHECK_THROWS_AS(agentbus::decode<std::vector<std::string>>(lying.bytes()), agentbus::codec_error);
  CHECK_THROWS_AS(agentbus::decode<std::vector<double>>(lying.bytes()), agentbus::codec_error);
  CHECK_THROWS_AS(agentbus::decode<std::string>(lying.bytes()), agentbus::codec_error);
}

TEST_CASE("codec: a bool byte other than 00 or 01 is an error, not a wrong value", "[storage][codec]") {
  // Loading such a byte as a bool is undefined behaviour (UBSan: "not a valid value for type
  // 'bool'"); it was delivered as false or true, uncounted.
  const auto one_byte = [](unsigned char b) {
    agentbus::byte_writer out;
    out.write_value(b);
    return std::vector<std::byte>(out.bytes().begin(), out.bytes().end());
  };
  CHECK(agentbus::decode<bool>(one_byte(0)) == false);
  CHECK(agentbus::decode<bool>(one_byte(1)) == true);
  for (const int bad : {2, 0x80, 0xFF})
    CHECK_THROWS_AS(agentbus::decode<bool>(one_byte(static_cast<unsigned char>(bad))), agentbus::codec_error);

  agentbus::byte_writer flags;
  agentbus::encode(flags, std::array<bool, 3>{true, false, true});
  std::vector<std::byte> bytes(flags.bytes().begin(), flags.bytes().end());
  CHECK(agentbus::decode<std::array<bool, 3>>(bytes) == std::array<bool, 3>{true, false, true});
  bytes[1] = std::byte{7};
  CHECK_THROWS_AS((agentbus::decode<std::array<bool, 3>>(bytes)), agentbus::codec_error);
  // In a vector, each element through the element's codec.
  agentbus::byte_writer listed;
  agentbus::encode(listed, std::vector<std::array<bool, 2>>{{true, false}});
  std::vector<std::byte> list_bytes(listed.bytes().begin(), listed.bytes().end());
  list_bytes.back() = std::byte{2};
  CHECK_THROWS_AS((agentbus::decode<std::vector<std::array<bool, 2>>>(list_bytes)), agentbus::codec_error);
  // std::vector<bool> (which passed has_codec but did not compile: it has no data()): a count,
  // then a checked byte per element.
  CHECK(agentbus::has_codec<std::vector<bool>>);
  agentbus::byte_writer packed;
  agentbus::encode(packed, std::vector<bool>{true, true, false});
  std::vector<std::byte> packed_bytes(packed.bytes().begin(), packed.bytes().end());
  CHECK(packed_bytes.size() == 4 + 3);
  CHECK(agentbus::decode<std::vector<bool>>(packed_bytes) == std::vector<bool>{true, true, false});
  packed_bytes.back() = std::byte{9};
  CHECK_THROWS_AS(agentbus::decode<std::vector<bool>>(packed_bytes), agentbus::codec_error);
}

TEST_CASE("codec: an opted-in class is written with its padding as zeros", "[storage][codec]") {
#if defined(__has_builtin) && __has_builtin(__builtin_clear_padding)
  // Construct over garbage so that the padding bytes are not zero to begin with.
  alignas(codec_test::foreign_pair) unsigned char storage[sizeof(codec_test::foreign_pair)];
  std::memset(storage, 0xAB, sizeof storage);
  auto* value = ::new (static_cast<void*>(storage)) codec_test::foreign_pair;
  value->a = 7;
  value->b = -1;
  agentbus::byte_writer out;
  agentbus::encode(out, *value);
  REQUIRE(out.bytes().size() == sizeof(codec_test::foreign_pair));
  const auto* bytes = reinterpret_cast<const unsigned char*>(out.bytes().data());
  for (std::size_t i = sizeof(std::int16_t); i < offsetof(codec_test::foreign_pair, b); ++i) CHECK(bytes[i] == 0);
  const auto back = agentbus::decode<codec_test::foreign_pair>(out.bytes());
  CHECK(back.a == 7);
  CHECK(back.b == -1);
#else
  WARN("this compiler cannot clear padding (__builtin_clear_padding): padding bytes are written as they are");
#endif
}

TEST_CASE("codec: enums and std::array of arithmetic types round-trip without opting in", "[storage][codec]") {
  agentbus::byte_writer out;
  agentbus::encode(out, codec_test::colour::green);
  CHECK(agentbus::decode<codec_test::colour>(out.bytes()) == codec_test::colour::green);
  out.clear();
  const std::array<double, 3> xyz{1.5, -2.0, 3.25};
  agentbus::encode(out, xyz);
  CHECK(agentbus::decode<std::array<double, 3>>(out.bytes()) == xyz);
}

namespace codec_test {
// A codec that throws something that is not a std::exception, for one value.
struct picky {
  std::string text;
};
inline void agentbus_encode(agentbus::byte_writer& out, const picky& p) { out.write_string(p.text); }
inline picky agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<picky>) {
  picky p{in.read_string()};
  if (p.text == "poison") throw 42;  // NOLINT: not a std::exception, on purpose
  return p;
}
}  // namespace codec_test

TEST_CASE("codec: a decoder that throws something other than a std::exception fails with codec_error",
          "[storage][codec]") {
  // Every reader of events counts failed decodes through catch (const std::exception&): a codec
  // throwing 42 escaped the journal's readers, JetStream's poll() and the NATS import uncounted.
  agentbus::byte_writer out;
  agentbus::encode(out, codec_test::picky{"poison"});
  CHECK_THROWS_AS(agentbus::decode<codec_test::picky>(out.bytes()), agentbus::codec_error);
  out.clear();
  agentbus::encode(out, codec_test::picky{"fine"});
  CHECK(agentbus::decode<codec_test::picky>(out.bytes()).text == "fine");
  // A std::exception passes unchanged (a truncated payload: the reader's own codec_error).
  CHECK_THROWS_WITH(agentbus::decode<codec_test::picky>(std::span<const std::byte>(out.bytes()).first(2)),
                    Catch::Contains("payload ends early"));
}
