// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_DETAIL_ENVELOPE_HPP
#define AGENTBUS_BRIDGE_DETAIL_ENVELOPE_HPP

// An event's envelope as NATS headers, both ways: what every path of the NATS bridge writes
// (pub/sub exports, requests and replies, JetStream publishes) and reads back (imports,
// replies, JetStream consumers), so that the wire format (docs/wire-format.md, the header
// names in agentbus/transport/nats.hpp) is written down in one place of the code as well.

#include "agentbus/transport/nats.hpp"
#include "agentbus/bridge/detail/compression.hpp"
#include "agentbus/detail/chrono.hpp"

#if AGENTBUS_HAS_NATS

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentbus/core/detail/wall_clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/storage/codec.hpp"

namespace agentbus::detail {

inline std::string hex64(std::uint64_t v) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = hex[v & 15];
  return s;
}

template <class N>
bool parse_number(const char* text, N& out, int base = 10) noexcept {
  if (text == nullptr) return false;
  const std::string_view s(text);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

/// ASCII lowercase comparison of two header names.
inline bool same_header_name(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i], d = b[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (d >= 'A' && d <= 'Z') d = static_cast<char>(d - 'A' + 'a');
    if (c != d) return false;
  }
  return true;
}

/// True for the headers the envelope writes itself (Agentbus-Schema, ...): they become the
/// event's envelope again, not event headers. Other `agentbus-` headers (the idempotency key
/// agentbus-msg-id, dead-letter headers agentbus-dlq-*) are the event's own and stay.
inline bool is_envelope_header(std::string_view key) noexcept {
  for (const char* wire : {nats_header::schema, nats_header::schema_version, nats_header::fingerprint,
                           nats_header::event_id, nats_header::correlation_id, nats_header::source,
                           nats_header::priority, nats_header::deadline, nats_header::published,
                           nats_header::origin, nats_header::error, nats_header::error_detail,
                           nats_header::signature, nats_header::encoding})
    if (same_header_name(key, wire)) return true;
  return false;
}

/// True for JetStream's own headers (Nats-Msg-Id, Nats-Expected-*, ...).
inline bool is_jetstream_header(std::string_view key) noexcept {
  return key.size() >= 5 && same_header_name(key.substr(0, 5), "nats-");
}

inline const char* nats_header_value(natsMsg* msg, const char* key) noexcept {
  const char* value = nullptr;
  return natsMsgHeader_Get(msg, key, &value) == NATS_OK ? value : nullptr;
}

inline const char* priority_text(priority p) noexcept {
  switch (p) {
    case priority::low: return "low";
    case priority::high: return "high";
    case priority::normal: break;
  }
  return "normal";
}

/// T's payload bytes (its codec's) as a NATS message on `subject`, with `reply` as the reply
/// subject when not null, compressed as `compression` says (then with Agentbus-Encoding).
/// `scratch` is reused between calls to save allocations.
template <class T>
nats_message encode_payload(const T& value, const std::string& subject, byte_writer& scratch, const char* reply = nullptr,
                            const payload_compression& compression = {}) {
  scratch.clear();
  encode(scratch, value);
  const auto bytes = scratch.bytes();
  if (compression.above != 0) {
    thread_local std::vector<std::byte> frame;
    if (compression.compress(bytes, frame)) {
      nats_message msg(subject, frame.data(), frame.size(), reply);
      const natsStatus s = msg.add_header(nats_header::encoding, "zstd");
      if (s != NATS_OK) throw_nats("cannot add the Agentbus-Encoding header", {}, s);
      return msg;
    }
  }
  return nats_message(subject, bytes.data(), bytes.size(), reply);
}

/// A number as header text, NUL-terminated, on the stack (no std::string per header value).
struct decimal_text {
  char text[24];  // 20 digits of a uint64, or a sign and 19 digits of an int64, and the NUL
  template <class N>
  explicit decimal_text(N value) noexcept {
    *std::to_chars(text, text + sizeof text - 1, value).ptr = '\0';
  }
  const char* c_str() const noexcept { return text; }
};

/// What the client sees of `text` when it is handed over as a C string: up to its first NUL.
inline std::string_view as_c_string(std::string_view text) noexcept { return text.substr(0, text.find('\0')); }

/// Appends the header line `key: value` and its CRLF, as nats_message::add_header would have
/// the client write it (the key as given, up to a NUL; the value in its wire form: nothing at
/// all when that is empty).
inline void append_header_line(std::string& out, std::string_view key, std::string_view value) {
  thread_local std::string scratch;
  const std::string_view wire = wire_header_value(value, scratch);
  if (wire.empty()) return;
  out.append(as_c_string(key));
  out.append(": ", 2);
  out.append(wire);
  out.append("\r\n", 2);
}

/// T's schema header values, formatted once per type (they are constants), and the header
/// lines they make.
template <class T>
struct schema_header_values {
  std::string name{event_traits<T>::name()};
  std::string version = std::to_string(event_traits<T>::version());
  std::string fingerprint = hex64(codec_fingerprint<T>());
  /// "Agentbus-Schema: <name>\r\nAgentbus-Schema-Version: <version>\r\n"
  std::string name_and_version_lines = [this] {
    std::string two;
    append_header_line(two, nats_header::schema, name);
    append_header_line(two, nats_header::schema_version, version);
    return two;
  }();
  /// The three lines, fingerprint last.
  std::string lines = [this] {
    std::string all = name_and_version_lines;
    append_header_line(all, nats_header::fingerprint, fingerprint);
    return all;
  }();

  static const schema_header_values& get() {
    static const schema_header_values values;
    return values;
  }
};

// Why the envelope goes to the client as one header: cnats (3.4) keeps a message's headers in a
// hash table, with three or four allocations per natsMsgHeader_Add (the key, the value, the
// value's node, the table's entry) and a walk of the table to write them. Measured with
// callgrind, that was 2.2 k instructions per header, 85% of the bridge's whole send path for a
// 64-byte event (7 headers: 15.7 k of 17.6 k instructions; natsConnection_Publish of the same
// bytes without headers: 0.9 k). cnats has no call that takes an encoded header block, but it
// writes a header as `key ": " value CRLF` with the key as given (it replaces CR and LF in
// values only). So the envelope's lines are passed as the key of a single header whose value is
// the last line's: the bytes on the wire are the lines one header each would give (in a fixed
// order instead of the table's; docs/wire-format.md leaves the order unspecified), and the
// receiver parses them as separate headers. Every value placed inside the key is written as
// the client writes values (append_header_line). Should a client version refuse such a key,
// the headers are added one by one instead (the *_one_by_one functions), with the same bytes.

/// True for the client versions whose header writing the packed block was checked against
/// (cnats 3.x writes keys as given); any other version gets one header per add. The NATS tests
/// check on every run that a receiver parses the packed lines as separate headers.
inline constexpr bool packed_header_block_ok = NATS_VERSION_MAJOR == 3 && NATS_VERSION_MINOR >= 4;

/// Adds `lines` (complete header lines, each ending in CRLF; may be empty) and then `key: value`,
/// through one natsMsgHeader_Add (see above). NATS_OK or the client's refusal.
inline natsStatus add_header_lines(nats_message& msg, std::string_view lines, std::string_view key,
                                   const char* value, std::string& scratch) {
  scratch.assign(lines);
  scratch.append(key);
  return msg.add_header(scratch.c_str(), value);
}

/// Adds the schema headers of T one header at a time.
template <class T>
natsStatus add_schema_headers_one_by_one(nats_message& msg) {
  const auto& v = schema_header_values<T>::get();
  natsStatus s = msg.add_header(nats_header::schema, v.name.c_str());
  if (s == NATS_OK) s = msg.add_header(nats_header::schema_version, v.version.c_str());
  if (s == NATS_OK) s = msg.add_header(nats_header::fingerprint, v.fingerprint.c_str());
  return s;
}

/// Adds the schema headers of T (name, version, codec fingerprint). NATS_OK or the first error.
template <class T>
natsStatus add_schema_headers(nats_message& msg) {
  if constexpr (!packed_header_block_ok) return add_schema_headers_one_by_one<T>(msg);
  const auto& v = schema_header_values<T>::get();
  thread_local std::string scratch;
  const natsStatus s = add_header_lines(msg, v.name_and_version_lines, nats_header::fingerprint, v.fingerprint.c_str(), scratch);
  return s == NATS_OK ? s : add_schema_headers_one_by_one<T>(msg);
}

/// Adds the envelope of `e` one header at a time (what add_envelope_headers falls back to).
template <class T>
natsStatus add_envelope_headers_one_by_one(nats_message& msg, const event<T>& e, const std::string& origin) {
  natsStatus s = add_schema_headers_one_by_one<T>(msg);
  // The source and the event's own headers are views: NUL-terminated copies in a buffer this
  // thread reuses.
  thread_local std::string key_text, value_text;
  auto add_view = [&](std::string_view key, std::string_view value) {
    if (s != NATS_OK) return;
    key_text.assign(key);
    value_text.assign(value);
    s = msg.add_header(key_text.c_str(), value_text.c_str());
  };
  if (s == NATS_OK) s = msg.add_header(nats_header::event_id, decimal_text(e.id()).c_str());
  if (s == NATS_OK && e.correlation_id() != 0)
    s = msg.add_header(nats_header::correlation_id, decimal_text(e.correlation_id()).c_str());
  if (!e.source().empty()) add_view(nats_header::source, e.source());
  if (s == NATS_OK && e.priority() != priority::normal) s = msg.add_header(nats_header::priority, priority_text(e.priority()));
  if (const auto deadline = e.deadline(); s == NATS_OK && deadline)
    s = msg.add_header(nats_header::deadline, decimal_text(deadline_unix_ns(*deadline)).c_str());
  if (s == NATS_OK) s = msg.add_header(nats_header::published, decimal_text(unix_ns(e.published())).c_str());
  for (const header& h : e.headers()) add_view(h.key, h.value);
  if (s == NATS_OK) s = msg.add_header(nats_header::origin, origin.c_str());
  return s;
}

/// Adds the envelope of `e` (schema, ids, source, priority unless normal, deadline, publish
/// time, the event's own headers and the origin). NATS_OK or the first error.
template <class T>
natsStatus add_envelope_headers(nats_message& msg, const event<T>& e, const std::string& origin) {
  if constexpr (!packed_header_block_ok) return add_envelope_headers_one_by_one(msg, e, origin);
  // An event header with an empty name is refused by the client: one by one, it says so.
  for (const header& h : e.headers())
    if (as_c_string(h.key).empty()) return add_envelope_headers_one_by_one(msg, e, origin);
  thread_local std::string lines, scratch;
  lines.assign(schema_header_values<T>::get().lines);
  auto number_line = [&](std::string_view key, auto value) {  // digits: nothing to replace
    char text[48];
    char* at = std::copy(key.begin(), key.end(), text);  // the names are shorter than 24 bytes (below)
    *at++ = ':';
    *at++ = ' ';
    at = std::to_chars(at, text + sizeof text - 2, value).ptr;
    *at++ = '\r';
    *at++ = '\n';
    lines.append(text, static_cast<std::size_t>(at - text));
  };
  static_assert(std::string_view(nats_header::event_id).size() < 24 &&
                std::string_view(nats_header::correlation_id).size() < 24 &&
                std::string_view(nats_header::deadline).size() < 24 && std::string_view(nats_header::published).size() < 24);
  number_line(nats_header::event_id, e.id());
  if (e.correlation_id() != 0) number_line(nats_header::correlation_id, e.correlation_id());
  if (!e.source().empty()) append_header_line(lines, nats_header::source, e.source());
  // Normal priority is the reader's default (incoming_options): not written.
  if (e.priority() != priority::normal) append_header_line(lines, nats_header::priority, priority_text(e.priority()));
  if (const auto deadline = e.deadline()) number_line(nats_header::deadline, deadline_unix_ns(*deadline));
  number_line(nats_header::published, unix_ns(e.published()));
  // The event's own header names go as they are, as the client writes names.
  for (const header& h : e.headers()) append_header_line(lines, h.key, h.value);
  const natsStatus s = add_header_lines(msg, lines, nats_header::origin, origin.c_str(), scratch);
  return s == NATS_OK ? s : add_envelope_headers_one_by_one(msg, e, origin);
}

/// True when the message carries T's schema name, version and codec fingerprint.
template <class T>
bool schema_matches(natsMsg* msg) noexcept {
  const char* name = nats_header_value(msg, nats_header::schema);
  std::uint32_t version = 0;
  std::uint64_t fingerprint = 0;
  return name != nullptr && event_traits<T>::name() == name &&
         parse_number(nats_header_value(msg, nats_header::schema_version), version) &&
         version == event_traits<T>::version() &&
         parse_number(nats_header_value(msg, nats_header::fingerprint), fingerprint, 16) &&
         fingerprint == codec_fingerprint<T>();
}

/// Why the message's schema is not T's (for a message schema_matches<T> refused).
template <class T>
std::string schema_mismatch_text(natsMsg* msg) {
  const char* name = nats_header_value(msg, nats_header::schema);
  std::uint32_t version = 0;
  std::uint64_t fingerprint = 0;
  const bool version_ok = parse_number(nats_header_value(msg, nats_header::schema_version), version);
  const bool fingerprint_ok = parse_number(nats_header_value(msg, nats_header::fingerprint), fingerprint, 16);
  std::string what = "not delivered: expected schema ";
  what += event_traits<T>::name();
  what += " v" + std::to_string(event_traits<T>::version()) + " fingerprint " + hex64(codec_fingerprint<T>()) +
          ", the message has ";
  if (name == nullptr) {
    what += "no Agentbus-Schema header";
  } else {
    what += name;
    what += version_ok ? " v" + std::to_string(version) : std::string(" (no valid version)");
    what += fingerprint_ok ? " fingerprint " + hex64(fingerprint) : std::string(" (no valid fingerprint)");
  }
  return what;
}

/// The time left before the message's deadline (negative once it passed); nothing when it has none.
inline std::optional<std::chrono::nanoseconds> time_left(natsMsg* msg) noexcept {
  std::int64_t deadline_ns = 0;  // signed: another client may write any int64
  if (!parse_number(nats_header_value(msg, nats_header::deadline), deadline_ns)) return std::nullopt;
  return time_until_unix_ns(deadline_ns);
}

/// The message's `agentbus-not-before` time (a delayed event, publish_options::delay), Unix ns;
/// nothing when it has none (or not one agentbus wrote).
inline std::optional<std::int64_t> not_before_ns(natsMsg* msg) noexcept {
  const char* text = nats_header_value(msg, not_before_header.data());  // a literal: NUL-terminated
  return text != nullptr ? parse_unix_ns(text) : std::nullopt;
}

/// How long until the message's `agentbus-not-before` time: zero or less when it is due, or
/// has no such header.
inline std::chrono::nanoseconds time_to_due(natsMsg* msg) noexcept {
  const std::optional<std::int64_t> ns = not_before_ns(msg);
  return ns ? time_until_unix_ns(*ns) : std::chrono::nanoseconds::zero();
}

/// The message's payload decoded as T, decompressed first when it is (throws what the codec
/// throws for bad bytes, std::runtime_error for an encoding it cannot undo).
template <class T>
T decode_payload(natsMsg* msg) {
  thread_local std::vector<std::byte> scratch;
  return decode<T>(codec_bytes(msg, scratch));
}

/// Which headers of an incoming message are the event's own (incoming_options).
enum class header_scope : std::uint8_t {
  /// Core NATS imports: every header whose name starts with `Agentbus-` in any case is
  /// agentbus's (docs/wire-format.md) and is dropped, as are NATS's own `Nats-*`.
  imported,
  /// Events read back from a JetStream stream: only the envelope's own headers and `Nats-*`
  /// are dropped; the event's lowercase `agentbus-` headers (its idempotency key, a dead
  /// letter's agentbus-dlq-*) were stored with it and stay.
  stored,
};

/// The envelope of an incoming message as publish options for the local bus: source,
/// correlation id, priority, the time left to its deadline as the TTL (`left`, from
/// time_left), and its headers: the event's own (see header_scope), then Agentbus-Origin
/// (always present on an imported event: loop prevention) and the sender's event id. The
/// header views point into `msg` and `headers`: both must outlive the options' use.
inline publish_options incoming_options(natsMsg* msg, std::optional<std::chrono::nanoseconds> left,
                                        std::vector<header>& headers, header_scope scope = header_scope::imported) {
  publish_options options;
  if (left) options.ttl = std::chrono::duration_cast<deadline_clock::duration>(*left);
  if (const char* source = nats_header_value(msg, nats_header::source)) options.source = source;
  std::uint64_t correlation = 0;
  if (parse_number(nats_header_value(msg, nats_header::correlation_id), correlation)) options.correlation_id = correlation;
  if (const char* p = nats_header_value(msg, nats_header::priority)) {
    const std::string_view text(p);
    options.prio = text == "high" ? priority::high : text == "low" ? priority::low : priority::normal;
  }
  headers.clear();
  const char** keys = nullptr;
  int key_count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &key_count) == NATS_OK) {
    for (int k = 0; k < key_count; ++k) {
      const std::string_view key(keys[k]);
      const bool agentbus_own = scope == header_scope::imported
                                    ? key.size() >= nats_header::prefix.size() &&
                                          same_header_name(key.substr(0, nats_header::prefix.size()), nats_header::prefix)
                                    : is_envelope_header(key);
      if (agentbus_own || is_jetstream_header(key)) continue;
      const char** values = nullptr;
      int value_count = 0;
      if (natsMsgHeader_Values(msg, keys[k], &values, &value_count) == NATS_OK) {
        for (int v = 0; v < value_count; ++v) headers.push_back({keys[k], values[v]});
        std::free(static_cast<void*>(values));
      }
    }
    std::free(static_cast<void*>(keys));
  }
  const char* origin = nats_header_value(msg, nats_header::origin);
  headers.push_back({nats_header::origin, origin != nullptr ? std::string_view(origin) : std::string_view("nats")});
  if (const char* id = nats_header_value(msg, nats_header::event_id)) headers.push_back({nats_header::event_id, id});
  options.headers = headers;
  return options;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_DETAIL_ENVELOPE_HPP
