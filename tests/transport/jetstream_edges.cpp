// SPDX-License-Identifier: MIT
// Edges of the JetStream path (agentbus/bridge/jetstream.hpp): a failed ack and the memory of
// settles, a handler that throws after its attempt ran out, a codec that throws something that
// is not a std::exception (JetStream and the core-NATS import), plain messages in a member's
// inbox. Against a real nats-server, started by each test on 127.0.0.1 on a free port and
// stopped by its PID (skipped when nats-server is missing).
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/jetstream.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <limits>
#include <thread>

#include "transport/nats_server.hpp"

namespace jetstream_edges_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct rjob {
  static constexpr std::string_view event_name = "test.jse.job";
  std::string key;
  std::uint32_t n = 0;
};
inline void agentbus_encode(agentbus::byte_writer& out, const rjob& j) {
  out.write_string(j.key);
  out.write_value(j.n);
}
inline rjob agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<rjob>) {
  rjob j;
  j.key = in.read_string();
  j.n = in.read_value<std::uint32_t>();
  return j;
}

// A codec that throws something that is not a std::exception for one payload.
struct fussy {
  static constexpr std::string_view event_name = "test.jse.fussy";
  std::string text;
};
inline void agentbus_encode(agentbus::byte_writer& out, const fussy& f) { out.write_string(f.text); }
inline fussy agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<fussy>) {
  fussy f;
  f.text = in.read_string();
  if (f.text == "poison") throw 42;  // NOLINT: a non-standard exception on purpose
  return f;
}

inline agentbus::nats_options edge_client_options(const agentbus::test::nats_server& server) {
  return {.url = server.url(), .max_reconnect = 1200, .reconnect_wait = 50ms};
}

// A failed ack left the event's sequence in the memory of settles; settled again, it was there
// twice, and trimming the older copy forgot the newer settle too early.
TEST_CASE("jetstream edges: an ack that failed once does not make a later settle of that event forgotten early") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(edge_client_options(*server));
  js.ensure_stream({.name = "ONCE", .subjects = {"once.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<rjob>("once.>");
  (void)bus.publish("once.a", rjob{"a", 1});
  REQUIRE(pub.wait_acknowledged(5s));

  const agentbus::consumer_options options{.ack_wait = 500ms, .max_deliver = 0};
  const agentbus::jetstream_consumer_options jso{.confirm_timeout = 300ms, .remember_settled = 1};
  agentbus::jetstream_consumer<rjob> c(js, "ONCE", "w", "once.>", options, jso);
  std::optional<agentbus::ack_token> first;
  REQUIRE(c.poll_for([&](const agentbus::delivered<rjob>& d) { first = d.defer(); }, 3s, 1) == 1);
  // The durable goes away: the token's confirmed ack has no one to answer it and fails.
  REQUIRE(js.delete_consumer("ONCE", "w"));
  CHECK(first->ack() == agentbus::ack_status::stale);
  CHECK(c.info().settle_failures == 1);
  // A durable of that name again: it hands the event out again, and this time the ack works.
  agentbus::jetstream_consumer<rjob> maker(js, "ONCE", "w", "once.>", options, jso);
  std::optional<agentbus::ack_token> second;
  REQUIRE(c.poll_for([&](const agentbus::delivered<rjob>& d) { second = d.defer(); }, 3s, 1) == 1);
  REQUIRE(second->ack() == agentbus::ack_status::accepted);
  // That ack is the last settle (remember_settled = 1): remembered, so settling again says already.
  CHECK(second->ack() == agentbus::ack_status::already);
  CHECK(first->ack() == agentbus::ack_status::already);
  CHECK(c.info().repeated_settles == 2);
}

// A handler that throws is counted, also when its attempt is over by the time it throws (the
// in-process engine counts it: consumer/detail/engine.hpp).
TEST_CASE("jetstream edges: a handler that throws after its attempt ran out is counted in handler_failures") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(edge_client_options(*server));
  js.ensure_stream({.name = "LATE", .subjects = {"late.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<rjob>("late.>");
  (void)bus.publish("late.a", rjob{"a", 1});
  REQUIRE(pub.wait_acknowledged(5s));

  agentbus::jetstream_group<rjob> g(js, "LATE", "late", "late.>", {.ack_wait = 400ms, .max_deliver = 0});
  auto a = g.join("a");
  auto b = g.join("b");
  int b_calls = 0;
  auto on_b = [&](const agentbus::delivered<rjob>&) { ++b_calls; };  // acks
  int a_calls = 0;
  auto on_a = [&](const agentbus::delivered<rjob>&) {
    ++a_calls;
    // Runs past ack_wait: the server hands the event to b meanwhile, and b acks it.
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (b_calls == 0 && std::chrono::steady_clock::now() < until) (void)b.poll_for(on_b, 3s);
    throw std::runtime_error("too late");
  };
  REQUIRE(a.poll_for(on_a, 3s, 1) == 1);
  REQUIRE(b_calls == 1);
  const auto info = g.info();
  CHECK(info.acked == 1);
  CHECK(info.handler_failures == 1);
}

// A decode that throws something other than a std::exception (storage/codec.hpp run_decoder):
// it escaped poll(), uncounted, and came back after every ack_wait.
TEST_CASE("jetstream edges: a payload whose decode throws a non-standard exception is counted and dead-lettered") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(edge_client_options(*server));
  js.ensure_stream({.name = "FUSSY", .subjects = {"fussy.>"}});
  js.ensure_stream({.name = "FDLQ", .subjects = {"$dlq.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<fussy>("fussy.>");
  (void)bus.publish("fussy.a", fussy{"poison"});
  (void)bus.publish("fussy.a", fussy{"fine"});
  REQUIRE(pub.wait_acknowledged(5s));

  agentbus::jetstream_consumer<fussy> c(js, "FUSSY", "f", "fussy.>", {.ack_wait = 1s});
  int delivered = 0;
  bool threw = false;
  const auto until = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < until) {
    try {
      (void)c.poll_for([&](const agentbus::delivered<fussy>&) { ++delivered; }, 1s);
    } catch (...) {
      threw = true;
    }
    const auto i = c.info();
    if (i.decode_errors == 1 && i.dead_lettered == 1 && delivered == 1) break;
  }
  CHECK_FALSE(threw);  // poll() does not throw what a codec threw
  const auto info = c.info();
  CHECK(delivered == 1);
  CHECK(info.decode_errors == 1);
  CHECK(info.dead_lettered == 1);
}

// Sees the pull requests a consumer sends (a second connection subscribed to the durable's
// MSG.NEXT subject) and sends core-NATS messages into the member's inbox, as a foreign client could.
class inbox_spy {
 public:
  inbox_spy(const std::string& url, const std::string& stream, const std::string& durable) {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    const std::string subject = "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable;
    REQUIRE(natsConnection_SubscribeSync(&sub_, nc_, subject.c_str()) == NATS_OK);
    REQUIRE(natsConnection_Flush(nc_) == NATS_OK);
  }
  ~inbox_spy() {
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  inbox_spy(const inbox_spy&) = delete;
  inbox_spy& operator=(const inbox_spy&) = delete;
  // The reply subject of the next pull request that waits (no no_wait), or "" after `limit`.
  std::string next_waiting_request(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      natsMsg* m = nullptr;
      if (natsSubscription_NextMsg(&m, sub_, 100) != NATS_OK) continue;
      const std::string body(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
      const std::string reply = natsMsg_GetReply(m) != nullptr ? natsMsg_GetReply(m) : "";
      natsMsg_Destroy(m);
      if (body.find("no_wait") == std::string::npos) return reply;
    }
    return {};
  }
  natsConnection* connection() const noexcept { return nc_; }

 private:
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
};

// A plain core-NATS message in a member's inbox (its pull request's subject, or another under its
// inbox): not a stream event, nothing to ack; the real event is still delivered and acked.
TEST_CASE("jetstream edges: a plain message sent into a member's inbox loses no event") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(edge_client_options(*server));
  js.ensure_stream({.name = "PLAIN", .subjects = {"plain.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<rjob>("plain.>");
  agentbus::jetstream_consumer<rjob> c(js, "PLAIN", "p", "plain.>", {.ack_wait = 1s});
  inbox_spy spy(server->url(), "PLAIN", "p");
  std::atomic<int> intruded{0};  // plain messages sent (no Catch2 assertion off the test's thread)
  std::thread intruder([&] {
    const std::string reply = spy.next_waiting_request(5s);
    if (reply.empty()) return;
    if (natsConnection_PublishString(spy.connection(), reply.c_str(), "hello") == NATS_OK) ++intruded;  // its own subject
    const std::string other = reply.substr(0, reply.rfind('.')) + ".999";
    if (natsConnection_PublishString(spy.connection(), other.c_str(), "hello") == NATS_OK) ++intruded;  // another one
    natsConnection_Flush(spy.connection());
    std::this_thread::sleep_for(200ms);
    (void)bus.publish("plain.a", rjob{"a", 1});
  });
  int seen = 0;
  const auto until = std::chrono::steady_clock::now() + 8s;
  while (seen == 0 && std::chrono::steady_clock::now() < until)
    (void)c.poll_for([&](const agentbus::delivered<rjob>&) { ++seen; }, 2s);
  intruder.join();
  REQUIRE(intruded == 2);
  REQUIRE(pub.wait_acknowledged(5s));
  const auto info = c.info();
  UNSCOPED_INFO("fetch_errors " << info.fetch_errors);
  CHECK(seen == 1);
  CHECK(info.acked == 1);
}

// The core-NATS import: a decode that throws something other than a std::exception was
// swallowed by nats_bridge::on_message without a count.
TEST_CASE("nats import: an import whose decode throws a non-standard exception is counted") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url()});
  agentbus::nats_bridge in(b, {.url = server->url()});
  out.export_type<fussy>("fz.>");
  in.import_type<fussy>("fz.>");
  std::atomic<int> delivered{0};
  auto sub = b.subscribe<fussy>("fz.>", [&](const fussy&) { ++delivered; });
  (void)a.publish("fz.a", fussy{"poison"});
  (void)a.publish("fz.a", fussy{"fine"});
  REQUIRE(wait_until([&] { return in.stats().received == 1; }));
  std::this_thread::sleep_for(100ms);
  const auto stats = in.stats();
  CHECK(delivered == 1);
  CHECK(stats.decode_errors == 1);  // the poison one: counted, not silently dropped
}

}  // namespace jetstream_edges_test

#endif  // AGENTBUS_TEST_NATS
