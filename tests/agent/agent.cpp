// SPDX-License-Identifier: MIT
#include <agentbus/agent/agent.hpp>
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/copy_counter.hpp"

using namespace std::chrono_literals;
using agentbus::test::copy_counter;

namespace {
struct job {
  int n = 0;
};

// Waits (bounded) until `pred` holds.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}
}  // namespace

TEST_CASE("a pumped agent handles its mailbox in poll(), not in publish()", "[agent]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  std::vector<int> got;
  auto s = worker.subscribe(bus, "jobs.*", [&](const job& j) { got.push_back(j.n); });
  auto r = bus.publish("jobs.a", job{1});
  CHECK(r.delivered == 1);  // queued
  bus.publish("jobs.b", job{2});
  CHECK(got.empty());
  CHECK(worker.stats().depth == 2);
  CHECK(worker.poll() == 2);
  CHECK(got == std::vector<int>{1, 2});
  CHECK(worker.stats().handled == 2);
  CHECK(worker.poll() == 0);
}

TEST_CASE("mailbox delivery shares one block: no copy per receiver, rvalues are moved", "[agent][zero-copy]") {
  agentbus::bus bus;
  agentbus::agent a("a"), b("b");
  std::vector<const copy_counter*> seen;
  auto s1 = a.subscribe(bus, "z", [&](const copy_counter& c) { seen.push_back(&c); });
  auto s2 = b.subscribe(bus, "z", [&](const copy_counter& c) { seen.push_back(&c); });
  auto s3 = bus.subscribe("z", [&](const copy_counter& c) { seen.push_back(&c); });  // synchronous, same block
  copy_counter::reset();
  bus.publish("z", copy_counter{5});
  CHECK(copy_counter::copies == 0);
  CHECK(copy_counter::moves == 1);  // once, into the shared block
  a.poll();
  b.poll();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == seen[1]);
  CHECK(seen[1] == seen[2]);
  copy_counter::reset();
  const copy_counter lvalue{6};
  bus.publish("z", lvalue);
  CHECK(copy_counter::copies == 1);  // an lvalue is copied once, whatever the number of mailboxes
  a.poll();
  b.poll();
}

TEST_CASE("move-only payloads reach mailboxes when published as rvalues", "[agent][zero-copy]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  int sum = 0;
  auto s = a.subscribe(bus, "mo", [&](const std::unique_ptr<int>& p) { sum += *p; });
  bus.publish("mo", std::make_unique<int>(4));
  const auto lvalue = std::make_unique<int>(1);
  CHECK_THROWS_AS(bus.publish("mo", lvalue), std::logic_error);  // would need a copy
  a.poll();
  CHECK(sum == 4);
}

TEST_CASE("an agent with its own thread runs handlers there, in order", "[agent][concurrency]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  std::vector<int> got;
  std::thread::id handler_thread;
  auto s = worker.subscribe(bus, "seq", [&](const job& j) {
    got.push_back(j.n);
    handler_thread = std::this_thread::get_id();
  });
  worker.start();
  for (int i = 0; i < 1000; ++i) bus.publish("seq", job{i});
  worker.stop(agentbus::stop_mode::drain);
  REQUIRE(got.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
  CHECK(handler_thread != std::this_thread::get_id());
  CHECK_THROWS_AS(worker.start(), std::logic_error);
  CHECK_THROWS_AS(worker.poll(), std::logic_error);
}

TEST_CASE("high priority events are handled before normal and low ones", "[agent][priority]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  std::vector<std::string> order;
  auto s = a.subscribe(bus, "p", [&](const agentbus::event<job>& e) {
    order.push_back(std::to_string(e->n) + (e.priority() == agentbus::priority::high  ? "h"
                                            : e.priority() == agentbus::priority::low ? "l"
                                                                                      : "n"));
  });
  bus.publish("p", job{1}, {.prio = agentbus::priority::low});
  bus.publish("p", job{2});
  bus.publish("p", job{3}, {.prio = agentbus::priority::high});
  bus.publish("p", job{4});
  bus.publish("p", job{5}, {.prio = agentbus::priority::high});
  a.poll();
  CHECK(order == std::vector<std::string>{"3h", "5h", "2n", "4n", "1l"});
}

TEST_CASE("events whose deadline passed in the mailbox are not handled, counted and reported", "[agent][ttl]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  std::vector<int> got;
  struct lost_event {
    agentbus::undelivered_reason reason;
    std::string mailbox, topic;  // copies: the report's views live only during the hook call
  };
  std::vector<lost_event> lost;
  a.on_undelivered([&](const agentbus::undelivered& u) {
    lost.push_back({u.reason, std::string(u.mailbox), std::string(u.envelope.topic)});
  });
  auto s = a.subscribe(bus, "t", [&](const job& j) { got.push_back(j.n); });
  bus.publish("t", job{1}, {.ttl = 1ms});
  bus.publish("t", job{2}, {.ttl = 10s});
  bus.publish("t", job{3});
  std::this_thread::sleep_for(5ms);
  a.poll();
  CHECK(got == std::vector<int>{2, 3});
  CHECK(a.stats().expired == 1);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].reason == agentbus::undelivered_reason::expired);
  CHECK(lost[0].mailbox == "a");
  CHECK(lost[0].topic == "t");
}

TEST_CASE("overflow::fail refuses at once and publish reports it", "[agent][backpressure]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 4, .overflow = agentbus::overflow::fail});
  std::vector<agentbus::undelivered_reason> lost;
  a.on_undelivered([&](const agentbus::undelivered& u) { lost.push_back(u.reason); });
  auto s = a.subscribe(bus, "f", [](const job&) {});
  for (int i = 0; i < 4; ++i) CHECK(bus.publish("f", job{i}).rejected == 0);
  const auto r = bus.publish("f", job{9});
  CHECK(r.rejected == 1);
  CHECK(r.delivered == 0);
  CHECK(a.stats().rejected == 1);
  CHECK(lost == std::vector{agentbus::undelivered_reason::rejected});
  CHECK(a.poll() == 4);
}

TEST_CASE("overflow::drop_newest drops the new event, counted", "[agent][backpressure]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 2, .overflow = agentbus::overflow::drop_newest});
  std::vector<int> got;
  auto s = a.subscribe(bus, "d", [&](const job& j) { got.push_back(j.n); });
  for (int i = 0; i < 5; ++i) bus.publish("d", job{i});
  a.poll();
  CHECK(got == std::vector<int>{0, 1});
  CHECK(a.stats().dropped_newest == 3);
}

TEST_CASE("overflow::drop_oldest keeps the newest events, counted", "[agent][backpressure]") {
  agentbus::bus bus;
  agentbus::agent a("a", {.capacity = 2, .overflow = agentbus::overflow::drop_oldest});
  std::vector<int> got, dropped;
  a.on_undelivered([&](const agentbus::undelivered& u) {
    if (u.reason == agentbus::undelivered_reason::dropped_oldest) dropped.push_back(static_cast<int>(u.envelope.sequence));
  });
  auto s = a.subscribe(bus, "d", [&](const job& j) { got.push_back(j.n); });
  for (int i = 0; i < 5; ++i) CHECK(bus.publish("d", job{i}).delivered == 1);
  a.poll();
  CHECK(got == std::vector<int>{3, 4});
  CHECK(a.stats().dropped_oldest == 3);
  CHECK(dropped.size() == 3);
}

TEST_CASE("overflow::block waits for room, with a timeout it gives up and counts", "[agent][backpressure][concurrency]") {
  agentbus::bus bus;
  SECTION("blocks until the consumer makes room") {
    agentbus::agent a("a", {.capacity = 2, .overflow = agentbus::overflow::block});
    std::atomic<int> handled{0};
    auto s = a.subscribe(bus, "b", [&](const job&) { handled++; });
    bus.publish("b", job{});
    bus.publish("b", job{});
    std::atomic<bool> third_done{false};
    std::thread publisher([&] {
      bus.publish("b", job{});  // full: waits
      third_done = true;
    });
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(third_done);
    a.poll(1);  // room for one
    publisher.join();
    CHECK(third_done);
    a.poll();
    CHECK(handled == 3);
  }
  SECTION("times out") {
    agentbus::agent a("a", {.capacity = 1, .overflow = agentbus::overflow::block, .block_timeout = 5ms});
    auto s = a.subscribe(bus, "b", [](const job&) {});
    bus.publish("b", job{});
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = bus.publish("b", job{});
    CHECK(std::chrono::steady_clock::now() - t0 >= 5ms);
    CHECK(r.rejected == 1);
    CHECK(a.stats().rejected == 1);
  }
}

TEST_CASE("stop(drain) handles what is queued, stop(discard) counts what it drops", "[agent][shutdown][concurrency]") {
  agentbus::bus bus;
  SECTION("drain") {
    agentbus::agent a("a");
    int n = 0;
    auto s = a.subscribe(bus, "s", [&](const job&) { ++n; });
    for (int i = 0; i < 10; ++i) bus.publish("s", job{});
    a.stop(agentbus::stop_mode::drain);
    CHECK(n == 10);
    CHECK(bus.publish("s", job{}).rejected == 1);  // closed
    CHECK(a.stats().closed == 1);
  }
  SECTION("discard") {
    agentbus::agent a("a");
    int n = 0;
    std::vector<agentbus::undelivered_reason> lost;
    a.on_undelivered([&](const agentbus::undelivered& u) { lost.push_back(u.reason); });
    auto s = a.subscribe(bus, "s", [&](const job&) { ++n; });
    for (int i = 0; i < 10; ++i) bus.publish("s", job{});
    a.stop(agentbus::stop_mode::discard);
    CHECK(n == 0);
    CHECK(a.stats().discarded == 10);
    CHECK(lost.size() == 10);
  }
  SECTION("threaded drain") {
    agentbus::agent a("a");
    std::atomic<int> n{0};
    auto s = a.subscribe(bus, "s", [&](const job&) {
      std::this_thread::sleep_for(100us);
      ++n;
    });
    a.start();
    for (int i = 0; i < 50; ++i) bus.publish("s", job{});
    a.stop(agentbus::stop_mode::drain);
    CHECK(n == 50);
  }
}

TEST_CASE("destroying an agent ends its subscriptions and never calls its handler afterwards", "[agent][shutdown][concurrency]") {
  // The handler is slow and events keep coming while the agent is destroyed: the destructor
  // must wait for a running handler, and no call may start afterwards. With an executor the
  // workers outlive the agent, so a call after destruction would be seen here (the count
  // would move); every event published is handled, or counted and reported.
  for (bool pooled : {false, true}) {
    INFO((pooled ? "executor" : "own thread"));
    agentbus::bus bus;
    agentbus::executor pool({.threads = 2});
    struct shared_state {
      std::atomic<int> calls{0};
      std::atomic<int> inside{0};
      std::atomic<int> undelivered{0};
    };
    auto state = std::make_shared<shared_state>();
    agentbus::subscription kept;
    std::atomic<bool> publishing{true};
    std::atomic<int> published{0};
    std::thread publisher;
    {
      auto a = pooled ? std::make_unique<agentbus::agent>("a", pool) : std::make_unique<agentbus::agent>("a");
      a->on_undelivered([state](const agentbus::undelivered&) { ++state->undelivered; });
      kept = a->subscribe(bus, "x", [state](const job&) {
        ++state->inside;
        std::this_thread::sleep_for(200us);
        ++state->calls;
        --state->inside;
      });
      if (!pooled) a->start();
      publisher = std::thread([&] {
        while (publishing.load()) {
          bus.publish("x", job{});
          ++published;
        }
      });
      REQUIRE(eventually([&] { return state->calls.load() >= 5; }));
      a.reset();  // while the handler is busy and the publisher goes on
      CHECK(state->inside.load() == 0);  // a running handler was waited for
    }
    const int after = state->calls.load();
    std::this_thread::sleep_for(20ms);  // a stray call would land here
    CHECK(state->calls.load() == after);
    CHECK(state->inside.load() == 0);
    publishing.store(false);
    publisher.join();
    CHECK(bus.publish("x", job{}).delivered == 0);  // the subscription is gone
    CHECK(bus.stats().subscriptions == 0);
    kept.unsubscribe();  // harmless
    // Published while subscribed: handled or reported (discarded at destruction); the rest
    // found no subscription at all.
    CHECK(after + state->undelivered.load() <= published.load());
    CHECK(state->undelivered.load() > 0);  // 200 us handlers cannot keep up with the publisher
  }
}

TEST_CASE("stop() while a publisher is blocked on the full mailbox: the event counts as closed, not rejected", "[agent][shutdown][backpressure][concurrency]") {
  agentbus::bus bus;
  for (auto how : {agentbus::stop_mode::drain, agentbus::stop_mode::discard})
    for (auto timeout : {std::chrono::nanoseconds::max(), std::chrono::nanoseconds(std::chrono::seconds(30))}) {
      INFO((how == agentbus::stop_mode::drain ? "drain" : "discard") << ", timeout " << (timeout == std::chrono::nanoseconds::max() ? "none" : "30 s"));
      agentbus::agent a("a", {.capacity = 2, .overflow = agentbus::overflow::block, .block_timeout = timeout});
      std::vector<agentbus::undelivered_reason> lost;
      std::mutex lost_mutex;
      a.on_undelivered([&](const agentbus::undelivered& u) {
        std::lock_guard lock(lost_mutex);
        lost.push_back(u.reason);
      });
      int handled = 0;
      auto s = a.subscribe(bus, "b", [&](const job&) { ++handled; });
      CHECK(bus.publish("b", job{}).delivered == 1);
      CHECK(bus.publish("b", job{}).delivered == 1);
      std::atomic<bool> done{false};
      agentbus::publish_result blocked{};
      std::thread publisher([&] {
        blocked = bus.publish("b", job{});  // full: waits
        done = true;
      });
      std::this_thread::sleep_for(20ms);
      CHECK_FALSE(done.load());
      a.stop(how);  // wakes the blocked publisher: refused because the mailbox closed
      publisher.join();
      CHECK(blocked.delivered == 0);
      CHECK(blocked.rejected == 1);
      const auto st = a.stats();
      CHECK(st.closed == 1);
      CHECK(st.rejected == 0);
      CHECK(st.queued == 2);
      CHECK(st.depth == 0);
      if (how == agentbus::stop_mode::drain) {
        CHECK(handled == 2);
        CHECK(lost == std::vector<agentbus::undelivered_reason>{agentbus::undelivered_reason::closed});
      } else {
        CHECK(handled == 0);
        CHECK(st.discarded == 2);
        std::sort(lost.begin(), lost.end());
        auto want = std::vector<agentbus::undelivered_reason>{agentbus::undelivered_reason::discarded,
                                                              agentbus::undelivered_reason::discarded,
                                                              agentbus::undelivered_reason::closed};
        std::sort(want.begin(), want.end());
        CHECK(lost == want);
      }
    }
}

TEST_CASE("unsubscribe of a mailbox subscriber: queued events are not handled afterwards", "[agent]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  int n = 0;
  std::vector<agentbus::undelivered_reason> lost;
  std::vector<std::string> topics;
  a.on_undelivered([&](const agentbus::undelivered& u) {
    lost.push_back(u.reason);
    topics.emplace_back(u.envelope.topic);
  });
  auto s = a.subscribe(bus, "u", [&](const job&) { ++n; });
  bus.publish("u", job{});
  bus.publish("u", job{});
  s.unsubscribe();
  a.poll();
  CHECK(n == 0);
  CHECK(a.stats().unsubscribed == 2);
  CHECK(lost == std::vector<agentbus::undelivered_reason>(2, agentbus::undelivered_reason::unsubscribed));
  CHECK(topics == std::vector<std::string>{"u", "u"});
  CHECK(agentbus::describe(agentbus::undelivered_reason::unsubscribed) == "subscription ended while queued");
}

TEST_CASE("a throwing mailbox handler is counted and reported to the bus's error hook", "[agent]") {
  agentbus::bus bus;
  agentbus::agent a("a");
  std::vector<std::string> errors;
  bus.on_error([&](const agentbus::handler_failure& f) { errors.push_back(f.message()); });
  int after = 0;
  auto s1 = a.subscribe(bus, "e", [](const job&) { throw std::runtime_error("agent handler failed"); });
  auto s2 = a.subscribe(bus, "e", [&](const job&) { ++after; });
  bus.publish("e", job{});
  a.poll();
  CHECK(after == 1);
  CHECK(a.stats().failed == 1);
  CHECK(errors == std::vector<std::string>{"agent handler failed"});
  CHECK(bus.stats().handler_failures == 1);
}

TEST_CASE("an executor runs many agents, one handler at a time per agent", "[agent][executor][concurrency]") {
  agentbus::executor pool({.threads = 2, .batch = 8});
  agentbus::bus bus;
  constexpr int agents = 6, events = 300;
  std::vector<std::unique_ptr<agentbus::agent>> crew;
  std::vector<agentbus::subscription> subs;
  struct per_agent {
    std::atomic<int> running{0};
    std::atomic<int> overlaps{0};
    std::vector<int> seen;
  };
  std::vector<per_agent> state(agents);
  for (int i = 0; i < agents; ++i) {
    crew.push_back(std::make_unique<agentbus::agent>("agent" + std::to_string(i), pool));
    subs.push_back(crew.back()->subscribe(bus, "work." + std::to_string(i), [&st = state[static_cast<std::size_t>(i)]](const job& j) {
      if (st.running.fetch_add(1) != 0) st.overlaps++;
      st.seen.push_back(j.n);
      st.running.fetch_sub(1);
    }));
  }
  std::vector<std::thread> publishers;
  for (int p = 0; p < 2; ++p)
    publishers.emplace_back([&, p] {
      for (int e = 0; e < events; ++e)
        for (int i = 0; i < agents; ++i)
          if (i % 2 == p) bus.publish("work." + std::to_string(i), job{e});
    });
  for (auto& t : publishers) t.join();
  for (auto& a : crew) a->stop(agentbus::stop_mode::drain);
  for (auto& st : state) {
    CHECK(st.overlaps == 0);
    REQUIRE(st.seen.size() == static_cast<std::size_t>(events));
    for (int e = 0; e < events; ++e) CHECK(st.seen[static_cast<std::size_t>(e)] == e);  // per-agent order kept
  }
}

TEST_CASE("a slow agent does not delay others on the same executor", "[agent][executor][concurrency]") {
  agentbus::executor pool({.threads = 2, .batch = 4});
  agentbus::bus bus;
  agentbus::agent slow("slow", pool), fast("fast", pool);
  std::atomic<int> fast_done{0};
  std::atomic<bool> release{false};
  auto s1 = slow.subscribe(bus, "slow", [&](const job&) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  auto s2 = fast.subscribe(bus, "fast", [&](const job&) { fast_done++; });
  for (int i = 0; i < 20; ++i) bus.publish("slow", job{});
  for (int i = 0; i < 100; ++i) bus.publish("fast", job{});
  // The slow agent holds one worker; the other keeps serving the fast agent.
  CHECK(eventually([&] { return fast_done.load() == 100; }));
  release = true;
  slow.stop(agentbus::stop_mode::discard);
  fast.stop();
}

TEST_CASE("run_for pumps events as they arrive and returns at its deadline", "[agent][concurrency]") {
  agentbus::bus bus;
  agentbus::agent a("loop");
  std::atomic<int> n{0};
  auto s = a.subscribe(bus, "tick", [&](const job&) { n++; });
  std::thread producer([&] {
    for (int i = 0; i < 20; ++i) {
      bus.publish("tick", job{i});
      std::this_thread::sleep_for(1ms);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t handled = 0;
  while (handled < 20 && std::chrono::steady_clock::now() - t0 < 5s) handled += a.run_for(10ms);
  producer.join();
  CHECK(handled == 20);
  CHECK(n == 20);
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(a.run_for(5ms) == 0);
  CHECK(std::chrono::steady_clock::now() - t1 >= 5ms);
}

TEST_CASE("an executor refuses more agents than it can schedule", "[agent][executor][concurrency]") {
  agentbus::executor pool({.threads = 1, .max_agents = 2});
  agentbus::agent a("a", pool), b("b", pool);
  CHECK_THROWS_AS(agentbus::agent("c", pool), std::length_error);
  CHECK_THROWS_AS(agentbus::executor({.threads = 0}), std::invalid_argument);
  // Exactly max_agents, not the run queue's capacity (a power of two): 3 took 4, 5 took 8.
  agentbus::executor three({.threads = 1, .max_agents = 3});
  agentbus::agent x("x", three), y("y", three), z("z", three);
  CHECK_THROWS_AS(agentbus::agent("w", three), std::length_error);
  CHECK_THROWS_AS(agentbus::executor({.max_agents = 0}), std::invalid_argument);
}

TEST_CASE("agent: subscriptions ended one by one leave its books (churned reply routes do not pile up)", "[agent]") {
  agentbus::bus bus;
  agentbus::agent worker("churner");
  auto keep = worker.subscribe(bus, "churn.keep", [](const int&) {});
  CHECK(worker.stats().subscriptions == 1);
  for (int i = 0; i < 1000; ++i) {
    auto route = worker.subscribe(bus, "churn.route." + std::to_string(i), [](const int&) {});
    CHECK(worker.stats().subscriptions == 2);
  }  // each route ends here
  CHECK(worker.stats().subscriptions == 1);
  keep.unsubscribe();
  CHECK(worker.stats().subscriptions == 0);
  // A subscription still live when the agent goes is ended by the agent (and counted till then).
  auto late = worker.subscribe(bus, "churn.late", [](const int&) {});
  CHECK(worker.stats().subscriptions == 1);
}

TEST_CASE("start() racing stop() or poll() on other threads: one consumer, and the thread is joined",
          "[agent][shutdown][concurrency]") {
  // stop() read the mode before start() had changed it: it drained on its own thread while the
  // new one consumed too, and never joined it (std::terminate in the destructor); a poll() that
  // had passed its mode check ran beside the new thread.
  for (int round = 0; round < 400; ++round) {
    agentbus::bus bus;
    agentbus::agent a("racer");
    std::atomic<int> inside{0}, overlaps{0}, handled{0};
    auto sub = a.subscribe(bus, "race.x", [&](const job&) {
      if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
      std::this_thread::yield();
      inside.fetch_sub(1);
      handled.fetch_add(1);
    });
    for (int i = 0; i < 20; ++i) bus.publish("race.x", job{i});
    std::atomic<int> go{0};
    std::thread starter([&] {
      go.fetch_add(1);
      while (go.load() < 3) {
      }
      try {
        a.start();
      } catch (const std::logic_error&) {  // stopped first
      }
    });
    std::thread poller([&] {
      go.fetch_add(1);
      while (go.load() < 3) {
      }
      try {
        for (int i = 0; i < 50; ++i) (void)a.poll(1);
      } catch (const std::logic_error&) {  // started first
      }
    });
    go.fetch_add(1);
    while (go.load() < 3) {
    }
    if (round % 2 == 0) a.stop();
    starter.join();
    poller.join();
    a.stop();
    CHECK(overlaps.load() == 0);
    CHECK(handled.load() == 20);
  }
}

TEST_CASE("a handler on an executor stops another agent of the same executor without hanging",
          "[agent][executor][shutdown][concurrency]") {
  // stop() waited for the stopped agent's queued turn, which the one worker, busy in this very
  // handler, could never run.
  agentbus::executor pool({.threads = 1});
  agentbus::bus bus;
  agentbus::agent worker("worker", pool), supervisor("supervisor", pool);
  std::atomic<int> worked{0};
  std::atomic<bool> stopped{false};
  auto work = worker.subscribe(bus, "team.work", [&](const job&) { worked.fetch_add(1); });
  auto stop = supervisor.subscribe(bus, "team.stop", [&](const int&) {
    worker.stop();  // drain: the queued work is handled first, here
    stopped = true;
  });
  bus.publish("team.stop", 1);
  for (int i = 0; i < 5; ++i) bus.publish("team.work", job{i});  // queued behind the supervisor's turn
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!stopped.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  REQUIRE(stopped.load());
  CHECK(worked.load() + worker.stats().closed == 5);  // handled, or published after the close
}
