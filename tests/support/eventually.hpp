// SPDX-License-Identifier: MIT
// Waits for a condition another thread makes true, with a limit, so that a test whose thread
// never gets there fails (and names itself) instead of hanging.
#ifndef AGENTBUS_TESTS_SUPPORT_EVENTUALLY_HPP
#define AGENTBUS_TESTS_SUPPORT_EVENTUALLY_HPP

#include <chrono>
#include <thread>

namespace agentbus::test {

/// Yields until `done()` holds or `limit` passes; returns whether it held.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_SUPPORT_EVENTUALLY_HPP
