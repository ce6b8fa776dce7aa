// SPDX-License-Identifier: MIT
// basic_bus<storage::journal>: offsets, what survives a reopen, schema checks (versions,
// upcasters, fingerprints), replay filters, mailboxes, errors. (History subscriptions on a
// journal: tests/delivery/history.cpp.)
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using journaled_bus = agentbus::basic_bus<agentbus::storage::journal>;

// A fresh directory per test, removed afterwards.
struct temp_dir : agentbus::test::journal_dir {
  temp_dir() : journal_dir("journal_bus") {}
};

struct note {
  static constexpr std::string_view event_name = "test.note";
  std::string text;
  int priority_level = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const note& n) {
  agentbus::encode(out, n.text);
  agentbus::encode(out, n.priority_level);
}
note agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<note>) {
  note n;
  n.text = agentbus::codec<std::string>::decode(in);
  n.priority_level = agentbus::codec<int>::decode(in);
  return n;
}

// Two versions of one schema: v2 added a field.
struct price_v1 {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.price";
  static constexpr std::uint32_t event_version = 1;
  std::int32_t cents = 0;
};
struct price_v2 {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.price";
  static constexpr std::uint32_t event_version = 2;
  std::int64_t cents = 0;
  std::int32_t currency = 0;
};
// Same name and version as price_v1 but another layout: the type changed without a bump.
struct price_v1_changed {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.price";
  static constexpr std::uint32_t event_version = 1;
  std::int64_t cents = 0;
};

}  // namespace

static_assert(agentbus::storage_policy<agentbus::storage::journal>);

TEST_CASE("journal bus: publish stores first, returns the offset, events carry it", "[storage][journal_bus]") {
  temp_dir dir;
  journaled_bus bus(dir.options());
  std::vector<std::uint64_t> live;
  auto sub = bus.subscribe<note>("notes.>", [&](const agentbus::event<note>& e) { live.push_back(*e.offset()); });
  for (std::uint64_t i = 0; i < 4; ++i) {
    const auto r = bus.publish("notes.a", note{"n" + std::to_string(i), 1});
    CHECK(r.offset == i);
    CHECK(r.delivered == 1);
  }
  CHECK(live == std::vector<std::uint64_t>{0, 1, 2, 3});
  // Publishing to no subscriber still stores.
  CHECK(bus.publish("other.topic", note{"x", 0}).offset == 4);
  CHECK(bus.storage().next_offset() == 5);
}

TEST_CASE("journal bus: a channel stores, and keeps the journal open after the bus is gone", "[storage][journal_bus]") {
  temp_dir dir;
  std::optional<decltype(std::declval<journaled_bus&>().channel<int>("x.y"))> kept;
  {
    journaled_bus bus(dir.options());
    auto ch = bus.channel<int>("metrics.cpu");
    CHECK(ch.publish(1).offset == 0);
    kept.emplace(ch);
  }
  CHECK(kept->publish(2).offset == 1);  // the bus is gone; the channel still stores
  kept.reset();                         // the last owner closes the journal
  journaled_bus bus(dir.options());     // so it can be reopened
  std::vector<int> got;
  (void)bus.replay<int>(agentbus::history::all(), "metrics.*", [&](int v) { got.push_back(v); });
  CHECK(got == std::vector<int>{1, 2});
}

TEST_CASE("journal bus: every envelope field survives a reopen", "[storage][journal_bus]") {
  temp_dir dir;
  const agentbus::header headers[] = {{"traceparent", "00-abc-01"}, {"idempotency-key", "k1"}};
  std::uint64_t id = 0;
  std::chrono::system_clock::time_point published;
  {
    journaled_bus bus(dir.options(agentbus::durability::always()));
    auto sub = bus.subscribe<note>("notes.a", [&](const agentbus::event<note>& e) {
      id = e.id();
      published = e.published();
    });
    (void)bus.publish("notes.a", note{"hello", 7},
                      {.source = "writer", .correlation_id = 99, .prio = agentbus::priority::high, .headers = headers});
  }
  journaled_bus bus(dir.options());
  int n = 0;
  const auto stats = bus.replay<note>(agentbus::history::all(), ">", [&](const agentbus::event<note>& e) {
    ++n;
    CHECK(e->text == "hello");
    CHECK(e->priority_level == 7);
    CHECK(e.topic() == "notes.a");
    CHECK(e.source() == "writer");
    CHECK(e.correlation_id() == 99);
    CHECK(e.priority() == agentbus::priority::high);
    CHECK(e.id() == id);
    CHECK(e.published() == published);
    CHECK(e.offset() == std::optional<std::uint64_t>{0});
    REQUIRE(e.headers().size() == 2);
    CHECK(e.header_value("traceparent") == std::optional<std::string_view>{"00-abc-01"});
    CHECK(e.header_value("idempotency-key") == std::optional<std::string_view>{"k1"});
  });
  CHECK(n == 1);
  CHECK(stats.clean());
}

TEST_CASE("journal bus: replay filters by topic, type and start", "[storage][journal_bus]") {
  temp_dir dir;
  journaled_bus bus(dir.options());
  (void)bus.publish("tasks.a", 1);
  (void)bus.publish("logs.a", 2);
  (void)bus.publish("tasks.b", std::string("text"));
  const auto before_last = std::chrono::system_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  (void)bus.publish("tasks.c", 3);

  std::vector<int> got;
  auto stats = bus.replay<int>(agentbus::history::all(), "tasks.*", [&](int v) { got.push_back(v); });
  CHECK(got == std::vector<int>{1, 3});
  CHECK(stats.other_topics == 1);
  CHECK(stats.other_types == 1);
  CHECK(stats.clean());

  got.clear();
  (void)bus.replay<int>(agentbus::history::from_offset(1), ">", [&](int v) { got.push_back(v); });
  CHECK(got == std::vector<int>{2, 3});
  // An offset not assigned yet replays nothing.
  CHECK(bus.replay<int>(agentbus::history::from_offset(100), ">", [](int) {}).delivered == 0);

  got.clear();
  (void)bus.replay<int>(agentbus::history::since(before_last), ">", [&](int v) { got.push_back(v); });
  CHECK(got == std::vector<int>{3});

  std::vector<std::string> texts;
  auto range = bus.records<std::string>(agentbus::history::all());
  for (const auto& ev : range) texts.emplace_back(ev.payload());
  CHECK(texts == std::vector<std::string>{"text"});
  CHECK(range.stats().other_types == 3);
}

TEST_CASE("journal bus: another schema version needs an upcaster, and says so", "[storage][journal_bus]") {
  temp_dir dir;
  {
    journaled_bus bus(dir.options());
    (void)bus.publish("prices.a", price_v1{250});
    (void)bus.publish("prices.a", price_v1{300});
  }
  journaled_bus bus(dir.options());
  std::vector<std::int64_t> got;
  auto stats = bus.replay<price_v2>(agentbus::history::all(), ">", [&](const price_v2& p) { got.push_back(p.cents); });
  CHECK(got.empty());
  CHECK(stats.version_mismatches == 2);
  REQUIRE_FALSE(stats.problems.empty());
  CHECK(stats.problems.front().find("no upcaster") != std::string::npos);
  CHECK_FALSE(stats.clean());

  bus.storage().upcast<price_v2>(1, [](agentbus::byte_reader& in) {
    const auto old = agentbus::codec<price_v1>::decode(in);
    return price_v2{old.cents, 978};  // v1 prices were in euros
  });
  stats = bus.replay<price_v2>(agentbus::history::all(), ">", [&](const price_v2& p) {
    got.push_back(p.cents);
    CHECK(p.currency == 978);
  });
  CHECK(got == std::vector<std::int64_t>{250, 300});
  CHECK(stats.upcast == 2);
  CHECK(stats.clean());
}

TEST_CASE("journal bus: a changed layout at the same version is reported, never decoded", "[storage][journal_bus]") {
  temp_dir dir;
  journaled_bus bus(dir.options());
  (void)bus.publish("prices.a", price_v1{250});
  int delivered = 0;
  const auto stats = bus.replay<price_v1_changed>(agentbus::history::all(), ">", [&](const price_v1_changed&) { ++delivered; });
  CHECK(delivered == 0);
  CHECK(stats.fingerprint_mismatches == 1);
  REQUIRE_FALSE(stats.problems.empty());
  CHECK(stats.problems.front().find("fingerprint") != std::string::npos);
}

TEST_CASE("journal bus: mailboxes receive stored events with their offsets", "[storage][journal_bus]") {
  temp_dir dir;
  journaled_bus bus(dir.options());
  agentbus::agent worker("worker");  // caller-pumped
  std::vector<std::uint64_t> offsets;
  auto sub = bus.subscribe<note>("notes.*", [&](const agentbus::event<note>& e) { offsets.push_back(*e.offset()); },
                                 agentbus::async(worker));
  (void)bus.publish("notes.a", note{"a", 1});
  note moved{"b", 2};
  (void)bus.publish("notes.b", std::move(moved));
  CHECK(worker.poll() == 2);
  CHECK(offsets == std::vector<std::uint64_t>{0, 1});
}

TEST_CASE("journal bus: a second writer on the same directory gets a clear error", "[storage][journal_bus]") {
  temp_dir dir;
  journaled_bus first(dir.options());
  try {
    journaled_bus second(dir.options());
    FAIL("a second writer opened a locked journal");
  } catch (const agentbus::journal_error& e) {
    CHECK(e.which() == agentbus::journal_error::code::locked);
    CHECK(std::string(e.what()).find(dir.path.string()) != std::string::npos);
  }
}
