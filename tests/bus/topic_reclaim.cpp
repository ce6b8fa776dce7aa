// SPDX-License-Identifier: MIT
// Reclaiming cached topics (router/router.hpp, "Reclaiming topics"): topics that nothing
// anchors (no exact subscription, no channel) and nobody published to for a sweep interval
// leave the cache, so per-session and per-request topics do not grow it for the bus's life,
// while every subscription, channel and wildcard keeps receiving exactly what it did.
#include <agentbus/bus/basic_bus.hpp>
#include <agentbus/bus/subscription_set.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

namespace {

struct reclaim_tick {
  int n = 1;
};

std::string session_topic(std::size_t i) { return "session." + std::to_string(i) + ".reply"; }

// What stays cached once topics came and went by the ten thousand: those the last sweep saw
// in use and those made since, a fraction of the table that sweep left (which shrinks only
// when it would be 8 times too big). Without reclamation every topic would still be there.
constexpr std::size_t small_cache = 1024;

}  // namespace

TEST_CASE("topics published once, with no subscriber, do not accumulate in the cache", "[bus][reclaim]") {
  agentbus::bus bus;
  for (std::size_t i = 0; i < 100000; ++i) CHECK_NOTHROW(bus.publish(session_topic(i), reclaim_tick{}));
  const auto st = bus.stats();
  CHECK(st.cached_topics <= small_cache);
  CHECK(st.uncached_publishes == 0);  // room is made, not refused
}

TEST_CASE("per-session subscriptions that come and go leave the cache as they go", "[bus][reclaim]") {
  agentbus::bus bus;
  int calls = 0;
  const std::string big(48, 'x');  // a handler too big for a list entry: a receiver
  for (std::size_t i = 0; i < 20000; ++i) {
    auto compact = bus.subscribe(session_topic(i), [&calls](const reclaim_tick&) { ++calls; });
    auto with_receiver = bus.subscribe(session_topic(i), [&calls, big](const reclaim_tick&) { ++calls; });
    REQUIRE(bus.publish(session_topic(i), reclaim_tick{}).delivered == 2);
  }
  CHECK(calls == 40000);
  CHECK(bus.stats().cached_topics <= small_cache);
  CHECK(bus.stats().subscriptions == 0);
  // A batch dropped at once (an agent's subscription_set) goes the same way.
  {
    agentbus::subscription_set set;
    for (std::size_t i = 0; i < 5000; ++i) set += bus.subscribe(session_topic(i), [](const reclaim_tick&) {});
    CHECK(bus.stats().cached_topics >= 5000);
  }
  CHECK(bus.stats().cached_topics <= small_cache);
}

TEST_CASE("a topic in use stays cached without subscribers; one left alone goes", "[bus][reclaim]") {
  // Every node made is either still cached or was reclaimed: made = cached + reclaimed. The
  // one-off topics are made once each; so is a hot topic that is never reclaimed.
  agentbus::bus bus;
  constexpr std::size_t one_offs = 20000;
  auto wildcard = bus.subscribe("metrics.*", [](const reclaim_tick&) {});
  for (std::size_t i = 0; i < one_offs; ++i) {
    bus.publish("metrics.once." + std::to_string(i), reclaim_tick{});  // drive the sweeps
    CHECK(bus.publish("metrics.hot", reclaim_tick{}).delivered == 1);   // with a subscriber
    bus.publish("quiet.hot", reclaim_tick{});                           // with none
  }
  const auto st = bus.stats();
  CHECK(st.reclaimed_topics > 0);
  CHECK(st.cached_topics + st.reclaimed_topics == one_offs + 2);  // each hot topic made once
  CHECK(st.cached_topics <= small_cache);
  CHECK(st.uncached_publishes == 0);
}

TEST_CASE("what a reclaimed topic's receivers get is unchanged: wildcards, exact, compact and channels", "[bus][reclaim]") {
  agentbus::bus bus;
  int wild = 0, exact = 0, compact = 0, through_channel = 0;
  const std::string big(48, 'x');
  auto w = bus.subscribe("orders.>", [&](const reclaim_tick& t) { wild += t.n; });
  auto e = bus.subscribe("orders.exact", [&, big](const reclaim_tick& t) { exact += t.n; });
  auto c = bus.subscribe("orders.compact", [&](const reclaim_tick& t) { compact += t.n; });
  auto ch = bus.channel<reclaim_tick>("orders.channel");
  auto on_channel = bus.subscribe("orders.channel.sub", [&](const reclaim_tick& t) { through_channel += t.n; });
  for (std::size_t round = 0; round < 50; ++round) {
    // Enough one-off topics to run several sweeps between the checks.
    for (std::size_t i = 0; i < 500; ++i) bus.publish("orders.once." + std::to_string(round * 500 + i), reclaim_tick{0});
    CHECK(bus.publish("orders.wild." + std::to_string(round % 3), reclaim_tick{}).delivered == 1);
    CHECK(bus.publish("orders.exact", reclaim_tick{}).delivered == 2);
    CHECK(bus.publish("orders.compact", reclaim_tick{}).delivered == 2);
    CHECK(ch.publish(reclaim_tick{}).delivered == 1);  // the wildcard: the pinned node kept its list
    CHECK(ch.has_subscribers());
  }
  CHECK(wild == 50 * 4);
  CHECK(exact == 50);
  CHECK(compact == 50);
  CHECK(through_channel == 0);  // "orders.channel.sub" was never published to
  // A subscription made after many sweeps reaches the channel's (pinned, never replaced) node.
  int late = 0;
  auto late_sub = bus.subscribe("orders.channel", [&](const reclaim_tick& t) { late += t.n; });
  CHECK(ch.publish(reclaim_tick{5}).delivered == 2);
  CHECK(late == 5);
}

TEST_CASE("a channel keeps its topic cached for as long as it or a copy lives", "[bus][reclaim]") {
  agentbus::bus bus;
  std::vector<agentbus::channel<reclaim_tick>> copies;
  {
    auto ch = bus.channel<reclaim_tick>("kept.topic");
    copies.push_back(ch);
  }
  for (std::size_t i = 0; i < 5000; ++i) bus.publish(session_topic(i), reclaim_tick{});
  int got = 0;
  auto sub = bus.subscribe("kept.topic", [&](const reclaim_tick& t) { got += t.n; });
  CHECK(copies.front().publish(reclaim_tick{3}).delivered == 1);
  CHECK(got == 3);
  // Once every copy is gone and nothing else anchors it, it goes like any other topic.
  copies.clear();
  sub.unsubscribe();
  for (std::size_t i = 0; i < 5000; ++i) bus.publish(session_topic(i), reclaim_tick{});
  CHECK(bus.stats().cached_topics <= small_cache);
}

TEST_CASE("a handler that unsubscribes a later wildcard receiver stops it even when its topic is reclaimed meanwhile",
          "[bus][reclaim]") {
  // "w.x" holds two wildcard receivers only: nothing anchors it. Its first publish makes the
  // node; the first receiver's handler ends 400 exact subscriptions, which starts a sweep that
  // reclaims "w.x" (not in use: made by this very publish) while this dispatch walks its
  // list, then unsubscribes the second receiver. The reclaimed node is in no index any more,
  // so the unsubscribe cannot tombstone the entry there: the dispatch must learn it from the
  // list's mark and the receiver's flag, as for a superseded list.
  agentbus::bus bus;
  const std::string big(48, 'x');  // receivers, not compact entries
  std::vector<agentbus::subscription> anchors;
  for (std::size_t i = 0; i < 400; ++i) anchors.push_back(bus.subscribe(session_topic(i), [big](const reclaim_tick&) {}));
  int first = 0, second = 0;
  agentbus::subscription second_sub;
  auto first_sub = bus.subscribe("w.*", [&, big](const reclaim_tick&) {
    ++first;
    anchors.clear();  // 400 topics left unanchored: a sweep runs on the way
    second_sub.unsubscribe();
  });
  second_sub = bus.subscribe("w.>", [&, big](const reclaim_tick&) { ++second; });
  REQUIRE(bus.stats().cached_topics == 400);
  const auto r = bus.publish("w.x", reclaim_tick{});
  CHECK(first == 1);
  CHECK(second == 0);
  CHECK(r.delivered == 1);
  CHECK(bus.stats().cached_topics < 400);  // the handler's sweep ran, and took "w.x" too
  CHECK(bus.publish("w.x", reclaim_tick{}).delivered == 1);
  CHECK(first == 2);
  CHECK(second == 0);
}

TEST_CASE("publishing, subscribing and pinning racing sweeps deliver exactly to the live subscriptions",
          "[bus][reclaim][concurrency]") {
  // Two threads publish to rotating one-off topics (driving sweeps) and to a fixed set of
  // anchored topics, count deliveries, and make and drop channels; the main thread keeps
  // subscribing and unsubscribing per-session topics. Anchored topics must deliver every
  // publish, channels must reach their topic's subscribers, and ASan/TSan must find nothing.
  agentbus::bus bus;
  constexpr int anchored = 16;
  std::atomic<long> received{0};
  std::vector<agentbus::subscription> keep;
  for (int i = 0; i < anchored; ++i)
    keep.push_back(bus.subscribe("anchored." + std::to_string(i), [&](const reclaim_tick& t) { received.fetch_add(t.n); }));
  std::atomic<bool> stop{false};
  std::atomic<long> published{0}, channel_misses{0}, wrong{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < 2; ++p)
    publishers.emplace_back([&, p] {
      std::size_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        bus.publish("churn." + std::to_string(p) + "." + std::to_string(i), reclaim_tick{0});
        const std::string topic = "anchored." + std::to_string(static_cast<int>(i % anchored));
        if (bus.publish(topic, reclaim_tick{}).delivered != 1) wrong.fetch_add(1);
        published.fetch_add(1);
        if (i % 16 == 0) {
          auto ch = bus.channel<reclaim_tick>(topic);
          if (ch.publish(reclaim_tick{}).delivered != 1) channel_misses.fetch_add(1);
          published.fetch_add(1);
        }
        ++i;
      }
    });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  std::size_t sessions = 0;
  while (std::chrono::steady_clock::now() < deadline || sessions < 2000) {
    auto s = bus.subscribe(session_topic(sessions % 300), [](const reclaim_tick&) {});
    bus.publish(session_topic(sessions % 300), reclaim_tick{0});
    ++sessions;
  }
  stop.store(true);
  for (auto& t : publishers) t.join();
  CHECK(wrong.load() == 0);
  CHECK(channel_misses.load() == 0);
  CHECK(received.load() == published.load());
  CHECK(bus.stats().cached_topics < 5000);
}
