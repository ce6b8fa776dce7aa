// SPDX-License-Identifier: MIT
// A server that keeps the responder of every request it gets, unanswered, so that a test
// decides when (and whether) each request is answered.
#ifndef AGENTBUS_TESTS_REPLY_HOLDING_SERVER_HPP
#define AGENTBUS_TESTS_REPLY_HOLDING_SERVER_HPP

#include <agentbus/agentbus.hpp>

#include <cstddef>
#include <mutex>
#include <string_view>
#include <vector>

namespace agentbus::test {

template <class Req, class Rep, class Bus = agentbus::bus>
struct holding_server {
  holding_server(Bus& on, std::string_view topic)
      : sub(agentbus::serve<Req, Rep>(on, topic, [this](const Req&, agentbus::responder<Rep> r) {
          std::lock_guard lock(mutex);
          held.push_back(std::move(r));
        })) {}
  /// The responder of the i-th request (from 0).
  agentbus::responder<Rep>& operator[](std::size_t i) {
    std::lock_guard lock(mutex);
    return held.at(i);
  }
  /// Requests held so far.
  std::size_t size() {
    std::lock_guard lock(mutex);
    return held.size();
  }

  std::mutex mutex;
  std::vector<agentbus::responder<Rep>> held;
  agentbus::subscription sub;
};

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_REPLY_HOLDING_SERVER_HPP
