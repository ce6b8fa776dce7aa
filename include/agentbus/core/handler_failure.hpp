// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_HANDLER_FAILURE_HPP
#define AGENTBUS_CORE_HANDLER_FAILURE_HPP

// What the bus reports when a handler throws. Delivery to the other handlers goes on; the
// failure is counted and handed to the bus's error hook. (Dead letters will plug in here.)

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

}  // namespace agentbus

#endif  // AGENTBUS_CORE_HANDLER_FAILURE_HPP
