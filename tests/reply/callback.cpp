// SPDX-License-Identifier: MIT
// Requests on an injected clock (timeouts with manual_clock::advance, no sleeping) and the
// callback form of request(): reply, timeout, no_responders, cancel, each exactly once, on
// the thread the header says, and everything released afterwards.
#include <agentbus/agentbus.hpp>
#include <agentbus/core/clock.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "reply/holding_server.hpp"
#include "support/eventually.hpp"

using namespace std::chrono_literals;

namespace callback_test {

struct ask {
  std::string what;
};
struct answer {
  std::string text;
};

using timer = agentbus::detail::request_timer;
using answer_server = agentbus::test::holding_server<ask, answer>;

// Waits until the request timer of `clock` sleeps on it again after `advance`d it: the timer
// has then seen the new time (and fired what was due).
void advance_and_settle(agentbus::manual_clock& clock, agentbus::clock_source::duration by) {
  const auto passes = timer::of(&clock).passes();
  clock.advance(by);
  REQUIRE(agentbus::test::eventually([&] { return timer::of(&clock).passes() > passes && clock.waiting() > 0; }));
}

// A bus and a manual clock: what most tests here start with.
struct clock_rig {
  agentbus::bus bus;
  agentbus::manual_clock clock;
};

// What a callback saw.
struct seen {
  std::atomic<int> calls{0};
  std::optional<agentbus::request_errc> error;  // written before calls is bumped
  std::string text;
  std::atomic<std::thread::id> thread{};
};

auto recorder(seen& s) {
  return [&s](agentbus::reply_result<answer> r) {
    if (r)
      s.text = r->text;
    else
      s.error = r.error().code();
    s.thread = std::this_thread::get_id();
    s.calls.fetch_add(1, std::memory_order_release);
  };
}

}  // namespace callback_test

using namespace callback_test;

TEST_CASE_METHOD(clock_rig, "request on a manual clock: the future times out when the clock is advanced, not before",
                 "[reply][clock][concurrency]") {
  answer_server held(bus, "clock.slow");
  const auto timeouts = agentbus::request_reply_stats().timeouts;
  auto reply = agentbus::request<answer>(bus, "clock.slow", ask{"x"}, 50ms, {.clock = &clock});
  CHECK_FALSE(reply.ready());
  clock.advance(49ms);
  CHECK_FALSE(reply.ready());  // 1 ms short: whatever real time has passed

  std::optional<agentbus::request_errc> got;
  std::thread waiter([&] {
    try {
      (void)reply.get();
    } catch (const agentbus::request_error& e) {
      got = e.code();
    }
  });
  REQUIRE(agentbus::test::eventually([&] { return clock.waiting() == 1; }));  // get() sleeps on the clock
  clock.advance(1ms);
  waiter.join();
  CHECK(got == agentbus::request_errc::timeout);
  CHECK(agentbus::request_reply_stats().timeouts == timeouts + 1);
  REQUIRE(held.size() == 1);
  CHECK_FALSE(held[0].reply(answer{"late"}));
}

TEST_CASE_METHOD(clock_rig, "request on a manual clock: ready() and get() without another thread", "[reply][clock]") {
  answer_server held(bus, "clock.held");
  auto reply = agentbus::request<answer>(bus, "clock.held", ask{"x"}, 10s, {.clock = &clock});
  clock.advance(10s);
  CHECK(reply.ready());
  CHECK_THROWS_AS(reply.get(), agentbus::request_error);

  // A reply before the deadline is taken as usual; publish options still apply.
  std::string source;
  auto named = agentbus::serve<ask, answer>(bus, "clock.named", [&](const agentbus::event<ask>& ev) {
    source = std::string(ev.source());
    return answer{"ok"};
  });
  CHECK(agentbus::request<answer>(bus, "clock.named", ask{"x"}, 1s, {.clock = &clock, .publish = {.source = "tester"}})
            .get()
            .text == "ok");
  CHECK(source == "tester");

  // request_all on the clock: what came by the deadline.
  auto a = agentbus::serve<ask, answer>(bus, "clock.gather", [](const ask&) { return answer{"a"}; });
  auto all = agentbus::request_all<answer>(bus, "clock.gather", ask{"x"}, 3, 1s, {.clock = &clock});
  clock.advance(1s);
  CHECK(all.get().size() == 1);
}

TEST_CASE("callback request: a synchronous server's reply runs the callback inside request(), once",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  auto server = agentbus::serve<ask, answer>(bus, "cb.sync", [](const ask& a) { return answer{"re: " + a.what}; });
  seen s;
  const auto waiting = agentbus::request_reply_stats().waiting;
  auto handle = agentbus::request<answer>(bus, "cb.sync", ask{"hello"}, 1s, recorder(s));
  CHECK(s.calls == 1);
  CHECK(s.text == "re: hello");
  CHECK(s.thread.load() == std::this_thread::get_id());
  CHECK(handle.done());
  CHECK(agentbus::request_reply_stats().waiting == waiting);
  CHECK(timer::of(nullptr).armed() == 0);  // released: nothing left on the steady timer
  handle.cancel();                         // after the end: nothing happens
  CHECK(s.calls == 1);
}

TEST_CASE("callback request: a reply from an agent runs the callback on the agent's thread",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  std::atomic<std::thread::id> server_thread{};
  auto server = agentbus::serve<ask, answer>(
      bus, "cb.async",
      [&](const ask& a) {
        server_thread = std::this_thread::get_id();
        return answer{a.what};
      },
      agentbus::async(worker));
  worker.start();
  seen s;
  auto handle = agentbus::request<answer>(bus, "cb.async", ask{"x"}, 5s, recorder(s));
  REQUIRE(agentbus::test::eventually([&] { return s.calls.load(std::memory_order_acquire) == 1; }));
  CHECK(s.text == "x");
  CHECK(s.thread.load() == server_thread.load());
  CHECK(s.thread.load() != std::this_thread::get_id());
  worker.stop();
  CHECK(s.calls == 1);
}

TEST_CASE("callback request: no server is no_responders, inside request()", "[reply][callback][concurrency]") {
  agentbus::bus bus;
  seen s;
  auto handle = agentbus::request<answer>(bus, "cb.nobody", ask{"x"}, 1s, recorder(s));
  CHECK(s.calls == 1);
  CHECK(s.error == agentbus::request_errc::no_responders);
  CHECK(handle.done());
  CHECK(timer::of(nullptr).armed() == 0);
}

TEST_CASE_METHOD(clock_rig,
                 "callback request: the timeout fires on the timer thread when the manual clock passes the deadline",
                 "[reply][callback][clock][concurrency]") {
  answer_server held(bus, "cb.slow");
  const auto before = agentbus::request_reply_stats();
  seen s;
  auto handle = agentbus::request<answer>(bus, "cb.slow", ask{"x"}, 50ms, {.clock = &clock}, recorder(s));
  CHECK(timer::of(&clock).armed() == 1);
  REQUIRE(agentbus::test::eventually([&] { return clock.waiting() == 1; }));  // the timer sleeps on the clock

  advance_and_settle(clock, 49ms);
  CHECK(s.calls == 0);  // the timer has seen 49 ms: not due
  CHECK_FALSE(handle.done());

  clock.advance(1ms);
  REQUIRE(agentbus::test::eventually([&] { return s.calls.load(std::memory_order_acquire) == 1; }));
  CHECK(s.error == agentbus::request_errc::timeout);
  CHECK(s.thread.load() != std::this_thread::get_id());  // the timer's thread
  CHECK(handle.done());
  CHECK(timer::of(&clock).armed() == 0);
  const auto after = agentbus::request_reply_stats();
  CHECK(after.timeouts == before.timeouts + 1);
  CHECK(after.waiting == before.waiting);  // the request left the table
  REQUIRE(held.size() == 1);
  CHECK_FALSE(held[0].reply(answer{"late"}));  // dropped, counted
  CHECK(agentbus::request_reply_stats().late_replies == before.late_replies + 1);
  handle.cancel();
  CHECK(s.calls == 1);  // exactly once
}

TEST_CASE_METHOD(clock_rig, "callback request: several deadlines on one clock fire in order as the clock advances",
                 "[reply][callback][clock][concurrency]") {
  answer_server held(bus, "cb.many");
  seen a, b, c;
  auto ha = agentbus::request<answer>(bus, "cb.many", ask{"a"}, 30ms, {.clock = &clock}, recorder(a));
  auto hb = agentbus::request<answer>(bus, "cb.many", ask{"b"}, 10ms, {.clock = &clock}, recorder(b));
  auto hc = agentbus::request<answer>(bus, "cb.many", ask{"c"}, 20ms, {.clock = &clock}, recorder(c));
  REQUIRE(agentbus::test::eventually([&] { return clock.waiting() == 1; }));
  advance_and_settle(clock, 15ms);
  CHECK(b.calls == 1);
  CHECK(a.calls == 0);
  CHECK(c.calls == 0);
  held[0].reply(answer{"a, in time"});  // a's reply before its deadline
  CHECK(a.calls == 1);
  CHECK(a.text == "a, in time");
  clock.advance(15ms);
  REQUIRE(agentbus::test::eventually([&] { return c.calls.load(std::memory_order_acquire) == 1; }));
  CHECK(c.error == agentbus::request_errc::timeout);
  CHECK(a.calls == 1);
  CHECK(timer::of(&clock).armed() == 0);
}

TEST_CASE_METHOD(clock_rig, "callback request: cancel runs the callback with cancelled and releases everything",
                 "[reply][callback][concurrency]") {
  answer_server held(bus, "cb.cancel");
  const auto waiting = agentbus::request_reply_stats().waiting;
  seen s;
  auto captured = std::make_shared<int>(7);
  std::weak_ptr<int> watch = captured;
  auto handle = agentbus::request<answer>(bus, "cb.cancel", ask{"x"}, 10s, {.clock = &clock},
                                          [&s, keep = std::move(captured)](agentbus::reply_result<answer> r) {
                                            s.error = r.error().code();
                                            s.thread = std::this_thread::get_id();
                                            s.calls.fetch_add(1);
                                          });
  CHECK(agentbus::request_reply_stats().waiting == waiting + 1);
  CHECK(timer::of(&clock).armed() == 1);
  CHECK_FALSE(watch.expired());
  handle.cancel();
  CHECK(s.calls == 1);
  CHECK(s.error == agentbus::request_errc::cancelled);
  CHECK(s.thread.load() == std::this_thread::get_id());
  CHECK(agentbus::request_reply_stats().waiting == waiting);  // table entry gone
  CHECK(timer::of(&clock).armed() == 0);                      // timer entry gone
  CHECK(watch.expired());                                     // the callback and its captures destroyed
  CHECK(handle.done());
  REQUIRE(held.size() == 1);
  CHECK_FALSE(held[0].reply(answer{"late"}));
  clock.advance(20s);  // the deadline passes: nothing more
  handle.cancel();
  CHECK(s.calls == 1);
}

TEST_CASE("callback request: destroying the handle cancels, detach() lets the request run on",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  answer_server held(bus, "cb.handle");
  seen dropped, detached;
  { auto h = agentbus::request<answer>(bus, "cb.handle", ask{"x"}, 10s, recorder(dropped)); }
  CHECK(dropped.calls == 1);
  CHECK(dropped.error == agentbus::request_errc::cancelled);

  {
    auto h = agentbus::request<answer>(bus, "cb.handle", ask{"y"}, 10s, recorder(detached));
    h.detach();
    CHECK(h.done());  // empty
  }
  CHECK(detached.calls == 0);
  REQUIRE(held.size() == 2);
  CHECK(held[1].reply(answer{"still wanted"}));
  CHECK(detached.calls == 1);
  CHECK(detached.text == "still wanted");

  // A handle assigned over cancels its own request first.
  seen first, second;
  auto h = agentbus::request<answer>(bus, "cb.handle", ask{"1"}, 10s, recorder(first));
  h = agentbus::request<answer>(bus, "cb.handle", ask{"2"}, 10s, recorder(second));
  CHECK(first.error == agentbus::request_errc::cancelled);
  CHECK(second.calls == 0);
  h.cancel();
  CHECK(second.calls == 1);
}

TEST_CASE("callback request: server errors reach the callback, a throwing callback is counted",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  auto failing =
      agentbus::serve<ask, answer>(bus, "cb.fail", [](const ask&) -> answer { throw std::runtime_error("no"); });
  seen s;
  auto h = agentbus::request<answer>(bus, "cb.fail", ask{"x"}, 1s, recorder(s));
  CHECK(s.error == agentbus::request_errc::server_failed);

  auto ok = agentbus::serve<ask, answer>(bus, "cb.ok", [](const ask&) { return answer{"fine"}; });
  const auto failures = agentbus::request_reply_stats().callback_failures;
  auto t = agentbus::request<answer>(bus, "cb.ok", ask{"x"}, 1s, [](agentbus::reply_result<answer> r) {
    CHECK(r.value().text == "fine");
    throw std::runtime_error("callback bug");
  });
  CHECK(agentbus::request_reply_stats().callback_failures == failures + 1);

  // value() on an error throws the request_error.
  auto v = agentbus::request<answer>(bus, "cb.nobody.here", ask{"x"}, 1s, [](agentbus::reply_result<answer> r) {
    CHECK_FALSE(r.has_value());
    CHECK_THROWS_AS(r.value(), agentbus::request_error);
  });
}

TEST_CASE("callback request: an invalid topic throws and never calls the callback", "[reply][callback][concurrency]") {
  agentbus::bus bus;
  seen s;
  const auto waiting = agentbus::request_reply_stats().waiting;
  CHECK_THROWS_AS((void)agentbus::request<answer>(bus, "bad..topic", ask{"x"}, 1s, recorder(s)), agentbus::topic_error);
  CHECK(s.calls == 0);
  CHECK(agentbus::request_reply_stats().waiting == waiting);
  CHECK(timer::of(nullptr).armed() == 0);
}

TEST_CASE("callback request: cancel() waits for a callback running on another thread",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  auto server = agentbus::serve<ask, answer>(
      bus, "cb.busy", [](const ask&) { return answer{"x"}; }, agentbus::async(worker));
  std::atomic<bool> entered{false}, release{false}, finished{false};
  auto handle = agentbus::request<answer>(bus, "cb.busy", ask{"x"}, 5s, [&](agentbus::reply_result<answer>) {
    entered = true;
    while (!release) std::this_thread::yield();
    finished = true;
  });
  worker.start();
  REQUIRE(agentbus::test::eventually([&] { return entered.load(); }));
  std::atomic<bool> finished_when_cancel_returned{false};
  std::thread canceller([&] {
    handle.cancel();
    finished_when_cancel_returned = finished.load();
  });
  std::this_thread::sleep_for(10ms);  // gives a cancel() that does not wait the time to return early
  release = true;
  canceller.join();
  CHECK(finished_when_cancel_returned);
  worker.stop();
}

TEST_CASE("callback request: reply, cancel and timeout racing end each request exactly once",
          "[reply][callback][concurrency]") {
  agentbus::bus bus;
  agentbus::agent worker("worker");
  auto server = agentbus::serve<int, int>(
      bus, "cb.race", [](int v) { return v; }, agentbus::async(worker));
  worker.start();
  constexpr int rounds = 300;
  std::vector<std::atomic<int>> calls(rounds);
  std::atomic<int> replies{0}, cancels{0}, timeouts{0};
  for (int i = 0; i < rounds; ++i) {
    // Timeouts from 0 (due at once, on the timer thread) to a few microseconds.
    auto h = agentbus::request<int>(bus, "cb.race", i, std::chrono::microseconds(i % 4),
                                    [&, i](agentbus::reply_result<int> r) {
                                      calls[static_cast<std::size_t>(i)].fetch_add(1);
                                      if (r)
                                        replies.fetch_add(1);
                                      else if (r.error().code() == agentbus::request_errc::cancelled)
                                        cancels.fetch_add(1);
                                      else if (r.error().code() == agentbus::request_errc::timeout)
                                        timeouts.fetch_add(1);
                                    });
    if (i % 3 == 0)
      h.cancel();
    else
      h.detach();
  }
  REQUIRE(agentbus::test::eventually([&] { return replies + cancels + timeouts == rounds; }));
  worker.stop();
  for (auto& c : calls) CHECK(c.load() == 1);
  CHECK(agentbus::test::eventually([] { return timer::of(nullptr).armed() == 0; }));
}

TEST_CASE_METHOD(clock_rig, "callback request: many threads, one manual clock, every request ends once",
                 "[reply][callback][clock][concurrency]") {
  std::mutex held_mutex;
  std::vector<agentbus::responder<int>> held;  // odd requests: left to time out
  auto server = agentbus::serve<int, int>(bus, "cb.mixed", [&](int v, agentbus::responder<int> r) {
    if (v % 2 == 0) {
      r.reply(v);
    } else {
      std::lock_guard lock(held_mutex);
      held.push_back(std::move(r));
    }
  });
  constexpr int threads = 4, per_thread = 100;
  std::vector<std::atomic<int>> calls(threads * per_thread);
  std::atomic<int> replies{0}, timeouts{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const int v = t * per_thread + i;
        agentbus::request<int>(bus, "cb.mixed", v, std::chrono::milliseconds(1 + i % 5), {.clock = &clock},
                               [&, v](agentbus::reply_result<int> r) {
                                 calls[static_cast<std::size_t>(v)].fetch_add(1);
                                 if (r && *r == v)
                                   replies.fetch_add(1);
                                 else if (!r && r.error().code() == agentbus::request_errc::timeout)
                                   timeouts.fetch_add(1);
                               })
            .detach();
      }
    });
  for (auto& c : clients) c.join();
  CHECK(replies == threads * per_thread / 2);
  // Step the clock until every held request has timed out.
  REQUIRE(agentbus::test::eventually([&] {
    clock.advance(1ms);
    return timeouts.load() == threads * per_thread / 2;
  }));
  for (auto& c : calls) CHECK(c.load() == 1);
  CHECK(timer::of(&clock).armed() == 0);
  std::lock_guard lock(held_mutex);
  for (auto& r : held) CHECK_FALSE(r.reply(0));
}
