// SPDX-License-Identifier: MIT
// The Unix-nanosecond text of agentbus's time headers (core/detail/wall_clock.hpp): written and
// read back, and text agentbus did not write refused rather than misread.
#include <agentbus/core/detail/wall_clock.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

TEST_CASE("wall clock: a Unix time in nanoseconds round-trips through its header text") {
  const std::int64_t now = agentbus::detail::unix_ns(std::chrono::system_clock::now());
  CHECK(agentbus::detail::parse_unix_ns(agentbus::detail::unix_ns_text(now)) == now);
  CHECK(agentbus::detail::parse_unix_ns("0") == 0);
  CHECK(agentbus::detail::parse_unix_ns("9223372036854775807") == INT64_MAX);
}

TEST_CASE("wall clock: text that is not a time agentbus wrote is refused, never wrapped around") {
  for (const char* bad : {"", "-5", "+5", " 5", "5 ", "12a", "0x10", "9223372036854775808",
                          "123456789012345678901234567890"})
    CHECK_FALSE(agentbus::detail::parse_unix_ns(bad).has_value());
}

TEST_CASE("wall clock: a steady deadline becomes the same instant on the system clock") {
  using namespace std::chrono_literals;
  const auto deadline = agentbus::deadline_clock::now() + 5s;
  const std::int64_t at = agentbus::detail::deadline_unix_ns(deadline);
  const auto left = agentbus::detail::time_until_unix_ns(at);
  CHECK(left > 4s);
  CHECK(left <= 5s);
  CHECK(agentbus::detail::time_until_unix_ns(at - 10'000'000'000) < 0s);  // 10 s earlier: passed
  // Times no clock reaches (another client's header can say anything): saturated, no overflow.
  CHECK(agentbus::detail::time_until_unix_ns(INT64_MIN) == std::chrono::nanoseconds(INT64_MIN));
  CHECK(agentbus::detail::time_until_unix_ns(INT64_MAX) > std::chrono::hours(24 * 365 * 200));
}
