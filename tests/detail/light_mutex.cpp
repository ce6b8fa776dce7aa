// SPDX-License-Identifier: MIT
// The router's writer mutex (detail/sync/light_mutex.hpp): try_lock against a holder, mutual
// exclusion under contention (ThreadSanitizer sees the plain counter it guards), and waiters
// that went to sleep behind a long holder all woken, none lost.
#include <agentbus/detail/sync/light_mutex.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

using agentbus::detail::light_mutex;
using namespace std::chrono_literals;

TEST_CASE("light_mutex: try_lock fails while another holds it and succeeds once released", "[detail][light_mutex]") {
  light_mutex m;
  REQUIRE(m.try_lock());
  CHECK_FALSE(m.try_lock());  // not recursive
  m.unlock();
  {
    std::unique_lock lock(m, std::try_to_lock);
    CHECK(lock.owns_lock());
    CHECK_FALSE(m.try_lock());
  }
  CHECK(m.try_lock());
  m.unlock();
}

TEST_CASE("light_mutex: threads incrementing a plain counter under it lose no increment",
          "[detail][light_mutex][concurrency]") {
  light_mutex m;
  std::uint64_t counter = 0;  // plain: only the mutex orders the threads' accesses
  constexpr int threads = 4, per_thread = 20000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        std::lock_guard lock(m);
        ++counter;
      }
    });
  for (auto& t : pool) t.join();
  CHECK(counter == std::uint64_t{threads} * per_thread);
}

TEST_CASE("light_mutex: every waiter asleep behind a long holder gets the mutex after it",
          "[detail][light_mutex][concurrency]") {
  // The holder keeps the mutex long enough for the others to go past try_lock and sleep in
  // the contended path; each unlock must wake one of them, and the last must not be missed.
  light_mutex m;
  std::atomic<int> started{0};
  int order = 0;  // under m
  std::vector<int> got(6, -1);
  m.lock();
  std::vector<std::thread> waiters;
  for (int t = 0; t < 6; ++t)
    waiters.emplace_back([&, t] {
      started.fetch_add(1);
      std::lock_guard lock(m);
      got[static_cast<std::size_t>(t)] = order++;
      std::this_thread::sleep_for(1ms);  // others keep sleeping meanwhile
    });
  while (started.load() < 6) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // let them block
  const int before = order;
  m.unlock();
  for (auto& t : waiters) t.join();
  CHECK(before == 0);
  std::lock_guard lock(m);  // the mutex is free again
  CHECK(order == 6);
  for (int g : got) CHECK(g >= 0);
}
