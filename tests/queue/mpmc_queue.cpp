// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#include <agentbus/queue/mpmc_queue.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/lifetime_tracker.hpp"

using agentbus::mpmc_queue;
using agentbus::test::lifetime_registry;
using agentbus::test::tracked;
using namespace std::chrono_literals;

namespace {

// Long enough for a blocking call to get past its spin and yield phases and
// park; the tests below only rely on it for coverage, never for correctness.
constexpr auto park_delay = 50ms;

// A tracked value whose copy/move constructor and move assignment throw when
// an armed countdown reaches zero. Its tracked member proves nothing leaks
// when that happens.
struct throwing_move {
  static inline std::atomic<int> countdown{-1};  // -1: never throw

  static void maybe_throw() {
    if (countdown.load() < 0) return;
    if (countdown.fetch_sub(1) == 0) throw std::runtime_error("throwing_move: injected failure");
  }

  throwing_move(lifetime_registry& registry, int value) : inner(registry, value) {}
  throwing_move(const throwing_move& other) : inner(other.inner) { maybe_throw(); }
  throwing_move(throwing_move&& other) : inner(std::move(other.inner)) { maybe_throw(); }
  throwing_move& operator=(const throwing_move& other) {
    maybe_throw();
    inner = other.inner;
    return *this;
  }
  throwing_move& operator=(throwing_move&& other) {
    maybe_throw();
    inner = std::move(other.inner);
    return *this;
  }
  ~throwing_move() = default;

  tracked inner;
};

// Holds its constructor (the "held" one) or its move assignment open until
// released, so that a test can freeze a push or a pop half-way.
struct stall {
  static inline std::atomic<bool> entered{false};
  static inline std::atomic<bool> released{true};
  static inline std::atomic<bool> stall_assignment{false};

  static void arm() {
    entered = false;
    released = false;
  }
  static void hold() {
    entered = true;
    while (!released.load()) std::this_thread::yield();
  }

  struct held_t {};
  explicit stall(int v) : value(v) {}
  stall(held_t, int v) : value(v) { hold(); }
  stall(stall&&) noexcept = default;
  stall& operator=(stall&& other) noexcept {
    if (stall_assignment.exchange(false)) hold();
    value = other.value;
    return *this;
  }
  ~stall() = default;

  int value;
};

struct countdown_reset {
  countdown_reset() { throwing_move::countdown = -1; }
  ~countdown_reset() { throwing_move::countdown = -1; }
};

// Constructing with fail == true throws: the push leaves a hole in the ring (try_pop_bulk).
struct fragile {
  int v = 0;
  fragile() = default;
  fragile(int x, bool fail) : v(x) {
    if (fail) throw std::runtime_error("fragile");
  }
};

}  // namespace

TEST_CASE("capacity 0 is rejected with a clear message", "[queue][mpmc]") {
  REQUIRE_THROWS_AS(mpmc_queue<int>(0), std::invalid_argument);
  REQUIRE_THROWS_WITH(mpmc_queue<int>(0), Catch::Contains("capacity must be at least 1"));
}

TEST_CASE("capacity is rounded up to a power of two", "[queue][mpmc]") {
  CHECK(mpmc_queue<int>(1).capacity() == 1);
  CHECK(mpmc_queue<int>(2).capacity() == 2);
  CHECK(mpmc_queue<int>(3).capacity() == 4);
  CHECK(mpmc_queue<int>(5).capacity() == 8);
  CHECK(mpmc_queue<int>(1000).capacity() == 1024);
  CHECK(mpmc_queue<int>(1024).capacity() == 1024);
  CHECK(mpmc_queue<int>(1025).capacity() == 2048);
  REQUIRE_THROWS_AS(mpmc_queue<int>(mpmc_queue<int>::max_capacity + 1), std::length_error);
}

TEST_CASE("the rounded capacity is the real capacity", "[queue][mpmc]") {
  mpmc_queue<int> q(3);
  for (int i = 0; i < 4; ++i) REQUIRE(q.try_push(i));
  CHECK_FALSE(q.try_push(99));
}

TEST_CASE("single-threaded FIFO across many laps", "[queue][mpmc]") {
  mpmc_queue<int> q(8);
  int next_in = 0;
  int next_out = 0;
  // Uneven batches so that the head and tail wrap at different offsets.
  for (int round = 0; round < 50; ++round) {
    const int n = 1 + round % 8;
    for (int i = 0; i < n; ++i) REQUIRE(q.try_push(next_in++));
    for (int i = 0; i < n; ++i) {
      int v = -1;
      REQUIRE(q.try_pop(v));
      REQUIRE(v == next_out++);
    }
  }
  CHECK(q.empty_approx());
}

TEST_CASE("capacity 1 alternates full and empty", "[queue][mpmc]") {
  mpmc_queue<int> q(1);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(q.try_push(i));
    REQUIRE_FALSE(q.try_push(-1));
    auto v = q.try_pop();
    REQUIRE(v.has_value());
    REQUIRE(*v == i);
    REQUIRE_FALSE(q.try_pop().has_value());
  }
}

TEST_CASE("try ops report full and empty", "[queue][mpmc]") {
  mpmc_queue<int> q(4);
  int out = 42;
  CHECK_FALSE(q.try_pop(out));
  CHECK(out == 42);  // untouched on failure
  CHECK_FALSE(q.try_pop().has_value());

  for (int i = 0; i < 4; ++i) REQUIRE(q.try_push(i));
  CHECK_FALSE(q.try_push(4));
  CHECK_FALSE(q.try_emplace(5));

  REQUIRE(q.try_pop(out));
  CHECK(out == 0);
  CHECK(q.try_push(4));  // the freed slot is usable again
  CHECK_FALSE(q.try_push(5));
  for (int expected = 1; expected <= 4; ++expected) {
    REQUIRE(q.try_pop(out));
    CHECK(out == expected);
  }
  CHECK_FALSE(q.try_pop(out));
}

TEST_CASE("a try op never waits for an unfinished push or pop", "[queue][mpmc][concurrency]") {
  SECTION("a push still constructing reads as empty") {
    mpmc_queue<stall> q(4);
    stall::arm();
    std::thread producer([&] { (void)q.try_emplace(stall::held_t{}, 1); });
    while (!stall::entered.load()) std::this_thread::yield();
    // The head slot is claimed but not published: try_pop must say "empty"
    // at once rather than wait (a wait here would hang the test).
    CHECK_FALSE(q.try_pop().has_value());
    // Later slots stay usable, and FIFO order still holds once it finishes.
    REQUIRE(q.try_emplace(2));
    CHECK_FALSE(q.try_pop().has_value());
    CHECK(q.size_approx() == 2);
    stall::released = true;
    producer.join();
    auto first = q.try_pop();
    auto second = q.try_pop();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->value == 1);
    CHECK(second->value == 2);
  }
  SECTION("a pop still moving out reads as full") {
    mpmc_queue<stall> q(1);
    REQUIRE(q.try_emplace(1));
    stall::arm();
    stall::stall_assignment = true;
    stall out(0);
    std::thread consumer([&] { (void)q.try_pop(out); });
    while (!stall::entered.load()) std::this_thread::yield();
    // The only slot is claimed by the consumer but not released yet.
    CHECK_FALSE(q.try_emplace(2));
    stall::released = true;
    consumer.join();
    CHECK(out.value == 1);
    CHECK(q.try_emplace(2));
  }
  stall::released = true;
  stall::stall_assignment = false;
}

TEST_CASE("try_emplace constructs in place", "[queue][mpmc]") {
  mpmc_queue<std::pair<int, std::string>> q(2);
  REQUIRE(q.try_emplace(1, "one"));
  REQUIRE(q.try_emplace(2, std::string(40, 'x')));  // beyond the small-string buffer
  auto a = q.try_pop();
  auto b = q.try_pop();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->first == 1);
  CHECK(a->second == "one");
  CHECK(b->second == std::string(40, 'x'));
}

TEST_CASE("move-only elements", "[queue][mpmc]") {
  mpmc_queue<std::unique_ptr<int>> q(2);
  REQUIRE(q.try_push(std::make_unique<int>(1)));
  REQUIRE(q.try_emplace(new int(2)));

  // A failed push must not steal the argument.
  auto keep = std::make_unique<int>(3);
  CHECK_FALSE(q.try_push(std::move(keep)));
  REQUIRE(keep);
  CHECK_FALSE(q.push_for(std::move(keep), 1ms));
  REQUIRE(keep);
  CHECK(*keep == 3);

  std::unique_ptr<int> out;
  REQUIRE(q.try_pop(out));
  CHECK(*out == 1);
  auto second = q.try_pop();
  REQUIRE(second.has_value());
  CHECK(**second == 2);

  REQUIRE(q.push(std::move(keep)));
  CHECK_FALSE(keep);
  auto third = q.pop();
  REQUIRE(third.has_value());
  CHECK(**third == 3);
}

TEST_CASE("every element is destroyed exactly once", "[queue][mpmc]") {
  lifetime_registry registry;
  {
    mpmc_queue<tracked> q(8);
    for (int i = 0; i < 6; ++i) REQUIRE(q.try_emplace(registry, i));
    tracked copy_source(registry, 100);
    REQUIRE(q.try_push(copy_source));                   // copy
    REQUIRE(q.try_push(tracked(registry, 101)));        // move
    CHECK_FALSE(q.try_push(tracked(registry, 102)));    // full: temporary dies with the caller

    tracked out(registry, -5);
    REQUIRE(q.try_pop(out));
    CHECK(out.value() == 0);
    auto popped = q.try_pop();
    REQUIRE(popped);
    CHECK(popped->value() == 1);
    // Six elements stay queued; the destructor must destroy them.
    CHECK(registry.live() == 6 + 3);  // queue + copy_source, out, popped
  }
  CHECK(registry.errors() == 0);
  CHECK(registry.live() == 0);
  CHECK(registry.constructed() == registry.destroyed());
  CHECK(registry.constructed() > 0);
}

TEST_CASE("destructor of a wrapped-around queue", "[queue][mpmc]") {
  lifetime_registry registry;
  {
    mpmc_queue<tracked> q(4);
    for (int i = 0; i < 3; ++i) REQUIRE(q.try_emplace(registry, i));
    for (int lap = 0; lap < 10; ++lap) {
      REQUIRE(q.try_emplace(registry, 3 + lap));
      REQUIRE(q.try_pop().has_value());
    }
    // Positions 10..12 live in slots 2, 3, 0: the survivors straddle the wrap.
    CHECK(q.size_approx() == 3);
  }
  CHECK(registry.errors() == 0);
  CHECK(registry.live() == 0);
}

TEST_CASE("a throwing push leaves the queue usable", "[queue][mpmc]") {
  countdown_reset reset;
  lifetime_registry registry;
  {
    mpmc_queue<throwing_move> q(4);
    throwing_move a(registry, 1);
    throwing_move b(registry, 2);
    throwing_move c(registry, 3);
    REQUIRE(q.try_push(a));

    throwing_move::countdown = 0;  // the next copy throws
    REQUIRE_THROWS_AS(q.try_push(b), std::runtime_error);
    throwing_move::countdown = 0;
    REQUIRE_THROWS_AS(q.push(std::move(b)), std::runtime_error);
    REQUIRE(throwing_move::countdown.load() == -1);

    REQUIRE(q.try_push(c));
    // The two failed pushes left holes; FIFO order around them is intact.
    std::optional<throwing_move> first = q.try_pop();
    REQUIRE(first);
    CHECK(first->inner.value() == 1);
    std::optional<throwing_move> second = q.try_pop();
    REQUIRE(second);
    CHECK(second->inner.value() == 3);
    CHECK_FALSE(q.try_pop().has_value());

    // Still a working queue of full capacity after the holes.
    for (int i = 0; i < 4; ++i) REQUIRE(q.try_emplace(registry, 10 + i));
    CHECK_FALSE(q.try_emplace(registry, 99));
  }
  CHECK(registry.errors() == 0);
  CHECK(registry.live() == 0);
}

TEST_CASE("a throwing pop loses only that element", "[queue][mpmc]") {
  countdown_reset reset;
  lifetime_registry registry;
  {
    mpmc_queue<throwing_move> q(4);
    for (int i = 0; i < 3; ++i) REQUIRE(q.try_emplace(registry, i));
    throwing_move out(registry, -1);

    throwing_move::countdown = 0;  // move assignment into `out` throws
    REQUIRE_THROWS_AS(q.try_pop(out), std::runtime_error);
    throwing_move::countdown = 0;  // move construction into the optional throws
    REQUIRE_THROWS_AS(q.try_pop(), std::runtime_error);

    // Elements 0 and 1 were lost (and destroyed); 2 is next.
    REQUIRE(q.try_pop(out));
    CHECK(out.inner.value() == 2);
    CHECK_FALSE(q.try_pop(out));
    CHECK(registry.live() == 1);  // only `out`

    for (int i = 0; i < 4; ++i) REQUIRE(q.try_emplace(registry, i));
    throwing_move::countdown = 0;
    REQUIRE_THROWS_AS(q.pop(out), std::runtime_error);
    REQUIRE(q.pop(out));
    CHECK(out.inner.value() == 1);
  }
  CHECK(registry.errors() == 0);
  CHECK(registry.live() == 0);
}

TEST_CASE("blocking push and pop between two threads", "[queue][mpmc][concurrency]") {
  constexpr int count = 20000;
  mpmc_queue<int> q(4);  // tiny, so that both sides block often
  // Catch2 assertions are not thread-safe: threads record, the test thread checks.
  std::atomic<bool> all_pushed{true};
  std::thread producer([&] {
    for (int i = 0; i < count; ++i) {
      if (!q.push(i)) all_pushed = false;
    }
  });
  bool all_popped = true;
  bool in_order = true;
  for (int i = 0; i < count; ++i) {
    int v = -1;
    all_popped = all_popped && q.pop(v);
    in_order = in_order && v == i;
  }
  producer.join();
  CHECK(all_pushed.load());
  CHECK(all_popped);
  CHECK(in_order);
  CHECK(q.empty_approx());
}

TEST_CASE("a parked popper is woken by a push", "[queue][mpmc][concurrency]") {
  mpmc_queue<int> q(2);
  std::optional<int> got;
  std::thread consumer([&] { got = q.pop(); });
  std::this_thread::sleep_for(park_delay);
  REQUIRE(q.try_push(7));  // a try op must wake a parked blocking op too
  consumer.join();
  CHECK(got == std::optional<int>(7));
}

TEST_CASE("a parked pusher is woken by a pop", "[queue][mpmc][concurrency]") {
  mpmc_queue<int> q(1);
  REQUIRE(q.try_push(1));
  bool pushed = false;
  std::thread producer([&] { pushed = q.push(2); });
  std::this_thread::sleep_for(park_delay);
  int v = 0;
  REQUIRE(q.try_pop(v));
  CHECK(v == 1);
  producer.join();
  CHECK(pushed);
  REQUIRE(q.try_pop(v));
  CHECK(v == 2);
}

TEST_CASE("timed ops time out", "[queue][mpmc]") {
  mpmc_queue<int> q(2);
  int v = 0;
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(q.pop_for(v, 20ms));
  CHECK(std::chrono::steady_clock::now() - start >= 20ms);

  REQUIRE(q.try_push(1));
  REQUIRE(q.try_push(2));
  start = std::chrono::steady_clock::now();
  CHECK_FALSE(q.push_for(3, 20ms));
  CHECK(std::chrono::steady_clock::now() - start >= 20ms);

  // Deadlines on another clock, and zero/negative timeouts, behave too.
  CHECK_FALSE(q.push_until(3, std::chrono::system_clock::now() + 5ms));
  CHECK_FALSE(q.push_for(3, 0ms));
  CHECK_FALSE(q.push_for(3, -5ms));
  REQUIRE(q.pop_for(v, 0ms));
  CHECK(v == 1);
  REQUIRE(q.pop_until(v, std::chrono::steady_clock::now() + 5ms));
  CHECK(v == 2);
  CHECK_FALSE(q.pop_until(v, std::chrono::system_clock::now() + 5ms));
  // A huge timeout must not overflow into the past.
  REQUIRE(q.push_for(4, std::chrono::nanoseconds::max()));
  REQUIRE(q.pop_for(v, std::chrono::hours::max()));
  CHECK(v == 4);
}

TEST_CASE("a timed pop succeeds when an element arrives in time", "[queue][mpmc][concurrency]") {
  mpmc_queue<int> q(2);
  bool pushed = false;
  std::thread producer([&] {
    std::this_thread::sleep_for(park_delay);
    pushed = q.push(5);
  });
  int v = 0;
  const auto start = std::chrono::steady_clock::now();
  const bool popped = q.pop_for(v, 10s);
  const auto waited = std::chrono::steady_clock::now() - start;
  producer.join();
  CHECK(pushed);
  REQUIRE(popped);
  CHECK(v == 5);
  CHECK(waited < 5s);  // woken, not timed out
}

TEST_CASE("a timed push succeeds when room appears in time", "[queue][mpmc][concurrency]") {
  mpmc_queue<int> q(1);
  REQUIRE(q.try_push(1));
  bool popped = false;
  std::thread consumer([&] {
    std::this_thread::sleep_for(park_delay);
    int v = 0;
    popped = q.try_pop(v);
  });
  const auto start = std::chrono::steady_clock::now();
  const bool pushed = q.push_for(2, 10s);
  const auto waited = std::chrono::steady_clock::now() - start;
  consumer.join();
  CHECK(popped);
  REQUIRE(pushed);
  CHECK(waited < 5s);
  CHECK(q.try_pop() == std::optional<int>(2));
}

TEST_CASE("close() wakes a parked popper", "[queue][mpmc][concurrency]") {
  mpmc_queue<int> q(4);
  std::atomic<bool> returned{false};
  bool popped = true;
  bool timed_popped = true;
  std::chrono::steady_clock::duration timed_wait{};
  std::thread consumer([&] {
    int v = 0;
    popped = q.pop(v);
    returned = true;
  });
  std::thread timed_consumer([&] {
    int v = 0;
    const auto start = std::chrono::steady_clock::now();
    timed_popped = q.pop_for(v, 30s);
    timed_wait = std::chrono::steady_clock::now() - start;
  });
  std::this_thread::sleep_for(park_delay);
  CHECK_FALSE(returned.load());
  q.close();
  consumer.join();
  timed_consumer.join();
  CHECK(returned.load());
  CHECK_FALSE(popped);
  CHECK_FALSE(timed_popped);
  CHECK(timed_wait < 10s);  // woken by close(), not by its timeout
}

TEST_CASE("close() wakes a parked pusher", "[queue][mpmc][concurrency]") {
  mpmc_queue<std::unique_ptr<int>> q(1);
  REQUIRE(q.try_push(std::make_unique<int>(1)));
  auto p = std::make_unique<int>(2);
  auto timed_p = std::make_unique<int>(3);
  bool pushed = true;
  bool timed_pushed = true;
  std::chrono::steady_clock::duration timed_wait{};
  std::thread producer([&] { pushed = q.push(std::move(p)); });
  std::thread timed_producer([&] {
    const auto start = std::chrono::steady_clock::now();
    timed_pushed = q.push_for(std::move(timed_p), 30s);
    timed_wait = std::chrono::steady_clock::now() - start;
  });
  std::this_thread::sleep_for(park_delay);
  q.close();
  producer.join();
  timed_producer.join();
  CHECK_FALSE(pushed);
  CHECK_FALSE(timed_pushed);
  CHECK(timed_wait < 10s);
  CHECK(p);  // a failed push does not consume its argument
  CHECK(timed_p);
  // The element pushed before close() is still delivered.
  auto v = q.pop();
  REQUIRE(v.has_value());
  CHECK(**v == 1);
  CHECK_FALSE(q.pop().has_value());
}

TEST_CASE("after close() pushes fail and pops drain", "[queue][mpmc]") {
  mpmc_queue<int> q(8);
  for (int i = 0; i < 3; ++i) REQUIRE(q.try_push(i));
  CHECK_FALSE(q.closed());
  q.close();
  q.close();  // idempotent
  CHECK(q.closed());
  CHECK_FALSE(q.try_push(10));
  CHECK_FALSE(q.try_emplace(11));
  CHECK_FALSE(q.push(12));
  CHECK_FALSE(q.push_for(13, 1ms));
  int v = -1;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(q.pop(v));
    CHECK(v == i);
  }
  CHECK_FALSE(q.pop(v));
  CHECK_FALSE(q.pop_for(v, 1s));  // closed and drained: returns at once
  CHECK_FALSE(q.try_pop(v));
}

TEST_CASE("size_approx follows pushes and pops", "[queue][mpmc]") {
  mpmc_queue<int> q(4);
  CHECK(q.size_approx() == 0);
  CHECK(q.empty_approx());
  REQUIRE(q.try_push(1));
  REQUIRE(q.try_push(2));
  REQUIRE(q.try_push(3));
  CHECK(q.size_approx() == 3);
  CHECK_FALSE(q.empty_approx());
  REQUIRE(q.try_pop().has_value());
  CHECK(q.size_approx() == 2);
  REQUIRE(q.try_push(4));
  REQUIRE(q.try_push(5));
  CHECK(q.size_approx() == q.capacity());
  CHECK_FALSE(q.try_push(6));
  CHECK(q.size_approx() == q.capacity());
  while (q.try_pop()) {
  }
  CHECK(q.size_approx() == 0);
}

// try_pop_bulk: the mailbox consumer takes its bursts with it.

TEST_CASE("try_pop_bulk takes the run at the head, in order, up to max", "[queue][mpmc][bulk]") {
  mpmc_queue<int> q(8);
  std::array<int, 16> out{};
  CHECK(q.try_pop_bulk(out.data(), 4) == 0);  // empty
  for (int i = 0; i < 5; ++i) REQUIRE(q.try_push(i));
  CHECK(q.try_pop_bulk(out.data(), 0) == 0);
  REQUIRE(q.try_pop_bulk(out.data(), 3) == 3);
  CHECK(out[0] == 0);
  CHECK(out[1] == 1);
  CHECK(out[2] == 2);
  REQUIRE(q.try_pop_bulk(out.data(), 16) == 2);
  CHECK(out[0] == 3);
  CHECK(out[1] == 4);
  CHECK(q.try_pop_bulk(out.data(), 16) == 0);
  CHECK(q.empty_approx());

  SECTION("full ring: a bulk pop makes room for as many pushes") {
    for (int i = 0; i < 8; ++i) REQUIRE(q.try_push(i));
    CHECK_FALSE(q.try_push(99));
    REQUIRE(q.try_pop_bulk(out.data(), 16) == 8);
    for (int i = 0; i < 8; ++i) CHECK(out[static_cast<std::size_t>(i)] == i);
    for (int i = 0; i < 8; ++i) CHECK(q.try_push(100 + i));
    CHECK(q.size_approx() == 8);
  }
  SECTION("many laps around the ring, mixed with single pops") {
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 500; ++round) {
      const int n = 1 + round % 8;
      for (int i = 0; i < n; ++i) REQUIRE(q.try_push(next_in++));
      if (round % 3 == 0) {
        int v = -1;
        REQUIRE(q.try_pop(v));
        CHECK(v == next_out++);
      }
      const std::size_t got = q.try_pop_bulk(out.data(), static_cast<std::size_t>(1 + round % 5));
      for (std::size_t i = 0; i < got; ++i) CHECK(out[i] == next_out++);
      while (const std::size_t more = q.try_pop_bulk(out.data(), out.size()))
        for (std::size_t i = 0; i < more; ++i) CHECK(out[i] == next_out++);
    }
    CHECK(next_out == next_in);
  }
}

TEST_CASE("try_pop_bulk stops at a hole left by a failed push, and the next call steps over it", "[queue][mpmc][bulk]") {
  mpmc_queue<fragile> q(8);
  REQUIRE(q.try_emplace(1, false));
  REQUIRE(q.try_emplace(2, false));
  CHECK_THROWS_AS(q.try_emplace(3, true), std::runtime_error);  // a hole
  REQUIRE(q.try_emplace(4, false));
  std::array<fragile, 8> out{};
  REQUIRE(q.try_pop_bulk(out.data(), out.size()) == 2);
  CHECK(out[0].v == 1);
  CHECK(out[1].v == 2);
  REQUIRE(q.try_pop_bulk(out.data(), out.size()) == 1);
  CHECK(out[0].v == 4);
  CHECK(q.try_pop_bulk(out.data(), out.size()) == 0);
  // The ring is not wedged: a full lap still fits.
  for (int i = 0; i < 8; ++i) REQUIRE(q.try_emplace(i, false));
  CHECK(q.try_pop_bulk(out.data(), out.size()) == 8);
}

TEST_CASE("try_pop_bulk destroys what it moves out of the ring, once", "[queue][mpmc][bulk]") {
  lifetime_registry reg;
  {
    mpmc_queue<tracked> q(16);
    for (int i = 0; i < 10; ++i) REQUIRE(q.try_emplace(reg, i));
    std::vector<tracked> out;
    for (int i = 0; i < 6; ++i) out.emplace_back(reg, -2);
    REQUIRE(q.try_pop_bulk(out.data(), out.size()) == 6);
    for (int i = 0; i < 6; ++i) CHECK(out[static_cast<std::size_t>(i)].value() == i);
    CHECK(reg.live() == 6 + 4);  // 6 in `out`, 4 still queued
  }
  CHECK(reg.live() == 0);
  CHECK(reg.errors() == 0);
}

// The mailbox's growing ring (delivery/detail/mailbox.hpp, "Growing") hands over from a small
// queue to a large one with the small one's elements reserved at the front of the large one.
TEST_CASE("reserve_front holds positions against the capacity until try_skip_hole frees them", "[queue][mpmc]") {
  mpmc_queue<int> q(8);
  q.reserve_front(3);
  CHECK(q.size_approx() == 3);
  for (int i = 0; i < 5; ++i) CHECK(q.try_push(i));
  CHECK_FALSE(q.try_push(99));  // 3 reserved + 5 elements: full
  CHECK(q.try_skip_hole());     // one reserved position is free again
  CHECK(q.try_push(5));
  CHECK_FALSE(q.try_push(99));
  CHECK(q.try_skip_hole());
  CHECK(q.try_skip_hole());
  CHECK_FALSE(q.try_skip_hole());  // the head is an element now: never taken by it
  CHECK(q.size_approx() == 6);
  int v = -1;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(q.try_pop(v));
    CHECK(v == i);
  }
  CHECK_FALSE(q.try_pop(v));
  CHECK_FALSE(q.try_skip_hole());  // empty
}

TEST_CASE("a pop steps over reserved positions that were not freed", "[queue][mpmc]") {
  mpmc_queue<int> q(4);
  q.reserve_front(4);  // all of it
  CHECK_FALSE(q.try_push(1));
  CHECK(q.size_approx() == 4);
  int v = -1;
  CHECK_FALSE(q.try_pop(v));  // holes only: nothing to take, and they are released
  CHECK(q.size_approx() == 0);
  for (int i = 0; i < 4; ++i) CHECK(q.try_push(i));  // the next lap has the whole ring
  CHECK_FALSE(q.try_push(4));
  for (int i = 0; i < 4; ++i) {
    REQUIRE(q.try_pop(v));
    CHECK(v == i);
  }
}
