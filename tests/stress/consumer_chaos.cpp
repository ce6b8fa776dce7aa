// SPDX-License-Identifier: MIT
// Chaos for consumer groups: two publishers, a 4-member group whose handlers randomly throw,
// hang past the ack deadline or nack, members leaving and rejoining, and one restart of the
// whole bus from its journal halfway. At the end every published event is either acknowledged
// or in the dead-letter topic with its reason, checked event by event; duplicates (an event
// whose ack was accepted twice) are counted and reported. Bounded in time; run under TSan in CI.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/group.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agentbus/detail/config.hpp"

using namespace std::chrono_literals;

namespace {

struct chaos_event {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.chaos";
  std::uint32_t publisher = 0;
  std::uint32_t seq = 0;
  std::uint64_t key() const noexcept { return (std::uint64_t{publisher} << 32) | seq; }
};

using chaos_bus = agentbus::basic_bus<agentbus::storage::journal>;
constexpr std::uint32_t per_publisher_phase = AGENTBUS_TSAN ? 300 : 1500;  // per publisher, per phase

agentbus::consumer_options chaos_options() {
  agentbus::consumer_options o;
  o.ack_wait = 30ms;  // a "hung" handler sleeps past it
  o.max_deliver = 4;
  o.backoff = {.initial = 1ms, .multiplier = 2.0, .max = 8ms, .jitter = 0.2};
  o.max_ack_pending = 64;
  return o;
}

struct ledger {
  std::mutex mutex;
  std::map<std::uint64_t, int> accepted;  // acks the group accepted, per event
  std::uint64_t outcomes[4] = {};         // ack, throw, hang, nack
};

// One phase: publishers publish, four members consume with chaos until everything published in
// this phase is settled (acked or dead-lettered), or the time bound passes.
void run_phase(chaos_bus& bus, std::uint32_t first_seq, ledger& book, std::uint64_t seed) {
  agentbus::consumer_group<chaos_event> group(bus, "chaos", "chaos.>", chaos_options());
  std::atomic<bool> published{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> members;
  for (int m = 0; m < 4; ++m)
    members.emplace_back([&, m] {
      std::mt19937_64 rng(seed * 31 + static_cast<std::uint64_t>(m));
      auto handler = [&](const agentbus::delivered<chaos_event>& d) -> agentbus::outcome {
        const auto roll = rng() % 100;
        if (roll < 8) {
          {
            std::lock_guard l(book.mutex);
            ++book.outcomes[1];
          }
          throw std::runtime_error("chaos: thrown");
        }
        if (roll < 12) {  // hang past the deadline, then ack late (usually already reclaimed)
          {
            std::lock_guard l(book.mutex);
            ++book.outcomes[2];
          }
          std::this_thread::sleep_for(40ms);
        } else if (roll < 20) {
          {
            std::lock_guard l(book.mutex);
            ++book.outcomes[3];
          }
          return agentbus::outcome::nack("chaos: nacked");
        }
        const auto status = d.defer().ack();
        std::lock_guard l(book.mutex);
        ++book.outcomes[0];
        if (status == agentbus::ack_status::accepted) ++book.accepted[d.payload().key()];
        return agentbus::outcome::ack();  // ignored: deferred
      };
      auto member = group.join("m" + std::to_string(m));
      int polls = 0;
      while (!stop.load()) {
        member.poll_for(handler, 5ms, 16);
        if (++polls % 50 == 0) member = group.join("m" + std::to_string(m));  // leave (returns its events), rejoin
      }
    });
  std::vector<std::thread> publishers;
  for (std::uint32_t p = 0; p < 2; ++p)
    publishers.emplace_back([&, p] {
      for (std::uint32_t i = 0; i < per_publisher_phase; ++i)
        bus.publish("chaos." + std::to_string(p), chaos_event{p, first_seq + i});
    });
  for (auto& t : publishers) t.join();
  published = true;
  const auto give_up = std::chrono::steady_clock::now() + (AGENTBUS_TSAN ? 120s : 60s);
  for (;;) {
    const agentbus::consumer_info info = group.info();
    if ((info.pending == 0 && info.lag == 0) || std::chrono::steady_clock::now() > give_up) break;
    std::this_thread::sleep_for(5ms);
  }
  stop = true;
  for (auto& t : members) t.join();
}

}  // namespace

TEST_CASE("consumer group chaos: every event acked or dead-lettered with its reason, across a restart") {
  agentbus::test::journal_dir dir("consumer_chaos");
  ledger book;
  {
    chaos_bus bus(dir.options(agentbus::durability::interval(10ms)));
    run_phase(bus, 0, book, 1);
  }
  // The whole bus restarts from its journal; the group resumes from its stored cursor.
  chaos_bus bus(dir.options(agentbus::durability::interval(10ms)));
  run_phase(bus, per_publisher_phase, book, 2);

  std::map<std::uint64_t, std::string> dead;  // event -> reason
  for (const auto& ev : bus.records<chaos_event>(agentbus::history::all(), "$dlq.>")) {
    const auto reason = ev.header_value(agentbus::dead_letter_header::reason);
    CHECK(reason.has_value());
    CHECK(ev.header_value(agentbus::dead_letter_header::consumer) == "chaos");
    dead[ev.payload().key()] = std::string(reason.value_or(""));
  }
  std::size_t missing = 0, both = 0, duplicates = 0;
  for (std::uint32_t p = 0; p < 2; ++p)
    for (std::uint32_t seq = 0; seq < 2 * per_publisher_phase; ++seq) {
      const std::uint64_t key = (std::uint64_t{p} << 32) | seq;
      const auto acked = book.accepted.find(key);
      const bool is_acked = acked != book.accepted.end();
      const bool is_dead = dead.count(key) != 0;
      if (!is_acked && !is_dead) ++missing;
      if (is_acked && is_dead) ++both;
      if (is_acked && acked->second > 1) duplicates += static_cast<std::size_t>(acked->second - 1);
    }
  std::size_t with_reason = 0;
  for (const auto& [key, reason] : dead) with_reason += reason.rfind("max_deliver", 0) == 0;
  UNSCOPED_INFO("events " << 4 * per_publisher_phase << ", acked " << book.accepted.size() << ", dead-lettered "
                          << dead.size() << ", duplicate acks " << duplicates << "; handler outcomes: ack "
                          << book.outcomes[0] << ", throw " << book.outcomes[1] << ", hang " << book.outcomes[2]
                          << ", nack " << book.outcomes[3]);
  CHECK(missing == 0);
  CHECK(both == 0);
  CHECK(with_reason == dead.size());  // every dead letter says max_deliver (no term in this test)
  CHECK(book.outcomes[1] > 0);        // the chaos happened
  CHECK(book.outcomes[2] > 0);
  CHECK(book.outcomes[3] > 0);
  WARN("chaos: events " << 4 * per_publisher_phase << ", acked " << book.accepted.size() << ", dead-lettered "
                        << dead.size() << ", duplicate acks " << duplicates);
}
