// SPDX-License-Identifier: MIT
// The JetStream path (agentbus/bridge/jetstream.hpp) against a real nats-server with JetStream
// that each test starts on 127.0.0.1 on a free port, with its own store directory, and stops
// (or kills, and starts again on the same port and store) by its PID. Built with the NATS client
// only (CMake defines AGENTBUS_TEST_NATS when agentbus::nats exists); each test says why it is
// skipped when nats-server or the client is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/jetstream.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "agentbus/detail/config.hpp"
#include "transport/nats_server.hpp"

namespace jetstream_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct job {
  static constexpr std::string_view event_name = "test.js.job";
  std::string key;
  std::uint32_t n = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const job& j) {
  out.write_string(j.key);
  out.write_value(j.n);
}
job agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<job>) {
  job j;
  j.key = in.read_string();
  j.n = in.read_value<std::uint32_t>();
  return j;
}

// The same schema name, a later version.
struct job_v2 {
  static constexpr std::string_view event_name = "test.js.job";
  static constexpr std::uint32_t event_version = 2;
  std::string key;
  std::uint32_t n = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const job_v2& j) {
  out.write_string(j.key);
  out.write_value(j.n);
}
job_v2 agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<job_v2>) {
  job_v2 j;
  j.key = in.read_string();
  j.n = in.read_value<std::uint32_t>();
  return j;
}

struct other_event {
  static constexpr std::string_view event_name = "test.js.other";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int32_t value = 0;
};

// nats_Close() at exit: nats_bridge.cpp's close_at_exit does it once for this whole program (a
// second nats_Close() crashes the client library, so this file does not add its own).

// Reconnects quickly (tests restart the server) and keeps trying for a minute.
agentbus::nats_options client_options(const agentbus::test::nats_server& server) {
  return {.url = server.url(), .max_reconnect = 1200, .reconnect_wait = 50ms};
}

// The headers of a delivered event, as strings.
std::map<std::string, std::string> headers_of(const agentbus::event<job>& e) {
  std::map<std::string, std::string> out;
  for (const auto& h : e.headers()) out.emplace(std::string(h.key), std::string(h.value));
  return out;
}

// A header of the message at `seq` in `stream`, read straight from the server ("(none)" if absent).
std::string stored_header(agentbus::jetstream_client& js, const char* stream, std::uint64_t seq, const char* key) {
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (js_GetMsg(&msg, js.context(), stream, seq, nullptr, &code) != NATS_OK) return "(no message)";
  const char* value = nullptr;
  std::string out = natsMsgHeader_Get(msg, key, &value) == NATS_OK && value != nullptr ? value : "(none)";
  natsMsg_Destroy(msg);
  return out;
}

struct result_log {
  std::mutex mutex;
  std::vector<std::string> acknowledged, failed;  // msg ids
  std::map<std::string, std::uint64_t> sequence;  // msg id -> stream sequence
  std::size_t duplicates = 0;
  agentbus::jetstream_result_handler handler() {
    return [this](const agentbus::jetstream_publish_result& r) {
      std::lock_guard lock(mutex);
      if (r.acknowledged) {
        acknowledged.emplace_back(r.msg_id);
        sequence[std::string(r.msg_id)] = r.sequence;
        if (r.duplicate) ++duplicates;
      } else {
        failed.emplace_back(r.msg_id);
      }
    };
  }
};

// Polls `consumer` until `done()` or `limit`, calling `handler`. Each poll_for waits up to `step`
// (a pull request that expires then). Long steps on purpose: nats-server 2.9.10 can lose a
// redelivery until ack_wait, and deliver another event again with a delivery count of 1, when the
// redelivery falls due just as a waiting pull request expires (fixed in nats-server 2.10,
// nats-io/nats-server#5305 and #5338); tests that count attempts exactly keep expiries rare.
template <class C, class F, class Pred>
bool poll_until(C& consumer, F&& handler, Pred done, std::chrono::milliseconds limit = 10s,
                std::chrono::milliseconds step = 1s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    consumer.poll_for(handler, std::min(step, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  until - std::chrono::steady_clock::now() + 1ms)));
  }
  return true;
}

TEST_CASE("jetstream: ensure_stream creates a stream once and refuses another configuration") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));

  const auto made = js.ensure_stream(
      {.name = "ORDERS", .subjects = {"orders.>", "audit.*"}, .duplicate_window = 1min, .max_age = 1h});
  CHECK(made.created);
  CHECK(made.name == "ORDERS");
  CHECK(made.file_storage);
  CHECK(made.subjects == std::vector<std::string>{"orders.>", "audit.*"});
  CHECK(made.duplicate_window == 1min);
  CHECK(made.max_age == 1h);
  CHECK(made.messages == 0);

  // The same configuration (subjects in another order): left as it is.
  const auto again = js.ensure_stream(
      {.name = "ORDERS", .subjects = {"audit.*", "orders.>"}, .duplicate_window = 1min, .max_age = 1h});
  CHECK_FALSE(again.created);
  CHECK(again.name == "ORDERS");

  // Another configuration: a clear error naming what differs.
  try {
    js.ensure_stream({.name = "ORDERS", .subjects = {"orders.>", "audit.*"}, .duplicate_window = 1min, .max_age = 2h});
    FAIL("a stream with another max_age was accepted");
  } catch (const agentbus::jetstream_error& e) {
    CHECK(e.code() == 10058);
    CHECK_THAT(e.what(), Catch::Contains("ORDERS") && Catch::Contains("max_age 3600000 ms (wanted 7200000 ms)"));
  }
  CHECK_THROWS_WITH(js.ensure_stream({.name = "ORDERS", .subjects = {"orders.>"}, .duplicate_window = 1min, .max_age = 1h}),
                    Catch::Contains("subjects") && Catch::Contains("audit.*"));
  CHECK_THROWS_WITH(js.ensure_stream({.name = "ORDERS", .subjects = {"orders.>", "audit.*"}, .max_age = 1h}),
                    Catch::Contains("duplicate_window 60000 ms (wanted 120000 ms)"));
  // Another stream on overlapping subjects.
  CHECK_THROWS_WITH(js.ensure_stream({.name = "EU", .subjects = {"orders.eu.>"}}), Catch::Contains("overlap"));
  // Bad arguments, refused before the server is asked.
  CHECK_THROWS_AS(js.ensure_stream({.name = "a.b", .subjects = {"x.>"}}), std::invalid_argument);
  CHECK_THROWS_AS(js.ensure_stream({.name = "X", .subjects = {}}), std::invalid_argument);
  CHECK_THROWS_AS(js.ensure_stream({.name = "X", .subjects = {"a..b"}}), agentbus::topic_error);
  CHECK_THROWS_AS(js.ensure_stream({.name = "X", .subjects = {"x.>"}, .duplicate_window = 0ms}), std::invalid_argument);
  CHECK_THROWS_AS(js.ensure_stream({.name = "X", .subjects = {"x.>"}, .duplicate_window = 2min, .max_age = 1min}),
                  std::invalid_argument);
  CHECK_FALSE(js.stream_info("X").has_value());

  // A stream of file storage survives a restart of the server.
  server->halt(SIGINT);
  server->restart();
  REQUIRE(wait_until([&] { return js.connection().connected(); }));
  const auto after = js.stream_info("ORDERS");
  REQUIRE(after.has_value());
  CHECK(after->max_age == 1h);
  CHECK_FALSE(js.ensure_stream({.name = "ORDERS", .subjects = {"orders.>", "audit.*"}, .duplicate_window = 1min, .max_age = 1h})
                  .created);
  CHECK(js.delete_stream("ORDERS"));
  CHECK_FALSE(js.stream_info("ORDERS").has_value());
  CHECK_FALSE(js.delete_stream("ORDERS"));
}

TEST_CASE("jetstream: a server without JetStream gives a clear error") {
  const auto program = agentbus::test::find_nats_server();
  if (!program) {
    WARN("skipped: nats-server is not installed (Debian: apt-get install nats-server; or set AGENTBUS_NATS_SERVER)");
    return;
  }
  agentbus::test::nats_server plain(*program);  // no -js
  CHECK_THROWS_WITH(agentbus::jetstream_client({.url = plain.url()}),
                    Catch::Contains("JetStream is not available") && Catch::Contains(plain.url()));
}

TEST_CASE("jetstream: the same msg id twice is stored once") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "DEDUP", .subjects = {"orders.>"}, .duplicate_window = 1min});
  agentbus::bus bus;
  result_log log;
  agentbus::jetstream_publisher pub(bus, js, {.on_result = log.handler()});
  pub.export_type<job>("orders.>");

  const std::array<agentbus::header, 1> key{{{agentbus::idempotency_header, "order-1"}}};
  (void)bus.publish("orders.a", job{"first", 1}, {.headers = key});
  (void)bus.publish("orders.a", job{"again", 1}, {.headers = key});  // the same key: stored once
  (void)bus.publish("orders.b", job{"plain", 2});                    // no key: <origin>:<event id>
  (void)bus.publish("orders.b", job{"plain", 2});                    // another event: stored too
  REQUIRE(pub.wait_acknowledged(5s));

  // Another publisher (another process) with the same key: the server still has it.
  agentbus::bus other_bus;
  agentbus::jetstream_publisher other(other_bus, js, {.on_result = log.handler()});
  other.export_type<job>("orders.>");
  (void)other_bus.publish("orders.a", job{"from elsewhere", 1}, {.headers = key});
  REQUIRE(other.wait_acknowledged(5s));

  const auto stats = pub.stats();
  CHECK(stats.sent == 4);
  CHECK(stats.acknowledged == 4);
  CHECK(stats.duplicates == 1);
  CHECK(stats.failed == 0);
  CHECK(stats.pending == 0);
  CHECK(other.stats().duplicates == 1);
  const auto info = js.stream_info("DEDUP");
  REQUIRE(info.has_value());
  CHECK(info->messages == 3);

  {
    std::lock_guard lock(log.mutex);
    REQUIRE(log.acknowledged.size() == 5);
    CHECK(log.acknowledged[0] == "order-1");
    CHECK(log.acknowledged[1] == "order-1");
    CHECK(log.duplicates == 2);
    CHECK(log.sequence["order-1"] == 1);  // the duplicates were acknowledged with the first one's sequence
    CHECK(log.acknowledged[2].rfind(pub.origin() + ":", 0) == 0);
    CHECK(log.acknowledged[3].rfind(pub.origin() + ":", 0) == 0);
    CHECK(log.acknowledged[2] != log.acknowledged[3]);
    CHECK(pub.origin() != other.origin());
  }
  CHECK(stored_header(js, "DEDUP", 1, agentbus::nats_header::msg_id) == "order-1");
  CHECK(stored_header(js, "DEDUP", 1, agentbus::nats_header::schema) == "test.js.job");

  // What a consumer sees of the stored events: the first keyed one, its key kept as a header.
  agentbus::jetstream_consumer<job> reader(js, "DEDUP", "reader", "orders.>");
  std::vector<std::pair<std::string, std::string>> seen;  // payload key, agentbus-msg-id
  REQUIRE(poll_until(
      reader,
      [&](const agentbus::delivered<job>& d) {
        const auto h = headers_of(d.event());
        const auto it = h.find(std::string(agentbus::idempotency_header));
        seen.emplace_back(d.payload().key, it == h.end() ? "(none)" : it->second);
      },
      [&] { return seen.size() == 3; }));
  CHECK(seen[0] == std::pair<std::string, std::string>{"first", "order-1"});
  CHECK(seen[1].first == "plain");
  CHECK(seen[2].first == "plain");

  // Events that came in from NATS are not stored again; `$` patterns are refused.
  const std::array<agentbus::header, 1> imported{{{agentbus::nats_header::origin, "agentbus-elsewhere"}}};
  (void)bus.publish("orders.c", job{"imported", 3}, {.headers = imported});
  CHECK(pub.stats().not_sent_back == 1);
  CHECK(pub.stats().sent == 4);
  CHECK_THROWS_AS(pub.export_type<job>("$dlq.>"), std::invalid_argument);
}

TEST_CASE("jetstream: a durable consumer resumes at the first unacknowledged event when made again") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "JOBS", .subjects = {"jobs.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("jobs.>");
  for (std::uint32_t i = 1; i <= 10; ++i) (void)bus.publish("jobs.run", job{"j" + std::to_string(i), i});
  REQUIRE(pub.wait_acknowledged(5s));
  REQUIRE(pub.stats().acknowledged == 10);

  const agentbus::consumer_options options{.ack_wait = 600ms, .max_deliver = 5};
  {
    agentbus::jetstream_consumer<job> first(js, "JOBS", "worker", "jobs.>", options);
    CHECK_FALSE(first.info().resumed);
    std::vector<std::uint32_t> seen;
    // 1-4 acked; 5 deferred and its token dropped: never settled by this process.
    auto handler = [&](const agentbus::delivered<job>& d) {
      seen.push_back(d.payload().n);
      CHECK(d.attempt() == 1);
      CHECK(d.consumer() == "worker");
      if (d.payload().n == 5) (void)d.defer();
    };
    while (seen.size() < 5) REQUIRE(first.poll_for(handler, 2s, 5 - seen.size()) > 0);
    CHECK(seen == std::vector<std::uint32_t>{1, 2, 3, 4, 5});
  }  // destroyed: its pull subscription ends, the durable stays on the server

  agentbus::jetstream_consumer<job> again(js, "JOBS", "worker", "jobs.>", options);
  CHECK(again.info().resumed);
  std::map<std::uint32_t, std::uint32_t> attempts;  // n -> attempt
  REQUIRE(poll_until(
      again, [&](const agentbus::delivered<job>& d) { attempts[d.payload().n] = d.attempt(); },
      [&] { return attempts.size() == 6; }));
  CHECK(attempts == std::map<std::uint32_t, std::uint32_t>{{5, 2}, {6, 1}, {7, 1}, {8, 1}, {9, 1}, {10, 1}});
  REQUIRE(wait_until([&] {
    const auto i = again.info();
    return i.server_state && i.pending == 0 && i.lag == 0;
  }));
  const auto info = again.info();
  CHECK(info.floor == 11);  // every event up to 10 is acknowledged
  CHECK(info.acked == 6);

  // The durable also survives a restart of the server; the same object carries on.
  server->halt(SIGINT);
  server->restart();
  REQUIRE(wait_until([&] { return js.connection().connected(); }));
  (void)bus.publish("jobs.run", job{"j11", 11});
  REQUIRE(pub.wait_acknowledged(5s));
  REQUIRE(poll_until(
      again, [&](const agentbus::delivered<job>& d) { attempts[d.payload().n] = d.attempt(); },
      [&] { return attempts.count(11) == 1; }));
  CHECK(attempts.size() == 7);  // nothing acknowledged came again

  // Another pattern or event type under that name: refused, as in process.
  CHECK_THROWS_WITH((agentbus::jetstream_consumer<job>(js, "JOBS", "worker", "jobs.eu.>", options)),
                    Catch::Contains("exists for pattern 'jobs.>'"));
  CHECK_THROWS_AS((agentbus::jetstream_consumer<other_event>(js, "JOBS", "worker", "jobs.>", options)),
                  std::invalid_argument);
  CHECK_THROWS_WITH((agentbus::jetstream_consumer<job>(js, "NOPE", "worker", "jobs.>")),
                    Catch::Contains("stream NOPE does not exist"));
  CHECK_THROWS_AS((agentbus::jetstream_consumer<job>(js, "JOBS", "bad.name", "jobs.>")), std::invalid_argument);
  CHECK(js.delete_consumer("JOBS", "worker"));
  CHECK_FALSE(js.delete_consumer("JOBS", "worker"));
}

TEST_CASE("jetstream: redelivery after a nack (its backoff or delay) and after ack_wait") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "RETRY", .subjects = {"retry.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("retry.>");
  for (const char* t : {"retry.nack", "retry.throw", "retry.delay", "retry.timeout"}) (void)bus.publish(t, job{t, 0});
  REQUIRE(pub.wait_acknowledged(5s));

  const agentbus::consumer_options options{
      .ack_wait = 800ms, .max_deliver = 10, .backoff = {.initial = 50ms, .multiplier = 1.0, .max = 50ms, .jitter = 0}};
  agentbus::jetstream_consumer<job> c(js, "RETRY", "retrier", "retry.>", options);
  using clock = std::chrono::steady_clock;
  std::map<std::string, std::vector<std::pair<std::uint32_t, clock::time_point>>> calls;  // topic -> attempts
  auto handler = [&](const agentbus::delivered<job>& d) -> agentbus::outcome {
    const std::string topic(d.event().topic());
    calls[topic].emplace_back(d.attempt(), clock::now());
    if (d.attempt() > 1) return agentbus::outcome::ack();
    if (topic == "retry.nack") return agentbus::outcome::nack("again");
    if (topic == "retry.throw") throw std::runtime_error("boom");
    if (topic == "retry.delay") return agentbus::outcome::nack_after(300ms, "later");
    (void)d.defer();  // retry.timeout: never settled, so redelivered after ack_wait
    return agentbus::outcome::ack();
  };
  REQUIRE(poll_until(
      c, handler,
      [&] {
        for (const char* t : {"retry.nack", "retry.throw", "retry.delay", "retry.timeout"})
          if (calls[t].size() < 2) return false;
        return true;
      },
      10s, 3s));
  auto gap = [&](const char* topic) {
    const auto& a = calls[topic];
    CHECK(a[0].first == 1);
    CHECK(a[1].first == 2);
    return std::chrono::duration_cast<std::chrono::milliseconds>(a[1].second - a[0].second);
  };
  const auto nack_gap = gap("retry.nack"), throw_gap = gap("retry.throw"), delay_gap = gap("retry.delay"),
             timeout_gap = gap("retry.timeout");
  UNSCOPED_INFO("redelivered after: nack " << nack_gap.count() << " ms, throw " << throw_gap.count() << " ms, delay "
                                           << delay_gap.count() << " ms, timeout " << timeout_gap.count() << " ms");
  CHECK(nack_gap >= 45ms);   // the backoff (50 ms), not at once
  CHECK(nack_gap < 700ms);   // and not the ack_wait
  CHECK(throw_gap >= 45ms);  // a throw is a nack
  CHECK(throw_gap < 700ms);
  CHECK(delay_gap >= 290ms);  // nack_after's own delay
  CHECK(timeout_gap >= 780ms);  // ack_wait
  REQUIRE(wait_until([&] {
    const auto i = c.info();
    return i.server_state && i.pending == 0;
  }));
  const auto info = c.info();
  CHECK(info.delivered == 8);
  CHECK(info.redelivered == 4);
  CHECK(info.nacked == 3);
  CHECK(info.handler_failures == 1);
  CHECK(info.ack_timeouts == 1);
  CHECK(info.acked == 4);
  CHECK(info.dead_lettered == 0);
}

TEST_CASE("jetstream: in_progress restarts the server's ack deadline, so a long job is not redelivered") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "SLOW", .subjects = {"slow.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("slow.>");
  (void)bus.publish("slow.job", job{"long", 1});
  REQUIRE(pub.wait_acknowledged(5s));

  agentbus::jetstream_consumer<job> c(js, "SLOW", "slow-worker", "slow.>", {.ack_wait = 600ms, .max_deliver = 5});
  std::vector<std::uint32_t> attempts;
  std::optional<agentbus::ack_token> token;
  auto handler = [&](const agentbus::delivered<job>& d) {
    attempts.push_back(d.attempt());
    if (!token) token = d.defer();  // the job goes on after the handler returns
  };
  REQUIRE(poll_until(c, handler, [&] { return token.has_value(); }, 10s, 1s));
  // 2.4 s of work, four times ack_wait, reporting progress every 200 ms: no redelivery.
  const auto until = std::chrono::steady_clock::now() + 2400ms;
  while (std::chrono::steady_clock::now() < until) {
    CHECK(token->in_progress() == agentbus::ack_status::accepted);
    c.poll_for(handler, 200ms);
  }
  CHECK(attempts == std::vector<std::uint32_t>{1});
  CHECK(token->ack() == agentbus::ack_status::accepted);
  CHECK(token->in_progress() == agentbus::ack_status::already);  // done: nothing to extend
  // Past another ack_wait: still no redelivery, the ack stood.
  c.poll_for(handler, 900ms);
  CHECK(attempts == std::vector<std::uint32_t>{1});
  const auto info = c.info();
  CHECK(info.redelivered == 0);
  CHECK(info.ack_timeouts == 0);
  CHECK(info.acked == 1);
}

TEST_CASE("jetstream: a delayed event is stored at once and handed out when due, as attempt 1") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "LATER", .subjects = {"later.>"}});
  agentbus::basic_bus<agentbus::storage::memory_ring<64>> bus;  // delay needs a bus that stores
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("later.>");
  using clock = std::chrono::steady_clock;
  const auto published = clock::now();
  (void)bus.publish("later.job", job{"late", 1}, {.delay = 1500ms});
  (void)bus.publish("later.job", job{"now", 2});
  REQUIRE(pub.wait_acknowledged(5s));
  CHECK(pub.stats().acknowledged == 2);  // both stored at once

  agentbus::jetstream_consumer<job> c(js, "LATER", "later-worker", "later.>", {.ack_wait = 5s, .max_deliver = 1});
  std::vector<std::tuple<std::string, std::uint32_t, clock::duration>> got;  // key, attempt, when
  auto handler = [&](const agentbus::delivered<job>& d) {
    got.emplace_back(d.payload().key, d.attempt(), clock::now() - published);
  };
  REQUIRE(poll_until(c, handler, [&] { return got.size() == 2; }, 10s, 1s));
  CHECK(std::get<0>(got[0]) == "now");
  CHECK(std::get<0>(got[1]) == "late");
  CHECK(std::get<1>(got[1]) == 1);           // its wait was not an attempt (else max_deliver 1 dead-letters it)
  CHECK(std::get<2>(got[1]) >= 1450ms);      // not before it was due
  CHECK(std::get<2>(got[1]) < 5s);           // and not only after ack_wait
  const auto info = c.info();
  CHECK(info.acked == 2);
  CHECK(info.redelivered == 0);
  CHECK(info.dead_lettered == 0);
}

TEST_CASE("jetstream: max_deliver failures and terms go to the dead-letter stream with their headers") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "WORK", .subjects = {"work.>"}});
  js.ensure_stream({.name = "DLQ", .subjects = {"$dlq.>"}});
  agentbus::bus bus;
  result_log log;
  agentbus::jetstream_publisher pub(bus, js, {.on_result = log.handler()});
  pub.export_type<job>("work.>");
  for (const char* t : {"work.fail", "work.term", "work.hang", "work.ok"}) {
    const std::array<agentbus::header, 2> h{{{agentbus::idempotency_header, t}, {"traceparent", "00-abc-01"}}};
    (void)bus.publish(t, job{t, 7}, {.source = "planner", .headers = h});
  }
  REQUIRE(pub.wait_acknowledged(5s));

  const agentbus::consumer_options options{
      .ack_wait = 300ms, .max_deliver = 3, .backoff = {.initial = 10ms, .multiplier = 1.0, .max = 10ms, .jitter = 0}};
  agentbus::jetstream_consumer<job> c(js, "WORK", "worker", "work.>", options);
  std::map<std::string, int> calls;
  auto handler = [&](const agentbus::delivered<job>& d) -> agentbus::outcome {
    const std::string topic(d.event().topic());
    ++calls[topic];
    if (topic == "work.fail") throw std::runtime_error("boom");
    if (topic == "work.term") return agentbus::outcome::term("bad input");
    if (topic == "work.hang") (void)d.defer();  // never settled: each attempt runs out
    return agentbus::outcome::ack();
  };
  REQUIRE(poll_until(c, handler, [&] { return c.info().dead_lettered == 3; }));
  CHECK(calls == std::map<std::string, int>{{"work.fail", 3}, {"work.term", 1}, {"work.hang", 3}, {"work.ok", 1}});
  const auto info = c.info();
  CHECK(info.terminated == 1);
  CHECK(info.nacked == 3);
  CHECK(info.acked == 1);
  CHECK(info.dead_letter_failures == 0);
  CHECK(info.dead_letters_by_topic ==
        std::map<std::string, std::uint64_t, std::less<>>{{"work.fail", 1}, {"work.hang", 1}, {"work.term", 1}});

  // The dead letters, read back by a consumer of the dead-letter stream.
  agentbus::jetstream_consumer<job> inspect(js, "DLQ", "inspect", "$dlq.>");
  std::map<std::string, std::map<std::string, std::string>> dead;  // dead letter's topic -> headers
  std::map<std::string, std::string> payloads, sources;
  REQUIRE(poll_until(
      inspect,
      [&](const agentbus::delivered<job>& d) {
        const std::string topic(d.event().topic());
        dead[topic] = headers_of(d.event());
        payloads[topic] = d.payload().key;
        sources[topic] = std::string(d.event().source());
      },
      [&] { return dead.size() == 3; }));
  REQUIRE(dead.count("$dlq.work.fail") == 1);
  REQUIRE(dead.count("$dlq.work.term") == 1);
  REQUIRE(dead.count("$dlq.work.hang") == 1);
  auto& fail = dead["$dlq.work.fail"];
  CHECK(fail[std::string(agentbus::dead_letter_header::reason)] == "max_deliver: 3 attempts, the last: boom");
  CHECK(fail[std::string(agentbus::dead_letter_header::attempts)] == "3");
  CHECK(fail[std::string(agentbus::dead_letter_header::consumer)] == "worker");
  CHECK(fail[std::string(agentbus::dead_letter_header::topic)] == "work.fail");
  {
    std::lock_guard lock(log.mutex);
    CHECK(fail[std::string(agentbus::dead_letter_header::offset)] == std::to_string(log.sequence["work.fail"]));
  }
  CHECK(fail["traceparent"] == "00-abc-01");          // the event's own headers travel along
  CHECK(fail[std::string(agentbus::idempotency_header)] == "work.fail");
  CHECK(payloads["$dlq.work.fail"] == "work.fail");  // the original payload
  CHECK(sources["$dlq.work.fail"] == "planner");     // and envelope
  auto& term = dead["$dlq.work.term"];
  CHECK(term[std::string(agentbus::dead_letter_header::reason)] == "term: bad input");
  CHECK(term[std::string(agentbus::dead_letter_header::attempts)] == "1");
  auto& hang = dead["$dlq.work.hang"];
  CHECK(hang[std::string(agentbus::dead_letter_header::reason)] ==
        "max_deliver: 3 attempts, the last one not settled within ack_wait");
  CHECK(hang[std::string(agentbus::dead_letter_header::attempts)] == "3");
  CHECK(stored_header(js, "DLQ", 1, agentbus::nats_header::msg_id).rfind("agentbus-dlq:WORK:worker:", 0) == 0);
  const auto work = c.info();
  CHECK(work.server_state);
  CHECK(work.pending == 0);
  CHECK(work.lag == 0);
}

TEST_CASE("jetstream: a dead letter no stream takes is counted and retried until one does") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "TASKS", .subjects = {"tasks.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("tasks.>");
  (void)bus.publish("tasks.one", job{"one", 1});
  REQUIRE(pub.wait_acknowledged(5s));

  std::mutex mutex;
  std::vector<std::pair<agentbus::jetstream_problem_kind, std::string>> problems;
  agentbus::consumer_options options{
      .ack_wait = 2s, .max_deliver = 1, .backoff = {.initial = 20ms, .multiplier = 1.0, .max = 20ms, .jitter = 0}};
  options.dead_letter_prefix = "lost";  // no stream captures lost.> yet
  agentbus::jetstream_consumer<job> c(js, "TASKS", "tasker", "tasks.>", options,
                                      {.on_problem = [&](const agentbus::jetstream_problem& p) {
                                        std::lock_guard lock(mutex);
                                        problems.emplace_back(p.kind, std::string(p.what));
                                      }});
  int calls = 0;
  auto handler = [&](const agentbus::delivered<job>&) {
    ++calls;
    return agentbus::outcome::nack("no");
  };
  REQUIRE(poll_until(c, handler, [&] { return c.info().dead_letter_failures >= 2; }));
  CHECK(c.info().dead_lettered == 0);
  {
    std::lock_guard lock(mutex);
    REQUIRE_FALSE(problems.empty());
    CHECK(problems.front().first == agentbus::jetstream_problem_kind::dead_letter_failed);
    CHECK_THAT(problems.front().second, Catch::Contains("lost.tasks.one") && Catch::Contains("no stream"));
  }
  js.ensure_stream({.name = "LOST", .subjects = {"lost.>"}});
  REQUIRE(poll_until(c, handler, [&] { return c.info().dead_lettered == 1; }));
  CHECK(calls == 1);  // retried as a dead letter, not handed to the handler again
  CHECK(stored_header(js, "LOST", 1, std::string(agentbus::dead_letter_header::reason).c_str()) ==
        "max_deliver: 1 attempts, the last: no");
}

TEST_CASE("jetstream: a message of another schema or that does not decode is counted and dead-lettered not delivered") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "SHAPES", .subjects = {"shapes.>"}});
  js.ensure_stream({.name = "DLQ", .subjects = {"$dlq.>"}});
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js);
  pub.export_type<job>("shapes.>");
  (void)bus.publish("shapes.v1", job{"v1", 1});  // schema test.js.job v1; the consumer is v2
  REQUIRE(pub.wait_acknowledged(5s));
  {  // v2's schema headers over bytes that do not decode
    const char bytes[] = {1, 2, 3};
    agentbus::detail::nats_message msg("shapes.raw", bytes, sizeof bytes);
    msg.add_header(agentbus::nats_header::schema, "test.js.job");
    msg.add_header(agentbus::nats_header::schema_version, "2");
    msg.add_header(agentbus::nats_header::fingerprint,
                   agentbus::detail::hex64(agentbus::codec_fingerprint<job_v2>()).c_str());
    jsPubAck* ack = nullptr;
    REQUIRE(js_PublishMsg(&ack, js.context(), msg.get(), nullptr, nullptr) == NATS_OK);
    jsPubAck_Destroy(ack);
  }

  std::mutex mutex;
  std::vector<std::pair<agentbus::jetstream_problem_kind, std::string>> problems;
  agentbus::jetstream_consumer<job_v2> c(js, "SHAPES", "shapes", "shapes.>", {},
                                         {.on_problem = [&](const agentbus::jetstream_problem& p) {
                                           std::lock_guard lock(mutex);
                                           problems.emplace_back(p.kind, std::string(p.what));
                                         }});
  int delivered = 0;
  auto handler = [&](const agentbus::delivered<job_v2>&) { ++delivered; };
  REQUIRE(poll_until(c, handler, [&] {
    const auto i = c.info();
    return i.schema_mismatches == 1 && i.decode_errors == 1 && i.dead_lettered == 2;
  }));
  c.poll(handler);
  CHECK(delivered == 0);
  const auto info = c.info();
  CHECK(info.delivered == 0);
  CHECK(info.acked == 0);
  {
    std::lock_guard lock(mutex);
    REQUIRE(problems.size() == 2);
    CHECK(problems[0].first == agentbus::jetstream_problem_kind::schema_mismatch);
    CHECK_THAT(problems[0].second, Catch::Contains("expected schema test.js.job v2") && Catch::Contains("test.js.job v1"));
    CHECK(problems[1].first == agentbus::jetstream_problem_kind::decode_error);
  }
  const std::string reason_key(agentbus::dead_letter_header::reason);
  CHECK(stored_header(js, "DLQ", 1, reason_key.c_str()).rfind("schema_mismatch: expected schema test.js.job v2", 0) == 0);
  CHECK(stored_header(js, "DLQ", 2, reason_key.c_str()).rfind("decode_error: ", 0) == 0);
  CHECK(stored_header(js, "DLQ", 1, agentbus::nats_header::schema_version) == "1");  // the original bytes' headers
}

TEST_CASE("jetstream: a server killed mid-stream: every acknowledged event reaches the consumer after the restart and every other publish is counted",
          "[concurrency]") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "FAULT", .subjects = {"fault.>"}});
  agentbus::bus bus;
  result_log log;
  agentbus::jetstream_publisher pub(bus, js, {.ack_timeout = 1500ms, .on_result = log.handler()});
  pub.export_type<job>("fault.>");

  agentbus::jetstream_consumer<job> reader(js, "FAULT", "reader", "fault.>", {.ack_wait = 1s});
  std::mutex received_mutex;
  std::set<std::string> received;
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    auto handler = [&](const agentbus::delivered<job>& d) {
      std::lock_guard lock(received_mutex);
      received.insert(d.payload().key);
    };
    while (!stop.load()) reader.poll_for(handler, 50ms);
  });

  constexpr std::uint32_t total = AGENTBUS_TSAN ? 1500 : 4000;
  std::atomic<std::uint32_t> published{0};
  std::thread publisher([&] {
    for (std::uint32_t i = 0; i < total; ++i) {
      const std::string key = "f" + std::to_string(i);
      const std::array<agentbus::header, 1> h{{{agentbus::idempotency_header, key}}};
      (void)bus.publish("fault.x", job{key, i}, {.headers = h});
      published.store(i + 1);
      if (i % 50 == 49) std::this_thread::sleep_for(1ms);
    }
  });
  REQUIRE(wait_until([&] {
    std::lock_guard lock(log.mutex);
    return log.acknowledged.size() >= total / 4;
  }));
  server->halt(SIGKILL);  // a crash, mid-stream
  const std::uint32_t at_kill = published.load();
  std::this_thread::sleep_for(300ms);
  server->restart();  // the same port and store directory
  publisher.join();
  REQUIRE(pub.wait_acknowledged(10s));

  const auto stats = pub.stats();
  std::set<std::string> acked, failed;
  {
    std::lock_guard lock(log.mutex);
    acked.insert(log.acknowledged.begin(), log.acknowledged.end());
    failed.insert(log.failed.begin(), log.failed.end());
    CHECK(acked.size() == log.acknowledged.size());  // each reported once
    CHECK(failed.size() == log.failed.size());
  }
  CHECK(stats.sent == total);
  CHECK(stats.pending == 0);
  CHECK(stats.acknowledged + stats.failed == total);  // nothing unaccounted for
  CHECK(acked.size() == stats.acknowledged);
  CHECK(failed.size() == stats.failed);
  std::size_t both = 0;
  for (const auto& id : acked) both += failed.count(id);
  CHECK(both == 0);
  CHECK(at_kill < total);  // the kill came mid-stream

  // Every event the server acknowledged arrives.
  const bool all_arrived = wait_until(
      [&] {
        std::lock_guard lock(received_mutex);
        for (const auto& id : acked)
          if (received.count(id) == 0) return false;
        return true;
      },
      15s);
  stop = true;
  consumer.join();
  std::size_t missing = 0;
  for (const auto& id : acked) missing += received.count(id) == 0;
  std::size_t stored_unacked = 0;
  for (const auto& id : failed) stored_unacked += received.count(id);
  WARN("fault: published " << total << " (" << at_kill << " before the kill), acknowledged " << stats.acknowledged
                           << ", failed " << stats.failed << " (of which the consumer still got " << stored_unacked
                           << "), received " << received.size() << ", missing " << missing);
  CHECK(all_arrived);
  CHECK(missing == 0);
  for (const auto& id : received) CHECK((acked.count(id) + failed.count(id)) == 1);  // nothing else came
}

struct chaos_event {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.js.chaos";
  std::uint32_t publisher = 0;
  std::uint32_t seq = 0;
  std::uint64_t key() const noexcept { return (std::uint64_t{publisher} << 32) | seq; }
};

TEST_CASE("jetstream group chaos: members throw and nack and hang and leave across a server restart: every acknowledged event is acked or dead-lettered",
          "[concurrency]") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server, {.jetstream = true});
  const auto started = std::chrono::steady_clock::now();
  agentbus::jetstream_client js(client_options(*server));
  js.ensure_stream({.name = "CHAOS", .subjects = {"chaos.>"}});
  js.ensure_stream({.name = "DLQ", .subjects = {"$dlq.>"}});
  constexpr std::uint32_t per_publisher = AGENTBUS_TSAN ? 120 : 400;

  // Which events the server acknowledged (by their idempotency keys "<publisher>-<seq>").
  std::mutex acked_mutex;
  std::set<std::uint64_t> stored;
  agentbus::bus bus;
  agentbus::jetstream_publisher pub(bus, js, {.ack_timeout = 2s, .on_result = [&](const agentbus::jetstream_publish_result& r) {
                                                if (!r.acknowledged) return;
                                                const std::string id(r.msg_id);
                                                const auto dash = id.find('-');
                                                const std::uint64_t p = std::stoul(id.substr(0, dash));
                                                const std::uint64_t s = std::stoul(id.substr(dash + 1));
                                                std::lock_guard lock(acked_mutex);
                                                stored.insert((p << 32) | s);
                                              }});
  pub.export_type<chaos_event>("chaos.>");

  agentbus::consumer_options options;
  options.ack_wait = 250ms;  // a "hung" handler sleeps past it
  options.max_deliver = 4;
  options.backoff = {.initial = 1ms, .multiplier = 2.0, .max = 8ms, .jitter = 0.2};
  options.max_ack_pending = 64;
  agentbus::jetstream_group<chaos_event> group(js, "CHAOS", "chaos", "chaos.>", options);

  std::mutex book_mutex;
  std::map<std::uint64_t, int> accepted;  // acks the group accepted (confirmed by the server), per event
  std::uint64_t outcomes[4] = {};         // ack, throw, hang, nack
  std::atomic<bool> stop{false};
  std::vector<std::thread> members;
  for (int m = 0; m < 4; ++m)
    members.emplace_back([&, m] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(m) * 31 + 7);
      auto handler = [&](const agentbus::delivered<chaos_event>& d) -> agentbus::outcome {
        const auto roll = rng() % 100;
        if (roll < 8) {
          {
            std::lock_guard l(book_mutex);
            ++outcomes[1];
          }
          throw std::runtime_error("chaos: thrown");
        }
        if (roll < 12) {  // hang past the deadline, then ack late (usually redelivered meanwhile)
          {
            std::lock_guard l(book_mutex);
            ++outcomes[2];
          }
          std::this_thread::sleep_for(300ms);
        } else if (roll < 20) {
          std::lock_guard l(book_mutex);
          ++outcomes[3];
          return agentbus::outcome::nack("chaos: nacked");
        }
        const auto status = d.defer().ack();
        std::lock_guard l(book_mutex);
        ++outcomes[0];
        if (status == agentbus::ack_status::accepted) ++accepted[d.payload().key()];
        return agentbus::outcome::ack();  // ignored: deferred
      };
      auto member = group.join("m" + std::to_string(m));
      int polls = 0;
      while (!stop.load()) {
        member.poll_for(handler, 5ms, 16);
        if (++polls % 50 == 0) member = group.join("m" + std::to_string(m));  // leave (returns its events), rejoin
      }
    });
  std::vector<std::thread> publishers;
  for (std::uint32_t p = 0; p < 2; ++p)
    publishers.emplace_back([&, p] {
      for (std::uint32_t i = 0; i < per_publisher; ++i) {
        const std::string key = std::to_string(p) + "-" + std::to_string(i);
        const std::array<agentbus::header, 1> h{{{agentbus::idempotency_header, key}}};
        (void)bus.publish("chaos." + std::to_string(p), chaos_event{p, i}, {.headers = h});
        if (i % 20 == 19) std::this_thread::sleep_for(2ms);
      }
    });
  // The server crashes once mid-run and comes back on the same port and store.
  REQUIRE(wait_until(
      [&] {
        std::lock_guard l(book_mutex);
        return accepted.size() >= per_publisher / 2;
      },
      10s));
  server->halt(SIGKILL);
  std::this_thread::sleep_for(200ms);
  server->restart();
  for (auto& t : publishers) t.join();
  REQUIRE(pub.wait_acknowledged(10s));
  const auto give_up = started + 14s;
  bool settled = false;
  while (std::chrono::steady_clock::now() < give_up) {
    const auto info = group.info();
    if (info.server_state && info.pending == 0 && info.lag == 0) {
      settled = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  for (auto& t : members) t.join();
  CHECK(settled);

  // The dead letters, from the dead-letter stream.
  std::map<std::uint64_t, std::string> dead;  // event -> reason
  {
    agentbus::jetstream_consumer<chaos_event> inspect(js, "DLQ", "inspect", "$dlq.chaos.>");
    const auto dlq = js.stream_info("DLQ");
    REQUIRE(dlq.has_value());
    std::size_t seen = 0;
    (void)poll_until(
        inspect,
        [&](const agentbus::delivered<chaos_event>& d) {
          ++seen;
          const auto reason = d.event().header_value(agentbus::dead_letter_header::reason);
          CHECK(reason.has_value());
          CHECK(d.event().header_value(agentbus::dead_letter_header::consumer) == "chaos");
          dead[d.payload().key()] = std::string(reason.value_or(""));
        },
        [&] { return seen >= dlq->messages; }, 3s);
  }
  std::size_t missing = 0, both = 0, duplicates = 0;
  std::lock_guard l(book_mutex);
  std::set<std::uint64_t> acknowledged_by_server;
  {
    std::lock_guard a(acked_mutex);
    acknowledged_by_server = stored;
  }
  for (const std::uint64_t key : acknowledged_by_server) {
    const auto acked = accepted.find(key);
    const bool is_acked = acked != accepted.end();
    const bool is_dead = dead.count(key) != 0;
    if (!is_acked && !is_dead) ++missing;
    if (is_acked && is_dead) ++both;
  }
  for (const auto& [key, n] : accepted) duplicates += static_cast<std::size_t>(n - 1);
  std::size_t with_reason = 0;
  for (const auto& [key, reason] : dead) with_reason += reason.rfind("max_deliver", 0) == 0;
  const auto stats = pub.stats();
  const auto info = group.info();
  WARN("jetstream chaos: published " << 2 * per_publisher << ", acknowledged by the server " << stats.acknowledged
                                     << " (failed " << stats.failed << "), acked " << accepted.size()
                                     << ", dead-lettered " << dead.size() << ", duplicate acks " << duplicates
                                     << ", repeated settles " << info.repeated_settles << "; handler outcomes: ack "
                                     << outcomes[0] << ", throw " << outcomes[1] << ", hang " << outcomes[2]
                                     << ", nack " << outcomes[3] << "; in "
                                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started)
                                            .count()
                                     << " ms");
  CHECK(stats.acknowledged + stats.failed == stats.sent);
  CHECK(acknowledged_by_server.size() == stats.acknowledged);
  CHECK(acknowledged_by_server.size() > per_publisher);  // most of them: the restart lost few acks
  CHECK(missing == 0);
  CHECK(both == 0);
  CHECK(with_reason == dead.size());  // every dead letter says max_deliver (no term in this test)
  CHECK(outcomes[1] > 0);             // the chaos happened
  CHECK(outcomes[2] > 0);
  CHECK(outcomes[3] > 0);
}

}  // namespace jetstream_test

#else  // built without the NATS client

TEST_CASE("jetstream: skipped: built without the NATS C client") {
  WARN("skipped: the JetStream tests need the NATS C client (Debian: apt-get install libnats-dev; CMake then "
       "offers agentbus::nats) and nats-server");
}

#endif
