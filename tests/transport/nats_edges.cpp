// SPDX-License-Identifier: MIT
// Edges of the NATS bridge: header values the wire rewrites (CR/LF, end spaces, empty), signed
// and unsigned; the request counters and the bridge-side timeout; the reconnect buffer's
// accounting across two outages. Against a real nats-server, started by each test on
// 127.0.0.1 on a free port and stopped by its PID (skipped when nats-server is missing).
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "transport/nats_server.hpp"

namespace nats_edges_test {

using namespace std::chrono_literals;

struct edge_note {
  static constexpr std::string_view event_name = "test.edge_note";
  std::string text;
};
void agentbus_encode(agentbus::byte_writer& out, const edge_note& n) { out.write_string(n.text); }
edge_note agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<edge_note>) { return {in.read_string()}; }

}  // namespace nats_edges_test

using nats_edges_test::edge_note;

namespace {

// The raw subscriber `raw` takes one forwarded request and answers it with `note` (a reply of
// the wire format's minimum: schema headers and payload), then unsubscribes.
void answer_taken_request(agentbus::nats_connection& raw_conn, natsSubscription* raw, const edge_note& note) {
  natsMsg* taken = nullptr;
  REQUIRE(natsSubscription_NextMsg(&taken, raw, 2000) == NATS_OK);
  agentbus::byte_writer w;
  auto reply = agentbus::detail::encode_payload(note, natsMsg_GetReply(taken), w);
  natsMsg_Destroy(taken);
  REQUIRE(agentbus::detail::add_schema_headers_one_by_one<edge_note>(reply) == NATS_OK);
  REQUIRE(natsConnection_PublishMsg(raw_conn.get(), reply.get()) == NATS_OK);
  raw_conn.flush();
  (void)natsSubscription_Unsubscribe(raw);
  natsSubscription_Destroy(raw);
}

// That reply reached the bridge and went nowhere: counted late, not received.
template <class Bridge>
void check_one_late_reply(const Bridge& client) {
  using namespace std::chrono_literals;
  REQUIRE(agentbus::test::wait_until(
      [&] { return client.stats().late_replies + client.stats().replies_received >= 1; }, 2s));
  CHECK(client.stats().late_replies == 1);
  CHECK(client.stats().replies_received == 0);
}

}  // namespace

#if AGENTBUS_HAS_NATS_SIGNING

TEST_CASE("nats signing: an event whose header value holds CR/LF, end spaces or nothing is delivered, not rejected") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  const std::string key = "shared";
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url(), .signing_key = key});
  agentbus::nats_bridge in(b, {.url = server->url(), .signing_key = key});
  out.export_type<edge_note>("notes.>");
  in.import_type<edge_note>("notes.>");
  std::atomic<int> got{0};
  auto sub = b.subscribe<edge_note>("notes.>", [&](const edge_note&) { ++got; });

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"x-plain", "v"}, {"x-crlf", "line1\r\nline2"}, {"x-lead", " leading"}, {"x-trail", "trailing "}, {"x-empty", ""}};
  int sent = 0;
  for (const auto& [k, v] : cases) {
    const agentbus::header h[] = {{k, v}};
    (void)a.publish("notes.n", edge_note{k}, {.headers = h});
    ++sent;
    REQUIRE(agentbus::test::wait_until(
        [&] { return got.load() + static_cast<int>(in.stats().signature_failures) == sent; }, 2s));
    INFO("header " << k);
    CHECK(in.stats().signature_failures == 0);
  }
  CHECK(got.load() == static_cast<int>(cases.size()));
}

TEST_CASE("nats signing: a remote server_failed whose text ends in a newline reaches the requester") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  const std::string key = "k3y";
  agentbus::bus client_bus, server_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url(), .signing_key = key});
  agentbus::nats_bridge served(server_bus, {.url = server->url(), .signing_key = key});
  client.export_requests<edge_note, edge_note>("ops.>");
  served.import_requests<edge_note, edge_note>("ops.>");
  auto failing = agentbus::serve<edge_note, edge_note>(server_bus, "ops.fail", [](const edge_note&) -> edge_note {
    throw std::runtime_error("bad input\n");
  });
  auto answer = agentbus::request<edge_note>(client_bus, "ops.fail", edge_note{"x"}, 1s);
  agentbus::request_errc code = agentbus::request_errc::cancelled;
  try {
    (void)answer.get();
  } catch (const agentbus::request_error& e) {
    code = e.code();
  }
  CHECK(code == agentbus::request_errc::server_failed);  // not timeout
  CHECK(client.stats().signature_failures == 0);
}

#endif  // AGENTBUS_HAS_NATS_SIGNING

TEST_CASE("nats request: a bridge-side timeout is counted at once, and the reply after it is a late reply") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  agentbus::bus client_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  client.export_requests<edge_note, edge_note>("ask.it", {.timeout = 100ms});
  agentbus::nats_connection raw_conn({.url = server->url()});
  natsSubscription* raw = nullptr;  // takes the request, answers only later
  REQUIRE(natsConnection_SubscribeSync(&raw, raw_conn.get(), "ask.it") == NATS_OK);
  raw_conn.flush();

  auto answer = agentbus::request<edge_note>(client_bus, "ask.it", edge_note{"q"}, 20s);
  CHECK_THROWS_AS(answer.get(), agentbus::request_error);  // timeout, at the bridge's 100 ms
  const auto after_timeout = client.stats();
  CHECK(after_timeout.requests_timed_out == 1);
  CHECK(after_timeout.requests_waiting == 0);

  answer_taken_request(raw_conn, raw, edge_note{"late"});
  check_one_late_reply(client);
}

TEST_CASE("nats request: a remote reply to a request a local server answered first is a late reply") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  agentbus::bus client_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  client.export_requests<edge_note, edge_note>("ask.both");
  auto local = agentbus::serve<edge_note, edge_note>(client_bus, "ask.both",
                                                     [](const edge_note&) { return edge_note{"local"}; });
  agentbus::nats_connection raw_conn({.url = server->url()});
  natsSubscription* raw = nullptr;  // takes the forwarded request, answers after the local server
  REQUIRE(natsConnection_SubscribeSync(&raw, raw_conn.get(), "ask.both") == NATS_OK);
  raw_conn.flush();

  auto answer = agentbus::request<edge_note>(client_bus, "ask.both", edge_note{"q"}, 5s);
  CHECK(answer.get().text == "local");
  answer_taken_request(raw_conn, raw, edge_note{"remote"});
  check_one_late_reply(client);
}

TEST_CASE("nats request: the bridge-side timeout ends a callback request too") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  agentbus::bus client_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url()});
  client.export_requests<edge_note, edge_note>("ask.it", {.timeout = 100ms});
  agentbus::nats_connection raw_conn({.url = server->url()});
  natsSubscription* raw = nullptr;  // takes the request, never answers
  REQUIRE(natsConnection_SubscribeSync(&raw, raw_conn.get(), "ask.it") == NATS_OK);
  raw_conn.flush();

  std::atomic<bool> done{false};
  std::atomic<int> code{-1};
  const auto before = std::chrono::steady_clock::now();
  auto handle = agentbus::request<edge_note>(client_bus, "ask.it", edge_note{"q"}, 1500ms,
                                             [&](agentbus::reply_result<edge_note> r) {
                                               if (!r) code = static_cast<int>(r.error().code());
                                               done = true;
                                             });
  REQUIRE(agentbus::test::wait_until([&] { return done.load(); }, 3s));
  const auto waited = std::chrono::steady_clock::now() - before;
  CHECK(code.load() == static_cast<int>(agentbus::request_errc::timeout));
  CHECK(waited < 700ms);  // the bridge's 100 ms (as for a future), not the requester's 1.5 s
  (void)natsSubscription_Unsubscribe(raw);
  natsSubscription_Destroy(raw);
}

TEST_CASE("nats bridge: an export buffered in one outage and sent on reconnecting is not counted dropped by a later outage") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  agentbus::bus a, b;
  std::atomic<int> reported{0};
  agentbus::nats_bridge out(a, {.url = server->url(), .max_reconnect = 5, .reconnect_wait = 200ms},
                            [&](const agentbus::nats_bridge_problem& p) {
                              if (p.kind == agentbus::nats_problem_kind::send_failed) ++reported;
                            });
  agentbus::nats_bridge in(b, {.url = server->url(), .max_reconnect = 100, .reconnect_wait = 10ms});
  out.export_type<edge_note>("notes.>");
  in.import_type<edge_note>("notes.>");
  std::atomic<int> got{0};
  auto sub = b.subscribe<edge_note>("notes.>", [&](const edge_note&) { ++got; });

  server->halt(SIGINT);
  REQUIRE(agentbus::test::wait_until([&] { return !out.connection().connected(); }, 2s));
  (void)a.publish("notes.x", edge_note{"while down"});  // into the reconnect buffer
  server->restart();
  // Sent from the buffer on reconnecting, and delivered (no stats() call meanwhile).
  REQUIRE(agentbus::test::wait_until([&] { return out.connection().connected() && got.load() == 1; }, 3s));
  server->halt(SIGINT);  // away again, and this time the client gives up
  REQUIRE(agentbus::test::wait_until(
      [&] { return natsConnection_Status(out.connection().get()) == NATS_CONN_STATUS_CLOSED; }, 5s));
  const auto s = out.stats();
  CHECK(got.load() == 1);
  CHECK(s.sent == 1);
  CHECK(s.dropped == 0);
  CHECK(reported.load() == 0);
}

TEST_CASE("nats bridge: header values cross in their wire form: an empty one is not sent and swallows no other header") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using namespace std::chrono_literals;
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url()});
  agentbus::nats_bridge in(b, {.url = server->url()});
  out.export_type<edge_note>("tags.>");
  in.import_type<edge_note>("tags.>");
  std::mutex mutex;
  std::map<std::string, std::string> seen;
  std::atomic<bool> got{false};
  auto sub = b.subscribe<edge_note>("tags.>", [&](const agentbus::event<edge_note>& e) {
    std::lock_guard lock(mutex);
    for (const auto& h : e.headers()) seen.emplace(std::string(h.key), std::string(h.value));
    got = true;
  });
  const agentbus::header headers[] = {{"x-empty", ""},
                                      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                                      {"x-spaced", "  kept inside\t"},
                                      {"x-blank", " \t "}};
  (void)a.publish("tags.t", edge_note{"x"}, {.headers = headers});
  REQUIRE(agentbus::test::wait_until([&] { return got.load(); }, 2s));
  std::lock_guard lock(mutex);
  CHECK(seen.at("traceparent") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  CHECK(seen.count("x-empty") == 0);  // an empty value cannot cross: not sent (docs/wire-format.md)
  CHECK(seen.at("Agentbus-Origin") == out.id());
  CHECK(seen.at("x-spaced") == "kept inside");  // its end spaces dropped before sending
  CHECK(seen.count("x-blank") == 0);
}

#endif  // AGENTBUS_TEST_NATS
