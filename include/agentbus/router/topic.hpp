// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_TOPIC_HPP
#define AGENTBUS_ROUTER_TOPIC_HPP

// Topics and topic patterns: validated once, reused on hot paths.
//
// Syntax (the NATS subject syntax, so the NATS bridge maps one to one):
//   - a topic is one or more segments separated by '.', e.g. "tasks.planner.created";
//   - segments are non-empty; no leading, trailing or doubled dot;
//   - bytes 0x00-0x20 (control characters and space) and 0x7F are rejected anywhere;
//     other bytes, UTF-8 included, are allowed and compared byte for byte;
//   - at most max_topic_length (255) bytes;
//   - a *pattern* may also use the wildcards "*" (exactly one segment) and ">" (one or more
//     trailing segments, last segment only). A wildcard must be a whole segment: "a.b*" is
//     rejected rather than silently treated as a literal. A *topic* (what is published) may
//     contain neither '*' nor '>' anywhere.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "agentbus/detail/config.hpp"

namespace agentbus {

/// @brief Longest topic or pattern accepted, in bytes.
inline constexpr std::size_t max_topic_length = 255;

/// @brief What is wrong with a rejected topic or pattern.
enum class topic_errc : std::uint8_t {
  ok = 0,                  ///< valid
  empty,                   ///< the empty string
  too_long,                ///< longer than max_topic_length bytes
  leading_dot,             ///< starts with '.'
  trailing_dot,            ///< ends with '.'
  empty_segment,           ///< two dots in a row
  invalid_character,       ///< a control character, space, or DEL
  wildcard_in_topic,       ///< '*' or '>' in a topic that is published to
  partial_wildcard,        ///< '*' or '>' inside a segment, e.g. "a.b*"
  full_wildcard_not_last,  ///< '>' followed by more segments, e.g. "a.>.b"
};

/// @brief A short English description of a topic_errc.
constexpr std::string_view describe(topic_errc code) noexcept {
  switch (code) {
    case topic_errc::ok: return "valid";
    case topic_errc::empty: return "topic is empty";
    case topic_errc::too_long: return "topic is longer than 255 bytes";
    case topic_errc::leading_dot: return "leading '.' (empty first segment)";
    case topic_errc::trailing_dot: return "trailing '.' (empty last segment)";
    case topic_errc::empty_segment: return "empty segment ('..')";
    case topic_errc::invalid_character: return "whitespace or control character";
    case topic_errc::wildcard_in_topic:
      return "wildcard in a topic (wildcards are for subscriptions; publish to a concrete topic)";
    case topic_errc::partial_wildcard: return "wildcard must be a whole segment ('*' or '>')";
    case topic_errc::full_wildcard_not_last: return "'>' must be the last segment";
  }
  return "unknown error";
}

/// @brief Result of validating a topic or pattern without throwing.
struct topic_check {
  topic_errc code = topic_errc::ok;  ///< what is wrong, or ok
  std::size_t position = 0;          ///< byte offset of the offending character or segment

  /// @brief True when the text is valid.
  constexpr explicit operator bool() const noexcept { return code == topic_errc::ok; }
};

/// @brief Thrown when a topic or pattern is invalid; what() names the problem and the position.
class topic_error : public std::invalid_argument {
 public:
  /// @brief Builds the message from the offending text and the check result.
  topic_error(std::string_view text, topic_check check)
      : std::invalid_argument(make_message(text, check)), code_(check.code), position_(check.position) {}

  /// @brief What is wrong.
  topic_errc code() const noexcept { return code_; }
  /// @brief Byte offset of the problem in the rejected text.
  std::size_t position() const noexcept { return position_; }

 private:
  // Out of line and cold: the error path, kept out of every caller's code.
  [[gnu::cold, gnu::noinline]] static std::string make_message(std::string_view text, topic_check check) {
    std::string m = "agentbus: invalid topic \"";
    // Never echo control characters or huge inputs verbatim into a log line.
    const std::size_t shown = text.size() > 64 ? 64 : text.size();
    for (std::size_t i = 0; i < shown; ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x20 || c == 0x7f) {
        static constexpr char hex[] = "0123456789abcdef";
        m += "\\x";
        m += hex[c >> 4];
        m += hex[c & 15];
      } else {
        m += static_cast<char>(c);
      }
    }
    if (shown < text.size()) m += "...";
    m += "\": ";
    m += describe(check.code);
    m += " at position ";
    m += std::to_string(check.position);
    return m;
  }

  topic_errc code_;
  std::size_t position_;
};

namespace detail {

/// Validates `text` as a topic (wildcards rejected) or a pattern (whole-segment wildcards allowed).
constexpr topic_check check_topic_text(std::string_view text, bool allow_wildcards) noexcept {
  if (text.empty()) return {topic_errc::empty, 0};
  if (text.size() > max_topic_length) return {topic_errc::too_long, max_topic_length};
  std::size_t segment_start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.') {
      const std::size_t len = i - segment_start;
      if (len == 0) {
        if (segment_start == 0) return {topic_errc::leading_dot, 0};
        if (i == text.size()) return {topic_errc::trailing_dot, i - 1};
        return {topic_errc::empty_segment, i};
      }
      segment_start = i + 1;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c <= 0x20 || c == 0x7f) return {topic_errc::invalid_character, i};
    if (c == '*' || c == '>') {
      if (!allow_wildcards) return {topic_errc::wildcard_in_topic, i};
      const bool whole = i == segment_start && (i + 1 == text.size() || text[i + 1] == '.');
      if (!whole) return {topic_errc::partial_wildcard, i};
      if (c == '>' && i + 1 != text.size()) return {topic_errc::full_wildcard_not_last, i};
    }
  }
  return {};
}

/// Hash of topic text, 8 bytes per step with one multiply each: the topic cache looks topics
/// up by this hash on every string publish, so it must be cheap for 10-40 byte strings.
/// Not a security hash (the cache tolerates collisions; it compares the text).
AGENTBUS_ALWAYS_INLINE std::uint64_t hash_topic_text(std::string_view text) noexcept {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ULL;
  std::uint64_t h = text.size() * k;
  const char* p = text.data();
  std::size_t n = text.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k;
  }
  if (n > 0) {
    // The tail: re-read the last 8 bytes (overlapping) when the text is long enough, since a
    // variable-length memcpy becomes a library call; short texts are assembled byte by byte.
    std::uint64_t w = 0;
    if (text.size() >= 8) {
      std::memcpy(&w, text.data() + text.size() - 8, 8);
    } else {
      for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    h = (h ^ w) * k;
  }
  // Multiplication moves entropy up; the table indexes with the low bits, so fold it down.
  return h ^ (h >> 29) ^ (h >> 47);
}

}  // namespace detail

/// @brief True when `text` (a topic or a pattern) is reserved: it starts with '$'. agentbus's
/// own topics (dead letters, breaker events) and NATS system subjects ($SYS, $JS) are. The
/// bridges never export or import them, and a durable consumer reaches them only through a
/// pattern that starts with '$' itself (so a consumer of ">" does not eat dead letters).
constexpr bool is_reserved_topic(std::string_view text) noexcept { return !text.empty() && text.front() == '$'; }

/// @brief A validated concrete topic, e.g. "tasks.planner.created". Immutable value type.
///
/// Validation and hashing happen once, at construction; publishing with a `topic` reuses both.
class topic {
 public:
  /// @brief Validates `text`; throws topic_error naming the problem and its position.
  explicit topic(std::string_view text) : text_(text), hash_(detail::hash_topic_text(text)) {
    if (const auto c = validate(text); !c) throw topic_error(text, c);
  }

  /// @brief Checks `text` as a topic without throwing.
  static constexpr topic_check validate(std::string_view text) noexcept {
    return detail::check_topic_text(text, false);
  }

  /// @brief The topic text.
  std::string_view str() const noexcept { return text_; }
  /// @brief The precomputed hash of the text.
  std::uint64_t hash() const noexcept { return hash_; }

  /// @brief Topics compare by text.
  friend bool operator==(const topic& a, const topic& b) noexcept { return a.text_ == b.text_; }

 private:
  std::string text_;
  std::uint64_t hash_;
};

/// @brief A validated subscription pattern: a topic that may use "*" and ">" wildcards.
class topic_pattern {
 public:
  /// @brief Validates `text`; throws topic_error naming the problem and its position.
  explicit topic_pattern(std::string_view text) : text_(text) {
    if (const auto c = validate(text); !c) throw topic_error(text, c);
    has_wildcards_ = text_.find_first_of("*>") != std::string::npos;
  }

  /// @brief Checks `text` as a pattern without throwing.
  static constexpr topic_check validate(std::string_view text) noexcept {
    return detail::check_topic_text(text, true);
  }

  /// @brief The pattern text.
  std::string_view str() const noexcept { return text_; }
  /// @brief True when the pattern contains "*" or ">"; otherwise it matches one topic only.
  bool has_wildcards() const noexcept { return has_wildcards_; }

  /// @brief True when `t` is matched by this pattern (NATS subject semantics).
  bool matches(std::string_view t) const noexcept;
  /// @brief True when `t` is matched by this pattern.
  bool matches(const topic& t) const noexcept { return matches(t.str()); }

  /// @brief Patterns compare by text.
  friend bool operator==(const topic_pattern& a, const topic_pattern& b) noexcept {
    return a.text_ == b.text_;
  }

 private:
  std::string text_;
  bool has_wildcards_ = false;
};

inline bool topic_pattern::matches(std::string_view t) const noexcept {
  std::string_view p = text_;
  // Walk both strings segment by segment.
  std::size_t pi = 0, ti = 0;
  while (true) {
    const std::size_t pe = std::min(p.find('.', pi), p.size());
    const std::string_view pseg = p.substr(pi, pe - pi);
    if (ti > t.size()) return false;  // topic ran out of segments
    if (pseg == ">") return ti < t.size();  // one or more remaining segments
    const std::size_t te = std::min(t.find('.', ti), t.size());
    if (pseg != "*" && pseg != t.substr(ti, te - ti)) return false;
    const bool p_done = pe == p.size();
    const bool t_done = te == t.size();
    if (p_done || t_done) return p_done && t_done;
    pi = pe + 1;
    ti = te + 1;
  }
}

}  // namespace agentbus

/// @brief Topics hash with their precomputed hash, so they can key unordered containers.
template <>
struct std::hash<agentbus::topic> {
  /// @brief The topic's precomputed hash.
  std::size_t operator()(const agentbus::topic& t) const noexcept {
    return static_cast<std::size_t>(t.hash());
  }
};

#endif  // AGENTBUS_ROUTER_TOPIC_HPP
