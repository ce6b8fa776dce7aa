// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_INSPECT_TEXT_HPP
#define AGENTBUS_JOURNAL_DETAIL_INSPECT_TEXT_HPP

// Text for the journal inspector (agentbus/journal/inspect.hpp, the agentbus-journal tool):
// building lines without a formatting library (the header needs the standard library alone),
// times in ISO 8601, escaping for one-line and JSON output, hex, human-readable sizes.

#include <chrono>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace agentbus::detail::inspect {

// ------------------------------------------------------------------ building text

inline void append_arg(std::string& out, std::string_view s) { out.append(s); }
inline void append_arg(std::string& out, char c) { out += c; }
template <std::integral I>
  requires(!std::same_as<I, char> && !std::same_as<I, bool>)
void append_arg(std::string& out, I value) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, static_cast<std::size_t>(end - buf));
}

/// @brief The arguments (text, characters, integers) one after the other.
template <class... Args>
std::string cat(const Args&... args) {
  std::string out;
  (append_arg(out, args), ...);
  return out;
}

/// @brief `s` right-aligned in `width` columns.
inline std::string pad_left(std::string_view s, std::size_t width) {
  std::string out;
  if (s.size() < width) out.assign(width - s.size(), ' ');
  out.append(s);
  return out;
}

/// @brief `v` with leading zeros to `width` digits.
inline std::string zero_padded(std::uint64_t v, std::size_t width) {
  std::string digits = cat(v);
  return digits.size() >= width ? digits : std::string(width - digits.size(), '0') + digits;
}

/// @brief `v` with `decimals` digits after the point.
inline std::string fixed(double v, int decimals) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

/// @brief `v` as 16 lower-case hex digits.
inline std::string hex64(std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = digits[v & 15];
  return out;
}

// ------------------------------------------------------------------ time

/// @brief ISO 8601 in UTC with nanoseconds: 2024-05-01T12:00:00.123456789Z.
inline std::string format_time(std::int64_t ns) {
  using namespace std::chrono;
  const sys_time<nanoseconds> tp{nanoseconds{ns}};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> hms{tp - day};
  const int y = static_cast<int>(ymd.year());
  return cat(y < 0 ? "-" : "", zero_padded(static_cast<std::uint64_t>(y < 0 ? -y : y), 4), '-',
             zero_padded(static_cast<unsigned>(ymd.month()), 2), '-', zero_padded(static_cast<unsigned>(ymd.day()), 2),
             'T', zero_padded(static_cast<std::uint64_t>(hms.hours().count()), 2), ':',
             zero_padded(static_cast<std::uint64_t>(hms.minutes().count()), 2), ':',
             zero_padded(static_cast<std::uint64_t>(hms.seconds().count()), 2), '.',
             zero_padded(static_cast<std::uint64_t>(hms.subseconds().count()), 9), 'Z');
}

/// @brief Parses ISO 8601 (date, optional time with optional fraction, optional zone) into ns
/// since the epoch; nullopt when it is not one.
inline std::optional<std::int64_t> parse_time(std::string_view s) {
  using namespace std::chrono;
  std::size_t i = 0;
  auto digits = [&](std::size_t n, int& out) {
    if (i + n > s.size()) return false;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const char c = s[i + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    i += n;
    out = v;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(4, y) || !expect('-') || !digits(2, mo) || !expect('-') || !digits(2, d)) return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t frac_ns = 0;
  std::int64_t zone_s = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    if (!digits(2, h) || !expect(':') || !digits(2, mi)) return std::nullopt;
    if (expect(':')) {
      if (!digits(2, sec)) return std::nullopt;
      if (expect('.') || expect(',')) {
        std::int64_t scale = 100'000'000;
        std::size_t n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          frac_ns += (s[i] - '0') * scale;
          scale /= 10;
          ++i;
          ++n;
        }
        if (n == 0) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        const int sign = s[i] == '-' ? -1 : 1;
        ++i;
        int zh = 0, zm = 0;
        if (!digits(2, zh)) return std::nullopt;
        expect(':');
        if (i < s.size() && !digits(2, zm)) return std::nullopt;
        if (zh > 23 || zm > 59) return std::nullopt;
        zone_s = sign * (zh * 3600 + zm * 60);
      } else {
        return std::nullopt;
      }
    }
    if (i != s.size()) return std::nullopt;
  }
  const std::int64_t day_s = static_cast<std::int64_t>(sys_days{ymd}.time_since_epoch().count()) * 86400;
  const std::int64_t secs = day_s + h * 3600 + mi * 60 + sec - zone_s;
  return secs * 1'000'000'000 + frac_ns;
}

// ------------------------------------------------------------------ text and escaping

/// @brief Length of the well-formed UTF-8 sequence at s[i], or 0 when it is not one.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

/// @brief True when `s` is UTF-8 without control characters other than tab, newline, return.
inline bool is_printable_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return false;
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// @brief Appends the escape of byte `c`: its short form (\n, \t, \r, \\, \", and with
/// `json` \b, \f) or `prefix` and two hex digits (\x for one-line text, \u00 for JSON).
inline void append_escape(std::string& out, unsigned char c, std::string_view prefix, bool json) {
  static constexpr char hex[] = "0123456789abcdef";
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\t': out += "\\t"; return;
    case '\r': out += "\\r"; return;
    case '\\': out += "\\\\"; return;
    case '"': out += "\\\""; return;
    case '\b':
    case '\f':
      if (json) {
        out += c == '\b' ? "\\b" : "\\f";
        return;
      }
      break;
    default:
      break;
  }
  out.append(prefix);
  out += hex[c >> 4];
  out += hex[c & 15];
}

/// @brief For one-line output: control characters, backslash and invalid UTF-8 as \n, \xNN,
/// ...; with `quoted`, also '"' (the text goes between quotes).
inline void append_escaped(std::string& out, std::string_view s, bool quoted = false) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool special = c < 0x20 || c == 0x7F || c == '\\' || (quoted && c == '"');
    const std::size_t n = special ? 0 : utf8_sequence(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    append_escape(out, c, "\\x", false);
    ++i;
  }
}

/// @brief `s` escaped for one line (append_escaped).
inline std::string escaped(std::string_view s) {
  std::string out;
  append_escaped(out, s);
  return out;
}

/// @brief A JSON string literal. Invalid UTF-8 becomes U+FFFD (JSON text must be Unicode).
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\' || c < 0x20 || c == 0x7F) {
      append_escape(out, c, "\\u00", true);
      ++i;
    } else if (const std::size_t n = utf8_sequence(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

/// @brief The bytes as characters.
inline std::string_view as_text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// @brief The bytes as lower-case hex, two digits each.
inline std::string to_hex(std::span<const std::byte> b) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (const std::byte x : b) {
    out += hex[std::to_integer<unsigned>(x) >> 4];
    out += hex[std::to_integer<unsigned>(x) & 15];
  }
  return out;
}

/// @brief 1.50 MiB, 12.0 KiB, 512 B.
inline std::string human_bytes(std::uint64_t n) {
  if (n >= (1ull << 30)) return fixed(static_cast<double>(n) / (1ull << 30), 2) + " GiB";
  if (n >= (1ull << 20)) return fixed(static_cast<double>(n) / (1ull << 20), 2) + " MiB";
  if (n >= (1ull << 10)) return fixed(static_cast<double>(n) / (1ull << 10), 1) + " KiB";
  return cat(n, " B");
}

/// @brief 12.500 ms, 3.250 s, 4.5 min, 2.0 h, 3.1 days.
inline std::string human_duration(std::int64_t ns) {
  const double s = static_cast<double>(ns) / 1e9;
  if (s < 1) return fixed(s * 1e3, 3) + " ms";
  if (s < 120) return fixed(s, 3) + " s";
  if (s < 7200) return fixed(s / 60, 1) + " min";
  if (s < 172800) return fixed(s / 3600, 1) + " h";
  return fixed(s / 86400, 1) + " days";
}

}  // namespace agentbus::detail::inspect

#endif  // AGENTBUS_JOURNAL_DETAIL_INSPECT_TEXT_HPP
