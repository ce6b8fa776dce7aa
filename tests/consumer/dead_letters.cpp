// SPDX-License-Identifier: MIT
// Replaying dead letters: once, to the original topic, with new attempts; across a restart.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/dead_letters.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "consumer/common.hpp"
#include "support/journal_dir.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

using dl_ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<1024>>;
using dl_journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

struct letter {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.letter";
  std::uint64_t n = 0;
};

// Consumer options that dead-letter at the first failure.
agentbus::consumer_options one_try(agentbus::manual_clock& clock) {
  auto o = agentbus::test::exact_timing(clock);
  o.max_deliver = 1;
  return o;
}

}  // namespace

TEST_CASE("a replayed dead letter goes back to its original topic once, as a new event with new attempts") {
  agentbus::manual_clock clock;
  dl_ring_bus bus;
  agentbus::durable_consumer<letter> c(bus, "worker", "mail.>", one_try(clock));
  bus.publish("mail.in", letter{1});
  bus.publish("other.in", letter{2});
  agentbus::durable_consumer<letter> other(bus, "other", "other.>", one_try(clock));
  bool broken = true;
  auto handle = [&](const agentbus::delivered<letter>&) {
    if (broken) throw std::runtime_error("bug");
  };
  CHECK(c.poll(handle) == 1);
  CHECK(other.poll(handle) == 1);
  CHECK(c.info().dead_lettered == 1);

  broken = false;
  agentbus::dead_letter_replayer<letter> replayer(bus, "mail.>");
  std::vector<std::string> replayed_from;
  auto sub = bus.subscribe<letter>("mail.>", [&](const agentbus::event<letter>& ev) {
    replayed_from.emplace_back(ev.header_value(agentbus::replayed_from_header).value_or("?"));
    CHECK_FALSE(ev.header_value(agentbus::dead_letter_header::reason).has_value());
  });
  CHECK(replayer.replay() == 1);                          // only mail.>'s dead letter
  CHECK(replayed_from == std::vector<std::string>{"2"});  // the dead letter's offset
  CHECK(replayer.replay() == 0);                          // once
  std::uint32_t attempt = 0;
  CHECK(c.poll([&](const agentbus::delivered<letter>& d) { attempt = d.attempt(); }) == 1);
  CHECK(attempt == 1);
  CHECK(c.info().acked == 1);
}

TEST_CASE("replay_dead_letters on a journal bus replays each dead letter once across restarts") {
  agentbus::test::journal_dir dir("dead_letters");
  agentbus::manual_clock clock;
  {
    dl_journal_bus bus(dir.options());
    agentbus::durable_consumer<letter> c(bus, "worker", "mail.>", one_try(clock));
    bus.publish("mail.in", letter{7});
    c.poll([](const agentbus::delivered<letter>&) { return agentbus::outcome::term("bad"); });
    CHECK(agentbus::replay_dead_letters<letter>(bus, "mail.>") == 1);
  }
  dl_journal_bus bus(dir.options());
  CHECK(agentbus::replay_dead_letters<letter>(bus, "mail.>") == 0);
  agentbus::durable_consumer<letter> c(bus, "worker", "mail.>", one_try(clock));
  std::vector<std::uint64_t> got;
  c.poll([&](const agentbus::delivered<letter>& d) { got.push_back(d.payload().n); });
  CHECK(got == std::vector<std::uint64_t>{7});  // the replayed copy; the original was settled
}

TEST_CASE("a dead letter on a journal bus does not inherit the original's ttl") {
  // The journal keeps a deadline in a header of its own, and readers passed it on with the
  // event's headers: the dead letter copied it and expired with the original (on a memory
  // ring it did not).
  agentbus::test::journal_dir dir("dead_letter_ttl");
  agentbus::manual_clock clock;
  dl_journal_bus bus(dir.options());
  agentbus::durable_consumer<letter> c(bus, "worker", "mail.>", one_try(clock));
  bus.publish("mail.in", letter{3}, agentbus::publish_options{.ttl = std::chrono::hours(1)});
  CHECK(c.poll([](const agentbus::delivered<letter>& d) {
    for (const auto& h : d.event().headers()) CHECK(h.key != agentbus::deadline_header);
    CHECK(d.event().deadline().has_value());  // the deadline itself is kept, as the event's
    return agentbus::outcome::term("bad");
  }) == 1);
  clock.advance(std::chrono::hours(2));  // past the original's deadline
  agentbus::durable_consumer<letter> dlq(bus, "dlq-reader", "$dlq.>", one_try(clock));
  std::vector<std::uint64_t> got;
  dlq.poll([&](const agentbus::delivered<letter>& d) { got.push_back(d.payload().n); });
  CHECK(got == std::vector<std::uint64_t>{3});
  CHECK(dlq.info().expired == 0);
}

namespace {
// A payload whose copy throws while `fail_copies` is above zero (the dead letter is a copy).
inline int g_fail_copies = 0;
struct fragile {
  std::uint64_t n = 0;
  fragile() = default;
  explicit fragile(std::uint64_t v) : n(v) {}
  fragile(const fragile& o) : n(o.n) {
    if (g_fail_copies > 0) {
      --g_fail_copies;
      throw std::runtime_error("copy failed");
    }
  }
  fragile& operator=(const fragile&) = default;
};
}  // namespace

TEST_CASE("a dead letter whose publish failed is published again later, with its reason, never redelivered") {
  // A failed dead-letter publish put the event back on the redelivery path: the handler got it
  // again (a term'd event counted as terminated each time), and the dead letter finally
  // published carried the reason of whatever path killed it then.
  agentbus::manual_clock clock;
  dl_ring_bus bus;
  auto options = agentbus::test::exact_timing(clock);
  options.max_deliver = 5;
  agentbus::durable_consumer<fragile> c(bus, "worker", "jobs.>", options);
  std::vector<std::string> reasons;
  auto dlq = bus.subscribe<fragile>("$dlq.>", [&](const agentbus::event<fragile>& ev) {
    reasons.emplace_back(ev.header_value(agentbus::dead_letter_header::reason).value_or("?"));
  });
  bus.publish("jobs.a", fragile{1});
  int calls = 0;
  auto term = [&](const agentbus::delivered<fragile>&) {
    ++calls;
    g_fail_copies = 1;  // the dead letter's copy of the payload fails once
    return agentbus::outcome::term("card declined");
  };
  CHECK(c.poll(term) == 1);
  CHECK(c.info().dead_letter_failures == 1);
  CHECK(reasons.empty());
  for (int i = 0; i < 3; ++i) {
    clock.advance(std::chrono::minutes(1));  // past any backoff
    c.poll(term);
  }
  CHECK(calls == 1);  // never handed out again
  CHECK(c.info().terminated == 1);
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("card declined") != std::string::npos);
  CHECK(c.info().dead_lettered == 1);
}

TEST_CASE("an event on a topic too long for $dlq. + topic is dead-lettered on the topic cut to whole tokens") {
  agentbus::manual_clock clock;
  dl_ring_bus bus;
  agentbus::durable_consumer<letter> c(bus, "worker", ">", one_try(clock));
  const std::string topic = "long." + std::string(120, 'a') + "." + std::string(126, 'b');  // 252 bytes
  REQUIRE(topic.size() == 252);
  bus.publish(topic, letter{5});
  CHECK(c.poll([](const agentbus::delivered<letter>&) { return agentbus::outcome::term("bad"); }) == 1);
  CHECK(c.info().dead_lettered == 1);
  CHECK(c.info().dead_letter_failures == 0);
  std::size_t found = 0;
  for (const auto& ev : bus.records<letter>(agentbus::history::all(), "$dlq.>")) {
    ++found;
    CHECK(ev.topic() == "$dlq.long." + std::string(120, 'a'));
    CHECK(ev.header_value(agentbus::dead_letter_header::topic) == std::optional<std::string_view>(topic));
  }
  CHECK(found == 1);
  // Replay takes it back to its whole original topic.
  std::size_t back = 0;
  auto original = bus.subscribe<letter>(topic, [&](const letter& l) { back += l.n; });
  CHECK(agentbus::replay_dead_letters<letter>(bus, ">") == 1);
  CHECK(back == 5);
}
