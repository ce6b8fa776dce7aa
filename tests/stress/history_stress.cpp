// SPDX-License-Identifier: MIT
// History subscriptions joining while other threads publish: each late joiner receives every
// stored event from its start exactly once (no gap, no duplicate at the replay/live seam), and
// every joiner joins while publishing goes on (replayed and live events both).
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>
#include <agentbus/storage/memory_ring.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace {

struct seen_offsets {
  std::mutex mutex;
  std::vector<std::uint64_t> offsets;
  void add(std::uint64_t o) {
    std::lock_guard lock(mutex);
    offsets.push_back(o);
  }
};

// Publishers publish at least `per_publisher` events each and go on until every joiner has
// subscribed, then publish `tail` more each: every joiner subscribes while events are being
// published, so each has stored events to replay and live ones after its seam. Joiners
// subscribe with history::all() at staggered moments; afterwards each must hold offsets
// 0..total-1 exactly once, and (from its replay_stats) have received both replayed and live
// events. At most `cap` events per publisher before the tail (a memory ring must keep them
// all). Odd joiners are agents on their own threads (history into the mailbox), even ones are
// synchronous handlers.
template <class Bus>
void check_history_seam(Bus& bus, int publishers, int per_publisher, int joiners, int cap = 12000, int tail = 300) {
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  for (int j = 0; j < joiners; ++j) {
    agents.push_back(std::make_unique<agentbus::agent>("joiner" + std::to_string(j)));
    agents.back()->start();
  }
  std::atomic<bool> go{false};
  std::atomic<int> joined{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p)
    threads.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      const char* t = p % 2 ? "jobs.a" : "jobs.b";
      int i = 0;
      for (; i < per_publisher || (joined.load() < joiners && i < cap); ++i) (void)bus.publish(t, i);
      while (joined.load() < joiners) std::this_thread::yield();  // the cap: wait for the last joiner
      for (int k = 0; k < tail; ++k) (void)bus.publish(t, i + k);
    });
  std::vector<std::unique_ptr<seen_offsets>> seen;
  std::vector<agentbus::replay_stats> reports(static_cast<std::size_t>(joiners));
  std::vector<agentbus::subscription> subs(static_cast<std::size_t>(joiners));
  for (int j = 0; j < joiners; ++j) seen.push_back(std::make_unique<seen_offsets>());
  std::vector<std::thread> joiner_threads;
  const auto least = static_cast<std::uint64_t>(publishers) * static_cast<std::uint64_t>(per_publisher);
  for (int j = 0; j < joiners; ++j)
    joiner_threads.emplace_back([&, j] {
      while (!go.load()) std::this_thread::yield();
      // Stagger the joins across the publishing window; joiner 0 waits for a first event too,
      // so that every joiner has something to replay.
      const auto wanted = std::max<std::uint64_t>(1, least * static_cast<std::uint64_t>(j) / static_cast<std::uint64_t>(joiners));
      while (bus.storage().next_offset() < wanted) std::this_thread::yield();
      auto* box = seen[static_cast<std::size_t>(j)].get();
      auto record = [box](const agentbus::event<int>& e) { box->add(*e.offset()); };
      const agentbus::subscribe_options with_history{.history = agentbus::history::all(),
                                                     .report = &reports[static_cast<std::size_t>(j)]};
      if (j % 2 == 1)
        subs[static_cast<std::size_t>(j)] = bus.template subscribe<int>(
            "jobs.*", record, agentbus::async(*agents[static_cast<std::size_t>(j)]), with_history);
      else
        subs[static_cast<std::size_t>(j)] = bus.template subscribe<int>("jobs.*", record, with_history);
      joined.fetch_add(1);
    });
  go.store(true);
  for (auto& t : joiner_threads) t.join();
  for (auto& t : threads) t.join();
  for (auto& a : agents) a->stop(agentbus::stop_mode::drain);  // handles everything queued

  const std::uint64_t total = bus.storage().next_offset();
  for (int j = 0; j < joiners; ++j) {
    auto offsets = seen[static_cast<std::size_t>(j)]->offsets;
    const auto& report = reports[static_cast<std::size_t>(j)];
    std::sort(offsets.begin(), offsets.end());
    INFO("joiner " << j << " received " << offsets.size() << " of " << total << " (" << report.delivered
                   << " replayed)");
    CHECK(report.delivered >= 1);                 // it joined after events were stored...
    CHECK(report.delivered < offsets.size());     // ...and before the last ones: live ones too
    REQUIRE(offsets.size() == total);
    for (std::uint64_t i = 0; i < total; ++i) REQUIRE(offsets[i] == i);
  }
}

}  // namespace

TEST_CASE("history stress: late joiners on a memory ring see every event exactly once", "[stress][history]") {
  for (int round = 0; round < 5; ++round) {
    agentbus::basic_bus<agentbus::storage::memory_ring<1 << 16>> fresh;
    check_history_seam(fresh, 4, 3000, 4);
  }
}

TEST_CASE("history stress: late joiners on a journal see every event exactly once", "[stress][history]") {
  for (int round = 0; round < 3; ++round) {
    const agentbus::test::journal_dir dir("history_stress");
    // Small segments: several rolls during the run.
    agentbus::basic_bus<agentbus::storage::journal> bus(dir.options(agentbus::durability::never(), 256 << 10));
    check_history_seam(bus, 4, 2000, 4);
  }
}
