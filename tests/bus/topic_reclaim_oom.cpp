// SPDX-License-Identifier: MIT
// Reclaiming cached topics at the cache bound and when an allocation fails part way: the
// counts that decide what is reclaimed stay right, no index entry outlives its node, and no
// subscription is lost or left dangling. (These failed on the first version of reclamation.)
#include <agentbus/bus/basic_bus.hpp>
#include <agentbus/bus/subscription_set.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "../support/allocation_counter.hpp"

namespace {
struct oom_tick {
  int n = 1;
};
}  // namespace

TEST_CASE("reclaim: at the cache bound, dead one-off topics are reclaimed when half the cache is anchored",
          "[bus][reclaim][oom]") {
  // bus_options: "Reclaiming makes room before a publish beyond the limit is sent down the
  // slower path". With half the cache held by exact subscriptions, the one-off topics that
  // fill the rest must still be reclaimed: publishes refused for a full cache count toward
  // the next sweep (they used not to, and the sweep never came).
  constexpr std::size_t cache = 100;
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = cache});
  std::vector<agentbus::subscription> anchored;
  for (std::size_t i = 0; i < cache / 2; ++i)
    anchored.push_back(bus.subscribe("anchored." + std::to_string(i), [](const oom_tick&) {}));
  for (std::size_t i = 0; i < 10000; ++i) bus.publish("once." + std::to_string(i), oom_tick{});
  const auto st = bus.stats();
  INFO("cached " << st.cached_topics << ", reclaimed " << st.reclaimed_topics);
  CHECK(st.uncached_publishes < 10000 / 10);  // a refused publish now and then, until a sweep (was 9936)
  CHECK(st.reclaimed_topics > 10000 / 2);
}

TEST_CASE("reclaim: a subscribe that fails after its entry joined the list leaves the topic's exact count consistent",
          "[bus][reclaim][oom]") {
  // router::subscribe appends, then anchors. Were append to throw after the entry is in the
  // list (it reserves room for what it retires first), the undo (unsubscribe) would kill the
  // entry and unanchor a node that was never anchored: exact would wrap to 2^32 - 1, the next
  // exact subscription would wrap it back to 0, and a sweep would reclaim the node under that
  // subscription: lost delivery, and a compact handle's key.node dangling (ASan). Every
  // allocation of the subscribe is made to fail in turn.
  const std::string big(48, 'x');  // a receiver, not a compact entry
  int failures_seen = 0;
  for (std::size_t k = 1; k < 64; ++k) {
    bool any = false;
    for (const bool compact_after : {false, true}) {
      agentbus::bus bus;
      bus.publish("t.x", oom_tick{});  // the node exists, with the shared empty list
      bool threw = false;
      {
        agentbus::subscription failed;
        agentbus::test::allocation_failure fail(k);
        try {
          failed = bus.subscribe("t.x", [big](const oom_tick&) {});
        } catch (const std::bad_alloc&) {
          threw = true;
        }
      }
      if (!threw) continue;  // k is past every allocation subscribe makes
      any = true;
      ++failures_seen;
      INFO("allocation " << k << " failed; then a " << (compact_after ? "compact" : "receiver") << " subscription");
      REQUIRE(bus.stats().subscriptions == 0);
      int got = 0;
      // One exact subscription after the failed one.
      agentbus::subscription s = compact_after ? bus.subscribe("t.x", [&got](const oom_tick&) { ++got; })
                                               : bus.subscribe("t.x", [&got, big](const oom_tick&) { ++got; });
      // Enough one-off topics for a few sweeps; "t.x" itself is not published meanwhile.
      for (std::size_t i = 0; i < 2000; ++i) bus.publish("once." + std::to_string(i), oom_tick{});
      CHECK(bus.publish("t.x", oom_tick{}).delivered == 1);
      CHECK(got == 1);
      s.unsubscribe();  // a compact handle's unsubscribe reads its key.node
    }
    if (!any) break;
  }
  CHECK(failures_seen > 0);
}

TEST_CASE("reclaim: a wildcard subscribe that fails while building the topic index leaves no entry for a node reclaimed later",
          "[bus][reclaim][oom]") {
  // topic_index::activate inserts the table's nodes one by one; when an allocation fails part
  // way it must forget what it inserted (it stays inactive, and drop() erases reclaimed nodes
  // only from an active index): else those entries would outlive their nodes, and a later
  // wildcard subscribe would append to freed nodes (ASan: heap-use-after-free in
  // router::append via for_each_match). The index is first made inactive the way the router
  // does it: an index insert that fails (router::insert_node -> deactivate).
  const std::string big(48, 'x');
  int stale_chances = 0;
  for (std::size_t k = 1; k <= 8; ++k) {
    for (std::size_t j = 1; j < 64; ++j) {
      agentbus::bus bus;
      auto keep = bus.subscribe("a.*", [big](const oom_tick&) {});  // the index is active
      for (int i = 0; i < 8; ++i) bus.publish("a." + std::to_string(i), oom_tick{});  // cached, unanchored
      {
        agentbus::test::allocation_failure fail(k);  // maybe in the index insert: deactivated
        try {
          bus.publish("zz.new", oom_tick{});
        } catch (const std::bad_alloc&) {
          continue;  // failed before the index; try the next k
        }
      }
      bool threw = false;
      {
        agentbus::subscription failed;
        agentbus::test::allocation_failure fail(j);  // maybe part way through activate()
        try {
          failed = bus.subscribe("a.*", [big](const oom_tick&) {});
        } catch (const std::bad_alloc&) {
          threw = true;
        }
      }
      if (!threw) break;
      ++stale_chances;
      INFO("allocation " << k << " of the publish, " << j << " of the subscribe failed");
      // Sweeps reclaim "a.0" .. "a.7" (nothing anchors them, nobody publishes them again).
      for (std::size_t i = 0; i < 200; ++i) bus.publish("once." + std::to_string(i), oom_tick{});
      int got = 0;
      auto w = bus.subscribe("a.>", [&got, big](const oom_tick&) { ++got; });  // activate() again
      CHECK(bus.publish("a.3", oom_tick{}).delivered == 2);
      CHECK(got == 1);
    }
  }
  CHECK(stale_chances > 0);
}

TEST_CASE("reclaim: an unsubscribe that fails while compacting its topic's list still unanchors the topic",
          "[bus][reclaim][oom]") {
  // kill_entry tombstones the entry, then compacts a sparse list, which allocates. Were that
  // to throw past the caller's unanchor, the node would keep exact = 1 with no subscription
  // left: never reclaimed, for the bus's life (and the receiver, already out of the registry,
  // leaked). Compaction is only tidying: a failure of it is swallowed. Seen here through a
  // cache of one topic, which a stuck node would fill for good.
  const std::string big(48, 'x');
  {
    // Control: the same without a failure makes room.
    agentbus::bus bus(agentbus::bus_options{.max_cached_topics = 1});
    auto r1 = bus.subscribe("t.y", [big](const oom_tick&) {});
    auto r2 = bus.subscribe("t.y", [big](const oom_tick&) {});
    auto r3 = bus.subscribe("t.y", [big](const oom_tick&) {});
    r1.unsubscribe();
    r2.unsubscribe();
    r3.unsubscribe();
    bus.publish("u.1", oom_tick{});
    REQUIRE(bus.stats().uncached_publishes == 0);
  }
  int failures_seen = 0;
  for (std::size_t j = 1; j < 32; ++j) {
    agentbus::bus bus(agentbus::bus_options{.max_cached_topics = 1});
    auto r1 = bus.subscribe("t.y", [big](const oom_tick&) {});
    auto r2 = bus.subscribe("t.y", [big](const oom_tick&) {});
    auto r3 = bus.subscribe("t.y", [big](const oom_tick&) {});
    r1.unsubscribe();  // one tombstone of three
    bool reached = false;
    {
      agentbus::test::allocation_failure fail(j);  // the second tombstone makes the list sparse: compacted()
      r2.unsubscribe();                              // swallows the bad_alloc (subscription::unsubscribe)
      reached = fail.reached();
    }
    if (!reached) break;
    ++failures_seen;
    INFO("allocation " << j << " failed");
    r3.unsubscribe();
    CHECK(bus.stats().subscriptions == 0);
    bus.publish("u.1", oom_tick{});  // "t.y" is anchored by nothing: reclaimed to make room
    CHECK(bus.stats().uncached_publishes == 0);
  }
  CHECK(failures_seen > 0);
}
