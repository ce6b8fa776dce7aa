// SPDX-License-Identifier: MIT
// Request/reply across the NATS bridge (nats_bridge::export_requests / import_requests) against
// a real nats-server that each test starts on 127.0.0.1 on a free port and stops by its PID.
// Two buses in this process, each with its own bridge (its own connections), stand for two
// processes; examples/08_two_processes runs the same exchange between two real processes.
// Built with the NATS client only (AGENTBUS_TEST_NATS); each test says why it is skipped when
// nats-server is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "transport/nats_server.hpp"

namespace nats_request_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct quote_request {
  static constexpr std::string_view event_name = "test.quote_request";
  std::string symbol;
};
void agentbus_encode(agentbus::byte_writer& out, const quote_request& r) { out.write_string(r.symbol); }
quote_request agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote_request>) {
  return {in.read_string()};
}

struct quote {
  static constexpr std::string_view event_name = "test.quote";
  std::string symbol;
  double price = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const quote& q) {
  out.write_string(q.symbol);
  out.write_value(q.price);
}
quote agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote>) {
  quote q;
  q.symbol = in.read_string();
  q.price = in.read_value<double>();
  return q;
}

// The same request schema name at another version: a server that expects it refuses v1.
struct quote_request_v2 {
  static constexpr std::string_view event_name = "test.quote_request";
  static constexpr std::uint32_t event_version = 2;
  std::string symbol;
};
void agentbus_encode(agentbus::byte_writer& out, const quote_request_v2& r) { out.write_string(r.symbol); }
quote_request_v2 agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote_request_v2>) {
  return {in.read_string()};
}

// A reply type of the same name as quote with another layout.
struct quote_v2 {
  static constexpr std::string_view event_name = "test.quote";
  static constexpr std::uint32_t event_version = 2;
  std::string symbol;
};
void agentbus_encode(agentbus::byte_writer& out, const quote_v2& q) { out.write_string(q.symbol); }
quote_v2 agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote_v2>) { return {in.read_string()}; }

agentbus::request_errc error_of(agentbus::reply_future<quote>& f) {
  try {
    (void)f.get();
  } catch (const agentbus::request_error& e) {
    return e.code();
  }
  FAIL("the request got a reply");
  return agentbus::request_errc::cancelled;
}

std::string message_of(agentbus::reply_future<quote>& f) {
  try {
    (void)f.get();
  } catch (const agentbus::request_error& e) {
    return e.what();
  }
  return "(a reply)";
}

}  // namespace nats_request_test

using namespace nats_request_test;

TEST_CASE("nats request: a request made on one bus is answered by a server on another through NATS") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.*");
  served.import_requests<quote_request, quote>("pricing.*");

  std::vector<std::string> seen_sources;
  std::mutex seen_mutex;
  auto pricing = agentbus::serve<quote_request, quote>(server_bus, "pricing.>",
                                                       [&](const agentbus::event<quote_request>& r) {
                                                         std::lock_guard lock(seen_mutex);
                                                         seen_sources.emplace_back(r.source());
                                                         return quote{r.payload().symbol, 101.5};
                                                       });

  // The future form: the same call as in process.
  auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 5s,
                                         agentbus::publish_options{.source = "desk"});
  const quote q = answer.get();
  CHECK(q.symbol == "ACME");
  CHECK(q.price == 101.5);
  {
    std::lock_guard lock(seen_mutex);
    REQUIRE(seen_sources.size() == 1);
    CHECK(seen_sources.front() == "desk");  // the envelope crossed with the request
  }

  // The callback form, several in flight at once.
  std::atomic<int> answered{0}, wrong{0};
  std::vector<agentbus::request_handle> handles;
  for (int i = 0; i < 20; ++i)
    handles.push_back(agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"S" + std::to_string(i)},
                                               5s, agentbus::request_options{},
                                               [&, i](agentbus::reply_result<quote> r) {
                                                 if (r && r->symbol == "S" + std::to_string(i)) ++answered;
                                                 else ++wrong;
                                               }));
  REQUIRE(wait_until([&] { return answered.load() + wrong.load() == 20; }));
  CHECK(answered == 20);
  CHECK(wrong == 0);

  // The server side counts a reply once the client library took it, which may be just after
  // the requester already has it.
  CHECK(wait_until([&] { return served.stats().replies_sent + served.stats().replies_not_sent >= 21; }));
  const auto c = client.stats();
  const auto s = served.stats();
  CHECK(c.requests_sent == 21);
  CHECK(c.replies_received == 21);
  CHECK(c.requests_waiting == 0);
  CHECK(s.requests_received == 21);
  CHECK(s.replies_sent == 21);
  CHECK(s.replies_not_sent == 0);
}

TEST_CASE("nats request: an agent's asynchronous server answers across the bridge too") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.quote");
  served.import_requests<quote_request, quote>("pricing.quote");

  agentbus::executor exec({.threads = 1});
  agentbus::agent desk("desk", exec);
  auto pricing = agentbus::serve<quote_request, quote>(
      server_bus, "pricing.quote",
      [](const quote_request& r, agentbus::responder<quote> out) { out.reply(quote{r.symbol, 7.0}); },
      agentbus::async(desk));
  auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"XYZ"}, 5s);
  CHECK(answer.get().price == 7.0);
}

TEST_CASE("nats request: no_responders across the bridge: nobody imports it, or nothing serves it there") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.*");

  // Nothing subscribes to the subject on the server: NATS says so at once.
  const auto before = std::chrono::steady_clock::now();
  auto nobody = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 10s);
  CHECK(error_of(nobody) == agentbus::request_errc::no_responders);
  CHECK(std::chrono::steady_clock::now() - before < 5s);  // not the timeout

  // A process imports the requests but serves nothing: its own no_responders comes back.
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  served.import_requests<quote_request, quote>("pricing.*");
  auto unserved = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 10s);
  CHECK(error_of(unserved) == agentbus::request_errc::no_responders);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
}

TEST_CASE("nats request: the remote server's failures come back as the same request errors") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.>");
  served.import_requests<quote_request, quote>("pricing.>");

  auto throwing = agentbus::serve<quote_request, quote>(server_bus, "pricing.broken", [](const quote_request&) -> quote {
    throw std::runtime_error("price feed is down");
  });
  std::mutex kept_mutex;
  std::vector<agentbus::responder<quote>> kept;
  auto silent = agentbus::serve<quote_request, quote>(server_bus, "pricing.slow",
                                                      [&](const quote_request&, agentbus::responder<quote> r) {
                                                        std::lock_guard lock(kept_mutex);
                                                        kept.push_back(std::move(r));  // never answered in time
                                                      });
  auto dropping = agentbus::serve<quote_request, quote>(server_bus, "pricing.dropped",
                                                        [](const quote_request&, agentbus::responder<quote>) {});

  auto failed = agentbus::request<quote>(client_bus, "pricing.broken", quote_request{"ACME"}, 5s);
  const std::string failed_text = message_of(failed);
  CHECK(failed_text.find("server_failed") != std::string::npos);
  CHECK(failed_text.find("price feed is down") != std::string::npos);
  CHECK(failed_text.find("agentbus: request failed: server_failed: agentbus") == std::string::npos);  // not doubled

  auto abandoned = agentbus::request<quote>(client_bus, "pricing.dropped", quote_request{"ACME"}, 5s);
  CHECK(error_of(abandoned) == agentbus::request_errc::abandoned);

  // The request's deadline crosses with it (publish ttl): the server's local request times out
  // too and says so, and the requester's own timeout fires at its deadline.
  auto slow = agentbus::request<quote>(client_bus, "pricing.slow", quote_request{"ACME"}, 300ms,
                                       agentbus::publish_options{.ttl = 300ms});
  CHECK(error_of(slow) == agentbus::request_errc::timeout);
  REQUIRE(wait_until([&] {
    std::lock_guard lock(kept_mutex);
    return kept.size() == 1;
  }));
  // The server's local request timed out too, and said so to the (gone) requester; a reply
  // after that goes nowhere.
  REQUIRE(wait_until([&] { return served.stats().replies_sent == 3; }));  // failed, abandoned, the timeout
  {
    std::lock_guard lock(kept_mutex);
    CHECK_FALSE(kept.front().reply(quote{"ACME", 1.0}));
  }
  REQUIRE(wait_until([&] { return client.stats().requests_waiting == 0; }));
}

TEST_CASE("nats request: a bridge-side timeout fails a request whose reply never comes") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.quote", {.timeout = 200ms});

  // A raw NATS subscriber takes the request (so NATS sees a responder) and never answers.
  agentbus::nats_connection raw_conn({.url = server->url()});
  natsSubscription* raw = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw, raw_conn.get(), "pricing.quote") == NATS_OK);
  raw_conn.flush();

  const auto before = std::chrono::steady_clock::now();
  auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 20s);
  CHECK(error_of(answer) == agentbus::request_errc::timeout);
  const auto waited = std::chrono::steady_clock::now() - before;
  CHECK(waited >= 150ms);
  CHECK(waited < 5s);  // the bridge's 200 ms, not the requester's 20 s

  natsMsg* taken = nullptr;
  REQUIRE(natsSubscription_NextMsg(&taken, raw, 1000) == NATS_OK);
  CHECK(std::string_view(natsMsg_GetSubject(taken)) == "pricing.quote");
  CHECK(natsMsg_GetReply(taken) != nullptr);
  const char* deadline = nullptr;
  CHECK(natsMsgHeader_Get(taken, "Agentbus-Deadline", &deadline) == NATS_OK);  // the bridge's timeout crossed
  natsMsg_Destroy(taken);
  (void)natsSubscription_Unsubscribe(raw);
  natsSubscription_Destroy(raw);
}

TEST_CASE("nats request: a server expecting another request schema answers wrong_type") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.quote");
  served.import_requests<quote_request_v2, quote>("pricing.quote");
  auto pricing = agentbus::serve<quote_request_v2, quote>(server_bus, "pricing.quote",
                                                          [](const quote_request_v2& r) { return quote{r.symbol, 1}; });

  auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 5s);
  const std::string text = message_of(answer);
  CHECK(text.find("wrong_type") != std::string::npos);
  CHECK(text.find("test.quote_request") != std::string::npos);
  CHECK(served.stats().schema_mismatches == 1);
}

TEST_CASE("nats request: a reply of another schema than the requester's is wrong_type") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.quote");
  served.import_requests<quote_request, quote_v2>("pricing.quote");
  auto pricing = agentbus::serve<quote_request, quote_v2>(server_bus, "pricing.quote",
                                                          [](const quote_request& r) { return quote_v2{r.symbol}; });

  auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 5s);
  CHECK(error_of(answer) == agentbus::request_errc::wrong_type);
}

TEST_CASE("nats request: servers in a queue group share the requests and each is answered once") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, bus_1, bus_2;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  agentbus::nats_bridge server_1(bus_1, {.url = server->url()});
  agentbus::nats_bridge server_2(bus_2, {.url = server->url()});
  client.export_requests<quote_request, quote>("pricing.quote");
  server_1.import_requests<quote_request, quote>("pricing.quote", {.queue_group = "pricing"});
  server_2.import_requests<quote_request, quote>("pricing.quote", {.queue_group = "pricing"});
  std::atomic<int> served_1{0}, served_2{0};
  auto s1 = agentbus::serve<quote_request, quote>(bus_1, "pricing.quote", [&](const quote_request& r) {
    ++served_1;
    return quote{r.symbol, 1};
  });
  auto s2 = agentbus::serve<quote_request, quote>(bus_2, "pricing.quote", [&](const quote_request& r) {
    ++served_2;
    return quote{r.symbol, 2};
  });

  constexpr int requests = 60;
  int answered = 0;
  for (int i = 0; i < requests; ++i) {
    auto answer = agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"S"}, 5s);
    const double price = answer.get().price;
    answered += (price == 1 || price == 2) ? 1 : 0;
  }
  CHECK(answered == requests);
  CHECK(served_1 + served_2 == requests);  // each request went to one member of the group
  CHECK(served_1 > 0);                     // NATS spreads them at random: all 60 on one has odds 2^-59
  CHECK(served_2 > 0);
}

TEST_CASE("nats request: destroying the requesting bridge ends its waiting requests with cancelled") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge served(server_bus, {.url = server->url()});
  served.import_requests<quote_request, quote>("pricing.quote");
  std::mutex kept_mutex;
  std::vector<agentbus::responder<quote>> kept;
  auto silent = agentbus::serve<quote_request, quote>(server_bus, "pricing.quote",
                                                      [&](const quote_request&, agentbus::responder<quote> r) {
                                                        std::lock_guard lock(kept_mutex);
                                                        kept.push_back(std::move(r));
                                                      });
  std::optional<agentbus::reply_future<quote>> answer;
  {
    agentbus::nats_bridge client(client_bus, {.url = server->url()});
    client.export_requests<quote_request, quote>("pricing.quote");
    answer.emplace(agentbus::request<quote>(client_bus, "pricing.quote", quote_request{"ACME"}, 30s));
    REQUIRE(wait_until([&] {
      std::lock_guard lock(kept_mutex);
      return kept.size() == 1;
    }));
    CHECK(client.stats().requests_waiting == 1);
  }
  const auto before = std::chrono::steady_clock::now();
  CHECK(error_of(*answer) == agentbus::request_errc::cancelled);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
  {
    std::lock_guard lock(kept_mutex);
    CHECK(kept.front().reply(quote{"ACME", 1.0}));  // the server's local request still waits: it is answered
  }
  REQUIRE(wait_until([&] { return served.stats().replies_sent == 1; }));  // into an inbox nobody reads
}

TEST_CASE("nats request: a request that came in through a bridge is not sent back out") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  // Both buses export and import the same pattern (each process both asks and answers): a request
  // is answered once, by the other process's server or its own, and never loops.
  agentbus::bus bus_a, bus_b;
  agentbus::nats_bridge a(bus_a, {.url = server->url()});
  agentbus::nats_bridge b(bus_b, {.url = server->url()});
  a.export_requests<quote_request, quote>("pricing.quote");
  a.import_requests<quote_request, quote>("pricing.quote");
  b.export_requests<quote_request, quote>("pricing.quote");
  b.import_requests<quote_request, quote>("pricing.quote");
  std::atomic<int> served_b{0};
  auto server_b = agentbus::serve<quote_request, quote>(bus_b, "pricing.quote", [&](const quote_request& r) {
    ++served_b;
    return quote{r.symbol, 2};
  });
  auto answer = agentbus::request<quote>(bus_a, "pricing.quote", quote_request{"ACME"}, 5s);
  CHECK(answer.get().price == 2);
  CHECK(served_b == 1);
  REQUIRE(wait_until([&] { return b.stats().not_sent_back == 1; }));  // b's export saw the imported request
  CHECK(a.stats().requests_sent == 1);
  CHECK(b.stats().requests_sent == 0);
}

#else

TEST_CASE("nats request: skipped: built without the NATS C client") {
  WARN("skipped: the NATS request tests need libnats (Debian: apt-get install libnats-dev) found by pkg-config");
}

#endif
