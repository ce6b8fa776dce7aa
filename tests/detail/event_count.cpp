// SPDX-License-Identifier: MIT
// The event count (detail/sync/event_count.hpp): a registered waiter sleeps until notified, a
// notification between registering and sleeping is not lost, timed waits time out, a notify
// with nobody registered changes nothing, and cancel_wait withdraws a registration.
#include <agentbus/detail/sync/event_count.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "support/eventually.hpp"

using namespace std::chrono_literals;
using agentbus::test::eventually;
using agentbus::detail::event_count;
using clock_type = std::chrono::steady_clock;

namespace {

// The key a waiter registering now would get, without staying registered.
std::uint32_t current_key(event_count& ec) {
  const std::uint32_t key = ec.prepare_wait();
  ec.cancel_wait();
  return key;
}

}  // namespace

TEST_CASE("a waiter sleeps until notified, then withdraws", "[detail][event_count][concurrency]") {
  event_count ec;
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    const std::uint32_t key = ec.prepare_wait();
    ec.wait(key);
    woke.store(true);
  });
  REQUIRE(eventually([&] { return ec.has_waiters(); }));
  std::this_thread::sleep_for(30ms);
  CHECK_FALSE(woke.load());  // nobody notified: still asleep
  ec.notify_one();
  waiter.join();
  CHECK(woke.load());
  CHECK_FALSE(ec.has_waiters());
}

TEST_CASE("a notify between prepare_wait and wait is not lost", "[detail][event_count]") {
  event_count ec;
  const std::uint32_t key = ec.prepare_wait();
  CHECK(ec.has_waiters());
  ec.notify_one();  // the condition changed after the waiter checked it
  ec.wait(key);     // returns at once: the epoch moved past the key
  CHECK_FALSE(ec.has_waiters());
  CHECK(current_key(ec) != key);
}

TEST_CASE("notify with no waiter registered changes nothing", "[detail][event_count]") {
  event_count ec;
  CHECK_FALSE(ec.has_waiters());
  const std::uint32_t before = current_key(ec);
  for (int i = 0; i < 1000; ++i) ec.notify_one();
  CHECK(current_key(ec) == before);  // the cheap path: no epoch bump, no wake-up
  CHECK_FALSE(ec.has_waiters());

  // With a waiter registered the same call does move the epoch (the check above can fail).
  const std::uint32_t key = ec.prepare_wait();
  ec.notify_one();
  ec.cancel_wait();
  CHECK(current_key(ec) != key);
}

TEST_CASE("cancel_wait withdraws a registration: later notifies are free again", "[detail][event_count]") {
  event_count ec;
  const std::uint32_t key = ec.prepare_wait();
  CHECK(ec.has_waiters());
  ec.cancel_wait();
  CHECK_FALSE(ec.has_waiters());
  ec.notify_one();
  CHECK(current_key(ec) == key);

  const std::uint32_t timed = ec.prepare_timed_wait();
  CHECK(ec.has_waiters());
  ec.cancel_timed_wait();
  CHECK_FALSE(ec.has_waiters());
  ec.notify_one();
  CHECK(current_key(ec) == timed);
}

TEST_CASE("a timed wait times out when nobody notifies", "[detail][event_count]") {
  event_count ec;
  const std::uint32_t key = ec.prepare_timed_wait();
  const auto start = clock_type::now();
  CHECK_FALSE(ec.wait_until(key, start + 30ms));
  CHECK(clock_type::now() - start >= 30ms);
  CHECK_FALSE(ec.has_waiters());  // withdrawn on the way out

  // A deadline already past returns at once.
  const std::uint32_t again = ec.prepare_timed_wait();
  CHECK_FALSE(ec.wait_until(again, clock_type::now() - 1s));
  CHECK_FALSE(ec.has_waiters());
}

TEST_CASE("a timed wait wakes on notify, long before its deadline", "[detail][event_count][concurrency]") {
  event_count ec;
  std::atomic<int> result{-1};
  std::thread waiter([&] {
    const std::uint32_t key = ec.prepare_timed_wait();
    result.store(ec.wait_until(key, clock_type::now() + 60s) ? 1 : 0);
  });
  REQUIRE(eventually([&] { return ec.has_waiters(); }));
  const auto start = clock_type::now();
  ec.notify_one();
  waiter.join();
  CHECK(result.load() == 1);
  CHECK(clock_type::now() - start < 30s);
  CHECK_FALSE(ec.has_waiters());
}

TEST_CASE("one notify_all wakes every registered waiter, timed and untimed", "[detail][event_count][concurrency]") {
  event_count ec;
  constexpr int untimed = 3, timed = 2;
  std::atomic<int> registered{0}, woke{0}, timed_out{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < untimed; ++i)
    threads.emplace_back([&] {
      const std::uint32_t key = ec.prepare_wait();
      registered.fetch_add(1);
      ec.wait(key);
      woke.fetch_add(1);
    });
  for (int i = 0; i < timed; ++i)
    threads.emplace_back([&] {
      const std::uint32_t key = ec.prepare_timed_wait();
      registered.fetch_add(1);
      if (ec.wait_until(key, clock_type::now() + 60s))
        woke.fetch_add(1);
      else
        timed_out.fetch_add(1);
    });
  REQUIRE(eventually([&] { return registered.load() == untimed + timed; }));
  std::this_thread::sleep_for(20ms);
  CHECK(woke.load() == 0);
  ec.notify_all();  // once: every waiter holds the old key
  for (auto& t : threads) t.join();
  CHECK(woke.load() == untimed + timed);
  CHECK(timed_out.load() == 0);
  CHECK_FALSE(ec.has_waiters());
}
