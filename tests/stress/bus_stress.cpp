// SPDX-License-Identifier: MIT
// Concurrency stress of the bus: bounded in time, meant to run under ThreadSanitizer.
#include <agentbus/agentbus.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agentbus/detail/config.hpp"

using namespace std::chrono_literals;

namespace {
struct ping {
  int n = 0;
};

// Stress runs are bounded by time; shorter under sanitizers, which slow everything down.
constexpr auto stress_time = AGENTBUS_TSAN ? 600ms : 400ms;

struct stop_after {
  std::chrono::steady_clock::time_point end = std::chrono::steady_clock::now() + stress_time;
  bool done() const { return std::chrono::steady_clock::now() >= end; }
};
}  // namespace

TEST_CASE("publish, subscribe and unsubscribe from several threads at once", "[stress]") {
  agentbus::bus bus;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> delivered{0}, misrouted{0}, late{0};
  // A permanent subscriber: every publish must reach it exactly once.
  std::atomic<std::uint64_t> permanent{0};
  auto keep = bus.subscribe("stress.>", [&](const ping&) { permanent.fetch_add(1, std::memory_order_relaxed); });

  std::atomic<std::uint64_t> published{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p)
    threads.emplace_back([&, p] {
      const std::string topics[] = {"stress.a", "stress.b.c", "stress.x" + std::to_string(p)};
      auto ch = bus.channel<ping>("stress.a");
      std::uint64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (i % 3 == 0)
          ch.publish(ping{1});
        else
          bus.publish(topics[i % 3], ping{1});
        ++i;
      }
      published.fetch_add(i);
    });
  for (int s = 0; s < 2; ++s)
    threads.emplace_back([&, s] {
      std::mt19937 rng(static_cast<unsigned>(s));
      const char* patterns[] = {"stress.a", "stress.*", "stress.>", "stress.b.*", "*.a", ">"};
      struct churned {
        agentbus::subscription sub;
        std::shared_ptr<std::atomic<bool>> ended;
      };
      std::vector<churned> mine;
      while (!stop.load(std::memory_order_relaxed)) {
        if (mine.size() < 8 && rng() % 2 == 0) {
          // The handler owns state that must stay valid as long as it can be called.
          // (Two publishers may call it at once, so the state is atomic.) It checks that it
          // only gets topics its pattern matches and nothing after its unsubscribe returned.
          auto ended = std::make_shared<std::atomic<bool>>(false);
          const agentbus::topic_pattern pattern(patterns[rng() % 6]);
          auto sub = bus.subscribe(pattern.str(), [&, ended, pattern](const agentbus::event<ping>& e) {
            delivered.fetch_add(1, std::memory_order_relaxed);
            if (!pattern.matches(e.topic())) misrouted.fetch_add(1, std::memory_order_relaxed);
            if (ended->load(std::memory_order_relaxed)) late.fetch_add(1, std::memory_order_relaxed);
          });
          mine.push_back({std::move(sub), ended});
        } else if (!mine.empty()) {
          const auto at = mine.begin() + static_cast<long>(rng() % mine.size());
          at->sub.unsubscribe();
          at->ended->store(true, std::memory_order_relaxed);
          mine.erase(at);
        }
      }
    });
  std::this_thread::sleep_for(stress_time);
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(permanent.load() == published.load());
  CHECK(published.load() > 0);
  CHECK(delivered.load() > 0);   // the churned handlers were reached
  CHECK(misrouted.load() == 0);  // ... only on topics their pattern matches
  CHECK(late.load() == 0);       // ... and never after their unsubscribe returned
  CHECK(bus.stats().subscriptions == 1);
}

TEST_CASE("after unsubscribe returns, the handler is never running or called", "[stress][quiescence]") {
  agentbus::bus bus;
  std::atomic<bool> stop{false};
  std::vector<std::thread> publishers;
  for (int p = 0; p < 2; ++p)
    publishers.emplace_back([&] {
      auto ch = bus.channel<ping>("q.topic");
      while (!stop.load(std::memory_order_relaxed)) ch.publish(ping{1});
    });
  stop_after budget;
  int rounds = 0;
  std::atomic<std::uint64_t> calls{0};
  while (!budget.done()) {
    // `alive` is freed right after unsubscribe: a late call would be a use after free that
    // ASan/TSan report, and `violations` counts calls observed after the flag was cleared.
    auto alive = std::make_unique<std::atomic<bool>>(true);
    auto violations = std::make_shared<std::atomic<int>>(0);
    std::atomic<int> running{0};
    auto s = bus.subscribe("q.*", [flag = alive.get(), violations, &running, &calls](const ping&) {
      calls.fetch_add(1, std::memory_order_relaxed);
      running.fetch_add(1);
      if (!flag->load()) violations->fetch_add(1);
      running.fetch_sub(1);
    });
    std::this_thread::sleep_for(200us);
    s.unsubscribe();
    CHECK(running.load() == 0);
    alive->store(false);
    std::this_thread::sleep_for(50us);
    CHECK(violations->load() == 0);
    alive.reset();
    ++rounds;
  }
  stop = true;
  for (auto& t : publishers) t.join();
  CHECK(rounds > 10);
  CHECK(calls.load() > 0);  // the handlers did run: the guarantee was tested against real calls
}

// The unsubscribe of a single-threaded program skips the grace period's heavy barrier
// (quiescence.hpp: grace_barrier). A thread that starts publishing meanwhile registers, and
// its first dispatches must not reach the subscription once unsubscribe has returned: each
// round races a brand-new thread's first publishes against the unsubscribe.
TEST_CASE("a thread's first publishes racing an unsubscribe that skipped the heavy barrier", "[stress][quiescence]") {
  agentbus::bus bus;
  auto& domain = agentbus::detail::quiescence_domain::instance();
  stop_after budget;
  int rounds = 0, shortcut_rounds = 0, racing_rounds = 0;
  std::uint64_t reached = 0;
  std::mt19937 rng(5);
  while (!budget.done()) {
    auto alive = std::make_unique<std::atomic<bool>>(true);  // freed after unsubscribe: a late call is a use after free
    std::atomic<int> violations{0};
    std::atomic<std::uint64_t> calls{0};
    auto s = bus.subscribe("fresh.topic", [flag = alive.get(), &violations, &calls](const ping&) {
      calls.fetch_add(1, std::memory_order_relaxed);
      if (!flag->load()) violations.fetch_add(1);
    });
    std::atomic<bool> ready{false}, go{false}, finish{false}, started{false};
    std::thread fresh([&] {  // not registered until its first publish
      ready.store(true);
      while (!go.load()) agentbus::detail::cpu_relax();
      started.store(true);
      for (int i = 0; i < 64; ++i) bus.publish("fresh.topic", ping{i});
      while (!finish.load()) std::this_thread::yield();  // stays registered until the round ends
      bus.publish("fresh.topic", ping{-1});
    });
    while (!ready.load()) std::this_thread::yield();  // it is spinning: both run at once
    const std::uint64_t heavy_before = domain.heavy_grace_barriers();
    go.store(true);
    // A varying head start for the new thread: sometimes it registers before the unsubscribe
    // looks (the heavy barrier), sometimes just after (the shortcut, and the race).
    const auto head_start = std::chrono::steady_clock::now() + std::chrono::nanoseconds(rng() % 4000);
    while (std::chrono::steady_clock::now() < head_start) agentbus::detail::cpu_relax();
    s.unsubscribe();
    const bool overlapped = started.load();  // its first publish began before unsubscribe returned
    if (domain.heavy_grace_barriers() == heavy_before) {
      ++shortcut_rounds;
      if (overlapped) ++racing_rounds;
    }
    alive->store(false);
    finish.store(true);
    fresh.join();
    CHECK(violations.load() == 0);
    alive.reset();
    reached += calls.load();
    ++rounds;
  }
  CHECK(rounds > 10);
  INFO("rounds " << rounds << ", of which the unsubscribe took the shortcut in " << shortcut_rounds
                 << " (the new thread already publishing in " << racing_rounds
                 << "); handler calls before the unsubscribe: " << reached);
  CHECK(shortcut_rounds > 0);  // the unsubscribe this test is about did happen
  // Rounds where the new thread was already publishing while the shortcut was taken: the race
  // itself. How many depends on scheduling (few on a loaded machine), so it is only reported.
  if (racing_rounds == 0) WARN("no round overlapped the new thread's first publish with the shortcut");
  INFO("racing rounds: " << racing_rounds);
  SUCCEED();
}

TEST_CASE("two handlers on two threads unsubscribing each other do not deadlock", "[stress][reentrancy]") {
  stop_after budget;
  int rounds = 0;
  while (!budget.done() && rounds < 200) {
    agentbus::bus bus;
    agentbus::subscription a, b;
    std::atomic<int> arrived{0};
    a = bus.subscribe("m.a", [&](const ping&) {
      arrived.fetch_add(1);
      while (arrived.load() < 2) std::this_thread::yield();  // both handlers are now mid-call
      b.unsubscribe();
    });
    b = bus.subscribe("m.b", [&](const ping&) {
      arrived.fetch_add(1);
      while (arrived.load() < 2) std::this_thread::yield();
      a.unsubscribe();
    });
    std::thread t1([&] { bus.publish("m.a", ping{}); });
    std::thread t2([&] { bus.publish("m.b", ping{}); });
    t1.join();
    t2.join();
    CHECK(bus.stats().subscriptions == 0);
    ++rounds;
  }
  CHECK(rounds > 0);
}

TEST_CASE("handlers that resubscribe and publish while others publish", "[stress][reentrancy]") {
  agentbus::bus bus;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> echoes{0};
  auto echo = bus.subscribe("chain.start", [&](const agentbus::event<ping>& e) {
    if (e->n < 3) bus.publish("chain.start", ping{e->n + 1});
    auto tmp = bus.subscribe("chain.tmp", [&](const ping&) { echoes.fetch_add(1); });
    bus.publish("chain.tmp", ping{});
  });  // tmp unsubscribes at the end of each call, from inside the dispatch
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) bus.publish("chain.start", ping{0});
    });
  std::this_thread::sleep_for(stress_time);
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(echoes.load() > 0);
  CHECK(bus.stats().subscriptions == 1);
}

TEST_CASE("many subscribers per topic, wildcards over many topics, batched unsubscribes, under publishing",
          "[stress][scale]") {
  // Lists grow and are compacted while two threads publish; a handler is never called after
  // the unsubscribe (one by one or through a subscription_set) that ended it returned.
  agentbus::bus bus;
  constexpr int topics = 200;
  std::vector<std::string> names;
  for (int i = 0; i < topics; ++i) names.push_back("scale." + std::to_string(i) + ".t");
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> late_calls{0}, calls{0};
  struct flag {
    std::atomic<bool> ended{false};
  };
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p)
    threads.emplace_back([&, p] {
      std::uint64_t i = static_cast<std::uint64_t>(p);
      auto hot = bus.channel<ping>("scale.hot");
      while (!stop.load(std::memory_order_relaxed)) {
        if (i % 4 == 0) hot.publish(ping{1});
        else bus.publish(names[i % topics], ping{1});
        ++i;
      }
    });
  stop_after clock;
  std::mt19937 rng(11);
  int round = 0;
  while (!clock.done()) {
    std::vector<std::unique_ptr<flag>> flags;
    agentbus::subscription_set set;
    std::vector<agentbus::subscription> singles;
    const int n = 50 + static_cast<int>(rng() % 400);
    for (int k = 0; k < n; ++k) {
      flags.push_back(std::make_unique<flag>());
      flag* f = flags.back().get();
      auto handler = [&, f](const ping&) {
        calls.fetch_add(1, std::memory_order_relaxed);
        if (f->ended.load(std::memory_order_relaxed)) late_calls.fetch_add(1, std::memory_order_relaxed);
      };
      const int kind = static_cast<int>(rng() % 3);
      const std::string pattern = kind == 0   ? std::string("scale.hot")
                                  : kind == 1 ? names[rng() % topics]
                                              : "scale." + std::to_string(rng() % topics) + ".*";
      if (k % 2 == 0) set += bus.subscribe(pattern, handler);
      else singles.push_back(bus.subscribe(pattern, handler));
    }
    // End the singles in a random order, one by one, then the set at once.
    std::vector<std::size_t> order(singles.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t i : order) {
      singles[i].unsubscribe();
      flags[2 * i + 1]->ended.store(true, std::memory_order_relaxed);
    }
    set.clear();
    for (std::size_t i = 0; i < flags.size(); i += 2) flags[i]->ended.store(true, std::memory_order_relaxed);
    ++round;
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(late_calls.load() == 0);
  CHECK(calls.load() > 0);
  CHECK(round > 0);
  CHECK(bus.stats().subscriptions == 0);
}

TEST_CASE("compact subscriptions (handlers kept in list entries) keep the unsubscribe guarantee under publishing",
          "[stress][scale]") {
  // Small handlers on exact topics have no receiver: their list entry is all there is. Lists
  // of a few hot topics grow, are compacted and replaced while two threads publish; each
  // handler's state is freed right after its unsubscribe returns, so a late call is a use
  // after free (ASan, TSan) as well as a counted violation.
  agentbus::bus bus;
  const std::string names[] = {"compact.a", "compact.b", "compact.c"};
  struct counters {
    std::atomic<std::uint64_t> calls{0}, late{0};
  } totals;
  struct state {
    explicit state(counters* t) : totals(t) {}
    counters* totals;
    std::atomic<bool> ended{false};
  };
  auto handler_for = [](state* s) {
    return [s](const ping&) {
      s->totals->calls.fetch_add(1, std::memory_order_relaxed);
      if (s->ended.load(std::memory_order_relaxed)) s->totals->late.fetch_add(1, std::memory_order_relaxed);
    };
  };
  CHECK(agentbus::detail::fits_in_entry<ping, decltype(handler_for(nullptr))>);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p)
    threads.emplace_back([&, p] {
      auto ch = bus.channel<ping>("compact.a");
      for (std::uint64_t i = static_cast<std::uint64_t>(p); !stop.load(std::memory_order_relaxed); ++i) {
        if (i % 3 == 0) ch.publish(ping{1});
        else bus.publish(names[i % 3], ping{1});
      }
    });
  stop_after clock;
  std::mt19937 rng(7);
  int round = 0;
  while (!clock.done()) {
    const int n = 20 + static_cast<int>(rng() % 300);
    std::vector<std::unique_ptr<state>> states;
    std::vector<agentbus::subscription> singles;
    agentbus::subscription_set set;
    for (int k = 0; k < n; ++k) {
      states.push_back(std::make_unique<state>(&totals));
      auto sub = bus.subscribe(names[rng() % 3], handler_for(states.back().get()));
      if (k % 2 == 0) set += std::move(sub);
      else singles.push_back(std::move(sub));
    }
    std::vector<std::size_t> order(singles.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t i : order) {
      singles[i].unsubscribe();
      states[2 * i + 1]->ended.store(true, std::memory_order_relaxed);
      states[2 * i + 1].reset();
    }
    set.clear();
    states.clear();
    ++round;
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(totals.late.load() == 0);
  CHECK(totals.calls.load() > 0);
  CHECK(round > 0);
  CHECK(bus.stats().subscriptions == 0);
}
