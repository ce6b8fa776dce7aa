// SPDX-License-Identifier: MIT
// Idle agents are cheap: a mailbox allocates a priority's queue with the first event of that
// priority, so many agents that wait for work cost little (issue 10: 100 000 idle agents on one
// executor in <= 1 GiB).
#include <agentbus/agent/agent.hpp>
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "support/allocation_counter.hpp"

using namespace std::chrono_literals;

namespace {
struct ping {
  int n = 0;
};

// Heap bytes in use (glibc); 0 where unknown (then the byte check below is skipped). Sanitizer
// allocators answer 0 too.
std::size_t heap_in_use() {
#if defined(__GLIBC__)
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#else
  return 0;
#endif
}

constexpr std::size_t ring_bytes(std::size_t capacity) { return agentbus::detail::mailbox::ring_bytes(capacity); }
constexpr std::size_t first_ring = agentbus::detail::tuning::mailbox_first_ring;
}  // namespace

TEST_CASE("20 000 idle agents on an executor, one subscription each, stay small", "[agent][memory]") {
  constexpr std::size_t count = 20000;
  // 1 GiB for 100 000 agents is ~10 700 bytes each, subscription included; keep well under.
  constexpr std::size_t budget_per_agent = 4096;
  agentbus::bus bus;
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  std::vector<agentbus::subscription> subs;
  agents.reserve(count);
  subs.reserve(count);

  const std::size_t before = heap_in_use();  // the executor counts too: a run-queue slot per agent
  agentbus::executor pool({.threads = 1, .max_agents = count});
  std::size_t allocations = 0;
  {
    agentbus::test::allocation_scope scope;
    for (std::size_t i = 0; i < count; ++i) {
      const std::string name = std::to_string(i);
      agents.push_back(std::make_unique<agentbus::agent>(name, pool));
      subs.push_back(agents.back()->subscribe(bus, "agents." + name + ".inbox", [](const ping&) {}));
    }
    allocations = scope.count();
  }
  const std::size_t after = heap_in_use();

  for (const auto& a : agents) REQUIRE(a->stats().queue_bytes == 0);  // no queue until an event comes
  // Under a sanitizer's allocator glibc's figures do not move (or report 0): skip the bytes.
  if (before != 0 && after > before) {
    const double per_agent = static_cast<double>(after - before) / static_cast<double>(count);
    INFO("heap bytes per idle agent (agent, mailbox, subscription): " << per_agent);
    CHECK(per_agent <= static_cast<double>(budget_per_agent));
    // Before lazy queues: three rings of 1024 slots each, ~96 KiB per agent.
    CHECK(per_agent < static_cast<double>(ring_bytes(1024)));
  }
  // The agent and its mailbox are one allocation; the subscription, topic and strings a few
  // more (15 with the router of this writing).
  INFO("allocations per idle agent: " << static_cast<double>(allocations) / count);
  CHECK(allocations <= 32 * count);

  // A sample of them still works: the first event makes its queue, the handler runs.
  std::atomic<int> handled{0};
  auto extra = agents[7]->subscribe(bus, "agents.7.extra", [&](const ping&) { handled.fetch_add(1); });
  bus.publish("agents.7.extra", ping{1});
  for (int i = 0; i < 2000 && handled.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  CHECK(handled.load() == 1);
  CHECK(agents[7]->stats().queue_bytes == ring_bytes(first_ring));  // a small first ring, not 33 KiB
  CHECK(agents[8]->stats().queue_bytes == 0);

  // Destroying them all is quick enough to be a test (each agent ends its subscription).
  extra = {};
  subs.clear();
  agents.clear();
}

TEST_CASE("a mailbox allocates a priority's queue with the first event of that priority", "[agent][memory]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 100});  // rounded up to 128
  auto sub = a.subscribe(bus, "t", [](const ping&) {});
  CHECK(a.stats().queue_bytes == 0);
  CHECK(bus.publish("t", ping{1}).delivered == 1);
  CHECK(a.stats().queue_bytes == ring_bytes(first_ring));
  CHECK(bus.publish("t", ping{2}, {.prio = agentbus::priority::high}).delivered == 1);
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(first_ring));
  CHECK(bus.publish("t", ping{3}).delivered == 1);  // normal again: no new queue
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(first_ring));
  // The normal ring fills: it grows once, to the capacity.
  for (std::size_t i = 3; i <= first_ring; ++i) CHECK(bus.publish("t", ping{3}).delivered == 1);
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(first_ring));
  CHECK(bus.publish("t", ping{4}).delivered == 1);
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(first_ring) + ring_bytes(128));
  CHECK(a.stats().depth == first_ring + 2);
  CHECK(a.poll() == first_ring + 2);
  CHECK(a.stats().depth == 0);
}

TEST_CASE("a lazily made queue keeps the bound: capacity events, then the overflow policy", "[agent][memory][backpressure]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 64, .overflow = agentbus::overflow::fail});
  auto sub = a.subscribe(bus, "t", [](const ping&) {});
  int accepted = 0;
  for (int i = 0; i < 100; ++i) accepted += bus.publish("t", ping{i}).delivered == 1 ? 1 : 0;
  CHECK(accepted == 64);
  CHECK(a.stats().rejected == 36);
  // Each priority has its own bound, made when first used.
  int high = 0;
  for (int i = 0; i < 100; ++i)
    high += bus.publish("t", ping{i}, {.prio = agentbus::priority::high}).delivered == 1 ? 1 : 0;
  CHECK(high == 64);
  CHECK(a.poll() == 128);
}

TEST_CASE("a mailbox refuses a bad capacity when it is made, not at its first event", "[agent][memory]") {
  CHECK_THROWS_AS(agentbus::agent("zero", {.capacity = 0}), std::invalid_argument);
  agentbus::executor pool({.threads = 1});
  CHECK_THROWS_AS(agentbus::agent("zero", pool, {.capacity = 0}), std::invalid_argument);
}

TEST_CASE("an agent stopped before its first event refuses events as closed", "[agent][memory][shutdown]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  auto sub = a.subscribe(bus, "t", [](const ping&) {});
  a.stop();
  CHECK(bus.publish("t", ping{1}).delivered == 0);
  CHECK(bus.publish("t", ping{2}, {.prio = agentbus::priority::low}).delivered == 0);
  CHECK(a.stats().closed == 2);
  CHECK(a.stats().handled == 0);
  CHECK(a.stats().queue_bytes == 0);  // a stopped mailbox makes no queue to refuse into
}


namespace {
// Publishes `count` numbered events (from `first`) to "t"; returns how many were accepted.
int publish_numbered(agentbus::bus& bus, int first, int count) {
  int accepted = 0;
  for (int i = first; i < first + count; ++i) accepted += bus.publish("t", ping{i}).delivered == 1 ? 1 : 0;
  return accepted;
}
}  // namespace

// The first ring is small and grows to the capacity when it fills (mailbox.hpp, "Growing"):
// the overflow policies must act exactly as with one ring of the capacity.
TEST_CASE("a growing queue keeps the bound exactly under every overflow policy", "[agent][memory][backpressure]") {
  const std::size_t requested = GENERATE(std::size_t{64}, std::size_t{100}, std::size_t{1024});
  const int capacity = static_cast<int>(std::bit_ceil(requested));
  const int extra = 50;
  INFO("capacity " << capacity);
  for (auto policy : {agentbus::overflow::fail, agentbus::overflow::drop_newest, agentbus::overflow::drop_oldest,
                      agentbus::overflow::block}) {
    INFO("overflow " << static_cast<int>(policy));
    agentbus::bus bus;
    agentbus::agent a("a", {.capacity = requested, .overflow = policy, .block_timeout = 1ms});
    std::vector<int> seen;
    auto sub = a.subscribe(bus, "t", [&](const ping& p) { seen.push_back(p.n); });
    const int accepted = publish_numbered(bus, 0, capacity + extra);
    const auto st = a.stats();
    CHECK(st.depth == static_cast<std::size_t>(capacity));
    CHECK(st.queue_bytes == ring_bytes(first_ring) + ring_bytes(static_cast<std::size_t>(capacity)));
    std::vector<int> expected;
    switch (policy) {
      case agentbus::overflow::fail:
      case agentbus::overflow::block:  // each of the extra ones waited 1 ms, then was rejected
        CHECK(accepted == capacity);
        CHECK(st.rejected == static_cast<std::uint64_t>(extra));
        for (int i = 0; i < capacity; ++i) expected.push_back(i);
        break;
      case agentbus::overflow::drop_newest:
        CHECK(accepted == capacity);
        CHECK(st.dropped_newest == static_cast<std::uint64_t>(extra));
        for (int i = 0; i < capacity; ++i) expected.push_back(i);
        break;
      case agentbus::overflow::drop_oldest:  // one dropped per event pushed, the oldest first
        CHECK(accepted == capacity + extra);
        CHECK(st.dropped_oldest == static_cast<std::uint64_t>(extra));
        for (int i = extra; i < capacity + extra; ++i) expected.push_back(i);
        break;
    }
    CHECK(a.poll() == static_cast<std::size_t>(capacity));
    CHECK(seen == expected);  // FIFO across the switch from the first ring to the full one
    CHECK(a.stats().depth == 0);
  }
}

// While the consumer takes the first ring's events, each one it takes frees a place in the
// full ring: the mailbox accepts exactly as many as it lost, no fewer (and no more).
TEST_CASE("a growing queue's bound stays exact while its first ring drains", "[agent][memory][backpressure]") {
  constexpr int capacity = 128;
  constexpr int taken = 10;
  REQUIRE(taken < static_cast<int>(first_ring));  // the first ring still holds events after the poll
  SECTION("overflow::fail") {
    agentbus::bus bus;
    agentbus::agent a("a", {.capacity = capacity, .overflow = agentbus::overflow::fail});
    std::vector<int> seen;
    auto sub = a.subscribe(bus, "t", [&](const ping& p) { seen.push_back(p.n); });
    REQUIRE(publish_numbered(bus, 0, capacity) == capacity);
    REQUIRE(a.poll(taken) == taken);  // taken from the first ring, which still holds more
    CHECK(publish_numbered(bus, capacity, taken + 1) == taken);
    CHECK(a.stats().rejected == 1);
    CHECK(a.poll() == capacity);
    std::vector<int> expected;
    for (int i = 0; i < capacity + taken; ++i) expected.push_back(i);
    CHECK(seen == expected);
  }
  SECTION("overflow::drop_oldest") {
    agentbus::bus bus;
    agentbus::agent a("a", {.capacity = capacity, .overflow = agentbus::overflow::drop_oldest});
    std::vector<int> seen;
    auto sub = a.subscribe(bus, "t", [&](const ping& p) { seen.push_back(p.n); });
    REQUIRE(publish_numbered(bus, 0, capacity) == capacity);
    REQUIRE(a.poll(taken) == taken);
    CHECK(publish_numbered(bus, capacity, taken) == taken);
    CHECK(a.stats().dropped_oldest == 0);  // there was room for them
    CHECK(publish_numbered(bus, capacity + taken, 1) == 1);
    CHECK(a.stats().dropped_oldest == 1);  // the oldest waiting one, still in the first ring
    CHECK(a.poll() == capacity);
    std::vector<int> expected;
    for (int i = 0; i < capacity + taken + 1; ++i)
      if (i != taken) expected.push_back(i);
    CHECK(seen == expected);
  }
}

TEST_CASE("a capacity no larger than the first ring is one ring that never grows", "[agent][memory]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 8, .overflow = agentbus::overflow::fail});
  auto sub = a.subscribe(bus, "t", [](const ping&) {});
  CHECK(publish_numbered(bus, 0, 20) == 8);
  CHECK(a.stats().queue_bytes == ring_bytes(8));
  CHECK(a.poll() == 8);
}
