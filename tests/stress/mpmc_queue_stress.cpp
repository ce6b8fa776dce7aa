// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// Concurrency stress for mpmc_queue, bounded in time so that the
// ThreadSanitizer job can run it on two cores. Catch2 assertions are not
// thread-safe, so worker threads only record; the test thread checks.
#include <agentbus/detail/config.hpp>
#include <agentbus/queue/mpmc_queue.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using agentbus::mpmc_queue;
using namespace std::chrono_literals;

namespace {

#if AGENTBUS_TSAN
constexpr std::uint32_t items_per_producer = 10000;
constexpr int close_rounds = 30;
#else
constexpr std::uint32_t items_per_producer = 20000;
constexpr int close_rounds = 60;
#endif

// Items carry their origin so that the checker can tell who sent what, in
// which order: producer in the high half, sequence number in the low half.
std::uint64_t encode(std::uint32_t producer, std::uint32_t seq) {
  return (std::uint64_t{producer} << 32) | seq;
}
std::uint32_t producer_of(std::uint64_t item) { return static_cast<std::uint32_t>(item >> 32); }
std::uint32_t seq_of(std::uint64_t item) { return static_cast<std::uint32_t>(item); }

// Try-op callers back off to the scheduler quickly: with more threads than
// cores (and under TSan) a pure spin would starve the thread it waits for.
void back_off(unsigned& failures) {
  if (++failures % 8 == 0) {
    std::this_thread::yield();
  } else {
    agentbus::detail::cpu_relax();
  }
}

struct verdict {
  std::size_t duplicates = 0;
  std::size_t missing = 0;
  std::size_t foreign = 0;       // an item nobody pushed
  std::size_t out_of_order = 0;  // per-producer FIFO broken within a consumer
};

// `pushed[p]` is how many items producer p pushed successfully (a prefix of
// its sequence). Every one of them must be popped exactly once, nothing else
// may be popped, and each consumer must see each producer's items in order.
verdict check(const std::vector<std::vector<std::uint64_t>>& popped_by_consumer,
              const std::vector<std::uint32_t>& pushed) {
  verdict v;
  std::vector<std::vector<unsigned char>> seen(pushed.size());
  for (std::size_t p = 0; p < pushed.size(); ++p) seen[p].assign(pushed[p], 0);
  for (const auto& popped : popped_by_consumer) {
    std::vector<std::int64_t> last(pushed.size(), -1);
    for (const std::uint64_t item : popped) {
      const std::uint32_t p = producer_of(item);
      const std::uint32_t s = seq_of(item);
      if (p >= pushed.size() || s >= pushed[p]) {
        ++v.foreign;
        continue;
      }
      if (seen[p][s]++ != 0) ++v.duplicates;
      if (static_cast<std::int64_t>(s) <= last[p]) ++v.out_of_order;
      last[p] = s;
    }
  }
  for (const auto& flags : seen) {
    for (const unsigned char f : flags) v.missing += f == 0 ? 1U : 0U;
  }
  return v;
}

enum class mode { try_ops, blocking_ops, timed_ops };

// The element types the transfer runs with: a plain integer (trivially
// copyable) and a heap-owning move-only type (non-trivial move and
// destructor), so that both kinds of slot traffic run under TSan.
struct plain_item {
  using type = std::uint64_t;
  static type make(std::uint64_t v) { return v; }
  static std::uint64_t value(const type& e) { return e; }
};
struct owning_item {
  using type = std::unique_ptr<std::uint64_t>;
  static type make(std::uint64_t v) { return std::make_unique<std::uint64_t>(v); }
  // A null element would mean a failed push consumed its argument.
  static std::uint64_t value(const type& e) { return e ? *e : ~std::uint64_t{0}; }
};

template <class Item>
verdict run_transfer(mode m, unsigned producers, unsigned consumers, std::size_t capacity) {
  using element = typename Item::type;
  mpmc_queue<element> q(capacity);
  const std::size_t total = std::size_t{producers} * items_per_producer;
  std::atomic<std::size_t> popped_total{0};
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::vector<std::uint64_t>> popped(consumers);
  std::vector<std::uint32_t> pushed(producers, 0);

  auto wait_for_start = [&] {
    ready.fetch_add(1);
    while (!go.load()) std::this_thread::yield();
  };

  std::vector<std::thread> threads;
  for (unsigned c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      auto& mine = popped[c];
      mine.reserve(total);
      wait_for_start();
      element item{};
      if (m == mode::blocking_ops) {
        while (q.pop(item)) mine.push_back(Item::value(item));  // ends when closed and drained
        return;
      }
      unsigned failures = 0;
      while (popped_total.load(std::memory_order_relaxed) < total) {
        const bool ok = m == mode::try_ops ? q.try_pop(item) : q.pop_for(item, 2ms);
        if (ok) {
          mine.push_back(Item::value(item));
          popped_total.fetch_add(1, std::memory_order_relaxed);
        } else if (m == mode::try_ops) {
          back_off(failures);
        }
      }
    });
  }
  std::vector<std::thread> producer_threads;
  for (unsigned p = 0; p < producers; ++p) {
    producer_threads.emplace_back([&, p] {
      wait_for_start();
      std::uint32_t n = 0;
      unsigned failures = 0;
      while (n < items_per_producer) {
        element e = Item::make(encode(p, n));
        bool ok = false;
        switch (m) {
          case mode::try_ops:
            while (!(ok = q.try_push(std::move(e)))) back_off(failures);
            break;
          case mode::blocking_ops:
            ok = q.push(std::move(e));  // only close() makes it fail, and nobody closes yet
            break;
          case mode::timed_ops:
            // A timed-out push must leave `e` intact for the retry.
            while (!(ok = q.push_for(std::move(e), 2ms))) {
            }
            break;
        }
        if (!ok) break;
        ++n;
      }
      pushed[p] = n;
    });
  }
  while (ready.load() != producers + consumers) std::this_thread::yield();
  go = true;
  for (auto& t : producer_threads) t.join();
  if (m == mode::blocking_ops) q.close();
  for (auto& t : threads) t.join();

  verdict v = check(popped, pushed);
  for (const std::uint32_t n : pushed) v.missing += items_per_producer - n;
  return v;
}

void require_clean(const verdict& v) {
  CHECK(v.duplicates == 0);
  CHECK(v.missing == 0);
  CHECK(v.foreign == 0);
  CHECK(v.out_of_order == 0);
}

}  // namespace

// Small rings so that "full" and "empty" happen constantly and blocking
// calls park and wake often.
TEST_CASE("mpmc_queue stress: P producers x C consumers, try ops", "[stress][queue][mpmc]") {
  const unsigned producers = GENERATE(1U, 2U, 4U);
  const unsigned consumers = GENERATE(1U, 2U, 4U);
  INFO(producers << " producers x " << consumers << " consumers, " << items_per_producer << " items each");
  require_clean(run_transfer<plain_item>(mode::try_ops, producers, consumers, 64));
}

TEST_CASE("mpmc_queue stress: P producers x C consumers, blocking ops", "[stress][queue][mpmc]") {
  const unsigned producers = GENERATE(1U, 2U, 4U);
  const unsigned consumers = GENERATE(1U, 2U, 4U);
  INFO(producers << " producers x " << consumers << " consumers, " << items_per_producer << " items each");
  require_clean(run_transfer<plain_item>(mode::blocking_ops, producers, consumers, 8));
}

TEST_CASE("mpmc_queue stress: move-only elements, capacity 1, timed ops", "[stress][queue][mpmc]") {
  // Non-trivial elements through every kind of call, including the smallest
  // ring, where each slot changes hands on every operation.
  const unsigned threads = GENERATE(1U, 2U, 4U);
  INFO(threads << " producers x " << threads << " consumers");
  SECTION("try ops, capacity 4") { require_clean(run_transfer<owning_item>(mode::try_ops, threads, threads, 4)); }
  SECTION("blocking ops, capacity 1") {
    require_clean(run_transfer<owning_item>(mode::blocking_ops, threads, threads, 1));
  }
  SECTION("timed ops, capacity 2") {
    require_clean(run_transfer<owning_item>(mode::timed_ops, threads, threads, 2));
  }
}

TEST_CASE("mpmc_queue stress: close() releases every parked thread", "[stress][queue][mpmc]") {
  // Consumers park on an empty queue, producers on a full one; close() must
  // release all of them, every time.
  std::size_t wrong_results = 0;
  for (int round = 0; round < close_rounds; ++round) {
    mpmc_queue<int> empty_q(4);
    mpmc_queue<int> full_q(2);
    REQUIRE(full_q.try_push(1));
    REQUIRE(full_q.try_push(2));
    std::atomic<std::size_t> wrong{0};
    std::atomic<unsigned> started{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&] {
        started.fetch_add(1);
        int v = 0;
        if (empty_q.pop(v)) wrong.fetch_add(1);
      });
      threads.emplace_back([&, i] {
        started.fetch_add(1);
        // Mix untimed and timed waiters: they park on different primitives.
        const bool ok = i == 0 ? full_q.push_for(3, 60s) : full_q.push(3);
        if (ok) wrong.fetch_add(1);
      });
    }
    while (started.load() != threads.size()) std::this_thread::yield();
    // Vary the moment of close(): sometimes before the waiters park,
    // sometimes after.
    if (round % 3 == 1) std::this_thread::sleep_for(1ms);
    if (round % 3 == 2) std::this_thread::sleep_for(5ms);
    empty_q.close();
    full_q.close();
    for (auto& t : threads) t.join();
    wrong_results += wrong.load();
    // What was in the full queue before close() is still delivered.
    int v = 0;
    CHECK(full_q.pop(v));
    CHECK(full_q.pop(v));
    CHECK_FALSE(full_q.pop(v));
  }
  CHECK(wrong_results == 0);
}

TEST_CASE("mpmc_queue stress: close() mid-stream loses nothing", "[stress][queue][mpmc]") {
  // Producers push until close() makes them fail; consumers pop until the
  // queue is closed and drained. Every element whose push succeeded must be
  // popped exactly once.
  constexpr unsigned producers = 3;
  constexpr unsigned consumers = 2;
  verdict total;
  for (int round = 0; round < close_rounds; ++round) {
    mpmc_queue<std::uint64_t> q(8);
    std::vector<std::vector<std::uint64_t>> popped(consumers);
    std::vector<std::uint32_t> pushed(producers, 0);
    std::atomic<std::size_t> popped_count{0};
    std::vector<std::thread> threads;
    for (unsigned c = 0; c < consumers; ++c) {
      threads.emplace_back([&, c] {
        std::uint64_t item = 0;
        // Alternate blocking and timed pops; both must drain after close().
        bool timed = c % 2 == 1;
        for (;;) {
          const bool ok = timed ? q.pop_for(item, 60s) : q.pop(item);
          if (!ok) break;
          popped[c].push_back(item);
          popped_count.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (unsigned p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        std::uint32_t n = 0;
        // One producer uses try ops, to race close() on that path too.
        if (p == 0) {
          unsigned failures = 0;
          while (!q.closed()) {
            if (q.try_push(encode(p, n))) {
              ++n;
            } else {
              back_off(failures);
            }
          }
        } else {
          while (q.push(encode(p, n))) ++n;
        }
        pushed[p] = n;
      });
    }
    const std::size_t target = 200 + static_cast<std::size_t>(round) * 37 % 500;
    while (popped_count.load(std::memory_order_relaxed) < target) std::this_thread::yield();
    q.close();
    for (auto& t : threads) t.join();
    const verdict v = check(popped, pushed);
    total.duplicates += v.duplicates;
    total.missing += v.missing;
    total.foreign += v.foreign;
    total.out_of_order += v.out_of_order;
    std::uint64_t item = 0;
    CHECK_FALSE(q.try_pop(item));
  }
  CHECK(total.duplicates == 0);
  CHECK(total.missing == 0);
  CHECK(total.foreign == 0);
  CHECK(total.out_of_order == 0);
}

TEST_CASE("bulk and single pops against concurrent pushes: every element once, per-producer order", "[stress][queue][mpmc]") {
  // The mailbox consumer's primitive, raced the way drop_oldest races it: several threads pop.
  struct item {
    int producer;
    int seq;
  };
  constexpr int producers = 2, consumers = 2;
  constexpr int per_producer = AGENTBUS_TSAN ? 3000 : 20000;
  mpmc_queue<item> q(64);
  std::vector<std::size_t> got(consumers, 0);
  std::atomic<int> done_producing{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int s = 0; s < per_producer;) {
        if (q.try_push(item{p, s}))
          ++s;
        else
          std::this_thread::yield();
      }
      done_producing.fetch_add(1);
    });
  for (int c = 0; c < consumers; ++c)
    threads.emplace_back([&, c] {
      std::vector<int> next(producers, 0);
      item buf[16];
      auto take = [&](const item& it) {
        auto& n = next[static_cast<std::size_t>(it.producer)];
        if (it.seq < n) errors.fetch_add(1);  // out of order or twice
        n = it.seq + 1;
        ++got[static_cast<std::size_t>(c)];
      };
      for (unsigned round = 0;; ++round) {
        const bool last = done_producing.load() == producers;
        std::size_t n = 0;
        if (round % 4 == 3) {
          item one{};
          if (q.try_pop(one)) {
            take(one);
            n = 1;
          }
        } else {
          n = q.try_pop_bulk(buf, 1 + round % 16);
          for (std::size_t i = 0; i < n; ++i) take(buf[i]);
        }
        if (n == 0) {
          if (last && q.empty_approx()) break;
          std::this_thread::yield();
        }
      }
    });
  for (auto& t : threads) t.join();
  CHECK(errors.load() == 0);
  CHECK(got[0] + got[1] == static_cast<std::size_t>(producers * per_producer));
}
