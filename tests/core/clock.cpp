// SPDX-License-Identifier: MIT
// clock_source: the steady default, and manual_clock, which moves only when told and wakes
// the threads waiting on it.
#include <agentbus/core/clock.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("manual_clock moves only by advance and set, never backwards") {
  agentbus::manual_clock clock;
  const auto t0 = clock.now();
  CHECK(clock.now() == t0);
  clock.advance(5s);
  CHECK(clock.now() == t0 + 5s);
  clock.advance(-3s);  // ignored: monotonic
  CHECK(clock.now() == t0 + 5s);
  clock.set(t0 + 1s);  // earlier: ignored
  CHECK(clock.now() == t0 + 5s);
  clock.set(t0 + 9s);
  CHECK(clock.now() == t0 + 9s);
  CHECK(clock.generation() == 4);
}

TEST_CASE("or_steady picks the steady clock for null") {
  agentbus::manual_clock manual;
  CHECK(&agentbus::clock_source::or_steady(&manual) == &manual);
  CHECK(&agentbus::clock_source::or_steady(nullptr) == &agentbus::clock_source::steady());
  const auto a = agentbus::clock_source::steady().now();
  CHECK(agentbus::clock_source::steady().now() >= a);
}

TEST_CASE("wait_until on a manual clock returns at once when the deadline has passed") {
  agentbus::manual_clock clock;
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  clock.wait_until(lock, cv, clock.now());  // would block forever if it waited
  CHECK(lock.owns_lock());
  CHECK(clock.waiting() == 0);
}

TEST_CASE("advance wakes every thread waiting on the manual clock, each wakes once its deadline is reached",
          "[concurrency]") {
  agentbus::manual_clock clock;
  std::mutex m;
  std::condition_variable cv;
  const auto t0 = clock.now();
  std::vector<int> woke;
  std::vector<std::thread> waiters;
  for (int i = 1; i <= 3; ++i)
    waiters.emplace_back([&, i] {
      std::unique_lock lock(m);
      const auto deadline = t0 + std::chrono::seconds(i);
      while (clock.now() < deadline) clock.wait_until(lock, cv, deadline);
      woke.push_back(i);
    });
  const auto waiting = [&](std::size_t n) {
    while (clock.waiting() != n) std::this_thread::yield();
  };
  waiting(3);
  clock.advance(1s);
  for (bool through = false; !through; std::this_thread::yield()) {
    std::lock_guard lock(m);
    through = !woke.empty();
  }
  waiting(2);  // the others went back to waiting: their deadlines are later
  {
    std::lock_guard lock(m);
    CHECK(woke == std::vector<int>{1});
  }
  clock.advance(2s);
  for (auto& t : waiters) t.join();
  CHECK(woke.size() == 3);
  CHECK(clock.waiting() == 0);
}

TEST_CASE("the steady clock's wait_until returns by its deadline") {
  auto& clock = agentbus::clock_source::steady();
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  const auto deadline = clock.now() + 2ms;
  while (clock.now() < deadline) clock.wait_until(lock, cv, deadline);
  CHECK(clock.now() >= deadline);
}
