// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_OPTIONS_HPP
#define AGENTBUS_CONSUMER_OPTIONS_HPP

// The vocabulary of durable consumption: what a handler decides about an event (outcome),
// what settling it did (ack_status), where a new consumer starts (consumer_start), how
// redeliveries are spaced (backoff), and the consumer's settings (consumer_options).

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "agentbus/core/clock.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/storage/history.hpp"

namespace agentbus {

/// @brief What a durable handler decides about one delivery.
///
/// A handler returning void acks when it returns and nacks when it throws (the exception's
/// text becomes the reason). One returning outcome says which:
///   - ack: done; the event is never delivered to this consumer again;
///   - nack: failed, retry: redelivered after `delay`, or after the backoff when no delay is
///     given; once max_deliver attempts have failed it is dead-lettered instead;
///   - term: give up now: dead-lettered at once, whatever the attempt.
class outcome {
 public:
  /// @brief The three decisions.
  enum class kind : std::uint8_t { ack, nack, term };

  /// @brief Done.
  static outcome ack() noexcept { return outcome(kind::ack, {}, {}); }
  /// @brief Retry after the consumer's backoff for this attempt.
  static outcome nack(std::string reason = {}) { return outcome(kind::nack, std::move(reason), {}, false); }
  /// @brief Retry after `delay` (instead of the backoff).
  static outcome nack_after(clock_source::duration delay, std::string reason = {}) {
    return outcome(kind::nack, std::move(reason), delay, true);
  }
  /// @brief Give up: dead-letter now with `reason`.
  static outcome term(std::string reason = {}) { return outcome(kind::term, std::move(reason), {}); }

  /// @brief Which decision.
  kind decision() const noexcept { return kind_; }
  /// @brief Why (nack, term; may be empty).
  const std::string& reason() const noexcept { return reason_; }
  /// @brief nack_after: the delay; otherwise not set.
  bool has_delay() const noexcept { return has_delay_; }
  /// @brief nack_after's delay (zero otherwise).
  clock_source::duration delay() const noexcept { return delay_; }

 private:
  outcome(kind k, std::string reason, clock_source::duration delay, bool has_delay = false)
      : kind_(k), has_delay_(has_delay), delay_(delay), reason_(std::move(reason)) {}
  kind kind_;
  bool has_delay_ = false;
  clock_source::duration delay_{};
  std::string reason_;
};

/// @brief What settling a delivery (ack, nack, term, in_progress) did. Settling is
/// idempotent: a late or repeated call is harmless and says so.
enum class ack_status : std::uint8_t {
  accepted,  ///< applied
  already,   ///< the event was already acked or dead-lettered: nothing to do
  stale,     ///< nack/term/in_progress of an attempt that is over (its deadline passed and the
             ///< event was handed out again): ignored. (An ack of an old attempt is accepted.)
  gone,      ///< the consumer no longer exists
};

/// @brief Where a new durable consumer starts reading. Fixed when the consumer is first
/// created: a consumer that exists (its cursor was stored) resumes where it left off.
struct consumer_start {
  /// @brief Where to start, as a replay would; `new_only` means at the end when created.
  agentbus::history from = agentbus::history::all();
  /// @brief True: only events published after the consumer was created.
  bool new_only = false;

  /// @brief Every retained event (the default).
  static consumer_start all() noexcept { return {}; }
  /// @brief Only events published after the consumer is created.
  static consumer_start only_new() noexcept { return {agentbus::history::all(), true}; }
  /// @brief From `offset` on.
  static consumer_start at(std::uint64_t offset) noexcept { return {agentbus::history::from_offset(offset), false}; }
  /// @brief Events published at or after `time`.
  static consumer_start since(std::chrono::system_clock::time_point time) noexcept {
    return {agentbus::history::since(time), false};
  }
};

/// @brief How long a failed attempt waits before its redelivery: attempt n (1-based) waits
/// min(max, initial × multiplier^(n-1)), then ± jitter × that, uniformly.
struct backoff {
  clock_source::duration initial = std::chrono::milliseconds(100);  ///< wait after the first failed attempt
  double multiplier = 2.0;                                          ///< growth per further attempt
  clock_source::duration max = std::chrono::seconds(30);            ///< the longest wait
  double jitter = 0.1;  ///< ± this fraction of the wait, at random (0: exact, for tests)
};

/// @brief Settings of a durable consumer or consumer group.
///
/// `durable_consumer<order> c(bus, "billing", "orders.>", {.ack_wait = 10s, .max_deliver = 3});`
struct consumer_options {
  /// Where a new consumer starts (ignored once its cursor exists).
  consumer_start start{};
  /// How long a delivery may stay unsettled before it counts as failed and is redelivered
  /// (a handler that hangs, an agent that died, a deferred ack never given).
  clock_source::duration ack_wait = std::chrono::seconds(30);
  /// Deliveries an event gets at most; the attempt after which it is dead-lettered instead of
  /// retried. 0 means no limit (a poison event then retries forever: not recommended).
  std::uint32_t max_deliver = 5;
  /// Spacing of redeliveries after a nack, a throw or a passed ack deadline.
  agentbus::backoff backoff{};
  /// Flow control: unsettled deliveries at most; poll hands out no new event beyond this
  /// (redeliveries of events already out still go). 0 means no limit.
  std::uint32_t max_ack_pending = 10000;
  /// Where the cursor is stored. Empty: on a journal bus, `<journal directory>/consumers`; on
  /// a bus without files (memory ring), nowhere (the cursor lives as long as the process).
  std::filesystem::path directory{};
  /// Also fdatasync each cursor write (and its directory entry): the cursor then survives a
  /// power loss, not only a crash of the process. A write happens per poll that changed it.
  bool sync = false;
  /// Dead letters go to this prefix, a dot and the original topic. When that is longer than a
  /// topic may be, the original is cut to its leading tokens that fit; the dead letter's
  /// agentbus-dlq-topic header keeps it whole, and replay uses that.
  std::string dead_letter_prefix = "$dlq";
  /// The clock for ack deadlines and backoff (null: clock_source::steady()).
  clock_source* clock = nullptr;
  /// Seed of the jitter's random numbers (0: from the consumer's address and the time).
  std::uint64_t jitter_seed = 0;
};

}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_OPTIONS_HPP
