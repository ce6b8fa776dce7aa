// SPDX-License-Identifier: MIT
// Edges of the consumer engine (consumer/detail/engine.hpp): timeouts, ack waits and delays of
// duration::max() (saturated, not wrapped into the past), a backoff capped at duration::max(),
// members waiting in poll_for woken by another member's settle and by a delayed publish, a
// stored cursor ahead of its storage, and an event acked before a restart whose ttl passed.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/detail/backoff.hpp>
#include <agentbus/consumer/durable.hpp>
#include <agentbus/consumer/group.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "consumer/common.hpp"
#include "support/journal_dir.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace std::chrono_literals;
using edge_ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<1024>>;
using edge_journal_bus = agentbus::basic_bus<agentbus::storage::journal>;
struct edge_job {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.edge_job";
  std::uint64_t n = 0;
};
}  // namespace

TEST_CASE("consumer edges: poll_for with the longest timeout waits for an event instead of returning at once", "[concurrency]") {
  edge_ring_bus bus;
  agentbus::durable_consumer<edge_job> c(bus, "forever", "jobs.>");
  std::thread publisher([&] {
    std::this_thread::sleep_for(50ms);
    bus.publish("jobs.a", edge_job{1});
  });
  const std::size_t n = c.poll_for([](const agentbus::delivered<edge_job>&) {}, agentbus::clock_source::duration::max());
  publisher.join();
  CHECK(n == 1);
}

TEST_CASE("consumer edges: an ack_wait of duration::max() never redelivers a deferred delivery") {
  agentbus::manual_clock clock;
  edge_ring_bus bus;
  bus.publish("jobs.a", edge_job{1});
  auto options = agentbus::test::exact_timing(clock);
  options.ack_wait = agentbus::clock_source::duration::max();
  agentbus::durable_consumer<edge_job> c(bus, "patient", "jobs.>", options);
  std::optional<agentbus::ack_token> token;
  CHECK(c.poll([&](const agentbus::delivered<edge_job>& d) { token = d.defer(); }) == 1);
  clock.advance(1h);
  CHECK(c.poll([](const agentbus::delivered<edge_job>&) { FAIL("redelivered"); }) == 0);
  CHECK(c.info().ack_timeouts == 0);
  CHECK(token->ack() == agentbus::ack_status::accepted);
}

TEST_CASE("consumer edges: nack_after a very long delay does not redeliver at once") {
  agentbus::manual_clock clock;
  edge_ring_bus bus;
  bus.publish("jobs.a", edge_job{1});
  agentbus::durable_consumer<edge_job> c(bus, "later", "jobs.>", agentbus::test::exact_timing(clock));
  CHECK(c.poll([](const agentbus::delivered<edge_job>&) {
    return agentbus::outcome::nack_after(agentbus::clock_source::duration::max());
  }) == 1);
  clock.advance(1s);
  CHECK(c.poll([](const agentbus::delivered<edge_job>&) { FAIL("redelivered"); }) == 0);
}

TEST_CASE("consumer edges: a backoff capped at duration::max() is never negative") {
  std::uint64_t rng = 1;
  volatile std::uint64_t attempt = 100;  // not a constant: computed at run time, as in a consumer
  const agentbus::backoff b{.initial = 1s, .multiplier = 2.0, .max = agentbus::clock_source::duration::max(), .jitter = 0};
  CHECK(agentbus::detail::backoff_wait(b, attempt, rng) > 0s);
  const agentbus::backoff j{.initial = 1s, .multiplier = 2.0, .max = agentbus::clock_source::duration::max(), .jitter = 0.5};
  for (int i = 0; i < 8; ++i) CHECK(agentbus::detail::backoff_wait(j, attempt, rng) > 0s);
}

TEST_CASE("consumer edges: a member waiting in poll_for gets the event another member's poll nacked", "[concurrency]") {
  edge_ring_bus bus;
  agentbus::consumer_options options;
  options.ack_wait = 1h;
  options.backoff = {.initial = 1ms, .multiplier = 1.0, .max = 1ms, .jitter = 0};
  agentbus::consumer_group<edge_job> group(bus, "pool", "jobs.>", options);
  auto failing = group.join("failing");
  auto waiter = group.join("waiter");
  bus.publish("jobs.a", edge_job{1});
  std::atomic<bool> in_handler{false};
  std::thread t([&] {
    (void)failing.poll([&](const agentbus::delivered<edge_job>&) {
      in_handler = true;
      std::this_thread::sleep_for(100ms);  // the waiter goes to sleep meanwhile
      return agentbus::outcome::nack("try elsewhere");
    });
  });
  while (!in_handler.load()) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  std::uint32_t attempt = 0;
  CHECK(waiter.poll_for([&](const agentbus::delivered<edge_job>& d) { attempt = d.attempt(); }, 3s) == 1);
  const auto took = std::chrono::steady_clock::now() - t0;
  t.join();
  CHECK(attempt == 2);
  CHECK(took < 1s);  // ~100 ms: the nack plus its 1 ms backoff, not the 3 s timeout
}

TEST_CASE("consumer edges: a member waiting in poll_for wakes when another member's poll frees max_ack_pending room",
          "[concurrency]") {
  edge_ring_bus bus;
  agentbus::consumer_options options;
  options.max_ack_pending = 1;
  agentbus::consumer_group<edge_job> group(bus, "pool2", "jobs.>", options);
  auto busy = group.join("busy");
  auto waiter = group.join("waiter");
  bus.publish("jobs.a", edge_job{1});
  bus.publish("jobs.a", edge_job{2});
  std::atomic<bool> in_handler{false};
  std::thread t([&] {
    (void)busy.poll(
        [&](const agentbus::delivered<edge_job>&) {
          in_handler = true;
          std::this_thread::sleep_for(100ms);
        },
        1);  // acks on return
  });
  while (!in_handler.load()) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t got = 0;
  CHECK(waiter.poll_for([&](const agentbus::delivered<edge_job>& d) { got = d.payload().n; }, 3s) == 1);
  const auto took = std::chrono::steady_clock::now() - t0;
  t.join();
  CHECK(got == 2);
  CHECK(took < 1s);  // ~100 ms, not the 3 s timeout
}

TEST_CASE("consumer edges: poll_for wakes for a delayed event when it comes due", "[concurrency]") {
  edge_ring_bus bus;
  agentbus::durable_consumer<edge_job> c(bus, "delayed-wait", "jobs.>");
  std::thread publisher([&] {
    std::this_thread::sleep_for(30ms);
    bus.publish("jobs.a", edge_job{1}, {.delay = 20ms});
  });
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = c.poll_for([](const agentbus::delivered<edge_job>&) {}, 3s);
  const auto took = std::chrono::steady_clock::now() - t0;
  publisher.join();
  CHECK(n == 1);
  CHECK(took < 1s);  // ~50 ms, not the 3 s timeout
}

TEST_CASE("consumer edges: a cursor stored for a memory ring does not skip the next process's events") {
  agentbus::test::journal_dir dir("edge_ring_cursor");
  agentbus::manual_clock clock;
  auto options = agentbus::test::exact_timing(clock);
  options.directory = dir.path;
  {
    edge_ring_bus bus;
    for (std::uint64_t i = 0; i < 10; ++i) bus.publish("jobs.a", edge_job{i});
    agentbus::durable_consumer<edge_job> c(bus, "ringer", "jobs.>", options);
    CHECK(c.poll([](const agentbus::delivered<edge_job>& d) {
      if (d.payload().n == 3) (void)d.defer();
    }) == 10);
  }
  edge_ring_bus bus;  // a new process: a new ring, offsets from 0 again
  agentbus::durable_consumer<edge_job> c(bus, "ringer", "jobs.>", options);
  for (std::uint64_t i = 100; i < 110; ++i) bus.publish("jobs.a", edge_job{i});
  std::vector<std::uint64_t> got;
  c.poll([&](const agentbus::delivered<edge_job>& d) { got.push_back(d.payload().n); });
  CHECK(got.size() == 10);
}

TEST_CASE("consumer edges: an event acked before a restart is not counted as expired after it") {
  agentbus::test::journal_dir dir("edge_acked_expired");
  agentbus::manual_clock clock;
  {
    edge_journal_bus bus(dir.options());
    bus.publish("jobs.a", edge_job{0});
    bus.publish("jobs.a", edge_job{1}, agentbus::publish_options{.ttl = std::chrono::milliseconds(20)});
    agentbus::durable_consumer<edge_job> c(bus, "w", "jobs.>", agentbus::test::exact_timing(clock));
    CHECK(c.poll([](const agentbus::delivered<edge_job>& d) {
      if (d.payload().n == 0) (void)d.defer();  // 0 stays out; 1 is acked
    }) == 2);
    CHECK(c.info().acked == 1);
  }
  clock.advance(1h);  // 1's ttl passes (on the consumer's clock)
  edge_journal_bus bus(dir.options());
  agentbus::durable_consumer<edge_job> c(bus, "w", "jobs.>", agentbus::test::exact_timing(clock));
  CHECK(c.poll([](const agentbus::delivered<edge_job>&) {}) == 1);
  CHECK(c.info().expired == 0);  // 1 was acked, not expired
}
