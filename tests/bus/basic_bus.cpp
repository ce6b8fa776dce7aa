// SPDX-License-Identifier: MIT
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {
struct order {
  int id = 0;
};
struct invoice {
  int amount = 0;
};
}  // namespace

TEST_CASE("subscribe deduces the event type from the handler", "[bus]") {
  agentbus::bus bus;
  std::vector<int> seen;
  auto a = bus.subscribe("orders.new", [&](const agentbus::event<order>& e) { seen.push_back(e->id); });
  auto b = bus.subscribe("orders.new", [&](const order& o) { seen.push_back(o.id * 10); });
  auto c = bus.subscribe<order>("orders.new", [&](const auto& e) { seen.push_back(e->id * 100); });  // generic: gets event<T>
  const auto r = bus.publish("orders.new", order{1});
  CHECK(r.delivered == 3);
  CHECK(r.failed == 0);
  CHECK(seen == std::vector<int>{1, 10, 100});  // subscription order
}

TEST_CASE("exact and wildcard subscriptions receive what they match", "[bus]") {
  agentbus::bus bus;
  std::vector<std::string> got;
  auto rec = [&](std::string tag) {
    return [&got, tag](const agentbus::event<order>& e) { got.push_back(tag + ":" + std::string(e.topic())); };
  };
  auto s1 = bus.subscribe<order>("tasks.a", rec("exact"));
  auto s2 = bus.subscribe<order>("tasks.*", rec("star"));
  auto s3 = bus.subscribe<order>("tasks.>", rec("gt"));
  auto s4 = bus.subscribe<order>(">", rec("all"));
  auto s5 = bus.subscribe<order>("*.a.*", rec("mid"));

  bus.publish("tasks.a", order{});
  bus.publish("tasks.a.b", order{});
  bus.publish("tasks", order{});
  bus.publish("other.a.z", order{});
  CHECK(got == std::vector<std::string>{"exact:tasks.a", "star:tasks.a", "gt:tasks.a", "all:tasks.a",
                                        "gt:tasks.a.b", "all:tasks.a.b", "mid:tasks.a.b", "all:tasks",
                                        "all:other.a.z", "mid:other.a.z"});
}

TEST_CASE("subscriptions made after a topic is cached still see it", "[bus]") {
  agentbus::bus bus;
  int n = 0;
  bus.publish("late.topic", order{});  // caches the topic with no receivers
  auto s1 = bus.subscribe("late.*", [&](const order&) { ++n; });
  auto s2 = bus.subscribe("late.topic", [&](const order&) { ++n; });
  bus.publish("late.topic", order{});
  CHECK(n == 2);
  s1.unsubscribe();
  bus.publish("late.topic", order{});
  CHECK(n == 3);
}

TEST_CASE("invalid topics and patterns throw topic_error and deliver nothing", "[bus]") {
  agentbus::bus bus;
  int n = 0;
  auto s = bus.subscribe(">", [&](const order&) { ++n; });
  CHECK_THROWS_AS(bus.publish("a..b", order{}), agentbus::topic_error);
  CHECK_THROWS_AS(bus.publish("a.*", order{}), agentbus::topic_error);
  CHECK_THROWS_AS(bus.publish("", order{}), agentbus::topic_error);
  CHECK_THROWS_AS(bus.subscribe("a.b*", [](const order&) {}), agentbus::topic_error);
  CHECK_THROWS_AS(bus.subscribe("a.>.c", [](const order&) {}), agentbus::topic_error);
  CHECK_THROWS_AS(bus.channel<order>("a b"), agentbus::topic_error);
  CHECK(n == 0);
  CHECK(bus.stats().subscriptions == 1);
}

TEST_CASE("typed delivery: a handler for T never receives a U, skips are counted", "[bus]") {
  agentbus::bus bus;
  int orders = 0, invoices = 0;
  auto s1 = bus.subscribe("billing.>", [&](const order&) { ++orders; });
  auto s2 = bus.subscribe("billing.>", [&](const invoice&) { ++invoices; });
  auto r = bus.publish("billing.new", invoice{5});
  CHECK(r.delivered == 1);
  CHECK(invoices == 1);
  CHECK(orders == 0);
  CHECK(bus.stats().type_mismatches == 1);
  bus.publish("billing.new", order{});
  CHECK(orders == 1);
  CHECK(invoices == 1);
  CHECK(bus.stats().type_mismatches == 2);
}

TEST_CASE("the envelope carries options, a per-thread sequence and unique ids", "[bus][concurrency]") {
  agentbus::bus bus;
  std::vector<agentbus::envelope> envs;
  std::vector<std::string> sources;
  auto s = bus.subscribe("t.x", [&](const agentbus::event<order>& e) {
    envs.push_back(e.envelope());
    sources.emplace_back(e.source());
  });
  const agentbus::header hs[] = {{"traceparent", "00-1-2-01"}};
  const auto before = std::chrono::system_clock::now();
  bus.publish("t.x", order{}, {.source = "planner", .correlation_id = 9, .prio = agentbus::priority::high,
                               .ttl = 1s, .headers = hs});
  bus.publish("t.x", order{});
  REQUIRE(envs.size() == 2);
  CHECK(envs[0].topic == "t.x");
  CHECK(sources[0] == "planner");
  CHECK(envs[0].correlation_id == 9);
  CHECK(envs[0].prio == agentbus::priority::high);
  CHECK(envs[0].deadline.has_value());
  CHECK(envs[0].published >= before);
  CHECK(envs[1].sequence == envs[0].sequence + 1);
  CHECK(envs[1].id != envs[0].id);
  CHECK(sources[1].empty());
  CHECK_FALSE(envs[1].deadline.has_value());
  CHECK(envs[1].prio == agentbus::priority::normal);

  // Another thread gets its own id space.
  std::uint64_t other_id = 0;
  std::thread([&] { other_id = bus.publish("t.x", order{}).id; }).join();
  CHECK(other_id != envs[0].id);
  CHECK(other_id != envs[1].id);
  CHECK((other_id >> 40) != (envs[0].id >> 40));
}

TEST_CASE("sequence numbers count per publishing thread, interleaved or not", "[bus][concurrency]") {
  // Two threads publish in lock step; each thread's own envelopes must count 1, 2, 3, ...
  // without gaps, whatever the other thread did in between (a process-wide counter would
  // leave gaps in both).
  agentbus::bus bus;
  std::mutex m;
  std::map<std::uint64_t, std::vector<std::uint64_t>> by_thread;  // id >> 40 -> sequences
  auto s = bus.subscribe("seq.t", [&](const agentbus::event<order>& e) {
    std::lock_guard lock(m);
    by_thread[e.envelope().id >> 40].push_back(e.envelope().sequence);
  });
  constexpr int per_thread = 200;
  std::atomic<int> turn{0};
  auto publisher = [&](int me) {
    for (int i = 0; i < per_thread; ++i) {
      while (turn.load() % 2 != me) std::this_thread::yield();
      (void)bus.publish("seq.t", order{i});
      turn.fetch_add(1);
    }
  };
  std::thread a(publisher, 0), b(publisher, 1);
  a.join();
  b.join();
  REQUIRE(by_thread.size() == 2);
  for (const auto& [thread, seqs] : by_thread) {
    REQUIRE(seqs.size() == static_cast<std::size_t>(per_thread));
    for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] == seqs[i - 1] + 1);
  }
}

TEST_CASE("a throwing handler does not stop delivery, the failure reaches the error hook", "[bus]") {
  agentbus::bus bus;
  std::vector<agentbus::handler_failure> failures;
  std::vector<std::string> messages;
  bus.on_error([&](const agentbus::handler_failure& f) {
    failures.push_back(f);
    messages.push_back(f.message());
  });
  int after = 0;
  auto bad = bus.subscribe("jobs.*", [](const order& o) {
    if (o.id == 1) throw std::runtime_error("handler exploded");
    throw 42;
  });
  auto good = bus.subscribe("jobs.run", [&](const order&) { ++after; });
  auto r = bus.publish("jobs.run", order{1}, {.source = "scheduler"});
  CHECK(r.delivered == 1);
  CHECK(r.failed == 1);
  CHECK(after == 1);
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].subscription_id == bad.id());
  CHECK(failures[0].envelope.topic == "jobs.run");
  CHECK(failures[0].envelope.id == r.id);
  CHECK(messages[0] == "handler exploded");
  bus.publish("jobs.run", order{2});
  CHECK(messages.at(1) == "non-standard exception");
  CHECK(bus.stats().handler_failures == 2);
  CHECK(after == 2);
}

TEST_CASE("a throwing error hook is swallowed and counted", "[bus]") {
  agentbus::bus bus;
  bus.on_error([](const agentbus::handler_failure&) { throw std::runtime_error("hook broke"); });
  auto bad = bus.subscribe("x", [](const order&) { throw std::runtime_error("x"); });
  CHECK_NOTHROW(bus.publish("x", order{}));
  CHECK(bus.stats().handler_failures == 1);
  CHECK(bus.stats().error_hook_failures == 1);
  bus.on_error(nullptr);
  CHECK_NOTHROW(bus.publish("x", order{}));
  CHECK(bus.stats().error_hook_failures == 1);
}

TEST_CASE("subscription handles: RAII, move, detach, unsubscribe is idempotent", "[bus]") {
  agentbus::bus bus;
  int n = 0;
  {
    auto s = bus.subscribe("a", [&](const order&) { ++n; });
    CHECK(s.active());
    bus.publish("a", order{});
  }
  bus.publish("a", order{});
  CHECK(n == 1);

  auto s1 = bus.subscribe("a", [&](const order&) { ++n; });
  agentbus::subscription s2 = std::move(s1);
  CHECK_FALSE(s1.active());
  bus.publish("a", order{});
  CHECK(n == 2);
  s2.unsubscribe();
  s2.unsubscribe();
  bus.publish("a", order{});
  CHECK(n == 2);

  bus.subscribe("a", [&](const order&) { ++n; }).detach();
  bus.publish("a", order{});
  CHECK(n == 3);
  CHECK(bus.stats().subscriptions == 1);
}

TEST_CASE("handles and channels may outlive the bus", "[bus]") {
  int n = 0;
  agentbus::subscription s;
  std::optional<agentbus::channel<order>> ch;
  {
    agentbus::bus bus;
    s = bus.subscribe("a", [&](const order&) { ++n; });
    ch.emplace(bus.channel<order>("a"));
    ch->publish(order{});
    CHECK(n == 1);
  }
  CHECK(ch->publish(order{}).delivered == 0);  // the bus unsubscribed everything
  CHECK(n == 1);
  s.unsubscribe();  // a no-op, not a crash
  CHECK_FALSE(s.active());
}

TEST_CASE("a handle that outlives its bus holds nothing the bus's user gave it", "[bus]") {
  // Handles keep the router's (emptied) tables alive, not the handlers or the error hook.
  auto captured = std::make_shared<int>(0);
  agentbus::subscription sync_handle, kept_by_receiver;
  {
    agentbus::bus bus;
    bus.on_error([captured](const agentbus::handler_failure&) { ++*captured; });
    sync_handle = bus.subscribe("a", [captured](const order&) { ++*captured; });
    kept_by_receiver = bus.subscribe("a.>", [captured](const order&) { ++*captured; });
    CHECK(captured.use_count() == 4);
  }
  CHECK(captured.use_count() == 1);
  sync_handle.unsubscribe();
  kept_by_receiver.unsubscribe();
  CHECK(captured.use_count() == 1);
}

TEST_CASE("handlers may publish, subscribe and unsubscribe during dispatch", "[bus][reentrancy]") {
  agentbus::bus bus;
  std::vector<std::string> log;
  agentbus::subscription self, other, added;
  int depth = 0;

  other = bus.subscribe("r.x", [&](const order& o) { log.push_back("other " + std::to_string(o.id)); });
  self = bus.subscribe("r.x", [&](const order& o) {
    log.push_back("self " + std::to_string(o.id));
    if (o.id == 1) {
      // Publish recursively (to the same topic), subscribe a new handler, unsubscribe ourselves
      // and another handler that comes later in this very dispatch.
      if (depth++ == 0) bus.publish("r.x", order{2});
      added = bus.subscribe("r.x", [&](const order& p) { log.push_back("added " + std::to_string(p.id)); });
      self.unsubscribe();
      other.unsubscribe();
    }
  });
  // Swap the order: "self" was subscribed after "other", so make other run later by re-subscribing it.
  other.unsubscribe();
  other = bus.subscribe("r.x", [&](const order& o) { log.push_back("other " + std::to_string(o.id)); });

  bus.publish("r.x", order{1});
  // During the dispatch of 1: self ran, published 2 (self saw 2, other saw 2), then subscribed
  // "added" (not called for event 1) and unsubscribed self and other (other is not called for 1).
  CHECK(log == std::vector<std::string>{"self 1", "self 2", "other 2"});
  log.clear();
  bus.publish("r.x", order{3});
  CHECK(log == std::vector<std::string>{"added 3"});
  CHECK(bus.stats().subscriptions == 1);
}

TEST_CASE("a handler unsubscribing itself keeps running its current call safely", "[bus][reentrancy]") {
  agentbus::bus bus;
  agentbus::subscription s;
  auto payload = std::make_shared<int>(5);
  int seen = 0;
  s = bus.subscribe("q", [&, payload](const order&) {
    s.unsubscribe();   // our closure (and `payload`) must stay alive until this call returns
    seen += *payload;  // ASan would flag a use after free here
  });
  bus.publish("q", order{});
  bus.publish("q", order{});
  CHECK(seen == 5);
}

TEST_CASE("unsubscribe waits for a call running on another thread", "[bus][quiescence][concurrency]") {
  agentbus::bus bus;
  std::atomic<bool> entered{false}, finished{false};
  auto s = bus.subscribe("slow", [&](const order&) {
    entered = true;
    std::this_thread::sleep_for(50ms);
    finished = true;
  });
  std::thread publisher([&] { bus.publish("slow", order{}); });
  while (!entered) std::this_thread::yield();
  s.unsubscribe();
  CHECK(finished);  // unsubscribe returned only after the running call had finished
  publisher.join();
}

TEST_CASE("the bus counts subscriptions and cached topics", "[bus]") {
  agentbus::bus bus;
  auto s1 = bus.subscribe("a.b", [](const order&) {});
  auto s2 = bus.subscribe("a.*", [](const order&) {});
  bus.publish("a.c", order{});
  bus.publish("a.c", order{});
  const auto st = bus.stats();
  CHECK(st.subscriptions == 2);
  CHECK(st.cached_topics == 2);  // "a.b" (created at subscribe) and "a.c"
  CHECK(st.handler_failures == 0);
}

TEST_CASE("publishing beyond the topic cache still delivers (uncached path)", "[bus]") {
  constexpr std::size_t cache = 64;
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = cache});
  std::uint64_t sum = 0;
  auto s = bus.subscribe("many.>", [&](const order& o) { sum += static_cast<std::uint64_t>(o.id); });
  // Channels keep their topics cached (a topic nothing anchors would be reclaimed for room).
  std::vector<agentbus::channel<order>> pins;
  for (std::size_t i = 0; i < cache; ++i) pins.push_back(bus.channel<order>("many." + std::to_string(i)));
  for (const auto& ch : pins) ch.publish(order{1});
  CHECK(bus.stats().cached_topics == cache);
  CHECK(sum == cache);
  const auto r = bus.publish("many.extra.topic", order{7});
  CHECK(r.delivered == 1);
  CHECK(sum == cache + 7);
  CHECK(bus.stats().uncached_publishes == 1);
  CHECK(bus.stats().cached_topics == cache);
  CHECK_THROWS_AS(bus.publish("many..bad", order{}), agentbus::topic_error);
  // Channels pin their topic even when the cache is full.
  auto ch = bus.channel<order>("many.pinned");
  CHECK(ch.publish(order{1}).delivered == 1);
}

TEST_CASE("the default topic cache holds 65 536 topics", "[bus]") {
  STATIC_REQUIRE(agentbus::bus_options{}.max_cached_topics == 65536);
}

TEST_CASE("basic_bus accepts the shipped policies", "[bus]") {
  STATIC_REQUIRE(std::is_same_v<agentbus::bus, agentbus::basic_bus<agentbus::storage::none, agentbus::transport::in_process>>);
  STATIC_REQUIRE(agentbus::storage_policy<agentbus::storage::none>);
  STATIC_REQUIRE(agentbus::transport_policy<agentbus::transport::in_process>);
  STATIC_REQUIRE_FALSE(agentbus::storage_policy<int>);
  STATIC_REQUIRE_FALSE(agentbus::transport_policy<agentbus::storage::none>);
}
