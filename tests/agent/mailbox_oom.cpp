// SPDX-License-Identifier: MIT
// A mailbox out of memory at its two allocating moments on the way of an event: a publisher
// whose grow of the first ring fails (then blocks on the first ring), and a consumer thread
// whose first read section cannot get its reader slot. Nothing accepted may be lost or counted
// under the wrong reason (tests/support/allocation_counter.hpp injects the failures).
#include <agentbus/agent/agent.hpp>
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <new>
#include <thread>
#include <vector>

#include "support/allocation_counter.hpp"

using namespace std::chrono_literals;

namespace {
struct oom_ping {
  int n = 0;
};
}  // namespace

TEST_CASE("a blocking publisher whose grow failed is not refused as closed when another publisher grows the ring",
          "[agent][memory][backpressure][oom]") {
  // Its grow found no memory, so it waited on the full first ring; another publisher's grow
  // then closed that ring, and the waiting event was refused as closed (the mailbox was open
  // and the full ring had room).
  constexpr int first = static_cast<int>(agentbus::detail::tuning::mailbox_first_ring);
  int blocked_rounds = 0;
  for (std::size_t k = 1; k <= 12; ++k) {
    INFO("allocation " << k << " fails");
    agentbus::bus bus;
    agentbus::agent a("a", {.capacity = 256, .overflow = agentbus::overflow::block, .block_timeout = 3s});
    auto sub = a.subscribe(bus, "t", [](const oom_ping&) {});
    for (int i = 0; i < first; ++i) REQUIRE(bus.publish("t", oom_ping{i}).delivered == 1);  // the first ring is full
    std::atomic<bool> started{false}, done{false};
    bool threw = false;
    agentbus::publish_result r{};
    std::thread t([&] {
      {
        const agentbus::test::allocation_failure fail(k);
        started = true;
        try {
          r = bus.publish("t", oom_ping{1000});
        } catch (const std::bad_alloc&) {
          threw = true;
        }
      }
      done = true;
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(50ms);
    if (!done.load()) ++blocked_rounds;
    // Another publisher: the first ring is full, it grows the queue (room for the capacity).
    CHECK(bus.publish("t", oom_ping{2000}).delivered == 1);
    t.join();
    if (threw) continue;
    const auto st = a.stats();
    CHECK(st.closed == 0);    // the mailbox was never closed
    CHECK(r.delivered == 1);  // there was room: a one-ring mailbox of 256 would have taken it at once
  }
  CHECK(blocked_rounds > 0);  // some k made the grow fail, so the publisher blocked on the first ring
}

TEST_CASE("a consumer thread whose first read section cannot get its slot loses no event", "[agent][oom]") {
  // The read section was entered with the event already taken out of the queue: the event was
  // neither handled nor counted, and its block leaked. Now the consumer gets its slot before
  // it takes anything (poll() throws bad_alloc with every event still queued).
  auto& domain = agentbus::detail::quiescence_domain::instance();
  std::atomic<bool> release{false};
  std::atomic<std::size_t> ready{0};
  agentbus::bus warm;
  auto s0 = warm.subscribe("w", [](const oom_ping&) {});
  warm.publish("w", oom_ping{});  // this thread holds a slot too
  // Hold every free slot, so that a fresh thread's first read section must allocate one.
  std::vector<std::thread> hold;
  while (domain.held_slots() < domain.slots() && hold.size() < 4096) {
    hold.emplace_back([&] {
      warm.publish("w", oom_ping{});  // takes a free slot (or makes one)
      ready.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(1ms);
    });
    while (ready.load() < hold.size()) std::this_thread::yield();
  }
  REQUIRE(domain.held_slots() == domain.slots());
  int threw_rounds = 0;
  for (std::size_t k = 1; k <= 4; ++k) {
    INFO("allocation " << k << " fails");
    agentbus::bus bus;
    agentbus::agent a("a");
    int handled = 0;
    auto sub = a.subscribe(bus, "t", [&](const oom_ping&) { ++handled; });
    for (int i = 0; i < 3; ++i) REQUIRE(bus.publish("t", oom_ping{i}).delivered == 1);
    bool threw = false;
    std::thread t([&] {
      const agentbus::test::allocation_failure fail(k);
      try {
        (void)a.poll();
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    });
    t.join();
    if (threw) ++threw_rounds;
    (void)a.poll();
    const auto st = a.stats();
    CHECK(handled == 3);  // every event still there for the next poll
    CHECK(st.handled == 3);
    CHECK(st.discarded + st.expired + st.unsubscribed + st.depth == 0);
  }
  release = true;
  for (auto& t : hold) t.join();
  CHECK(threw_rounds > 0);  // some k failed the slot's allocation
}
