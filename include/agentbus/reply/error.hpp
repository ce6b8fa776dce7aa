// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_ERROR_HPP
#define AGENTBUS_REPLY_ERROR_HPP

#include <cstdint>
#include <stdexcept>
#include <string>

namespace agentbus {

/// @brief Why a request got no reply.
enum class request_errc : std::uint8_t {
  no_responders,  ///< nothing served the topic when the request was published
  rejected,       ///< every server's mailbox refused the request (full or stopped)
  timeout,        ///< no reply before the request's deadline
  cancelled,      ///< the requester cancelled it
  server_failed,  ///< the server's handler threw (what() carries its message)
  abandoned,      ///< the server dropped its responder without replying
  wrong_type,     ///< a server replied with another type than the requester expects
  circuit_open,   ///< a circuit breaker failed the request fast: its target failed too often (reply/breaker.hpp)
};

/// @brief The name of an error code ("no_responders", "timeout", ...).
constexpr const char* to_string(request_errc e) noexcept {
  switch (e) {
    case request_errc::no_responders: return "no_responders";
    case request_errc::rejected: return "rejected";
    case request_errc::timeout: return "timeout";
    case request_errc::cancelled: return "cancelled";
    case request_errc::server_failed: return "server_failed";
    case request_errc::abandoned: return "abandoned";
    case request_errc::wrong_type: return "wrong_type";
    case request_errc::circuit_open: return "circuit_open";
  }
  return "unknown";
}

/// @brief A request that got no reply: thrown by reply_future::get().
class request_error : public std::runtime_error {
 public:
  /// @brief An error of kind `code`; `detail`, when not empty, is appended to the message.
  request_error(request_errc code, const std::string& detail)
      : std::runtime_error("agentbus: request failed: " + std::string(to_string(code)) +
                           (detail.empty() ? std::string() : ": " + detail)),
        code_(code) {}
  /// @brief What happened.
  request_errc code() const noexcept { return code_; }

 private:
  request_errc code_;
};

}  // namespace agentbus

#endif  // AGENTBUS_REPLY_ERROR_HPP
