// SPDX-License-Identifier: MIT
// Idle agents are cheap: a mailbox allocates a priority's queue with the first event of that
// priority, so many agents that wait for work cost little (issue 10: 100 000 idle agents on one
// executor in <= 1 GiB).
#include <agentbus/agent/agent.hpp>
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
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
  CHECK(agents[7]->stats().queue_bytes == ring_bytes(1024));
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
  CHECK(a.stats().queue_bytes == ring_bytes(128));
  CHECK(bus.publish("t", ping{2}, {.prio = agentbus::priority::high}).delivered == 1);
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(128));
  CHECK(bus.publish("t", ping{3}).delivered == 1);  // normal again: no new queue
  CHECK(a.stats().queue_bytes == 2 * ring_bytes(128));
  CHECK(a.poll() == 3);
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
