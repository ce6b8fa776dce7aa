// SPDX-License-Identifier: MIT
// consumer_group: each event to one member at a time, reclaim from a member that hangs,
// what a leaving member gives back, and exactly-once delivery under concurrency.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/group.hpp>

#include <catch2/catch.hpp>

#include "consumer/common.hpp"
#include "support/allocation_counter.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using group_bus = agentbus::basic_bus<agentbus::storage::memory_ring<1 << 14>>;

struct task {
  std::uint64_t n = 0;
};

}  // namespace

TEST_CASE("members of a group share the events: each goes to one member") {
  agentbus::manual_clock clock;
  group_bus bus;
  for (std::uint64_t i = 0; i < 9; ++i) bus.publish("work.x", task{i});
  agentbus::consumer_group<task> group(bus, "workers", "work.>", agentbus::test::exact_timing(clock));
  auto a = group.join("a");
  auto b = group.join("b");
  std::vector<std::uint64_t> got_a, got_b;
  CHECK(a.poll(
            [&](const agentbus::delivered<task>& d) {
              CHECK(d.member() == "a");
              CHECK(d.consumer() == "workers");
              got_a.push_back(d.payload().n);
            },
            4) == 4);
  CHECK(b.poll([&](const agentbus::delivered<task>& d) { got_b.push_back(d.payload().n); }) == 5);
  CHECK(got_a == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(got_b == std::vector<std::uint64_t>{4, 5, 6, 7, 8});
  CHECK(group.info().members == 2);
  CHECK(group.info().acked == 9);
}

TEST_CASE("an event held by a member that hangs is reclaimed by another after the ack deadline") {
  agentbus::manual_clock clock;
  group_bus bus;
  bus.publish("work.x", task{1});
  agentbus::consumer_group<task> group(bus, "workers", "work.>", agentbus::test::exact_timing(clock));
  auto stuck = group.join("stuck");
  auto healthy = group.join("healthy");
  std::optional<agentbus::ack_token> held;
  CHECK(stuck.poll([&](const agentbus::delivered<task>& d) { held = d.defer(); }) == 1);
  auto take = [&](const agentbus::delivered<task>& d) {
    CHECK(d.member() == "healthy");
    CHECK(d.attempt() == 2);
  };
  CHECK(healthy.poll(take) == 0);  // still the stuck member's
  clock.advance(10s + 1s);         // its deadline, then the backoff
  CHECK(healthy.poll(take) == 1);
  CHECK(group.info().ack_timeouts == 1);
  // The stuck member wakes up and acks late: harmless, the event is already done.
  CHECK(held->ack() == agentbus::ack_status::already);
  CHECK(group.info().acked == 1);
}

TEST_CASE("a member that leaves returns what it holds at once, attempts kept") {
  agentbus::manual_clock clock;
  group_bus bus;
  for (std::uint64_t i = 0; i < 3; ++i) bus.publish("work.x", task{i});
  agentbus::consumer_group<task> group(bus, "workers", "work.>", agentbus::test::exact_timing(clock));
  auto other = group.join("other");
  {
    auto leaving = group.join("leaving");
    CHECK(leaving.poll([](const agentbus::delivered<task>& d) { (void)d.defer(); }) == 3);
    CHECK(other.poll([](const agentbus::delivered<task>&) { FAIL("taken from a live member"); }) == 0);
  }  // destroyed: leaves
  std::vector<std::uint32_t> attempts;
  CHECK(other.poll([&](const agentbus::delivered<task>& d) { attempts.push_back(d.attempt()); }) == 3);
  CHECK(attempts == std::vector<std::uint32_t>{2, 2, 2});
  CHECK(group.info().members == 1);
  CHECK(group.info().pending == 0);
}

TEST_CASE("an event whose members leave with it is dead-lettered after max_deliver, not retried for ever") {
  agentbus::manual_clock clock;
  group_bus bus;
  std::vector<std::string> reasons;
  auto dlq = bus.subscribe("$dlq.>", [&](const agentbus::event<task>& ev) {
    reasons.emplace_back(ev.header_value(agentbus::dead_letter_header::reason).value_or("(none)"));
  });
  bus.publish("work.x", task{7});
  auto options = agentbus::test::exact_timing(clock);
  options.max_deliver = 2;
  agentbus::consumer_group<task> group(bus, "workers", "work.>", options);
  std::vector<std::uint32_t> attempts;
  for (int i = 0; i < 5; ++i) {  // each member takes the event, still works on it, and leaves
    auto member = group.join("m" + std::to_string(i));
    (void)member.poll([&](const agentbus::delivered<task>& d) {
      attempts.push_back(d.attempt());
      (void)d.defer();
    });
  }
  CHECK(attempts == std::vector<std::uint32_t>{1, 2});
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("max_deliver: 2 attempts") == 0);
  CHECK(reasons[0].find("left") != std::string::npos);
  CHECK(group.info().dead_lettered == 1);
  CHECK(group.info().pending == 0);
}

TEST_CASE("polling through a member that left is refused") {
  group_bus bus;
  agentbus::consumer_group<task> group(bus, "workers", "work.>");
  auto m = group.join("m");
  m.leave();
  CHECK_FALSE(m.joined());
  CHECK(m.poll([](const agentbus::delivered<task>&) {}) == 0);
}

TEST_CASE("a group that members join and leave for ever stays the size of its most members at once") {
  // Every join appended a slot that was never given back (~40 bytes a join, for ever); and
  // member ids, 32 bits, would have run out. A slot a member left is now reused.
  group_bus bus;
  agentbus::consumer_group<task> group(bus, "workers", "work.>");
  auto stays = group.join("stays");
  for (int i = 0; i < 4; ++i) {  // the first slots and the list of free ones, made once
    auto a = group.join("warm-up-a");
    auto b = group.join("warm-up-b");
  }
  std::size_t allocations = 0;
  {
    agentbus::test::allocation_scope scope;
    for (int i = 0; i < 10000; ++i) {
      auto a = group.join("worker-a");  // short names: no allocation of their own
      auto b = group.join("worker-b");
    }
    allocations = scope.count();
  }
  CHECK(allocations == 0);  // appending made one block every few joins
  CHECK(group.info().members == 1);
  // The members that reuse slots get their own events, and the one that stayed keeps working.
  bus.publish("work.x", task{1});
  auto late = group.join("late");
  std::uint64_t got = 0;
  CHECK(late.poll([&](const agentbus::delivered<task>& d) {
    CHECK(d.member() == "late");
    got = d.payload().n;
  }) == 1);
  CHECK(got == 1);
  bus.publish("work.x", task{2});
  CHECK(stays.poll([&](const agentbus::delivered<task>& d) { CHECK(d.member() == "stays"); }) == 1);
}

TEST_CASE("members join and leave on one thread while another member polls", "[concurrency]") {
  // A poll looked its member up in the group's member list outside the mutex, while a join
  // appending to it could reallocate the list's index (ThreadSanitizer saw the race).
  group_bus bus;
  agentbus::consumer_group<task> group(bus, "workers", "work.>");
  auto worker = group.join("worker");
  std::atomic<bool> done{false};
  std::thread churn([&] {
    for (int i = 0; i < 20000; ++i) (void)group.join("passer-by");  // joins and leaves at once
    done = true;
  });
  std::uint64_t published = 0, handled = 0;
  while (!done.load()) {
    bus.publish("work.x", task{published++});
    handled += worker.poll([](const agentbus::delivered<task>&) {});
  }
  churn.join();
  for (std::size_t n; (n = worker.poll([](const agentbus::delivered<task>&) {})) > 0;) handled += n;
  CHECK(handled == published);
  CHECK(group.info().acked == published);
  CHECK(group.info().members == 1);
}

TEST_CASE("four members and two publishers: every event acked exactly once", "[concurrency]") {
  constexpr std::uint64_t per_publisher = 5000;
  group_bus bus;
  agentbus::consumer_group<task> group(bus, "workers", "work.>", {.max_ack_pending = 256});
  std::mutex seen_mutex;
  std::map<std::uint64_t, int> seen;
  std::atomic<std::uint64_t> handled{0};
  std::atomic<bool> published{false};
  const auto give_up = std::chrono::steady_clock::now() + 60s;  // a lost event fails the checks, never hangs
  std::vector<std::thread> threads;
  for (int m = 0; m < 4; ++m)
    threads.emplace_back([&, m] {
      auto member = group.join("m" + std::to_string(m));
      while ((!published.load() || handled.load() < 2 * per_publisher) && std::chrono::steady_clock::now() < give_up) {
        member.poll_for(
            [&](const agentbus::delivered<task>& d) {
              std::lock_guard lock(seen_mutex);
              ++seen[d.payload().n];
              handled.fetch_add(1);
            },
            20ms, 64);
      }
    });
  std::vector<std::thread> publishers;
  for (std::uint64_t p = 0; p < 2; ++p)
    publishers.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per_publisher; ++i) bus.publish("work.x", task{p * per_publisher + i});
    });
  for (auto& t : publishers) t.join();
  published = true;
  for (auto& t : threads) t.join();
  CHECK(seen.size() == 2 * per_publisher);
  std::size_t twice = 0;
  for (const auto& [n, times] : seen) twice += times != 1;
  CHECK(twice == 0);
  const auto info = group.info();
  CHECK(info.acked == 2 * per_publisher);
  CHECK(info.redelivered == 0);
  CHECK(info.pending == 0);
}
