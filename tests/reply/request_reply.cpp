// SPDX-License-Identifier: MIT
// Request/reply in process: success, the error cases, reply later from an agent, cancel,
// scatter-gather, no copies.
#include <agentbus/agentbus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/copy_counter.hpp"

using namespace std::chrono_literals;

namespace {
struct quote_request {
  std::string symbol;
};
struct quote {
  std::string symbol;
  double price = 0;
};
}  // namespace

TEST_CASE("request/reply: a synchronous server answers inside the publish", "[reply]") {
  agentbus::bus bus;
  auto server = agentbus::serve<quote_request, quote>(bus, "pricing.quote",
                                                      [](const quote_request& r) { return quote{r.symbol, 101.5}; });
  auto answer = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 1s);
  CHECK(answer.ready());  // answered before request() returned
  const quote q = answer.get();
  CHECK(q.symbol == "ACME");
  CHECK(q.price == 101.5);
  CHECK_THROWS_AS(answer.get(), agentbus::request_error);  // taken: the future is empty now
  CHECK(agentbus::request_reply_stats().waiting == 0);
}

TEST_CASE("request/reply: no server is no_responders at once, without waiting for the deadline", "[reply]") {
  agentbus::bus bus;
  const auto t0 = std::chrono::steady_clock::now();
  auto answer = agentbus::request<quote>(bus, "pricing.nobody", quote_request{"X"}, 10s);
  CHECK(answer.ready());
  try {
    (void)answer.get();
    FAIL("expected request_error");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::no_responders);
    CHECK(std::string(e.what()).find("pricing.nobody") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  // A server of another request type does not count as a responder either.
  auto other = agentbus::serve<int, quote>(bus, "pricing.nobody", [](int) { return quote{}; });
  auto again = agentbus::request<quote>(bus, "pricing.nobody", quote_request{"X"}, 10s);
  CHECK_THROWS_AS(again.get(), agentbus::request_error);
}

TEST_CASE("request/reply: no reply before the deadline is a timeout, a later reply is dropped and counted",
          "[reply][concurrency]") {
  agentbus::bus bus;
  std::optional<agentbus::responder<quote>> held;
  auto server = agentbus::serve<quote_request, quote>(
      bus, "pricing.slow", [&](const quote_request&, agentbus::responder<quote> r) { held.emplace(std::move(r)); });
  const auto late_before = agentbus::request_reply_stats().late_replies;
  const auto timeouts_before = agentbus::request_reply_stats().timeouts;
  auto answer = agentbus::request<quote>(bus, "pricing.slow", quote_request{"X"}, 30ms);
  CHECK_FALSE(answer.ready());
  try {
    (void)answer.get();
    FAIL("expected a timeout");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::timeout);
  }
  REQUIRE(held.has_value());
  CHECK_FALSE(held->reply(quote{"X", 1}));  // too late
  CHECK(agentbus::request_reply_stats().late_replies == late_before + 1);
  CHECK(agentbus::request_reply_stats().timeouts == timeouts_before + 1);
}

TEST_CASE("request/reply: a server on an agent replies later, from the agent's thread", "[reply][concurrency]") {
  agentbus::bus bus;
  agentbus::agent pricer("pricer");
  std::atomic<std::thread::id> replied_on{};
  auto server = agentbus::serve<quote_request, quote>(
      bus, "pricing.async",
      [&](const agentbus::event<quote_request>& ev, agentbus::responder<quote> r) {
        replied_on = std::this_thread::get_id();
        r.reply(quote{ev->symbol, 7});
      },
      agentbus::async(pricer));
  pricer.start();
  std::vector<agentbus::reply_future<quote>> answers;
  for (int i = 0; i < 50; ++i)
    answers.push_back(agentbus::request<quote>(bus, "pricing.async", quote_request{"S" + std::to_string(i)}, 5s));
  for (int i = 0; i < 50; ++i) CHECK(answers[static_cast<std::size_t>(i)].get().symbol == "S" + std::to_string(i));
  CHECK(replied_on.load() != std::this_thread::get_id());
  pricer.stop();
}

TEST_CASE("request/reply: a throwing server answers server_failed, a dropped responder abandoned", "[reply]") {
  agentbus::bus bus;
  auto failing = agentbus::serve<quote_request, quote>(bus, "pricing.fail", [](const quote_request&) -> quote {
    throw std::runtime_error("market closed");
  });
  try {
    (void)agentbus::request<quote>(bus, "pricing.fail", quote_request{"X"}, 1s).get();
    FAIL("expected server_failed");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::server_failed);
    CHECK(std::string(e.what()).find("market closed") != std::string::npos);
  }
  CHECK(bus.stats().handler_failures == 1);  // the bus counts it as for any handler

  auto dropping = agentbus::serve<quote_request, quote>(bus, "pricing.drop",
                                                        [](const quote_request&, agentbus::responder<quote>) {});
  try {
    (void)agentbus::request<quote>(bus, "pricing.drop", quote_request{"X"}, 1s).get();
    FAIL("expected abandoned");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::abandoned);
  }
}

TEST_CASE("request/reply: a server that takes its responder by value and throws answers server_failed", "[reply]") {
  // The by-value responder is destroyed by the exception before serve() sees it, and its
  // destructor used to answer abandoned, losing the exception's text.
  agentbus::bus bus;
  auto failing = agentbus::serve<quote_request, quote>(
      bus, "pricing.fail", [](const quote_request&, agentbus::responder<quote>) { throw std::runtime_error("database down"); });
  auto failing_event = agentbus::serve<quote_request, quote>(
      bus, "pricing.fail_event",
      [](const agentbus::event<quote_request>&, agentbus::responder<quote>) { throw std::runtime_error("disk full"); });
  for (const auto& [topic, text] : {std::pair{"pricing.fail", "database down"}, std::pair{"pricing.fail_event", "disk full"}}) {
    try {
      (void)agentbus::request<quote>(bus, topic, quote_request{"X"}, 1s).get();
      FAIL("expected server_failed");
    } catch (const agentbus::request_error& e) {
      CHECK(e.code() == agentbus::request_errc::server_failed);
      CHECK(std::string(e.what()).find(text) != std::string::npos);
    }
  }
  // A handler that catches its own exception after its responder was destroyed by it: the
  // request is abandoned, as for any responder dropped without a reply.
  auto caught = agentbus::serve<quote_request, quote>(
      bus, "pricing.caught", [](const quote_request&, agentbus::responder<quote> answer) {
        try {
          const agentbus::responder<quote> inner(std::move(answer));
          throw std::runtime_error("inner");
        } catch (const std::exception&) {  // handled here: serve() sees no exception
        }
      });
  try {
    (void)agentbus::request<quote>(bus, "pricing.caught", quote_request{"X"}, 1s).get();
    FAIL("expected abandoned");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::abandoned);
  }
  CHECK(bus.stats().handler_failures == 2);  // the two that threw out of their handlers
}

TEST_CASE("request/reply: the first reply wins, cancel releases the request", "[reply]") {
  agentbus::bus bus;
  auto a = agentbus::serve<quote_request, quote>(bus, "pricing.multi", [](const quote_request&) { return quote{"a", 1}; });
  auto b = agentbus::serve<quote_request, quote>(bus, "pricing.*", [](const quote_request&) { return quote{"b", 2}; });
  const auto late_before = agentbus::request_reply_stats().late_replies;
  CHECK(agentbus::request<quote>(bus, "pricing.multi", quote_request{"X"}, 1s).get().symbol == "a");
  CHECK(agentbus::request_reply_stats().late_replies == late_before + 1);  // b's reply

  std::optional<agentbus::responder<quote>> held;
  auto slow = agentbus::serve<quote_request, quote>(
      bus, "slow.one", [&](const quote_request&, agentbus::responder<quote> r) { held.emplace(std::move(r)); });
  auto answer = agentbus::request<quote>(bus, "slow.one", quote_request{"X"}, 10s);
  const auto waiting = agentbus::request_reply_stats().waiting;
  answer.cancel();
  CHECK(agentbus::request_reply_stats().waiting == waiting - 1);  // released at once
  try {
    (void)answer.get();
    FAIL("expected cancelled");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::cancelled);
  }
  CHECK_FALSE(held->reply(quote{}));
  // Destroying a future gives its request up too.
  { auto dropped = agentbus::request<quote>(bus, "slow.one", quote_request{"Y"}, 10s); }
  CHECK(agentbus::request_reply_stats().waiting == waiting - 1);
}

TEST_CASE("request/reply: scatter-gather collects replies until the count or the deadline", "[reply][concurrency]") {
  agentbus::bus bus;
  std::vector<agentbus::subscription> servers;
  for (int i = 0; i < 3; ++i)
    servers.push_back(agentbus::serve<quote_request, quote>(bus, "auction.bid",
                                                            [i](const quote_request&) { return quote{"bidder", double(i)}; }));
  auto all = agentbus::request_all<quote>(bus, "auction.bid", quote_request{"lot 7"}, 3, 1s);
  CHECK(all.ready());  // every reply wanted came (synchronous servers): get() would not wait
  const auto bids = all.get();
  REQUIRE(bids.size() == 3);
  CHECK(bids[0].price == 0);  // arrival order: subscription order for synchronous servers
  CHECK(bids[2].price == 2);
  // Asking for more than will come returns what came by the deadline.
  auto some = agentbus::request_all<quote>(bus, "auction.bid", quote_request{"lot 8"}, 5, 30ms);
  CHECK(some.get().size() == 3);
  // Nobody there: no_responders.
  auto none = agentbus::request_all<quote>(bus, "auction.empty", quote_request{"lot 9"}, 2, 1s);
  CHECK(none.ready());  // no_responders ends a gather too (ready() said false until the deadline)
  CHECK_THROWS_AS(none.get(), agentbus::request_error);
}

TEST_CASE("request/reply: replies are moved to the requester, never copied", "[reply][zero-copy]") {
  using agentbus::test::copy_counter;
  agentbus::bus bus;
  auto server = agentbus::serve<int, copy_counter>(bus, "counter.make", [](int v) { return copy_counter{v}; });
  copy_counter::reset();
  const copy_counter got = agentbus::request<copy_counter>(bus, "counter.make", 5, 1s).get();
  CHECK(got.value == 5);
  CHECK(copy_counter::copies.load() == 0);
}

TEST_CASE("request/reply: a plain event on a served topic reaches the handler, its reply goes nowhere", "[reply]") {
  agentbus::bus bus;
  int calls = 0;
  auto server = agentbus::serve<quote_request, quote>(bus, "pricing.plain", [&](const quote_request&) {
    ++calls;
    return quote{};
  });
  const auto late = agentbus::request_reply_stats().late_replies;
  CHECK(bus.publish("pricing.plain", quote_request{"X"}, {.correlation_id = 12345}).delivered == 1);
  CHECK(calls == 1);
  CHECK(agentbus::request_reply_stats().late_replies == late);  // not a request: nothing counted
}

TEST_CASE("request/reply: many threads request concurrently from a served agent", "[reply][concurrency]") {
  agentbus::bus bus;
  agentbus::agent server_agent("server");
  auto server = agentbus::serve<int, int>(bus, "math.double", [](int v) { return 2 * v; }, agentbus::async(server_agent));
  server_agent.start();
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int v = t * 1000 + i;
        if (agentbus::request<int>(bus, "math.double", v, 5s).get() != 2 * v) wrong.fetch_add(1);
      }
    });
  for (auto& c : clients) c.join();
  CHECK(wrong.load() == 0);
  server_agent.stop();
  CHECK(agentbus::request_reply_stats().waiting == 0);
}

TEST_CASE("request/reply: a reply of another type than the requester expects is wrong_type", "[reply]") {
  agentbus::bus bus;
  auto server = agentbus::serve<quote_request, int>(bus, "pricing.int", [](const quote_request&) { return 42; });
  const auto before = agentbus::request_reply_stats().wrong_type_replies;
  try {
    (void)agentbus::request<quote>(bus, "pricing.int", quote_request{"X"}, 1s).get();
    FAIL("expected wrong_type");
  } catch (const agentbus::request_error& e) {
    CHECK(e.code() == agentbus::request_errc::wrong_type);
  }
  CHECK(agentbus::request_reply_stats().wrong_type_replies == before + 1);
}

TEST_CASE("request/reply: request ids start from a different point in every process", "[reply]") {
  // Every process counted from 1: a journal stores requests with their ids, and a server
  // catching up on yesterday's (serve() with history) answered today's live requests that got
  // the same ids with yesterday's replies. Two tables stand for two processes here.
  agentbus::detail::reply_table first_run, second_run;
  const std::uint64_t a = first_run.add(std::make_shared<agentbus::detail::pending_reply_of<quote>>(1));
  const std::uint64_t b = second_run.add(std::make_shared<agentbus::detail::pending_reply_of<quote>>(1));
  CHECK(a != b);
  CHECK((a & agentbus::detail::request_id_bit) != 0);  // still marked as request ids
  CHECK((b & agentbus::detail::request_id_bit) != 0);
  first_run.remove(a);
  second_run.remove(b);
}
