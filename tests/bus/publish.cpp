// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// The one publish path (bus/detail/publish.hpp): every way in forwards the payload.

#include <agentbus/agentbus.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

struct job {  // move-only
  std::unique_ptr<int> n;
};

std::string beyond(std::size_t i) { return "fill.topic.number." + std::to_string(i); }

// Fills a bus's topic cache with `n` topics that stay cached: channels pin their topic (a
// topic nothing anchors would be reclaimed to make room, and the publish would be cached).
template <class Bus>
auto fill_cache(Bus& bus, std::size_t n) {
  std::vector<typename Bus::template channel_type<int>> pins;
  for (std::size_t i = 0; i < n; ++i) pins.push_back(bus.template channel<int>(beyond(i)));
  return pins;
}

}  // namespace

TEST_CASE("publish beyond the topic cache: a handler that unsubscribes a later receiver stops it", "[bus][publish]") {
  // The receivers of an uncached topic are resolved into a list of the publish's own, which
  // no unsubscribe can mark: the dispatch checks each receiver instead.
  constexpr std::size_t cache = 2;
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = cache});
  const auto pins = fill_cache(bus, cache);
  const std::string big(64, 'x');  // handlers too big for a list entry: receivers
  int first = 0, later = 0;
  agentbus::subscription later_sub;
  auto first_sub = bus.subscribe("jobs.*", [&, big](const int&) {
    ++first;
    later_sub.unsubscribe();
  });
  later_sub = bus.subscribe("jobs.>", [&, big](const int&) { ++later; });
  const auto r = bus.publish("jobs.x", 1);
  CHECK(bus.stats().uncached_publishes == 1);
  CHECK(first == 1);
  CHECK(later == 0);
  CHECK(r.delivered == 1);
  bus.publish("jobs.x", 2);
  CHECK(first == 2);
  CHECK(later == 0);
}

TEST_CASE("publish: a move-only rvalue reaches a mailbox on an uncached topic", "[bus][publish]") {
  // The regression: the uncached path took `const T&`, so the rvalue became an lvalue and the
  // mailbox's shared block could not be built ("publish it as an rvalue", which the caller did).
  constexpr std::size_t cache = 8;
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = cache});
  const auto pins = fill_cache(bus, cache);
  REQUIRE(bus.stats().cached_topics == cache);

  agentbus::agent worker("worker");
  int got = 0;
  auto sub = bus.subscribe("jobs.>", [&](const job& j) { got += *j.n; }, agentbus::async(worker));
  REQUIRE(bus.stats().cached_topics == cache);  // a wildcard creates no node

  const auto r = bus.publish("jobs.new", job{std::make_unique<int>(2)});
  CHECK(r.delivered == 1);
  CHECK(bus.stats().uncached_publishes == 1);
  const agentbus::topic t("jobs.typed");
  CHECK(bus.publish(t, job{std::make_unique<int>(3)}).delivered == 1);
  worker.poll();
  CHECK(got == 5);
}

TEST_CASE("publish: a move-only rvalue reaches a mailbox on a cached topic and through a channel", "[bus][publish]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  int got = 0;
  auto sub = bus.subscribe("jobs.>", [&](const job& j) { got += *j.n; }, agentbus::async(worker));
  CHECK(bus.publish("jobs.a", job{std::make_unique<int>(1)}).delivered == 1);
  auto ch = bus.channel<job>("jobs.b");
  CHECK(ch.publish(job{std::make_unique<int>(10)}).delivered == 1);
  worker.poll();
  CHECK(got == 11);
}

TEST_CASE("publish: a move-only lvalue to a mailbox is refused with the message that says why", "[bus][publish]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  auto sub = bus.subscribe("jobs.>", [](const job&) {}, agentbus::async(worker));
  job j{std::make_unique<int>(1)};
  CHECK_THROWS_WITH(bus.publish("jobs.a", j), Catch::Contains("publish it as an rvalue"));
}

TEST_CASE("publish: a storing bus forwards a move-only rvalue beyond the cache too", "[bus][publish][storage]") {
  constexpr std::size_t cache = 4;
  agentbus::basic_bus<agentbus::storage::memory_ring<16>> bus(agentbus::storage::memory_ring<16>::options{},
                                                              agentbus::bus_options{.max_cached_topics = cache});
  const auto pins = fill_cache(bus, cache);
  for (const auto& ch : pins) ch.publish(0);  // stored: offsets 0 .. cache - 1
  agentbus::agent worker("worker");
  int got = 0;
  auto sub = bus.subscribe("jobs.>", [&](const job& j) { got += *j.n; }, agentbus::async(worker));
  const auto r = bus.publish("jobs.late", job{std::make_unique<int>(4)});
  CHECK(r.delivered == 1);
  CHECK(r.offset == cache);
  CHECK(bus.stats().uncached_publishes == 1);
  worker.poll();
  CHECK(got == 4);
}

TEST_CASE("publish: a moved-from channel is a copy and still publishes", "[bus][publish]") {
  agentbus::bus bus;
  int got = 0;
  auto sub = bus.subscribe("a.b", [&](const int& v) { got += v; });
  auto a = bus.channel<int>("a.b");
  auto b = std::move(a);
  CHECK(b.publish(1).delivered == 1);
  CHECK(a.publish(2).delivered == 1);  // NOLINT(bugprone-use-after-move): documented
  CHECK(a.topic() == "a.b");           // NOLINT(bugprone-use-after-move)
  CHECK(got == 3);
}
