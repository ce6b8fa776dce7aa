// SPDX-License-Identifier: MIT
// What the consumer tests share: consumer options with exact timing on a manual clock.
#ifndef AGENTBUS_TESTS_CONSUMER_COMMON_HPP
#define AGENTBUS_TESTS_CONSUMER_COMMON_HPP

#include <agentbus/consumer/options.hpp>

#include <chrono>

namespace agentbus::test {

/// ack_wait 10 s; no jitter; backoff 1 s, then 2 s, 4 s, ... up to 60 s.
inline consumer_options exact_timing(manual_clock& clock) {
  using namespace std::chrono_literals;
  consumer_options o;
  o.clock = &clock;
  o.ack_wait = 10s;
  o.backoff = {.initial = 1s, .multiplier = 2.0, .max = 60s, .jitter = 0.0};
  return o;
}

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_CONSUMER_COMMON_HPP
