// SPDX-License-Identifier: MIT
// storage::memory_ring<N>: offsets, eviction, replay filters, records(), channels. (History
// subscriptions on a ring are tested with the delivery kinds: tests/delivery/history.cpp.)
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/memory_ring.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "support/copy_counter.hpp"

namespace {
using ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<8>>;
}

static_assert(agentbus::storage_policy<agentbus::storage::memory_ring<8>>);
static_assert(std::is_same_v<ring_bus::result_type, agentbus::stored_publish_result>);
static_assert(std::is_same_v<agentbus::bus::result_type, agentbus::publish_result>);

TEST_CASE("memory_ring: publish returns dense offsets and events carry them", "[storage][memory_ring]") {
  ring_bus bus;
  std::vector<std::uint64_t> seen;
  auto sub = bus.subscribe<int>("a.>", [&](const agentbus::event<int>& e) { seen.push_back(*e.offset()); });
  for (int i = 0; i < 5; ++i) {
    const auto r = bus.publish("a.b", i);
    CHECK(r.offset == static_cast<std::uint64_t>(i));
    CHECK(r.delivered == 1);
  }
  CHECK(seen == std::vector<std::uint64_t>{0, 1, 2, 3, 4});
  CHECK(bus.storage().next_offset() == 5);
}

TEST_CASE("memory_ring: keeps the last N and says when a replay start was overwritten", "[storage][memory_ring]") {
  ring_bus bus;
  for (int i = 0; i < 20; ++i) (void)bus.publish("a.b", i);
  std::vector<int> all;
  auto stats = bus.replay<int>(agentbus::history::all(), ">", [&](int v) { all.push_back(v); });
  CHECK(all == std::vector<int>{12, 13, 14, 15, 16, 17, 18, 19});
  CHECK(stats.delivered == 8);
  CHECK(stats.clean());

  std::vector<int> from_old;
  stats = bus.replay<int>(agentbus::history::from_offset(3), ">", [&](int v) { from_old.push_back(v); });
  CHECK(from_old.front() == 12);
  CHECK(stats.truncated_by_retention);
  CHECK(stats.overwritten == 9);  // offsets 3..11
  CHECK(stats.overwritten + stats.delivered == 20 - 3);
  REQUIRE_FALSE(stats.problems.empty());
  CHECK(stats.problems.front().find("overwritten") != std::string::npos);
}

TEST_CASE("memory_ring: replay filters by pattern and type, and counts what it skips", "[storage][memory_ring]") {
  ring_bus bus;
  (void)bus.publish("tasks.a", 1);
  (void)bus.publish("logs.a", 2);
  (void)bus.publish("tasks.b", std::string("not an int"));
  (void)bus.publish("tasks.c", 3);
  std::vector<int> got;
  const auto stats = bus.replay<int>(agentbus::history::all(), "tasks.*", [&](int v) { got.push_back(v); });
  CHECK(got == std::vector<int>{1, 3});
  CHECK(stats.other_topics == 1);
  CHECK(stats.other_types == 1);

  std::vector<std::string> texts;
  for (const auto& ev : bus.records<std::string>(agentbus::history::from_offset(1))) texts.push_back(ev.payload());
  CHECK(texts == std::vector<std::string>{"not an int"});

  int thrown = 0;
  const auto failing = bus.replay<int>(agentbus::history::all(), ">", [&](int) {
    ++thrown;
    throw std::runtime_error("handler failed");
  });
  CHECK(thrown == 3);
  CHECK(failing.handler_failures == 3);
  CHECK_FALSE(failing.clean());
}

TEST_CASE("memory_ring: the ring shares the published block and copies no payload", "[storage][memory_ring]") {
  agentbus::basic_bus<agentbus::storage::memory_ring<4>> bus;
  agentbus::test::copy_counter::reset();
  (void)bus.publish("a.b", agentbus::test::copy_counter{});
  (void)bus.publish("a.b", agentbus::test::copy_counter{});
  int replayed = 0;
  (void)bus.replay<agentbus::test::copy_counter>(agentbus::history::all(), ">",
                                               [&](const agentbus::test::copy_counter&) { ++replayed; });
  CHECK(replayed == 2);
  CHECK(agentbus::test::copy_counter::copies == 0);
}

TEST_CASE("memory_ring: channels store too and return the offset", "[storage][memory_ring]") {
  ring_bus bus;
  auto ch = bus.channel<int>("a.b");
  static_assert(std::is_same_v<decltype(ch.publish(1)), agentbus::stored_publish_result>);
  std::vector<std::uint64_t> live;
  auto sub = bus.subscribe<int>("a.b", [&](const agentbus::event<int>& e) { live.push_back(*e.offset()); });
  CHECK(ch.publish(10).offset == 0);
  CHECK(bus.publish("a.b", 11).offset == 1);
  int value = 12;
  CHECK(ch.publish(value).offset == 2);
  CHECK(live == std::vector<std::uint64_t>{0, 1, 2});
  std::vector<int> replayed;
  (void)bus.replay<int>(agentbus::history::all(), ">", [&](int v) { replayed.push_back(v); });
  CHECK(replayed == std::vector<int>{10, 11, 12});
}
