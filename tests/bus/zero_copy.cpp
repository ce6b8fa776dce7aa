// SPDX-License-Identifier: MIT
// The payload is built once: fan-out never copies it, and a synchronous publish allocates nothing.
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "support/allocation_counter.hpp"
#include "support/copy_counter.hpp"

using agentbus::test::allocation_scope;
using agentbus::test::copy_counter;

TEST_CASE("fan-out to 100 subscribers makes no copy and no move", "[zero-copy]") {
  agentbus::bus bus;
  std::vector<agentbus::subscription> subs;
  std::vector<const copy_counter*> seen;
  for (int i = 0; i < 50; ++i) subs.push_back(bus.subscribe("fan.out", [&](const copy_counter& c) { seen.push_back(&c); }));
  for (int i = 0; i < 50; ++i)
    subs.push_back(bus.subscribe("fan.*", [&](const agentbus::event<copy_counter>& e) { seen.push_back(&e.payload()); }));
  auto ch = bus.channel<copy_counter>("fan.out");

  copy_counter::reset();
  const copy_counter payload{3};
  CHECK(bus.publish("fan.out", payload).delivered == 100);
  CHECK(ch.publish(payload).delivered == 100);
  CHECK(bus.publish("fan.out", copy_counter{4}).delivered == 100);
  CHECK(copy_counter::copies == 0);
  CHECK(copy_counter::moves == 0);
  REQUIRE(seen.size() == 300);
  for (std::size_t i = 0; i < 200; ++i) CHECK(seen[i] == &payload);  // every handler saw the original
}

TEST_CASE("move-only payloads can be published and subscribed to", "[zero-copy]") {
  agentbus::bus bus;
  int sum = 0;
  auto s1 = bus.subscribe("mo", [&](const std::unique_ptr<int>& p) { sum += *p; });
  auto s2 = bus.subscribe("mo", [&](const agentbus::event<std::unique_ptr<int>>& e) { sum += **e; });
  CHECK(bus.publish("mo", std::make_unique<int>(21)).delivered == 2);
  auto ch = bus.channel<std::unique_ptr<int>>("mo");
  ch.publish(std::make_unique<int>(1));
  CHECK(sum == 44);
}

TEST_CASE("a synchronous publish performs no heap allocation", "[zero-copy]") {
  agentbus::bus bus;
  std::uint64_t sum = 0;
  std::vector<agentbus::subscription> subs;
  for (int i = 0; i < 10; ++i) subs.push_back(bus.subscribe("alloc.exact", [&](const copy_counter& c) { sum += c.value; }));
  subs.push_back(bus.subscribe("alloc.*", [&](const agentbus::event<copy_counter>& e) { sum += e->value; }));
  auto ch = bus.channel<copy_counter>("alloc.exact");
  const agentbus::topic t("alloc.exact");
  const agentbus::header hs[] = {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};
  const std::string runtime_topic = "alloc.exact";
  bus.publish("alloc.other", copy_counter{0});  // first publish to a topic caches it (allocates once)

  allocation_scope scope;
  ch.publish(copy_counter{1});
  bus.publish(runtime_topic, copy_counter{1});
  bus.publish(t, copy_counter{1});
  bus.publish("alloc.other", copy_counter{1});
  bus.publish("alloc.exact", copy_counter{1},
              {.source = "a-rather-long-agent-name-beyond-sso", .correlation_id = 5, .ttl = std::chrono::seconds(1), .headers = hs});
  CHECK(scope.count() == 0);
  CHECK(sum == 11 * 4 + 1);
}

TEST_CASE("no heap allocation on topics longer than std::string's small buffer", "[zero-copy]") {
  // Topics of 16+ characters: an event that copied its topic (or pattern) into a std::string
  // would allocate here, which the short topics above cannot show.
  agentbus::bus bus;
  std::uint64_t sum = 0;
  std::vector<agentbus::subscription> subs;
  const std::string exact = "fleet.region-north.vehicle-0042.telemetry";
  const std::string other = "fleet.region-north.vehicle-0043.telemetry";
  static_assert(sizeof(std::string) <= 32, "the topics below are longer than any small-string buffer");
  REQUIRE(exact.size() > 32);
  for (int i = 0; i < 3; ++i) subs.push_back(bus.subscribe(exact, [&](const copy_counter& c) { sum += c.value; }));
  subs.push_back(bus.subscribe("fleet.region-north.*.telemetry", [&](const agentbus::event<copy_counter>& e) { sum += e->value; }));
  subs.push_back(bus.subscribe("fleet.region-north.>", [&](const agentbus::event<copy_counter>& e) {
    sum += e.topic().size() == exact.size() ? e->value : 0;
  }));
  auto ch = bus.channel<copy_counter>(exact);
  const agentbus::topic t(exact);
  bus.publish(other, copy_counter{0});  // first publish to a topic caches it (allocates once)

  allocation_scope scope;
  CHECK(ch.publish(copy_counter{1}).delivered == 5);                  // channel
  CHECK(bus.publish(exact, copy_counter{1}).delivered == 5);          // exact, by text
  CHECK(bus.publish(t, copy_counter{1}).delivered == 5);              // pre-validated topic
  CHECK(bus.publish(other, copy_counter{1}).delivered == 2);          // wildcards only
  CHECK(scope.count() == 0);
  CHECK(sum == 3 * 5 + 2);
}

TEST_CASE("the allocation counter does count (the check above can fail)", "[zero-copy]") {
  allocation_scope scope;
  auto p = std::make_unique<int>(1);
  CHECK(scope.count() == 1);
}
