// SPDX-License-Identifier: MIT
// durable_consumer: acks, nacks and backoff, ack deadlines, term, dead letters, deferred acks,
// flow control, start positions, and what a restart of a journal bus resumes. Time is a
// manual_clock: no test sleeps for a deadline.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/durable.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "consumer/common.hpp"

#include "support/journal_dir.hpp"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<1024>>;
using journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

struct job {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.job";
  std::uint64_t n = 0;
};

template <class Bus>
void publish_jobs(Bus& bus, std::uint64_t from, std::uint64_t to, std::string_view topic = "jobs.a") {
  for (std::uint64_t i = from; i < to; ++i) bus.publish(topic, job{i});
}

}  // namespace

TEST_CASE("a void handler acks every event once, a second poll finds nothing") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 10);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  std::vector<std::uint64_t> seen;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) {
    CHECK(d.attempt() == 1);
    CHECK(d.consumer() == "worker");
    CHECK(d.offset() == d.payload().n);
    seen.push_back(d.payload().n);
  }) == 10);
  CHECK(seen == std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(c.poll([](const agentbus::delivered<job>&) { FAIL("delivered again"); }) == 0);
  const agentbus::consumer_info info = c.info();
  CHECK(info.acked == 10);
  CHECK(info.delivered == 10);
  CHECK(info.pending == 0);
  CHECK(info.floor == 10);
  CHECK(info.lag == 0);
  publish_jobs(bus, 10, 12);  // live events after the first poll come on the next
  CHECK(c.poll([](const agentbus::delivered<job>&) {}) == 2);
}

TEST_CASE("a nack is redelivered after the backoff, which grows per attempt") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 1);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  std::vector<std::uint32_t> attempts;
  auto fail = [&](const agentbus::delivered<job>& d) {
    attempts.push_back(d.attempt());
    return agentbus::outcome::nack("not yet");
  };
  CHECK(c.poll(fail) == 1);
  CHECK(c.poll(fail) == 0);  // waiting for its backoff: 1 s
  clock.advance(999ms);
  CHECK(c.poll(fail) == 0);
  clock.advance(1ms);
  CHECK(c.poll(fail) == 1);  // attempt 2, then 2 s
  clock.advance(1999ms);
  CHECK(c.poll(fail) == 0);
  clock.advance(1ms);
  CHECK(c.poll(fail) == 1);  // attempt 3, then 4 s
  clock.advance(4s);
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { attempts.push_back(d.attempt()); }) == 1);
  CHECK(attempts == std::vector<std::uint32_t>{1, 2, 3, 4});
  const auto info = c.info();
  CHECK(info.nacked == 3);
  CHECK(info.redelivered == 3);
  CHECK(info.acked == 1);
  CHECK(info.pending == 0);
}

TEST_CASE("nack_after uses its own delay, a throwing handler is a nack with the exception's text") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 1);
  auto options = agentbus::test::exact_timing(clock);
  options.max_deliver = 2;
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", options);
  CHECK(c.poll([](const agentbus::delivered<job>&) { return agentbus::outcome::nack_after(5s); }) == 1);
  clock.advance(4s);
  CHECK(c.poll([](const agentbus::delivered<job>&) {}) == 0);
  clock.advance(1s);
  std::optional<std::string> reason;
  auto dlq = bus.subscribe<job>("$dlq.>", [&](const agentbus::event<job>& ev) {
    reason = std::string(ev.header_value(agentbus::dead_letter_header::reason).value_or(""));
  });
  CHECK(c.poll([](const agentbus::delivered<job>&) { throw std::runtime_error("disk full"); }) == 1);
  REQUIRE(reason.has_value());  // the second attempt was the last (max_deliver 2)
  CHECK(reason->find("disk full") != std::string::npos);
  CHECK(c.info().handler_failures == 1);
}

TEST_CASE("after max_deliver failed attempts the event goes to $dlq.<topic> with its headers") {
  agentbus::manual_clock clock;
  ring_bus bus;
  auto options = agentbus::test::exact_timing(clock);
  options.max_deliver = 3;
  agentbus::durable_consumer<job> c(bus, "billing", "jobs.>", options);
  const agentbus::header trace{"traceparent", "00-abc-01"};
  bus.publish("jobs.pay", job{42}, agentbus::publish_options{.headers = {&trace, 1}});
  std::vector<std::string> dead;
  auto dlq = bus.subscribe<job>("$dlq.>", [&](const agentbus::event<job>& ev) {
    namespace h = agentbus::dead_letter_header;
    CHECK(ev.payload().n == 42);
    CHECK(ev.header_value(h::attempts) == "3");
    CHECK(ev.header_value(h::consumer) == "billing");
    CHECK(ev.header_value(h::topic) == "jobs.pay");
    CHECK(ev.header_value(h::offset) == "0");
    CHECK(ev.header_value("traceparent") == "00-abc-01");
    dead.emplace_back(ev.topic());
  });
  auto fail = [](const agentbus::delivered<job>&) { return agentbus::outcome::nack(); };
  CHECK(c.poll(fail) == 1);
  clock.advance(1s);
  CHECK(c.poll(fail) == 1);
  clock.advance(2s);
  CHECK(dead.empty());
  CHECK(c.poll(fail) == 1);
  CHECK(dead == std::vector<std::string>{"$dlq.jobs.pay"});
  clock.advance(1h);
  CHECK(c.poll(fail) == 0);  // never again
  const auto info = c.info();
  CHECK(info.dead_lettered == 1);
  CHECK(info.dead_letters_by_topic.at("jobs.pay") == 1);
  CHECK(info.pending == 0);
  CHECK(info.floor == 2);  // the dead letter itself is offset 1, on another topic
}

TEST_CASE("term dead-letters at once, whatever the attempt") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 2);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  std::vector<std::string> reasons;
  auto dlq = bus.subscribe<job>("$dlq.jobs.*", [&](const agentbus::event<job>& ev) {
    reasons.emplace_back(ev.header_value(agentbus::dead_letter_header::reason).value_or(""));
  });
  CHECK(c.poll([](const agentbus::delivered<job>& d) {
    return d.payload().n == 0 ? agentbus::outcome::term("malformed") : agentbus::outcome::ack();
  }) == 2);
  CHECK(reasons == std::vector<std::string>{"term: malformed"});
  CHECK(c.info().terminated == 1);
  CHECK(c.info().acked == 1);
}

TEST_CASE("an unsettled delivery is redelivered after ack_wait plus the backoff, in_progress extends it") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 1);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  std::optional<agentbus::ack_token> token;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { token = d.defer(); }) == 1);
  clock.advance(9s);
  CHECK(token->in_progress() == agentbus::ack_status::accepted);  // deadline: now + 10 s
  clock.advance(9s);
  CHECK(c.poll([](const agentbus::delivered<job>&) { FAIL("redelivered before its deadline"); }) == 0);
  clock.advance(1s);  // deadline passed; backoff 1 s from the deadline
  CHECK(c.poll([](const agentbus::delivered<job>&) { FAIL("redelivered before its backoff"); }) == 0);
  CHECK(c.info().ack_timeouts == 1);
  CHECK(token->in_progress() == agentbus::ack_status::stale);
  clock.advance(1s);
  std::uint32_t attempt = 0;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { attempt = d.attempt(); }) == 1);
  CHECK(attempt == 2);
  // The first attempt's late ack is harmless and says so.
  CHECK(token->ack() == agentbus::ack_status::already);
  CHECK(token->nack() == agentbus::ack_status::already);
}

TEST_CASE(
    "a deferred ack settles from another thread, a repeated one says already, a late one after the consumer says "
    "gone") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 3);
  std::vector<agentbus::ack_token> tokens;
  {
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
    CHECK(c.poll([&](const agentbus::delivered<job>& d) {
      tokens.push_back(d.defer());
      return agentbus::outcome::term("ignored: deferred");  // the token decides, not the return value
    }) == 3);
    CHECK(c.info().pending == 3);
    std::thread io([&] {
      CHECK(tokens[0].ack() == agentbus::ack_status::accepted);
      CHECK(tokens[2].ack() == agentbus::ack_status::accepted);
    });
    io.join();
    CHECK(tokens[0].ack() == agentbus::ack_status::already);
    const auto info = c.info();
    CHECK(info.acked == 2);
    CHECK(info.pending == 1);
    CHECK(info.floor == 1);  // offset 1 is still out
    CHECK(info.terminated == 0);
    CHECK(info.repeated_settles == 1);
  }
  CHECK(tokens[1].ack() == agentbus::ack_status::gone);
}

TEST_CASE("max_ack_pending stops new deliveries until something is settled") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 10);
  auto options = agentbus::test::exact_timing(clock);
  options.max_ack_pending = 3;
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", options);
  std::vector<agentbus::ack_token> tokens;
  auto hold = [&](const agentbus::delivered<job>& d) { tokens.push_back(d.defer()); };
  CHECK(c.poll(hold) == 3);
  CHECK(c.poll(hold) == 0);
  CHECK(tokens[1].ack() == agentbus::ack_status::accepted);
  CHECK(c.poll(hold) == 1);
  CHECK(tokens.back().offset() == 3);
}

TEST_CASE("start positions: only new events, or from an offset") {
  agentbus::manual_clock clock;
  ring_bus bus;
  publish_jobs(bus, 0, 5);
  auto options = agentbus::test::exact_timing(clock);
  options.start = agentbus::consumer_start::only_new();
  agentbus::durable_consumer<job> fresh(bus, "fresh", "jobs.>", options);
  options.start = agentbus::consumer_start::at(3);
  agentbus::durable_consumer<job> late(bus, "late", "jobs.>", options);
  publish_jobs(bus, 5, 6);
  std::vector<std::uint64_t> a, b;
  fresh.poll([&](const agentbus::delivered<job>& d) { a.push_back(d.payload().n); });
  late.poll([&](const agentbus::delivered<job>& d) { b.push_back(d.payload().n); });
  CHECK(a == std::vector<std::uint64_t>{5});
  CHECK(b == std::vector<std::uint64_t>{3, 4, 5});
}

TEST_CASE("a consumer of > does not receive $ topics (dead letters), one of $dlq.> does") {
  agentbus::manual_clock clock;
  ring_bus bus;
  bus.publish("$dlq.jobs.a", job{1});
  bus.publish("jobs.a", job{2});
  agentbus::durable_consumer<job> all(bus, "all", ">", agentbus::test::exact_timing(clock));
  agentbus::durable_consumer<job> dlq(bus, "dlq", "$dlq.>", agentbus::test::exact_timing(clock));
  std::vector<std::uint64_t> a, d;
  all.poll([&](const agentbus::delivered<job>& x) { a.push_back(x.payload().n); });
  dlq.poll([&](const agentbus::delivered<job>& x) { d.push_back(x.payload().n); });
  CHECK(a == std::vector<std::uint64_t>{2});
  CHECK(d == std::vector<std::uint64_t>{1});
}

TEST_CASE("bad consumer names and bad patterns are refused clearly") {
  ring_bus bus;
  CHECK_THROWS_WITH((agentbus::durable_consumer<job>(bus, "", "jobs.>")), Catch::Contains("not valid"));
  CHECK_THROWS_WITH((agentbus::durable_consumer<job>(bus, "a/b", "jobs.>")), Catch::Contains("not valid"));
  CHECK_THROWS_WITH((agentbus::durable_consumer<job>(bus, "..", "jobs.>")), Catch::Contains("not valid"));
  CHECK_THROWS_AS((agentbus::durable_consumer<job>(bus, "ok", "jobs..x")), agentbus::topic_error);
}

TEST_CASE("a moved-from consumer polls nothing") {
  ring_bus bus;
  publish_jobs(bus, 0, 2);
  agentbus::durable_consumer<job> a(bus, "worker", "jobs.>");
  agentbus::durable_consumer<job> b(std::move(a));
  CHECK(a.poll([](const agentbus::delivered<job>&) {}) == 0);  // NOLINT(bugprone-use-after-move): documented
  CHECK(b.poll([](const agentbus::delivered<job>&) {}) == 2);
}

// ---- journal bus: the cursor survives the process ----

TEST_CASE("after a restart a durable consumer resumes at its first unacked event, acked ones never come again") {
  agentbus::test::journal_dir dir("consumer_resume");
  agentbus::manual_clock clock;
  {
    journal_bus bus(dir.options());
    publish_jobs(bus, 0, 10);
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
    // Acks everything but 4 and 6, which stay out (as if the process died while handling them).
    c.poll([](const agentbus::delivered<job>& d) {
      if (d.payload().n == 4 || d.payload().n == 6) (void)d.defer();
    });
    CHECK(c.info().floor == 4);
    CHECK(std::filesystem::exists(c.cursor_path()));
  }
  journal_bus bus(dir.options());
  publish_jobs(bus, 10, 12);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  CHECK(c.info().resumed);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> seen;
  c.poll([&](const agentbus::delivered<job>& d) { seen.emplace_back(d.payload().n, d.attempt()); });
  CHECK(seen == std::vector<std::pair<std::uint64_t, std::uint32_t>>{{4, 2}, {6, 2}, {10, 1}, {11, 1}});
  CHECK(c.info().floor == 12);
}

TEST_CASE("an event acked before a restart stays acked through the restarts after it") {
  // After one restart, an offset acked before it was skipped without staying on record while
  // an earlier one was still unsettled: the next cursor write forgot the ack, and the second
  // restart delivered it again (and could dead-letter it as "attempts before a restart").
  agentbus::test::journal_dir dir("consumer_acked_twice");
  agentbus::manual_clock clock;
  {
    journal_bus bus(dir.options());
    publish_jobs(bus, 0, 3);
  }
  std::vector<std::vector<std::pair<std::uint64_t, std::uint32_t>>> runs;
  for (int restart = 0; restart < 4; ++restart) {
    journal_bus bus(dir.options());
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
    auto& seen = runs.emplace_back();
    c.poll([&](const agentbus::delivered<job>& d) {
      seen.emplace_back(d.payload().n, d.attempt());
      if (d.payload().n == 0) (void)d.defer();  // 0 stays out, as if the process died handling it
    });
  }
  using seen_t = std::vector<std::pair<std::uint64_t, std::uint32_t>>;
  CHECK(runs[0] == seen_t{{0, 1}, {1, 1}, {2, 1}});
  for (std::size_t r = 1; r < runs.size(); ++r) {
    CAPTURE(r);
    CHECK(runs[r] == seen_t{{0, static_cast<std::uint32_t>(r + 1)}});  // 1 and 2 never again
  }
}

TEST_CASE("an event that is never settled across restarts is dead-lettered after max_deliver (poison)") {
  agentbus::test::journal_dir dir("consumer_poison");
  agentbus::manual_clock clock;
  auto options = agentbus::test::exact_timing(clock);
  options.max_deliver = 2;
  {
    journal_bus bus(dir.options());
    publish_jobs(bus, 0, 1);
  }
  for (int restart = 0; restart < 2; ++restart) {
    journal_bus bus(dir.options());
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", options);
    std::uint32_t attempt = 0;
    CHECK(c.poll([&](const agentbus::delivered<job>& d) {
      attempt = d.attempt();
      (void)d.defer();  // "crashes" before settling
    }) == 1);
    CHECK(attempt == static_cast<std::uint32_t>(restart + 1));
  }
  journal_bus bus(dir.options());
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", options);
  CHECK(c.poll([](const agentbus::delivered<job>&) { FAIL("a poison event delivered a third time"); }) == 0);
  CHECK(c.info().dead_lettered == 1);
  std::size_t dead = 0;
  for (const auto& ev : bus.records<job>(agentbus::history::all(), "$dlq.>")) {
    CHECK(ev.payload().n == 0);
    CHECK(ev.header_value(agentbus::dead_letter_header::reason).value_or("").find("restart") != std::string_view::npos);
    ++dead;
  }
  CHECK(dead == 1);
}

TEST_CASE("a consumer name reopened with another pattern is refused, list_consumers and remove_consumer") {
  agentbus::test::journal_dir dir("consumer_list");
  journal_bus bus(dir.options());
  publish_jobs(bus, 0, 3);
  {
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>");
    c.poll([](const agentbus::delivered<job>& d) {
      if (d.payload().n == 1) (void)d.defer();
    });
  }
  CHECK_THROWS_WITH((agentbus::durable_consumer<job>(bus, "worker", "other.>")),
                    Catch::Contains("exists for pattern 'jobs.>'"));
  const auto listed = agentbus::list_consumers(dir.path / "consumers");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].name == "worker");
  CHECK(listed[0].pattern == "jobs.>");
  CHECK(listed[0].schema == "test.job");
  CHECK(listed[0].floor == 1);
  CHECK(listed[0].settled_above == 1);
  CHECK(listed[0].retrying == 0);  // delivered once: implied by delivered_end
  CHECK(listed[0].problem.empty());
  CHECK(agentbus::remove_consumer(dir.path / "consumers", "worker"));
  CHECK(agentbus::list_consumers(dir.path / "consumers").empty());
  agentbus::durable_consumer<job> again(bus, "worker", "other.>");  // a new consumer of that name
  CHECK_FALSE(again.info().resumed);
}

TEST_CASE("a damaged newest cursor copy falls back to the older one, both damaged: reported, started again") {
  agentbus::test::journal_dir dir("consumer_damaged");
  journal_bus bus(dir.options());
  publish_jobs(bus, 0, 3);
  std::filesystem::path cursor;
  {
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>");
    c.poll([](const agentbus::delivered<job>&) {});
    cursor = c.cursor_path();
  }
  const auto damage = [](const std::filesystem::path& p) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  };
  const std::filesystem::path other = cursor.string() + ".b";
  REQUIRE(std::filesystem::exists(other));
  // Three writes (created, before the batch, after it): the first copy holds the newest.
  damage(cursor);
  {
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>");
    CHECK(c.info().resumed);
    CHECK(c.info().cursor_problem.empty());
    // The older copy was written before the batch was handed out: all three come again, as
    // redeliveries (duplicates, never loss).
    std::vector<std::uint32_t> attempts;
    CHECK(c.poll([&](const agentbus::delivered<job>& d) { attempts.push_back(d.attempt()); }) == 3);
    CHECK(attempts == std::vector<std::uint32_t>{2, 2, 2});
  }
  damage(cursor);
  damage(other);
  CHECK(agentbus::list_consumers(dir.path / "consumers").at(0).problem.find("checksum") != std::string::npos);
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>");
  CHECK(c.info().cursor_problem.find("checksum") != std::string::npos);
  CHECK_FALSE(c.info().resumed);
  CHECK(c.poll([](const agentbus::delivered<job>&) {}) == 3);
}

TEST_CASE("poll_for wakes for a publish from another thread and for a redelivery time on the manual clock",
          "[concurrency]") {
  agentbus::manual_clock clock;
  ring_bus bus;
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  std::thread publisher([&] {
    while (clock.waiting() == 0) std::this_thread::yield();
    bus.publish("jobs.a", job{7});
  });
  std::uint64_t got = 0;
  CHECK(c.poll_for(
            [&](const agentbus::delivered<job>& d) {
              got = d.payload().n;
              return agentbus::outcome::nack();
            },
            1h) == 1);
  publisher.join();
  CHECK(got == 7);
  std::thread ticker([&] {
    while (clock.waiting() == 0) std::this_thread::yield();
    clock.advance(1s);  // the nack's backoff
  });
  std::uint32_t attempt = 0;
  CHECK(c.poll_for([&](const agentbus::delivered<job>& d) { attempt = d.attempt(); }, 1h) == 1);
  ticker.join();
  CHECK(attempt == 2);
}

TEST_CASE("an event whose ttl passed is not delivered, also when it was stored before a restart") {
  agentbus::test::journal_dir dir("consumer_ttl");
  {
    journal_bus bus(dir.options());
    bus.publish("jobs.a", job{1}, agentbus::publish_options{.ttl = std::chrono::milliseconds(1)});
    bus.publish("jobs.a", job{2}, agentbus::publish_options{.ttl = std::chrono::hours(1)});
  }
  std::this_thread::sleep_for(3ms);  // the first event's deadline passes
  journal_bus bus(dir.options());
  for (const auto& ev : bus.records<job>(agentbus::history::all())) {
    REQUIRE(ev.deadline().has_value());  // the journal kept it
    CHECK(ev.expired() == (ev.payload().n == 1));
  }
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>");
  std::vector<std::uint64_t> got;
  c.poll([&](const agentbus::delivered<job>& d) { got.push_back(d.payload().n); });
  CHECK(got == std::vector<std::uint64_t>{2});
  CHECK(c.info().expired == 1);
  CHECK(c.info().floor == 2);
}

TEST_CASE("a delayed event is stored at once, reaches no live subscription, and is handed out when due, in due order") {
  agentbus::manual_clock clock;
  ring_bus bus;
  int live = 0;
  auto sub = bus.subscribe<job>("jobs.>", [&](const job&) { ++live; });
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  const auto later = bus.publish("jobs.a", job{1}, {.delay = 10s});
  bus.publish("jobs.a", job{2}, {.delay = 5s});
  bus.publish("jobs.a", job{3});
  CHECK(later.delivered == 1);  // the consumer's doorbell only (it rings for delayed events too)
  CHECK(live == 1);  // only the undelayed one
  std::vector<std::uint64_t> got;
  auto take = [&](const agentbus::delivered<job>& d) {
    CHECK(d.attempt() == 1);
    got.push_back(d.payload().n);
  };
  CHECK(c.poll(take) == 1);
  CHECK(c.info().delayed == 2);
  CHECK(c.info().pending == 0);
  clock.advance(5s);
  CHECK(c.poll(take) == 1);
  clock.advance(5s);
  CHECK(c.poll(take) == 1);
  CHECK(got == std::vector<std::uint64_t>{3, 2, 1});
  CHECK(c.info().delayed == 0);
  CHECK(c.info().floor == 3);
  agentbus::bus plain;
  CHECK_THROWS_WITH(plain.publish("jobs.a", job{4}, {.delay = 1s}), Catch::Contains("delay needs a bus that stores"));
}

TEST_CASE("subscribe_options::delayed: an exporter sees a delayed event at once with its due time, nobody else does") {
  ring_bus bus;
  std::vector<std::pair<std::uint64_t, std::string>> exported;
  int plain = 0;
  auto exporter = bus.subscribe<job>(
      "jobs.>",
      [&](const agentbus::event<job>& e) {
        exported.emplace_back(e.payload().n, std::string(e.header_value(agentbus::not_before_header).value_or("")));
      },
      agentbus::subscribe_options{.delayed = true});
  auto ordinary = bus.subscribe<job>("jobs.>", [&](const job&) { ++plain; });
  const auto before = std::chrono::system_clock::now();
  const auto r = bus.publish("jobs.a", job{1}, {.delay = 30s});
  bus.publish("jobs.a", job{2});
  CHECK(r.delivered == 1);  // the exporter only
  CHECK(plain == 1);        // the undelayed one
  REQUIRE(exported.size() == 2);
  CHECK(exported[0].first == 1);
  const auto due_ns = std::stoll(exported[0].second);
  const auto due = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(due_ns)));
  CHECK(due >= before + 30s);
  CHECK(due < before + 35s);
  CHECK(exported[1] == std::pair<std::uint64_t, std::string>{2, ""});  // not delayed: no header
  // Only a subscription that keeps no event can take delayed ones.
  agentbus::agent worker("worker");
  CHECK_THROWS_WITH(bus.subscribe<job>("jobs.>", [](const job&) {}, agentbus::async(worker),
                                       agentbus::subscribe_options{.delayed = true}),
                    Catch::Contains("delayed needs synchronous delivery"));
  CHECK(bus.stats().subscriptions == 2);  // the refused one left nothing behind
}

TEST_CASE("subscribe_options::delayed on a journal bus: the event built on the publisher's stack reaches the exporter") {
  agentbus::test::journal_dir dir("delayed_exporter");
  journal_bus bus(dir.options());
  std::vector<std::uint64_t> offsets;
  int plain = 0;
  auto exporter = bus.subscribe<job>(
      "jobs.>", [&](const agentbus::event<job>& e) { offsets.push_back(e.offset().value_or(999)); },
      agentbus::subscribe_options{.delayed = true});
  auto ordinary = bus.subscribe<job>("jobs.>", [&](const job&) { ++plain; });
  const auto r = bus.publish("jobs.a", job{1}, {.delay = 30s});
  CHECK(r.delivered == 1);
  CHECK(plain == 0);
  CHECK(offsets == std::vector<std::uint64_t>{r.offset});  // stored first: it has its offset
}

TEST_CASE("a delayed event survives a restart and keeps its due time") {
  agentbus::test::journal_dir dir("consumer_delay");
  agentbus::manual_clock clock;
  {
    journal_bus bus(dir.options());
    agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
    bus.publish("jobs.a", job{1}, {.delay = 1h});
    bus.publish("jobs.a", job{2});
    CHECK(c.poll([](const agentbus::delivered<job>&) {}) == 1);
    CHECK(c.info().delayed == 1);
  }
  journal_bus bus(dir.options());
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  CHECK(c.poll([](const agentbus::delivered<job>&) { FAIL("delivered before it was due"); }) == 0);
  CHECK(c.info().delayed == 1);
  clock.advance(1h);
  std::uint32_t attempt = 0;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { attempt = d.attempt(); }) == 1);
  CHECK(attempt == 1);  // not counted as delivered before the restart
}

TEST_CASE("a consumer judges ttl on its own clock (consumer_options::clock), as a mailbox does") {
  // It read the steady clock: an event whose ttl had passed on the consumer's clock was still
  // delivered.
  agentbus::manual_clock clock;
  ring_bus bus;
  agentbus::durable_consumer<job> c(bus, "ttl-clock", "jobs.>", agentbus::test::exact_timing(clock));
  bus.publish("jobs.a", job{1}, agentbus::publish_options{.ttl = 5s});
  bus.publish("jobs.a", job{2});  // no deadline: delivered whatever the clock says
  clock.advance(1h);
  std::vector<std::uint64_t> got;
  c.poll([&](const agentbus::delivered<job>& d) { got.push_back(d.payload().n); });
  CHECK(got == std::vector<std::uint64_t>{2});
  CHECK(c.info().expired == 1);
}

TEST_CASE("poll_for wakes when a token from another thread frees max_ack_pending room", "[concurrency]") {
  // Token settles never woke a waiting poll_for: it slept until its timeout although the next
  // event could be handed out as soon as the token acked.
  ring_bus bus;
  publish_jobs(bus, 0, 2);
  agentbus::consumer_options options;
  options.max_ack_pending = 1;
  agentbus::durable_consumer<job> c(bus, "one-at-a-time", "jobs.>", options);
  std::optional<agentbus::ack_token> held;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { held = d.defer(); }) == 1);
  std::thread acker([&] {
    std::this_thread::sleep_for(20ms);
    (void)held->ack();
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t got = 99;
  CHECK(c.poll_for([&](const agentbus::delivered<job>& d) { got = d.payload().n; }, 30s) == 1);
  const auto waited = std::chrono::steady_clock::now() - t0;
  acker.join();
  CHECK(got == 1);
  CHECK(waited < 10s);  // woken by the ack (~20 ms), not by the 30 s timeout
}

namespace {
struct order_v1 {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.order";
  static constexpr std::uint32_t event_version = 1;
  std::int32_t n = 0;
};
struct order_v2 {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.order";
  static constexpr std::uint32_t event_version = 2;
  std::int64_t n = 0;
};
}  // namespace

TEST_CASE("records a consumer cannot read as its type are counted and explained in info().unreadable") {
  // They were passed without a trace: the floor moved past them and no counter said so.
  agentbus::test::journal_dir dir("consumer_unreadable");
  {
    journal_bus bus(dir.options());
    bus.publish("orders.a", order_v1{1});
  }
  journal_bus bus(dir.options());
  bus.publish("orders.a", order_v2{2});
  agentbus::durable_consumer<order_v2> c(bus, "billing", "orders.>");
  std::vector<std::int64_t> got;
  c.poll([&](const agentbus::delivered<order_v2>& d) { got.push_back(d.payload().n); });
  CHECK(got == std::vector<std::int64_t>{2});
  const auto info = c.info();
  CHECK(info.unreadable.version_mismatches == 1);  // order 1: version 1, no upcaster
  CHECK_FALSE(info.unreadable.clean());
  REQUIRE_FALSE(info.unreadable.problems.empty());
  CHECK(info.unreadable.problems.front().find("no upcaster") != std::string::npos);
}

namespace {
// A codec that throws something that is not a std::exception, for one payload.
struct picky_job {
  static constexpr std::string_view event_name = "test.picky";
  std::string text;
};
inline void agentbus_encode(agentbus::byte_writer& out, const picky_job& p) { out.write_string(p.text); }
inline picky_job agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<picky_job>) {
  picky_job p{in.read_string()};
  if (p.text == "poison") throw 42;  // NOLINT: not a std::exception, on purpose
  return p;
}
}  // namespace

TEST_CASE("a record whose codec or upcaster throws a non-standard exception is counted, and poll goes on") {
  // Both escaped poll() (the journal reader caught std::exception only): the consumer threw on
  // every poll and never got past the record.
  agentbus::test::journal_dir dir("consumer_picky");
  {
    journal_bus bus(dir.options());
    bus.publish("orders.a", order_v1{1});  // read through an upcaster that throws 42
  }
  journal_bus bus(dir.options());
  bus.storage().upcast<order_v2>(1, [](agentbus::byte_reader&) -> order_v2 { throw 42; });  // NOLINT
  bus.publish("orders.a", order_v2{2});
  bus.publish("picky.a", picky_job{"poison"});
  bus.publish("picky.a", picky_job{"fine"});

  agentbus::durable_consumer<order_v2> orders(bus, "billing", "orders.>");
  std::vector<std::int64_t> got;
  CHECK_NOTHROW(orders.poll([&](const agentbus::delivered<order_v2>& d) { got.push_back(d.payload().n); }));
  CHECK(got == std::vector<std::int64_t>{2});
  CHECK(orders.info().unreadable.decode_errors == 1);

  agentbus::durable_consumer<picky_job> picky(bus, "picky", "picky.>");
  std::vector<std::string> texts;
  CHECK_NOTHROW(picky.poll([&](const agentbus::delivered<picky_job>& d) { texts.push_back(d.payload().text); }));
  CHECK(texts == std::vector<std::string>{"fine"});
  const auto info = picky.info();
  CHECK(info.unreadable.decode_errors == 1);
  REQUIRE_FALSE(info.unreadable.problems.empty());
  CHECK(info.unreadable.problems.front().find("not a std::exception") != std::string::npos);
}

TEST_CASE("a delay too long for the wall clock (nanoseconds::max(): for ever) is not due at once") {
  agentbus::manual_clock clock;
  ring_bus bus;
  agentbus::durable_consumer<job> c(bus, "worker", "jobs.>", agentbus::test::exact_timing(clock));
  bus.publish("jobs.a", job{1}, {.delay = std::chrono::nanoseconds::max()});
  bus.publish("jobs.a", job{2}, {.delay = std::chrono::hours(24 * 365 * 250)});  // 250 years: past 2262
  std::vector<std::uint64_t> got;
  CHECK(c.poll([&](const agentbus::delivered<job>& d) { got.push_back(d.payload().n); }) == 0);
  CHECK(got.empty());
  CHECK(c.info().delayed == 2);
}
