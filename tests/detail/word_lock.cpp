// SPDX-License-Identifier: MIT
// word_lock (detail/sync/word_lock.hpp), the router's writer lock: mutual exclusion under
// contention (the sleeping path included, with more threads than cores), try_lock, and
// std::lock_guard / std::unique_lock use.
#include <agentbus/detail/sync/word_lock.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

using agentbus::detail::word_lock;
using namespace std::chrono_literals;

TEST_CASE("word_lock: try_lock fails while held and succeeds once released", "[detail][word_lock]") {
  word_lock lock;
  CHECK(lock.try_lock());
  CHECK_FALSE(lock.try_lock());
  lock.unlock();
  {
    std::unique_lock guard(lock);
    CHECK(guard.owns_lock());
    CHECK_FALSE(lock.try_lock());
  }
  CHECK(lock.try_lock());
  lock.unlock();
}

TEST_CASE("word_lock: threads contending for it never overlap and lose no update", "[detail][word_lock][concurrency]") {
  word_lock lock;
  long long counter = 0;  // plain: a missing exclusion is a data race (TSan) and a lost count
  int inside = 0, overlaps = 0;
  constexpr int threads = 6, rounds = 20000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        std::lock_guard guard(lock);
        if (++inside != 1) ++overlaps;
        ++counter;
        // Now and then hold it long enough for the others to give up spinning and sleep.
        if (i % 2000 == t) std::this_thread::sleep_for(200us);
        --inside;
      }
    });
  for (auto& th : pool) th.join();
  CHECK(overlaps == 0);
  CHECK(counter == static_cast<long long>(threads) * rounds);
}

TEST_CASE("word_lock: a thread sleeping on it is woken by the unlock", "[detail][word_lock][concurrency]") {
  word_lock lock;
  lock.lock();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    lock.lock();  // spins, then sleeps: the holder keeps it for 50 ms
    got.store(true);
    lock.unlock();
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(got.load());
  lock.unlock();
  waiter.join();
  CHECK(got.load());
}
