// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DETAIL_BACKOFF_HPP
#define AGENTBUS_CONSUMER_DETAIL_BACKOFF_HPP

// The wait before a redelivery: one formula for the in-process consumers (engine.hpp) and the
// JetStream members (bridge/jetstream.hpp), so that a backoff means the same on both.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "agentbus/consumer/options.hpp"

namespace agentbus::detail {

/// Attempt `attempt` (1-based) failed: wait min(max, initial × multiplier^(attempt-1)), then
/// ± jitter at random (`rng`: a xorshift state, never 0). In closed form: an attempt count
/// comes from a cursor or from JetStream's delivery count (a message may claim any), and a
/// loop over it would spin for as many steps when the multiplier does not grow the wait.
inline clock_source::duration backoff_wait(const backoff& b, std::uint64_t attempt, std::uint64_t& rng) noexcept {
  const double initial = static_cast<double>(b.initial.count());
  const double most = static_cast<double>(b.max.count());
  double wait = initial;
  if (attempt > 1 && initial > 0 && b.multiplier != 1.0) wait = initial * std::pow(b.multiplier, static_cast<double>(attempt - 1));
  if (!(wait <= most)) wait = most;  // past the cap, infinite, or NaN
  if (!(wait >= 0)) wait = 0;        // a negative multiplier's odd powers
  if (b.jitter > 0) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const double unit = static_cast<double>(rng >> 11) / static_cast<double>(std::uint64_t{1} << 53);  // [0, 1)
    wait *= 1.0 + b.jitter * (2.0 * unit - 1.0);
  }
  // A wait the duration cannot hold (a cap of duration::max(), jitter above it) is the longest
  // one: converting it to the integer count would be undefined (x86 gave a negative wait).
  if (!(wait < static_cast<double>(clock_source::duration::max().count()))) return clock_source::duration::max();
  return clock_source::duration(static_cast<clock_source::duration::rep>(std::max(0.0, wait)));
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_CONSUMER_DETAIL_BACKOFF_HPP
