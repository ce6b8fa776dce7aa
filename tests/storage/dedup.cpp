// SPDX-License-Identifier: MIT
// Publish-side deduplication: a key seen within the window is neither stored nor delivered and
// returns the first offset; the window by count and by time (manual clock); across a restart of
// a journal bus; concurrent publishers of one key; a bus without storage refuses keys.
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using dedup_ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<4096>>;
using dedup_journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

struct payment {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.payment";
  std::uint64_t cents = 0;
};

template <class Bus>
std::size_t stored_count(Bus& bus) {
  std::size_t n = 0;
  for (const auto& ev : bus.template records<payment>(agentbus::history::all())) {
    (void)ev;
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("a second publish with the same key is not stored or delivered and returns the first offset") {
  dedup_ring_bus bus;
  std::vector<std::string> keys;
  auto sub = bus.subscribe<payment>("pay.>", [&](const agentbus::event<payment>& ev) {
    keys.emplace_back(ev.header_value(agentbus::idempotency_header).value_or(""));
  });
  bus.publish("pay.in", payment{1});
  const auto first = bus.publish("pay.in", payment{100}, {.idempotency_key = "order-1"});
  const auto again = bus.publish("pay.in", payment{100}, {.idempotency_key = "order-1"});
  const auto other = bus.publish("pay.in", payment{200}, {.idempotency_key = "order-2"});
  CHECK_FALSE(first.duplicate);
  CHECK(first.offset == 1);
  CHECK(again.duplicate);
  CHECK(again.offset == 1);
  CHECK(again.delivered == 0);
  CHECK_FALSE(other.duplicate);
  CHECK(other.offset == 2);
  CHECK(keys == std::vector<std::string>{"", "order-1", "order-2"});
  CHECK(stored_count(bus) == 3);
}

TEST_CASE("the window forgets the oldest key beyond max_keys, and a key after its time") {
  agentbus::manual_clock clock;
  dedup_ring_bus bus(agentbus::bus_options{.dedup = {.max_keys = 2, .window = 10s, .clock = &clock}});
  bus.publish("pay.in", payment{}, {.idempotency_key = "a"});
  bus.publish("pay.in", payment{}, {.idempotency_key = "b"});
  CHECK(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
  bus.publish("pay.in", payment{}, {.idempotency_key = "c"});  // "a" is the oldest of three
  CHECK_FALSE(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
  clock.advance(9s);
  CHECK(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
  clock.advance(1s);  // "a" was stored 10 s ago
  CHECK_FALSE(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
}

TEST_CASE("max_keys 0 turns deduplication off (the key still travels as a header)") {
  dedup_ring_bus bus(agentbus::bus_options{.dedup = {.max_keys = 0}});
  CHECK_FALSE(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
  CHECK_FALSE(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}).duplicate);
  CHECK(stored_count(bus) == 2);
}

TEST_CASE("on a journal bus the window survives a restart, a key older than the window does not") {
  agentbus::test::journal_dir dir("dedup");
  std::uint64_t offset = 0;
  {
    dedup_journal_bus bus(dir.options());
    bus.publish("pay.in", payment{1});
    offset = bus.publish("pay.in", payment{2}, {.idempotency_key = "order-9"}).offset;
    bus.publish("pay.in", payment{3}, {.idempotency_key = "order-old"});
  }
  {
    dedup_journal_bus bus(dir.options());
    const auto r = bus.publish("pay.in", payment{2}, {.idempotency_key = "order-9"});
    CHECK(r.duplicate);
    CHECK(r.offset == offset);
    CHECK(stored_count(bus) == 3);
  }
  std::this_thread::sleep_for(5ms);  // the records are now older than a 2 ms window
  dedup_journal_bus bus(dir.options(), agentbus::bus_options{.dedup = {.window = 2ms}});
  CHECK_FALSE(bus.publish("pay.in", payment{3}, {.idempotency_key = "order-old"}).duplicate);
}

TEST_CASE("a bus without storage refuses an idempotency key, on publish and on a channel") {
  agentbus::bus bus;
  CHECK_THROWS_WITH(bus.publish("pay.in", payment{}, {.idempotency_key = "a"}),
                    Catch::Contains("needs a bus that stores"));
  auto ch = bus.channel<payment>("pay.in");
  CHECK_THROWS_AS(ch.publish(payment{}, {.idempotency_key = "a"}), std::invalid_argument);
}

TEST_CASE("concurrent publishers of the same keys store each key once", "[concurrency]") {
  dedup_ring_bus bus;
  std::atomic<int> duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        const std::string key = "k" + std::to_string(k);
        if (bus.publish("pay.in", payment{}, {.idempotency_key = key}).duplicate) duplicates.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  CHECK(stored_count(bus) == 200);
  CHECK(duplicates.load() == 600);
}

TEST_CASE("a window too long for the clock's nanoseconds (milliseconds::max(): for ever) remembers its keys") {
  agentbus::manual_clock clock;
  dedup_ring_bus bus(agentbus::bus_options{.dedup = {.window = std::chrono::milliseconds::max(), .clock = &clock}});
  CHECK_FALSE(bus.publish("pay.in", payment{1}, {.idempotency_key = "a"}).duplicate);
  CHECK(bus.publish("pay.in", payment{1}, {.idempotency_key = "a"}).duplicate);
  clock.advance(std::chrono::hours(24 * 365));
  CHECK(bus.publish("pay.in", payment{1}, {.idempotency_key = "a"}).duplicate);
  CHECK(stored_count(bus) == 1);
  // 1000 years: fits in milliseconds, not in the clock's nanoseconds.
  dedup_ring_bus long_bus(agentbus::bus_options{.dedup = {.window = std::chrono::hours(24 * 365 * 1000), .clock = &clock}});
  CHECK_FALSE(long_bus.publish("pay.in", payment{1}, {.idempotency_key = "b"}).duplicate);
  CHECK(long_bus.publish("pay.in", payment{1}, {.idempotency_key = "b"}).duplicate);
}

TEST_CASE("on a journal bus a window of milliseconds::max() (for ever) survives a restart") {
  agentbus::test::journal_dir dir("dedup_forever");
  const agentbus::bus_options forever{.dedup = {.window = std::chrono::milliseconds::max()}};
  {
    dedup_journal_bus bus(dir.options(), forever);
    CHECK_FALSE(bus.publish("pay.in", payment{1}, {.idempotency_key = "order-1"}).duplicate);
  }
  dedup_journal_bus bus(dir.options(), forever);
  CHECK(bus.publish("pay.in", payment{1}, {.idempotency_key = "order-1"}).duplicate);
  CHECK(stored_count(bus) == 1);
}
