// SPDX-License-Identifier: MIT
// History subscriptions joining while other threads publish: each late joiner receives every
// stored event from its start exactly once (no gap, no duplicate at the replay/live seam).
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

// Publishers publish `per_publisher` events each; joiners subscribe with history::all() at
// staggered moments. Afterwards each joiner must hold offsets 0..total-1 exactly once.
// Odd joiners are agents on their own threads (history into the mailbox), even ones are
// synchronous handlers.
template <class Bus>
void check_history_seam(Bus& bus, int publishers, int per_publisher, int joiners) {
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  for (int j = 0; j < joiners; ++j) {
    agents.push_back(std::make_unique<agentbus::agent>("joiner" + std::to_string(j)));
    agents.back()->start();
  }
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p)
    threads.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < per_publisher; ++i) (void)bus.publish(p % 2 ? "jobs.a" : "jobs.b", i);
    });
  std::vector<std::unique_ptr<seen_offsets>> seen;
  std::vector<agentbus::subscription> subs(static_cast<std::size_t>(joiners));
  for (int j = 0; j < joiners; ++j) seen.push_back(std::make_unique<seen_offsets>());
  std::vector<std::thread> joiner_threads;
  for (int j = 0; j < joiners; ++j)
    joiner_threads.emplace_back([&, j] {
      while (!go.load()) std::this_thread::yield();
      // Stagger the joins across the publishing window.
      const auto total = static_cast<std::uint64_t>(publishers) * static_cast<std::uint64_t>(per_publisher);
      const auto wanted = total * static_cast<std::uint64_t>(j) / static_cast<std::uint64_t>(joiners);
      while (bus.storage().next_offset() < wanted) std::this_thread::yield();
      auto* box = seen[static_cast<std::size_t>(j)].get();
      auto record = [box](const agentbus::event<int>& e) { box->add(*e.offset()); };
      if (j % 2 == 1)
        subs[static_cast<std::size_t>(j)] = bus.template subscribe<int>(
            "jobs.*", record, agentbus::async(*agents[static_cast<std::size_t>(j)]), agentbus::history::all());
      else
        subs[static_cast<std::size_t>(j)] = bus.template subscribe<int>("jobs.*", record, agentbus::history::all());
    });
  go.store(true);
  for (auto& t : threads) t.join();
  for (auto& t : joiner_threads) t.join();
  for (auto& a : agents) a->stop(agentbus::stop_mode::drain);  // handles everything queued

  const auto total = static_cast<std::uint64_t>(publishers) * static_cast<std::uint64_t>(per_publisher);
  for (int j = 0; j < joiners; ++j) {
    auto offsets = seen[static_cast<std::size_t>(j)]->offsets;
    std::sort(offsets.begin(), offsets.end());
    INFO("joiner " << j << " received " << offsets.size() << " of " << total);
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
