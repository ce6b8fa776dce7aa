// SPDX-License-Identifier: MIT
// The NATS bridge (agentbus/bridge/nats.hpp) against a real nats-server that each test starts
// on 127.0.0.1 on a free port and stops by its PID. Two buses in this process, each with its
// own bridge (its own connection), stand for two processes. Built with the NATS client only
// (CMake defines AGENTBUS_TEST_NATS when agentbus::nats exists); each test says why it is
// skipped when nats-server or the client is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>
#include <agentbus/consumer/durable.hpp>

#include <array>
#include <csignal>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "transport/nats_server.hpp"

namespace nats_bridge_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct order {
  static constexpr std::string_view event_name = "test.order";
  std::string id;
  double quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const order& o) {
  out.write_string(o.id);
  out.write_value(o.quantity);
}
order agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order>) {
  order o;
  o.id = in.read_string();
  o.quantity = in.read_value<double>();
  return o;
}

// The same schema name, a later version.
struct order_v2 {
  static constexpr std::string_view event_name = "test.order";
  static constexpr std::uint32_t event_version = 2;
  std::string id;
  double quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const order_v2& o) {
  out.write_string(o.id);
  out.write_value(o.quantity);
}
order_v2 agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order_v2>) {
  order_v2 o;
  o.id = in.read_string();
  o.quantity = in.read_value<double>();
  return o;
}

// Same name and version, another byte layout (the bitwise codec's fingerprint covers the size).
struct tick {
  static constexpr std::string_view event_name = "test.tick";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int32_t value = 0;
};
struct wide_tick {
  static constexpr std::string_view event_name = "test.tick";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int64_t value = 0;
};

struct received {
  std::string topic;
  order payload;
  std::string source;
  std::uint64_t correlation = 0;
  agentbus::priority prio = agentbus::priority::normal;
  std::optional<agentbus::deadline_clock::duration> time_left;
  std::vector<std::pair<std::string, std::string>> headers;

  std::string header(std::string_view key) const {
    for (const auto& [k, v] : headers)
      if (k == key) return v;
    return "(none)";
  }
};

// What a subscriber saw (handlers run on the client's delivery threads).
class collector {
 public:
  void operator()(const agentbus::event<order>& e) {
    received r{std::string(e.topic()), e.payload(), std::string(e.source()), e.correlation_id(), e.priority(), {}, {}};
    if (auto d = e.deadline()) r.time_left = *d - agentbus::deadline_clock::now();
    for (const auto& h : e.headers()) r.headers.emplace_back(h.key, h.value);
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(r));
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return events_.size();
  }
  std::vector<received> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::string> topics() const {
    std::vector<std::string> out;
    for (const auto& e : events()) out.push_back(e.topic);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<received> events_;
};

// nats_Close() once at exit, after every test's connections are gone.
struct close_library_at_exit {
  ~close_library_at_exit() { agentbus::nats_library_close(); }
} const close_at_exit;

}  // namespace nats_bridge_test

using namespace nats_bridge_test;

TEST_CASE("nats bridge: two buses bridged through the server deliver a typed event with its envelope") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url(), .outgoing = {"orders.>"}});
  agentbus::nats_bridge in(b, {.url = server->url(), .incoming = {"orders.>"}});
  out.export_type<order>("orders.>");
  in.import_type<order>("orders.>");

  collector local, remote;
  auto local_sub = a.subscribe<order>("orders.>", std::ref(local));
  auto remote_sub = b.subscribe<order>("orders.>", std::ref(remote));

  const std::array<agentbus::header, 2> headers{{
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"idempotency-key", "order-17"},
  }};
  const auto result = a.publish("orders.eu.created", order{"order-17", 2.5},
                                {.source = "planner",
                                 .correlation_id = 42,
                                 .prio = agentbus::priority::high,
                                 .ttl = std::chrono::seconds(30),
                                 .headers = headers});
  REQUIRE(result.delivered == 2);  // the local subscriber and the export
  CHECK(local.size() == 1);        // locally delivered inside publish(): no network hop

  REQUIRE(wait_until([&] { return remote.size() == 1; }));
  const received r = remote.events().front();
  CHECK(r.topic == "orders.eu.created");
  CHECK(r.payload.id == "order-17");
  CHECK(r.payload.quantity == 2.5);
  CHECK(r.source == "planner");
  CHECK(r.correlation == 42);
  CHECK(r.prio == agentbus::priority::high);
  REQUIRE(r.time_left.has_value());
  CHECK(*r.time_left > std::chrono::seconds(20));
  CHECK(*r.time_left <= std::chrono::seconds(30));
  CHECK(r.header("traceparent") == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(r.header("idempotency-key") == "order-17");
  CHECK(r.header("Agentbus-Origin") == out.id());
  CHECK(r.header("Agentbus-Event-Id") != "(none)");
  CHECK(r.header("Agentbus-Schema") == "(none)");  // the wire's own headers are not the event's

  const auto out_stats = out.stats();
  const auto in_stats = in.stats();
  CHECK(out_stats.sent == 1);
  CHECK(out_stats.dropped == 0);
  CHECK(out_stats.connected);
  CHECK(in_stats.received == 1);
  CHECK(in_stats.decode_errors == 0);
  CHECK(in_stats.schema_mismatches == 0);
  CHECK(local.size() == 1);  // the bridge did not deliver it a second time on a
  CHECK(out.id() != in.id());
}

TEST_CASE("nats bridge: wildcards map one to one to NATS subjects") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url()});
  agentbus::nats_bridge in(b, {.url = server->url()});
  out.export_type<order>("orders.>");
  out.export_type<order>("audit.*");
  in.import_type<order>("orders.*.created");  // `*`: exactly one segment
  in.import_type<order>("audit.>");           // `>`: one or more

  collector created, audited;
  auto s1 = b.subscribe<order>("orders.>", std::ref(created));
  auto s2 = b.subscribe<order>("audit.>", std::ref(audited));

  for (const char* t : {"orders.eu.created", "orders.eu.shipped", "orders.us.created", "orders.x.y.created",
                        "orders.created", "orders.done.created"})
    (void)a.publish(t, order{t, 1});
  for (const char* t : {"audit.one", "audit.one.two", "audit.last"}) (void)a.publish(t, order{t, 1});

  // Each import has its own delivery thread, in publish order: the last one in says all are in.
  REQUIRE(wait_until([&] { return created.size() == 3 && audited.size() == 2; }));
  std::this_thread::sleep_for(50ms);
  CHECK(created.topics() == std::vector<std::string>{"orders.eu.created", "orders.us.created", "orders.done.created"});
  // audit.* went out (one segment after audit): audit.one and audit.last; audit.one.two did not.
  CHECK(audited.topics() == std::vector<std::string>{"audit.one", "audit.last"});
  CHECK(out.stats().sent == 8);
  CHECK(in.stats().received == 5);
}

TEST_CASE("nats bridge: loop prevention: two bridges exporting and importing the same pattern see each event once") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge bridge_a(a, {.url = server->url(), .outgoing = {"chat.>"}, .incoming = {"chat.>"}});
  agentbus::nats_bridge bridge_b(b, {.url = server->url(), .outgoing = {"chat.>"}, .incoming = {"chat.>"}});
  for (auto* bridge : {&bridge_a, &bridge_b}) {
    bridge->export_type<order>("chat.>");
    bridge->import_type<order>("chat.>");
  }
  collector at_a, at_b;
  auto sa = a.subscribe<order>("chat.>", std::ref(at_a));
  auto sb = b.subscribe<order>("chat.>", std::ref(at_b));

  (void)a.publish("chat.1", order{"from a", 1});
  REQUIRE(wait_until([&] { return at_b.size() == 1; }));
  (void)b.publish("chat.2", order{"from b", 2});
  REQUIRE(wait_until([&] { return at_a.size() == 2; }));

  // Give an echo or a ping-pong every chance to show up.
  bridge_a.connection().flush();
  bridge_b.connection().flush();
  std::this_thread::sleep_for(300ms);

  CHECK(at_a.topics() == std::vector<std::string>{"chat.1", "chat.2"});
  CHECK(at_b.topics() == std::vector<std::string>{"chat.1", "chat.2"});
  const auto sa_stats = bridge_a.stats(), sb_stats = bridge_b.stats();
  CHECK(sa_stats.sent == 1);  // only its own bus's event
  CHECK(sb_stats.sent == 1);
  CHECK(sa_stats.received == 1);  // only the other bus's event
  CHECK(sb_stats.received == 1);
  CHECK(sa_stats.not_sent_back == 1);  // the imported event reached the export and stayed
  CHECK(sb_stats.not_sent_back == 1);

  SECTION("one bridge exporting and importing the same pattern on one bus delivers each event once") {
    agentbus::bus c;
    agentbus::nats_bridge self(c, {.url = server->url()});
    self.export_type<order>("chat.>");
    self.import_type<order>("chat.>");
    collector at_c;
    auto sc = c.subscribe<order>("chat.>", std::ref(at_c));
    (void)c.publish("chat.3", order{"from c", 3});
    REQUIRE(wait_until([&] { return at_a.size() == 3 && at_b.size() == 3; }));
    self.connection().flush();
    std::this_thread::sleep_for(200ms);
    CHECK(at_c.size() == 1);  // the local delivery; its own message never comes back in
    CHECK(self.stats().received == 0);
    CHECK(at_a.size() == 3);
    CHECK(at_b.size() == 3);
  }
}

TEST_CASE("nats bridge: a wrong schema or fingerprint is counted and reported, not delivered") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url()});
  std::mutex mutex;
  std::vector<std::pair<agentbus::nats_problem_kind, std::string>> problems;
  agentbus::nats_bridge in(b, {.url = server->url()}, [&](const agentbus::nats_bridge_problem& p) {
    std::lock_guard lock(mutex);
    problems.emplace_back(p.kind, std::string(p.what));
  });
  out.export_type<order>("orders.>");
  out.export_type<tick>("ticks.>");
  in.import_type<order_v2>("orders.>");  // same name, version 2
  in.import_type<wide_tick>("ticks.>");  // same name and version, another layout

  std::atomic<int> delivered{0};
  auto s1 = b.subscribe<order_v2>("orders.>", [&](const order_v2&) { ++delivered; });
  auto s2 = b.subscribe<wide_tick>("ticks.>", [&](const wide_tick&) { ++delivered; });

  (void)a.publish("orders.eu.created", order{"x", 1});
  (void)a.publish("ticks.a", tick{7});
  REQUIRE(wait_until([&] { return in.stats().schema_mismatches == 2; }));

  // Bytes that do not decode under the right schema headers: a decode error.
  {
    const char bytes[] = {1, 2, 3};
    agentbus::detail::nats_message msg("ticks.raw", bytes, sizeof bytes);
    msg.add_header(agentbus::nats_header::schema, "test.tick");
    msg.add_header(agentbus::nats_header::schema_version, "1");
    msg.add_header(agentbus::nats_header::fingerprint,
                   agentbus::detail::hex64(agentbus::codec_fingerprint<wide_tick>()).c_str());
    REQUIRE(natsConnection_PublishMsg(out.connection().get(), msg.get()) == NATS_OK);
  }
  REQUIRE(wait_until([&] { return in.stats().decode_errors == 1; }));
  out.connection().flush();
  std::this_thread::sleep_for(50ms);

  CHECK(delivered == 0);
  const auto stats = in.stats();
  CHECK(stats.received == 0);
  CHECK(stats.schema_mismatches == 2);
  CHECK(stats.decode_errors == 1);
  std::lock_guard lock(mutex);
  REQUIRE(problems.size() == 3);
  int mismatches = 0;
  for (const auto& [kind, what] : problems) {
    if (kind == agentbus::nats_problem_kind::schema_mismatch) {
      ++mismatches;
      CHECK_THAT(what, Catch::Contains("expected schema test."));
    } else {
      CHECK(kind == agentbus::nats_problem_kind::decode_error);
      CHECK_THAT(what, Catch::Contains("not delivered"));
    }
  }
  CHECK(mismatches == 2);
  bool saw_version = false;
  for (const auto& p : problems) saw_version = saw_version || p.second.find("test.order v1") != std::string::npos;
  CHECK(saw_version);  // the message names what it got
}

TEST_CASE("nats bridge: an upcaster converts an older schema version from a process not yet upgraded") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus old_process, new_process;
  agentbus::nats_bridge out(old_process, {.url = server->url()});
  std::atomic<int> problems{0};
  agentbus::nats_bridge in(new_process, {.url = server->url()}, [&](const agentbus::nats_bridge_problem&) { ++problems; });
  out.export_type<order>("orders.>");     // version 1
  in.import_type<order_v2>("orders.>");   // this process reads version 2
  std::mutex mutex;
  std::vector<std::pair<std::string, double>> got;
  auto sub = new_process.subscribe<order_v2>("orders.>", [&](const order_v2& o) {
    std::lock_guard lock(mutex);
    got.emplace_back(o.id, o.quantity);
  });

  (void)old_process.publish("orders.a", order{"before", 1});  // no upcaster yet: a mismatch naming the fix
  REQUIRE(wait_until([&] { return in.stats().schema_mismatches == 1; }));
  in.upcast<order_v2>(1, [](agentbus::byte_reader& r) {
    order_v2 o;
    o.id = r.read_string();
    o.quantity = r.read_value<double>() * 10;  // version 2 counts in tenths
    return o;
  });
  (void)old_process.publish("orders.b", order{"after", 2.5});
  REQUIRE(wait_until([&] { return in.stats().received == 1; }));
  std::lock_guard lock(mutex);
  REQUIRE(got.size() == 1);
  CHECK(got.front().first == "after");
  CHECK(got.front().second == 25.0);
  CHECK(in.stats().upcast == 1);
  CHECK(problems == 1);
}

TEST_CASE("nats bridge: a server that is not there gives a clear error at construction, at once") {
  agentbus::bus bus;
  const std::string url = "nats://127.0.0.1:" + std::to_string(agentbus::test::unused_port());
  const auto start = std::chrono::steady_clock::now();
  try {
    agentbus::nats_bridge bridge(bus, {.url = url});
    FAIL("connected to a server that is not running at " << url);
  } catch (const agentbus::nats_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot connect") && Catch::Contains(url));
    CHECK(e.status() != 0);
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
  // The bus is untouched: it still works without the bridge.
  int seen = 0;
  auto sub = bus.subscribe<order>("orders.>", [&](const order&) { ++seen; });
  (void)bus.publish("orders.a", order{"a", 1});
  CHECK(seen == 1);
}

TEST_CASE("nats bridge: a lost server: what cannot be sent is counted as dropped and reported") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a;
  std::atomic<int> reported{0};
  agentbus::nats_bridge out(a, {.url = server->url(), .max_reconnect = 0},
                            [&](const agentbus::nats_bridge_problem& p) {
                              if (p.kind == agentbus::nats_problem_kind::send_failed) ++reported;
                            });
  out.export_type<order>("orders.>");
  (void)a.publish("orders.1", order{"1", 1});
  out.connection().flush();
  CHECK(out.stats().sent == 1);

  server->stop();
  REQUIRE(wait_until([&] { return !out.stats().connected; }));
  int local = 0;
  auto sub = a.subscribe<order>("orders.>", [&](const order&) { ++local; });
  (void)a.publish("orders.2", order{"2", 2});
  (void)a.publish("orders.3", order{"3", 3});
  CHECK(local == 2);  // local delivery does not depend on the server
  const auto stats = out.stats();
  CHECK(stats.sent == 1);
  CHECK(stats.dropped == 2);
  CHECK(reported == 2);
}

TEST_CASE("nats bridge: an import whose bus falls behind drops beyond its pending limit, counted, and -1 keeps all") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a;
  agentbus::nats_bridge out(a, {.url = server->url()});
  out.export_type<order>("orders.>");
  for (const int limit : {10, -1}) {
    agentbus::bus b;
    agentbus::nats_bridge in(b, {.url = server->url(), .incoming_pending_messages = limit});
    in.import_type<order>("orders.>");
    // The local subscriber holds the client's delivery thread until every publish is sent.
    std::atomic<bool> release{false};
    std::atomic<int> seen{0};
    auto sub = b.subscribe<order>("orders.>", [&](const order&) {
      while (!release.load()) std::this_thread::sleep_for(1ms);
      ++seen;
    });
    constexpr int published = 100;
    for (int i = 0; i < published; ++i) (void)a.publish("orders.x", order{std::to_string(i), 1});
    out.connection().flush();
    // The import has 100 messages on the wire to it; with a limit of 10 the client keeps the
    // one in the handler and 10 waiting, and drops the rest. Give them time to arrive.
    std::this_thread::sleep_for(300ms);
    release = true;
    REQUIRE(wait_until([&] {
      const auto st = in.stats();
      return st.received + st.dropped_incoming == static_cast<std::uint64_t>(published);
    }));
    const auto st = in.stats();
    CHECK(static_cast<std::uint64_t>(seen.load()) == st.received);
    if (limit == 10) {
      CHECK(st.dropped_incoming >= 80);
      CHECK(st.received <= 20);
    } else {
      CHECK(st.dropped_incoming == 0);
      CHECK(st.received == static_cast<std::uint64_t>(published));
    }
  }
  agentbus::bus c;
  CHECK_THROWS_WITH((agentbus::nats_bridge(c, {.url = server->url(), .incoming_pending_messages = 0})),
                    Catch::Contains("cannot be 0"));
  CHECK_THROWS_WITH((agentbus::nats_bridge(c, {.url = server->url(), .incoming_pending_bytes = 0})),
                    Catch::Contains("cannot be 0"));
}

TEST_CASE("nats bridge: a delayed event waits in the storage of an importing bus that stores, and is refused by one that does not") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  using ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<64>>;
  ring_bus a, b;   // delay needs a bus that stores: the exporter's and the importer that holds it
  agentbus::bus c;  // stores nothing
  agentbus::nats_bridge out(a, {.url = server->url()});
  agentbus::nats_bridge in(b, {.url = server->url()});
  std::atomic<int> not_stored_reports{0};
  agentbus::nats_bridge plain(c, {.url = server->url()}, [&](const agentbus::nats_bridge_problem& p) {
    if (p.kind == agentbus::nats_problem_kind::not_stored) ++not_stored_reports;
  });
  out.export_type<order>("later.>");
  in.import_type<order>("later.>");
  plain.import_type<order>("later.>");
  agentbus::durable_consumer<order> worker(b, "worker", "later.>");
  collector live_b, live_c;
  auto live_b_sub = b.subscribe<order>("later.>", std::ref(live_b));
  auto live_c_sub = c.subscribe<order>("later.>", std::ref(live_c));

  const auto published = std::chrono::steady_clock::now();
  (void)a.publish("later.x", order{"late", 1}, {.delay = 800ms});
  (void)a.publish("later.x", order{"now", 2});
  REQUIRE(wait_until([&] { return in.stats().received == 2 && plain.stats().received + plain.stats().not_stored == 2; }));
  CHECK(out.stats().sent == 2);  // the delayed one went out at once
  CHECK(in.stats().delayed == 1);
  CHECK(plain.stats().not_stored == 1);
  CHECK(not_stored_reports == 1);
  CHECK(live_c.size() == 1);  // only "now"
  CHECK(live_b.size() == 1);  // a live subscription never sees a delayed event
  std::vector<std::pair<std::string, std::chrono::steady_clock::duration>> got;
  auto take = [&](const agentbus::delivered<order>& d) {
    got.emplace_back(d.payload().id, std::chrono::steady_clock::now() - published);
  };
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (got.size() < 2 && std::chrono::steady_clock::now() < until) worker.poll_for(take, 200ms);
  REQUIRE(got.size() == 2);
  CHECK(got[0].first == "now");
  CHECK(got[1].first == "late");
  CHECK(got[1].second >= 750ms);  // held until due (the sender's due time, not a fresh delay)
  CHECK(got[1].second < 5s);
}

TEST_CASE("nats bridge: a deadline header at the ends of int64 from another client: expired or no deadline, never an overflow") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus b;
  agentbus::nats_bridge in(b, {.url = server->url()});
  in.import_type<order>("foreign.>");
  collector got;
  auto sub = b.subscribe<order>("foreign.>", std::ref(got));
  agentbus::nats_connection raw({.url = server->url()});
  for (const char* deadline : {"-9223372036854775808", "9223372036854775807", "99999999999999999999"}) {
    agentbus::byte_writer writer;
    auto m = agentbus::detail::encode_payload(order{deadline, 1}, "foreign.x", writer);
    REQUIRE(agentbus::detail::add_schema_headers_one_by_one<order>(m) == NATS_OK);
    REQUIRE(m.add_header(agentbus::nats_header::deadline, deadline) == NATS_OK);
    REQUIRE(natsConnection_PublishMsg(raw.get(), m.get()) == NATS_OK);
  }
  raw.flush();
  REQUIRE(wait_until([&] { return in.stats().expired + in.stats().received == 3; }));
  CHECK(in.stats().expired == 1);  // long passed
  const auto events = got.events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].payload.id == "9223372036854775807");
  REQUIRE(events[0].time_left.has_value());  // the year 2262: centuries left, no wrap-around
  CHECK(*events[0].time_left > std::chrono::hours(24 * 365 * 100));
  CHECK(events[1].payload.id == "99999999999999999999");  // not a number: no deadline
  CHECK_FALSE(events[1].time_left.has_value());
}

TEST_CASE("nats bridge: a server killed and restarted mid-stream: every event not sent is counted") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b, c;
  std::atomic<int> reported{0};
  agentbus::nats_bridge out(a, {.url = server->url(), .max_reconnect = 200, .reconnect_wait = 20ms});
  agentbus::nats_bridge in(b, {.url = server->url(), .max_reconnect = 200, .reconnect_wait = 20ms});
  // A bridge that gives up after one reconnect attempt.
  agentbus::nats_bridge brief(c, {.url = server->url(), .max_reconnect = 1, .reconnect_wait = 20ms},
                              [&](const agentbus::nats_bridge_problem& p) {
                                if (p.kind == agentbus::nats_problem_kind::send_failed) ++reported;
                              });
  out.export_type<order>("orders.>");
  brief.export_type<order>("orders.>");
  in.import_type<order>("orders.>");
  std::atomic<int> arrived{0};
  auto sub = b.subscribe<order>("orders.>", [&](const order&) { ++arrived; });

  for (int i = 0; i < 100; ++i) (void)a.publish("orders.before", order{"x", 1.0 * i});
  REQUIRE(wait_until([&] { return arrived.load() == 100; }));

  server->halt(SIGKILL);  // a crash: no goodbye on the wire
  REQUIRE(wait_until([&] { return !out.connection().connected() && !brief.connection().connected(); }));
  for (int i = 0; i < 50; ++i) {
    (void)a.publish("orders.during", order{"y", 1.0 * i});
    (void)c.publish("orders.during", order{"z", 1.0 * i});
  }
  auto during = out.stats();
  CHECK(during.buffered == 50);  // waiting in the client's reconnect buffer, not yet sent
  CHECK(during.sent == 100);
  CHECK(during.dropped == 0);

  // The brief bridge gives up: what its buffer held is counted as dropped and reported.
  REQUIRE(wait_until([&] { return brief.stats().dropped == 50; }, 5s));
  const auto gave_up = brief.stats();
  CHECK(gave_up.buffered == 0);
  CHECK(gave_up.sent == 0);  // it published nothing before the crash
  CHECK_FALSE(gave_up.connected);
  CHECK(reported >= 1);
  (void)c.publish("orders.after", order{"z", 0});  // the connection is closed now: dropped at once
  CHECK(brief.stats().dropped == 51);

  server->restart();  // the same port
  REQUIRE(wait_until([&] { return out.connection().connected() && in.connection().connected(); }, 10s));
  const auto back = out.stats();
  CHECK(back.buffered == 0);
  CHECK(back.sent == 150);  // the reconnect buffer went out first
  CHECK(back.dropped == 0);
  // Events after the restart arrive again (the importer re-subscribed on reconnecting). The
  // 50 sent from the buffer may reach the server before the importer's subscription does:
  // core NATS is at most once, so only the later ones are checked.
  const int before_after = arrived.load();
  CHECK(before_after >= 100);
  REQUIRE(wait_until([&] {
    (void)a.publish("orders.after", order{"w", 1});
    return arrived.load() > before_after;
  }));
  CHECK(out.stats().dropped == 0);
}

TEST_CASE("nats bridge: exports still in the reconnect buffer when the bridge is destroyed are counted and reported") {
  // They went with the connection, neither sent nor counted nor reported.
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a;
  std::mutex problems_mutex;
  std::vector<std::string> problems;
  {
    agentbus::nats_bridge out(a, {.url = server->url(), .max_reconnect = 200, .reconnect_wait = 20ms},
                              [&](const agentbus::nats_bridge_problem& p) {
                                if (p.kind != agentbus::nats_problem_kind::send_failed) return;
                                const std::lock_guard lock(problems_mutex);
                                problems.emplace_back(p.what);
                              });
    out.export_type<order>("orders.>");
    server->halt(SIGKILL);
    REQUIRE(wait_until([&] { return !out.connection().connected(); }));
    for (int i = 0; i < 20; ++i) (void)a.publish("orders.during", order{"y", 1.0 * i});
    CHECK(out.stats().buffered == 20);
  }  // destroyed while the server is still away
  const std::lock_guard lock(problems_mutex);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("20 event(s)") == 0);
  CHECK(problems[0].find("destroyed") != std::string::npos);
}

TEST_CASE("nats bridge: topics starting with '$' are reserved and never bridged") {
  agentbus::bus bus;
  SECTION("in the options: refused before connecting") {
    CHECK_THROWS_WITH((agentbus::nats_bridge(bus, {.url = "nats://127.0.0.1:1", .outgoing = {"$SYS.>"}})),
                      Catch::Contains("reserved") && Catch::Contains("$SYS.>"));
    CHECK_THROWS_AS((agentbus::nats_bridge(bus, {.url = "nats://127.0.0.1:1", .incoming = {"$JS.API.>"}})),
                    std::invalid_argument);
  }
  SECTION("in export_type and import_type, and a `$` topic that a wildcard matches") {
    AGENTBUS_NATS_SERVER_OR_SKIP(server);
    agentbus::nats_bridge bridge(bus, {.url = server->url(), .outgoing = {"orders.>", ">"}, .incoming = {"prices.*"}});
    CHECK_THROWS_WITH(bridge.export_type<order>("$agentbus.deadletter"),
                      Catch::Contains("export_type(\"$agentbus.deadletter\")") && Catch::Contains("reserved"));
    CHECK_THROWS_WITH(bridge.import_type<order>("$SYS.>"), Catch::Contains("reserved"));
    // Outside the options' lists: refused, naming the list.
    CHECK_THROWS_WITH(bridge.import_type<order>("orders.>"),
                      Catch::Contains("prices.*") && Catch::Contains("nats_options::incoming"));
    CHECK_THROWS_AS(bridge.import_type<order>("prices.>"), std::invalid_argument);  // wider than prices.*
    CHECK_NOTHROW(bridge.import_type<order>("prices.eu"));                          // inside prices.*
    CHECK_THROWS_AS(bridge.export_type<order>("orders..x"), agentbus::topic_error);

    bridge.export_type<order>(">");
    (void)bus.publish("$agentbus.lifecycle", order{"x", 1});
    (void)bus.publish("plain", order{"y", 1});
    const auto stats = bridge.stats();
    CHECK(stats.reserved_skipped == 1);
    CHECK(stats.sent == 1);
  }
}

TEST_CASE("nats bridge: pattern_covers decides which patterns the options allow") {
  using agentbus::detail::pattern_covers;
  CHECK(pattern_covers("orders.>", "orders.eu"));
  CHECK(pattern_covers("orders.>", "orders.*.created"));
  CHECK(pattern_covers("orders.>", "orders.>"));
  CHECK_FALSE(pattern_covers("orders.>", "orders"));
  CHECK(pattern_covers(">", "a"));
  CHECK(pattern_covers("prices.*", "prices.eu"));
  CHECK(pattern_covers("prices.*", "prices.*"));
  CHECK_FALSE(pattern_covers("prices.*", "prices.>"));
  CHECK_FALSE(pattern_covers("prices.*", "prices.eu.x"));
  CHECK_FALSE(pattern_covers("prices.*", "prices"));
  CHECK_FALSE(pattern_covers("a.b", "a.*"));
  CHECK(pattern_covers("a.b", "a.b"));
  CHECK_FALSE(pattern_covers("a.b", "a.c"));
}

#else  // built without the NATS client

TEST_CASE("nats bridge: skipped: built without the NATS C client") {
  WARN("skipped: the NATS bridge tests need the NATS C client (Debian: apt-get install libnats-dev; CMake then "
       "offers agentbus::nats) and nats-server");
}

#endif
