// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_DETAIL_WALL_CLOCK_HPP
#define AGENTBUS_CORE_DETAIL_WALL_CLOCK_HPP

// Times that leave the process (a stored deadline, a delayed event's due time, a deadline sent
// over NATS) are written as Unix time in nanoseconds on the system clock, in decimal: a steady
// clock's readings mean nothing to another process or after a restart. One writer and one
// reader of that text for the headers agentbus reads back (agentbus-deadline in the journal,
// agentbus-not-before, Agentbus-Published on the wire), and one saturating "time until" for
// all of them and for Agentbus-Deadline (which another client may write with a sign): text
// from outside never makes a signed overflow.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus::detail {

/// Unix time in nanoseconds of a system-clock time point.
inline std::int64_t unix_ns(std::chrono::system_clock::time_point t) noexcept {
  return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

/// A steady-clock deadline as Unix time in nanoseconds: the time left, added to the system clock.
inline std::int64_t deadline_unix_ns(deadline_clock::time_point deadline) noexcept {
  const auto left = deadline - deadline_clock::now();
  return unix_ns(std::chrono::system_clock::now()) + std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
}

/// The time left until Unix time `ns` (negative once it has passed), saturated at the
/// duration's limits for a time no clock reaches (a header from outside can say anything).
inline std::chrono::nanoseconds time_until_unix_ns(std::int64_t ns) noexcept {
  const std::int64_t now = unix_ns(std::chrono::system_clock::now());
  if (now > 0 && ns < INT64_MIN + now) return std::chrono::nanoseconds(INT64_MIN);
  if (now < 0 && ns > INT64_MAX + now) return std::chrono::nanoseconds(INT64_MAX);
  return std::chrono::nanoseconds(ns - now);
}

/// The header text of a Unix time: decimal, no sign for positive values.
inline std::string unix_ns_text(std::int64_t ns) { return std::to_string(ns); }

/// A Unix time read back from such a header: only decimal digits, not empty, within int64;
/// nullopt for anything else (a header of the same name that agentbus did not write, or damage:
/// never a wrapped-around number).
inline std::optional<std::int64_t> parse_unix_ns(std::string_view text) noexcept {
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  std::int64_t ns = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), ns);
  if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
  return ns;
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_CORE_DETAIL_WALL_CLOCK_HPP
