// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// Caller-pumped agents (game and event loops): poll's budget counts handler calls, poll_for
// never waits, run_until stops when its predicate holds.

#include <agentbus/agentbus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("poll(max) counts handler calls, not the expired events it takes out", "[agent][poll]") {
  agentbus::bus bus;
  agentbus::agent a("loop");
  int handled = 0;
  auto sub = bus.subscribe("t.x", [&](const int&) { ++handled; }, agentbus::async(a));
  for (int i = 0; i < 10; ++i) (void)bus.publish("t.x", i, {.ttl = 1ns});  // stale by the time they are polled
  std::this_thread::sleep_for(1ms);
  for (int i = 0; i < 3; ++i) (void)bus.publish("t.x", i);
  CHECK(a.poll(2) == 2);
  CHECK(handled == 2);
  CHECK(a.stats().expired == 10);
  CHECK(a.poll(5) == 1);
  CHECK(handled == 3);
  CHECK(a.stats().depth == 0);
}

TEST_CASE("poll_for does not wait on an empty mailbox", "[agent][poll]") {
  agentbus::agent a("loop");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(a.poll_for(2s) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);  // returned at once, not after the budget
}

TEST_CASE("poll_for handles everything queued when the budget allows", "[agent][poll]") {
  agentbus::bus bus;
  agentbus::agent a("loop");
  int handled = 0;
  auto sub = bus.subscribe("t.x", [&](const int&) { ++handled; }, agentbus::async(a));
  for (int i = 0; i < 300; ++i) (void)bus.publish("t.x", i);
  CHECK(a.poll_for(10s) == 300);
  CHECK(handled == 300);
}

TEST_CASE("poll_for stops when its budget is used up and leaves the rest queued", "[agent][poll]") {
  agentbus::bus bus;
  agentbus::agent a("loop");
  int handled = 0;
  auto sub = bus.subscribe("t.x", [&](const int&) {
    ++handled;
    std::this_thread::sleep_for(200us);
  }, agentbus::async(a));
  constexpr int queued = 400;
  for (int i = 0; i < queued; ++i) (void)bus.publish("t.x", i);
  const std::size_t ran = a.poll_for(1ms);
  CHECK(ran >= 1);
  CHECK(ran < queued);
  CHECK(static_cast<std::size_t>(handled) == ran);
  CHECK(a.stats().depth == queued - ran);
}

TEST_CASE("run_until returns once the predicate holds, or false at the timeout", "[agent][poll][concurrency]") {
  agentbus::bus bus;
  agentbus::agent a("loop");
  int handled = 0;
  auto sub = bus.subscribe("t.x", [&](const int&) { ++handled; }, agentbus::async(a));
  std::thread publisher([&] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(1ms);
      (void)bus.publish("t.x", i);
    }
  });
  CHECK(a.run_until([&] { return handled == 5; }, 30s));
  publisher.join();
  CHECK(handled == 5);
  CHECK_FALSE(a.run_until([&] { return handled == 6; }, 10ms));
}

TEST_CASE("stop() on another thread ends a waiting run_for or run_until at once, not at its timeout",
          "[agent][poll][concurrency]") {
  // stop() closed the mailbox but woke nobody: a run_for(5s) waiting for events held the pump
  // until its timeout, and stop() waited for the pump as long.
  for (const bool until : {false, true}) {
    agentbus::bus bus;
    agentbus::agent a("loop");
    auto sub = bus.subscribe("t.x", [](const int&) {}, agentbus::async(a));
    std::atomic<bool> stopped{false};
    std::thread stopper([&] {
      std::this_thread::sleep_for(20ms);  // the pump is waiting by then (a late stop is as good: it returns at once)
      a.stop();
      stopped = true;
    });
    const auto t0 = std::chrono::steady_clock::now();
    if (until)
      CHECK_FALSE(a.run_until([] { return false; }, 30s));
    else
      CHECK(a.run_for(30s) == 0);
    const auto waited = std::chrono::steady_clock::now() - t0;
    stopper.join();
    CHECK(stopped);
    CHECK(waited < 10s);  // 30 s before the fix; well under a second here
  }
}
