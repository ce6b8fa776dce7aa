// SPDX-License-Identifier: MIT
// The redelivery wait (consumer/detail/backoff.hpp), shared by the in-process consumers and
// the JetStream members: the formula, its cap, and attempt counts far beyond any real one
// (a cursor's, or a JetStream delivery count a message claims) answered at once.
#include <agentbus/consumer/detail/backoff.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <limits>

using namespace std::chrono_literals;
using agentbus::backoff;
using agentbus::detail::backoff_wait;

TEST_CASE("backoff: initial, then times the multiplier per attempt, up to the max", "[consumer][backoff]") {
  std::uint64_t rng = 1;
  const backoff b{.initial = 100ms, .multiplier = 2.0, .max = 1s, .jitter = 0};
  CHECK(backoff_wait(b, 1, rng) == 100ms);
  CHECK(backoff_wait(b, 2, rng) == 200ms);
  CHECK(backoff_wait(b, 4, rng) == 800ms);
  CHECK(backoff_wait(b, 5, rng) == 1s);
  CHECK(backoff_wait(b, 0, rng) == 100ms);  // no attempt yet: the first wait
}

TEST_CASE("backoff: huge attempt counts are answered at once, whatever the multiplier", "[consumer][backoff]") {
  // A loop over the attempts would take minutes here (2^64 steps with a multiplier of 1).
  std::uint64_t rng = 7;
  const auto huge = std::numeric_limits<std::uint64_t>::max();
  CHECK(backoff_wait(backoff{.initial = 100ms, .multiplier = 2.0, .max = 30s, .jitter = 0}, huge, rng) == 30s);
  CHECK(backoff_wait(backoff{.initial = 100ms, .multiplier = 1.0, .max = 30s, .jitter = 0}, huge, rng) == 100ms);
  CHECK(backoff_wait(backoff{.initial = 100ms, .multiplier = 0.5, .max = 30s, .jitter = 0}, huge, rng) == 0ms);
  CHECK(backoff_wait(backoff{.initial = 0ms, .multiplier = 2.0, .max = 30s, .jitter = 0}, huge, rng) == 0ms);
  CHECK(backoff_wait(backoff{.initial = 100ms, .multiplier = -3.0, .max = 30s, .jitter = 0}, 4, rng) == 0ms);
}

TEST_CASE("backoff: jitter stays within its fraction of the wait", "[consumer][backoff]") {
  std::uint64_t rng = 88172645463325252ull;
  const backoff b{.initial = 1s, .multiplier = 2.0, .max = 1s, .jitter = 0.1};
  bool varied = false;
  const auto first = backoff_wait(b, 1, rng);
  for (int i = 0; i < 1000; ++i) {
    const auto w = backoff_wait(b, 1, rng);
    CHECK(w >= 900ms);
    CHECK(w <= 1100ms);
    varied = varied || w != first;
  }
  CHECK(varied);
}
