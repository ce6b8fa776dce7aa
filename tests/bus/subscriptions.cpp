// SPDX-License-Identifier: MIT
// Subscriptions at scale: many receivers on one topic, wildcards over many cached topics,
// in-place lists (appends, tombstones, compaction), batched unsubscribe.
#include <agentbus/bus/basic_bus.hpp>
#include <agentbus/bus/subscription_set.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../support/allocation_counter.hpp"

using namespace std::chrono_literals;

namespace {
struct scale_tick {
  int n = 0;
};
}  // namespace

TEST_CASE("thousands of handlers on one topic keep subscription order through unsubscribes", "[bus][scale]") {
  agentbus::bus bus;
  constexpr int n = 3000;
  std::vector<int> seen;
  std::vector<agentbus::subscription> subs;
  for (int i = 0; i < n; ++i) subs.push_back(bus.subscribe("one.topic", [&seen, i](const scale_tick&) { seen.push_back(i); }));
  CHECK(bus.publish("one.topic", scale_tick{}).delivered == n);
  std::vector<int> expected(n);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(seen == expected);

  // Unsubscribe two thirds in a random order (tombstones, then compactions along the way).
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<bool> gone(n, false);
  for (int k = 0; k < 2 * n / 3; ++k) {
    subs[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])].unsubscribe();
    gone[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = true;
    if (k % 500 == 0) {  // the list stays right at every stage
      seen.clear();
      expected.clear();
      for (int i = 0; i < n; ++i)
        if (!gone[static_cast<std::size_t>(i)]) expected.push_back(i);
      CHECK(bus.publish("one.topic", scale_tick{}).delivered == expected.size());
      CHECK(seen == expected);
    }
  }
  // New subscribers come after the survivors.
  for (int i = n; i < n + 10; ++i) subs.push_back(bus.subscribe("one.topic", [&seen, i](const scale_tick&) { seen.push_back(i); }));
  seen.clear();
  expected.clear();
  for (int i = 0; i < n + 10; ++i)
    if (i >= n || !gone[static_cast<std::size_t>(i)]) expected.push_back(i);
  CHECK(bus.publish("one.topic", scale_tick{}).delivered == expected.size());
  CHECK(seen == expected);
  subs.clear();
  CHECK(bus.publish("one.topic", scale_tick{}).delivered == 0);
  CHECK(bus.stats().subscriptions == 0);
  CHECK(bus.stats().type_mismatches == 0);  // tombstones are not counted as mismatches
}

TEST_CASE("wildcard subscriptions over many cached topics match exactly what topic_pattern matches", "[bus][scale]") {
  // Differential: for every cached topic, what a publish delivers equals the number of
  // subscribed patterns whose topic_pattern::matches says yes — whether the pattern was
  // subscribed before or after the topic was cached, and after some are unsubscribed.
  agentbus::bus bus;
  std::vector<std::string> topics;
  for (int a = 0; a < 12; ++a)
    for (const char* leaf : {"status", "inbox", "x.y"}) topics.push_back("agents." + std::to_string(a) + "." + leaf);
  topics.insert(topics.end(), {"agents", "status", "a.b", "a.b.c.d", "other.1.status"});
  const std::vector<std::string> patterns = {"agents.3.*", "agents.*.status", "*.1.*", ">", "agents.>", "*",
                                             "agents.3.>", "*.*.x.*", "a.>", "a.*.c.>", "agents.11.inbox",
                                             "status", "other.*.status", "agents.*.*.y", "nothing.>"};
  for (std::size_t i = 0; i < topics.size() / 2; ++i) (void)bus.publish(topics[i], scale_tick{});  // half cached first
  std::vector<agentbus::subscription> subs;
  std::vector<agentbus::topic_pattern> live;
  for (const auto& p : patterns) {
    subs.push_back(bus.subscribe(p, [](const scale_tick&) {}));
    live.emplace_back(p);
  }
  auto check_all = [&] {
    for (const auto& t : topics) {
      const auto expected = static_cast<std::size_t>(
          std::count_if(live.begin(), live.end(), [&](const agentbus::topic_pattern& p) { return p.matches(t); }));
      INFO("topic " << t);
      CHECK(bus.publish(t, scale_tick{}).delivered == expected);
    }
  };
  check_all();  // the other half is cached now too
  for (std::size_t i = 0; i < patterns.size(); i += 2) subs[i].unsubscribe();
  live.clear();
  for (std::size_t i = 1; i < patterns.size(); i += 2) live.emplace_back(patterns[i]);
  check_all();
  // Subscribed again after every topic is cached: found through the topic index.
  for (std::size_t i = 0; i < patterns.size(); i += 2) {
    subs[i] = bus.subscribe(patterns[i], [](const scale_tick&) {});
    live.emplace_back(patterns[i]);
  }
  check_all();
}

TEST_CASE("a handler that grows its topic's list, then unsubscribes a later handler, stops it at once",
          "[bus][reentrancy]") {
  // The dispatch walks a list the handler's subscribes replaced (superseded): the unsubscribe
  // marks the new list only, and the dispatch must still not call the unsubscribed handler.
  agentbus::bus bus;
  std::vector<agentbus::subscription> added;
  agentbus::subscription later;
  int later_calls = 0, added_calls = 0;
  bool first = true;
  auto grower = bus.subscribe("grow.t", [&](const scale_tick&) {
    if (!first) return;
    first = false;
    for (int i = 0; i < 64; ++i) added.push_back(bus.subscribe("grow.t", [&](const scale_tick&) { ++added_calls; }));
    later.unsubscribe();
  });
  later = bus.subscribe("grow.t", [&](const scale_tick&) { ++later_calls; });
  const auto r = bus.publish("grow.t", scale_tick{});
  CHECK(later_calls == 0);
  CHECK(added_calls == 0);  // subscribed during the publish: not part of it
  CHECK(r.delivered == 1);
  CHECK(bus.publish("grow.t", scale_tick{}).delivered == 65);
  CHECK(added_calls == 64);
  CHECK(later_calls == 0);
}

TEST_CASE("exact subscriptions beyond the topic cache's size still get their own cached node", "[bus][scale]") {
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = 4});
  std::vector<agentbus::subscription> subs;
  int calls = 0;
  for (int i = 0; i < 20; ++i) subs.push_back(bus.subscribe("pinned." + std::to_string(i), [&](const scale_tick&) { ++calls; }));
  auto wild = bus.subscribe("pinned.*", [&](const scale_tick&) { ++calls; });
  for (int i = 0; i < 20; ++i) CHECK(bus.publish("pinned." + std::to_string(i), scale_tick{}).delivered == 2);
  CHECK(bus.publish("pinned.uncached", scale_tick{}).delivered == 1);  // beyond the cache: resolved on the spot
  CHECK(calls == 41);
  CHECK(bus.stats().uncached_publishes == 1);
}

TEST_CASE("subscribing to a shared topic allocates O(1) per subscription, not a copy of the list", "[bus][scale]") {
  agentbus::bus bus;
  std::vector<agentbus::subscription> subs;
  constexpr std::size_t n = 4000;
  subs.reserve(n);
  subs.push_back(bus.subscribe("shared.topic", [](const scale_tick&) {}));
  std::size_t allocations = 0;
  {
    agentbus::test::allocation_scope scope;
    for (std::size_t i = 1; i < n; ++i) subs.push_back(bus.subscribe("shared.topic", [](const scale_tick&) {}));
    allocations = scope.count();
  }
  // The receiver and its registry entry each time, plus a logarithmic number of list growths
  // (x1.5) and registry rehashes: about 40 at n = 4 000. (Before lists grew in place: 4 per
  // subscription, one of them a copy of the whole list.)
  CHECK(allocations <= 2 * n + 64);
  CHECK(bus.publish("shared.topic", scale_tick{}).delivered == n);
}

TEST_CASE("subscription_set ends many subscriptions at once, of one bus or several", "[bus][subscription_set]") {
  agentbus::bus a, b;
  int calls = 0;
  agentbus::subscription_set set;
  CHECK(set.empty());
  for (int i = 0; i < 500; ++i) {
    set += a.subscribe("set.a." + std::to_string(i % 7), [&](const scale_tick&) { ++calls; });
    set += b.subscribe("set.b.>", [&](const scale_tick&) { ++calls; });
  }
  set += agentbus::subscription{};  // an empty handle is not kept
  CHECK(set.size() == 1000);
  CHECK(a.publish("set.a.3", scale_tick{}).delivered > 0);
  CHECK(b.publish("set.b.x", scale_tick{}).delivered == 500);
  set.clear();
  CHECK(set.empty());
  calls = 0;
  CHECK(a.publish("set.a.3", scale_tick{}).delivered == 0);
  CHECK(b.publish("set.b.x", scale_tick{}).delivered == 0);
  CHECK(calls == 0);
  CHECK(a.stats().subscriptions == 0);
  CHECK(b.stats().subscriptions == 0);

  // A set may outlive its bus; moving a set moves its subscriptions.
  agentbus::subscription_set kept;
  {
    agentbus::bus gone;
    kept += gone.subscribe("x", [](const scale_tick&) {});
    agentbus::subscription_set moved = std::move(kept);
    kept = std::move(moved);
    CHECK(kept.size() == 1);
  }
  kept.clear();  // the bus is gone: nothing to do, no crash
  CHECK(kept.empty());
}

TEST_CASE("subscription_set::clear waits for handler calls running on other threads", "[bus][subscription_set][concurrency]") {
  agentbus::bus bus;
  std::atomic<bool> in_handler{false}, release{false}, finished{false};
  agentbus::subscription_set set;
  for (int i = 0; i < 10; ++i) set += bus.subscribe("wait.t", [](const scale_tick&) {});
  set += bus.subscribe("wait.t", [&](const scale_tick&) {
    in_handler = true;
    while (!release) std::this_thread::yield();
    finished = true;
  });
  std::thread publisher([&] { (void)bus.publish("wait.t", scale_tick{}); });
  while (!in_handler) std::this_thread::yield();
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    release = true;
  });
  set.clear();
  CHECK(finished.load());  // clear returned only after the running call ended
  publisher.join();
  releaser.join();
}
