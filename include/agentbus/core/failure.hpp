// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_FAILURE_HPP
#define AGENTBUS_CORE_FAILURE_HPP

// The one vocabulary of delivery failures: what the bus reports when a handler throws
// (handler_failure, to the bus's error hook) and when a mailbox does not hand an event to its
// handler (undelivered, to the agent's hook). Both carry the event's envelope and say why;
// dead letters will carry the same reasons.

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "agentbus/core/event.hpp"

namespace agentbus {

/// @brief A handler threw while handling an event.
struct handler_failure {
  agentbus::envelope envelope;       ///< the event's envelope (views valid during the hook call)
  std::uint64_t subscription_id = 0;  ///< which subscription failed
  std::string_view pattern;           ///< that subscription's pattern
  std::exception_ptr error;           ///< what it threw

  /// @brief The exception's what(), or a placeholder when it is not a std::exception.
  std::string message() const {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-standard exception";
    }
    return "no exception";
  }
};

/// @brief Receives handler failures. Called on the publishing thread, outside any lock; it may
/// publish. If it throws, the exception is swallowed and counted (bus_stats::error_hook_failures).
using error_handler = std::function<void(const handler_failure&)>;

/// @brief Why an event reached a mailbox but was not handled.
enum class undelivered_reason : std::uint8_t {
  rejected,        ///< full (overflow::fail, or block timed out)
  dropped_newest,  ///< full, overflow::drop_newest
  dropped_oldest,  ///< pushed out by a newer event, overflow::drop_oldest
  expired,         ///< its deadline passed before it reached the head of the mailbox
  discarded,       ///< the mailbox was stopped with stop_mode::discard
  closed,          ///< published after the mailbox was stopped
  unsubscribed,    ///< queued for a subscription that ended before the event's turn
};

/// @brief A short English name of an undelivered_reason.
constexpr std::string_view describe(undelivered_reason r) noexcept {
  switch (r) {
    case undelivered_reason::rejected: return "rejected (mailbox full)";
    case undelivered_reason::dropped_newest: return "dropped (newest, mailbox full)";
    case undelivered_reason::dropped_oldest: return "dropped (oldest, mailbox full)";
    case undelivered_reason::expired: return "expired";
    case undelivered_reason::discarded: return "discarded at stop";
    case undelivered_reason::closed: return "mailbox closed";
    case undelivered_reason::unsubscribed: return "subscription ended while queued";
  }
  return "unknown";
}

/// @brief An event a mailbox did not hand to its handler.
struct undelivered {
  undelivered_reason reason;       ///< why
  agentbus::envelope envelope;     ///< the event (views valid during the hook call)
  std::string_view mailbox;        ///< the mailbox's (agent's) name
};

/// @brief Receives undelivered events; called on the publishing thread (rejected, dropped,
/// closed) or the consumer's (expired, discarded). Exceptions it throws are swallowed.
using undelivered_handler = std::function<void(const undelivered&)>;

}  // namespace agentbus

#endif  // AGENTBUS_CORE_FAILURE_HPP
