// SPDX-License-Identifier: MIT
// Subscriptions at scale: many receivers on one topic, wildcards over many cached topics,
// in-place lists (appends, tombstones, compaction), batched unsubscribe.
#include <agentbus/bus/basic_bus.hpp>
#include <agentbus/bus/subscription_set.hpp>
#include <agentbus/storage/memory_ring.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
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

// The dispatch walks a list the handler's subscribes replaced (superseded): the unsubscribe
// marks the new list only, and the dispatch must still not call the unsubscribed handler.
// `later_handler` makes the handler that gets unsubscribed, from its call counter.
template <class MakeLater>
void grow_then_unsubscribe_later(MakeLater later_handler) {
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
  later = bus.subscribe("grow.t", later_handler(later_calls));
  const auto r = bus.publish("grow.t", scale_tick{});
  CHECK(later_calls == 0);
  CHECK(added_calls == 0);  // subscribed during the publish: not part of it
  CHECK(r.delivered == 1);
  CHECK(bus.publish("grow.t", scale_tick{}).delivered == 65);
  CHECK(added_calls == 64);
  CHECK(later_calls == 0);
}

TEST_CASE("a handler that grows its topic's list, then unsubscribes a later handler, stops it at once",
          "[bus][reentrancy]") {
  SECTION("the later handler is compact (no receiver: checked against the newest list)") {
    auto make = [](int& calls) { return [&calls](const scale_tick&) { ++calls; }; };
    CHECK(agentbus::detail::fits_in_entry<scale_tick, decltype(make(std::declval<int&>()))>);
    grow_then_unsubscribe_later(make);
  }
  SECTION("the later handler has a receiver (checked through its alive flag)") {
    auto make = [](int& calls) { return [c = &calls, unused = 0](const scale_tick&) mutable { ++*c, ++unused; }; };
    CHECK_FALSE(agentbus::detail::fits_in_entry<scale_tick, decltype(make(std::declval<int&>()))>);
    grow_then_unsubscribe_later(make);
  }
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
  static constexpr std::size_t n = 4000;
  auto count = [](auto handler) {
    agentbus::bus bus;
    std::vector<agentbus::subscription> subs;
    subs.reserve(n);
    subs.push_back(bus.subscribe("shared.topic", handler));
    std::size_t allocations = 0;
    {
      agentbus::test::allocation_scope scope;
      for (std::size_t i = 1; i < n; ++i) subs.push_back(bus.subscribe("shared.topic", handler));
      allocations = scope.count();
    }
    CHECK(bus.publish("shared.topic", scale_tick{}).delivered == n);
    return allocations;
  };
  // A compact handler (it fits in its list entry): only the list's growths (x1.5), about 20 at
  // n = 4 000.
  CHECK(count([](const scale_tick&) {}) <= 64);
  // One with a receiver: the receiver and its registry entry each time, plus the growths and
  // registry rehashes. (Before lists grew in place: 4 per subscription, one a copy of the list.)
  CHECK(count([state = 0](const scale_tick&) mutable { ++state; }) <= 2 * n + 64);
}

TEST_CASE("compact subscriptions: which handlers fit in an entry", "[bus][compact]") {
  using agentbus::detail::fits_in_entry;
  int x = 0;
  std::string text = "x";
  auto empty = [](const scale_tick&) {};
  auto one_reference = [&x](const scale_tick& t) { x += t.n; };
  auto with_event = [&x](const agentbus::event<scale_tick>& e) { x += e.payload().n; };
  auto changes_itself = [x](const scale_tick&) mutable { ++x; };
  auto two_pointers = [&x, &text](const scale_tick&) { x += static_cast<int>(text.size()); };
  auto owns_a_string = [text](const scale_tick&) { (void)text; };
  void (*function_pointer)(const scale_tick&) = [](const scale_tick&) {};
  CHECK(fits_in_entry<scale_tick, decltype(empty)>);
  CHECK(fits_in_entry<scale_tick, decltype(one_reference)>);
  CHECK(fits_in_entry<scale_tick, decltype(with_event)>);
  CHECK(fits_in_entry<scale_tick, decltype(function_pointer)>);
  CHECK_FALSE(fits_in_entry<scale_tick, decltype(changes_itself)>);  // its state must persist
  CHECK_FALSE(fits_in_entry<scale_tick, decltype(two_pointers)>);
  CHECK_FALSE(fits_in_entry<scale_tick, decltype(owns_a_string)>);
  CHECK_FALSE(fits_in_entry<scale_tick, std::function<void(const scale_tick&)>>);
}

namespace {
int g_ticks_by_name = 0;
void count_tick_by_name(const scale_tick& t) { g_ticks_by_name += t.n; }
}  // namespace

TEST_CASE("a free function passed by name is a handler on exact and wildcard topics", "[bus][compact]") {
  // The compact path took the handler's type as the function type itself (not its pointer),
  // and `subscribe("t", on_tick)` failed to compile deep inside the library; `&on_tick` worked.
  agentbus::bus bus;
  g_ticks_by_name = 0;
  auto exact = bus.subscribe("ticks.one", count_tick_by_name);
  auto wildcard = bus.subscribe("ticks.*", count_tick_by_name);
  auto typed = bus.subscribe<scale_tick>("ticks.one", count_tick_by_name);
  bus.publish("ticks.one", scale_tick{1});
  bus.publish("ticks.two", scale_tick{10});
  CHECK(g_ticks_by_name == 1 + 1 + 10 + 1);
}

namespace {
// A handler's identity in 8 bytes: a pointer to where it records itself.
struct order_tag {
  std::vector<int>* seen;
  int id;
};
}  // namespace

TEST_CASE("compact subscriptions mix with receivers of every kind in subscription order", "[bus][compact]") {
  agentbus::basic_bus<agentbus::storage::memory_ring<64>> bus;  // stores: delayed events need it
  std::vector<int> seen;
  std::vector<order_tag> tags;
  tags.reserve(16);
  for (int i = 0; i < 16; ++i) tags.push_back({&seen, i});
  auto compact = [](const order_tag* t) { return [t](const scale_tick&) { t->seen->push_back(t->id); }; };
  auto with_receiver = [&seen](int id) { return [&seen, id](const scale_tick&) { seen.push_back(id); }; };
  std::vector<agentbus::subscription> subs;
  subs.push_back(bus.subscribe("mix.t", compact(&tags[0])));
  subs.push_back(bus.subscribe("mix.t", with_receiver(1)));
  subs.push_back(bus.subscribe("mix.*", compact(&tags[2])));  // a wildcard: never compact
  subs.push_back(bus.subscribe("mix.t", compact(&tags[3])));
  subs.push_back(bus.subscribe("mix.t", compact(&tags[4]), agentbus::subscribe_options{.delayed = true}));
  subs.push_back(bus.subscribe("mix.t", with_receiver(5)));
  CHECK(bus.stats().subscriptions == 6);
  CHECK(bus.publish("mix.t", scale_tick{}).delivered == 6);
  CHECK(seen == std::vector<int>{0, 1, 2, 3, 4, 5});

  // A delayed event reaches only the subscription that asked (a receiver: compact ones cannot ask).
  seen.clear();
  CHECK(bus.publish("mix.t", scale_tick{}, agentbus::publish_options{.delay = std::chrono::hours(1)}).delivered == 1);
  CHECK(seen == std::vector<int>{4});

  seen.clear();
  subs[0].unsubscribe();
  subs[2].unsubscribe();
  CHECK_FALSE(subs[0].active());
  CHECK(bus.stats().subscriptions == 4);
  CHECK(bus.publish("mix.t", scale_tick{}).delivered == 4);
  CHECK(seen == std::vector<int>{1, 3, 4, 5});

  // Moved handles still end their own subscription, once.
  seen.clear();
  agentbus::subscription moved = std::move(subs[3]);
  CHECK_FALSE(subs[3].active());
  subs[3].unsubscribe();  // empty: nothing happens
  CHECK(bus.publish("mix.t", scale_tick{}).delivered == 4);
  moved.unsubscribe();
  moved.unsubscribe();
  CHECK(bus.publish("mix.t", scale_tick{}).delivered == 3);
  CHECK(seen == std::vector<int>{1, 3, 4, 5, 1, 4, 5});
  CHECK(bus.stats().subscriptions == 3);
}

TEST_CASE("a compact handler's failure reaches the error hook with its id and topic", "[bus][compact]") {
  agentbus::bus bus;
  std::vector<agentbus::handler_failure> failures;
  bus.on_error([&](const agentbus::handler_failure& f) { failures.push_back(f); });
  auto throws = [](const scale_tick&) { throw std::runtime_error("compact handler failed"); };
  CHECK(agentbus::detail::fits_in_entry<scale_tick, decltype(throws)>);
  int after = 0;
  auto sub = bus.subscribe("fail.compact", throws);
  auto next = bus.subscribe("fail.compact", [&after](const scale_tick&) { ++after; });
  const auto r = bus.publish("fail.compact", scale_tick{});
  CHECK(r.failed == 1);
  CHECK(r.delivered == 1);
  CHECK(after == 1);  // the failure did not stop delivery
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].subscription_id == sub.id());
  CHECK(failures[0].pattern == "fail.compact");
  CHECK(failures[0].message() == "compact handler failed");
  CHECK(bus.stats().handler_failures == 1);
}

TEST_CASE("a compact subscription's handle may outlive its bus", "[bus][compact]") {
  int calls = 0;
  agentbus::subscription sub, orphan;
  agentbus::subscription_set set;
  auto bus = std::make_unique<agentbus::bus>();
  sub = bus->subscribe("outlive.t", [&calls](const scale_tick&) { ++calls; });
  set += bus->subscribe("outlive.t", [&calls](const scale_tick&) { ++calls; });
  {
    // A channel keeps the bus's router alive after the bus: the handles then find their
    // subscriptions already ended by the bus's shutdown.
    auto ch = bus->channel<scale_tick>("outlive.t");
    CHECK(ch.publish(scale_tick{}).delivered == 2);
    bus.reset();
    CHECK(ch.publish(scale_tick{}).delivered == 0);
    CHECK(sub.active());
    sub.unsubscribe();
    CHECK_FALSE(sub.active());
    set.clear();
    CHECK(ch.publish(scale_tick{}).delivered == 0);
  }
  // Nothing keeps the router: the handle's end is a no-op.
  bus = std::make_unique<agentbus::bus>();
  orphan = bus->subscribe("outlive.t", [&calls](const scale_tick&) { ++calls; });
  bus.reset();
  orphan.unsubscribe();
  CHECK_FALSE(orphan.active());
  CHECK(calls == 2);
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
