// SPDX-License-Identifier: MIT
// The agentbus side of the interop test with the official NATS JavaScript client
// (tests/interop/run_js_interop.sh starts nats-server, this program and nats_js_peer.mjs).
//
//   agentbus_interop_peer nats://127.0.0.1:<port>
//
// One bus with one nats_bridge, three phases:
//   1. events out: `order` and `tick` published here go out through export_type; the JS peer
//      decodes them from docs/wire-format.md alone and checks them against the facts this
//      program sends it (event ids, the bridge id, the publish time);
//   2. events in: the JS peer publishes `order` messages it encoded itself; import_type must
//      deliver the good ones typed, with their envelope, and count the one with a wrong
//      fingerprint as a schema mismatch without delivering it;
//   3. requests out: agentbus::request<quote> on topics that export_requests sends to NATS;
//      the JS peer answers with a value, or with an Agentbus-Error reply.
// The two peers coordinate on interop.ctl.* with plain text messages (no headers, not the
// agentbus wire format: only a way to say "your turn"). Prints one line per check ("ok - ..."
// or "not ok - ..."); exits 0 when every check passed, 1 otherwise.
#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace interop {

using namespace std::chrono_literals;

// ---- the event types (their byte layouts are written out in nats_js_peer.mjs, from the doc) ----

// An ADL codec: string, int32, double, vector<string>. Fingerprint: fnv1a("adl:interop.order").
struct order {
  static constexpr std::string_view event_name = "interop.order";
  std::string item;
  std::int32_t quantity = 0;
  double price = 0;
  std::vector<std::string> tags;
};
void agentbus_encode(agentbus::byte_writer& out, const order& o) {
  out.write_string(o.item);
  out.write_value(o.quantity);
  out.write_value(o.price);
  agentbus::encode(out, o.tags);
}
order agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order>) {
  order o;
  o.item = in.read_string();
  o.quantity = in.read_value<std::int32_t>();
  o.price = in.read_value<double>();
  o.tags = agentbus::codec<std::vector<std::string>>::decode(in);
  return o;
}

// A bitwise struct at schema version 2: venue (2 bytes), 2 padding bytes, seq (4 bytes).
struct tick {
  static constexpr std::string_view event_name = "interop.tick";
  static constexpr std::uint32_t event_version = 2;
  static constexpr bool agentbus_bitwise_codec = true;
  std::uint16_t venue = 0;
  std::uint32_t seq = 0;
};
static_assert(sizeof(tick) == 8 && alignof(tick) == 4, "the JS peer decodes tick as 8 bytes, align 4");

// A request with a declared fingerprint (written zero-padded: 000000000badc0de).
struct quote_request {
  static constexpr std::string_view event_name = "interop.quote_request";
  static constexpr std::uint64_t codec_fingerprint = 0x0badc0de;
  std::string symbol;
  std::int32_t quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const quote_request& r) {
  out.write_string(r.symbol);
  out.write_value(r.quantity);
}
quote_request agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote_request>) {
  quote_request r;
  r.symbol = in.read_string();
  r.quantity = in.read_value<std::int32_t>();
  return r;
}

// The reply: symbol, price, and a note in which the JS peer says what envelope it read.
struct quote {
  static constexpr std::string_view event_name = "interop.quote";
  std::string symbol;
  double price = 0;
  std::string note;
};
void agentbus_encode(agentbus::byte_writer& out, const quote& q) {
  out.write_string(q.symbol);
  out.write_value(q.price);
  out.write_string(q.note);
}
quote agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote>) {
  quote q;
  q.symbol = in.read_string();
  q.price = in.read_value<double>();
  q.note = in.read_string();
  return q;
}

// The values both peers agree on (nats_js_peer.mjs has the same ones).
constexpr std::string_view out_traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
constexpr std::string_view in_traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr std::string_view rpc_traceparent = "00-11112222333344445555666677778888-9999aaaabbbbcccc-01";

// ---- checks ----

int failures = 0;
int passed = 0;

void check(bool ok, const std::string& what, const std::string& detail = {}) {
  if (ok) {
    ++passed;
    std::printf("ok - %s\n", what.c_str());
  } else {
    ++failures;
    std::printf("not ok - %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
  std::fflush(stdout);
}

template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// ---- the control channel (plain text on interop.ctl.to_cpp / interop.ctl.to_js) ----

class control {
 public:
  explicit control(const std::string& url) : conn_({.url = url, .name = "interop-control"}) {
    if (natsConnection_SubscribeSync(&sub_, conn_.get(), "interop.ctl.to_cpp") != NATS_OK)
      throw std::runtime_error("cannot subscribe to interop.ctl.to_cpp");
    conn_.flush();
  }
  control(const control&) = delete;
  control& operator=(const control&) = delete;
  ~control() {
    (void)natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
  /// The next message's text (nothing after `limit`).
  std::optional<std::string> next(std::chrono::milliseconds limit) {
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub_, limit.count()) != NATS_OK) return std::nullopt;
    std::string text(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    return text;
  }
  /// Waits for a message whose text starts with `word`.
  std::optional<std::string> expect(std::string_view word, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto text = next(left);
      if (!text) return std::nullopt;
      if (text->rfind(word, 0) == 0) return text;
      std::printf("# control: ignored '%s' while waiting for '%s'\n", text->c_str(), std::string(word).c_str());
    }
  }
  void send(const std::string& text) {
    if (natsConnection_PublishString(conn_.get(), "interop.ctl.to_js", text.c_str()) != NATS_OK)
      throw std::runtime_error("cannot publish on interop.ctl.to_js");
    conn_.flush();
  }

 private:
  agentbus::nats_connection conn_;
  natsSubscription* sub_ = nullptr;
};

// ---- what the import delivered ----

struct received_order {
  std::string topic;
  order payload;
  std::string source;
  std::uint64_t correlation_id = 0;
  agentbus::priority prio = agentbus::priority::normal;
  std::optional<std::chrono::milliseconds> ttl_left;  // deadline minus now, when it had one
  std::vector<std::pair<std::string, std::string>> headers;
};

std::vector<std::string> values_of(const received_order& r, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& [k, v] : r.headers)
    if (k == key) out.push_back(v);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::pair<std::optional<agentbus::request_errc>, std::string> outcome(agentbus::reply_future<quote>& f) {
  try {
    const quote q = f.get();
    return {std::nullopt, "a reply: " + q.symbol + " " + std::to_string(q.price) + " " + q.note};
  } catch (const agentbus::request_error& e) {
    return {e.code(), e.what()};
  }
}

int run(const std::string& url) {
  agentbus::bus bus;
  std::mutex problems_mutex;
  std::vector<std::pair<agentbus::nats_problem_kind, std::string>> problems;  // kind, "topic: what"
  agentbus::nats_bridge bridge(bus, {.url = url}, [&](const agentbus::nats_bridge_problem& p) {
    std::lock_guard lock(problems_mutex);
    problems.emplace_back(p.kind, std::string(p.topic) + ": " + std::string(p.what));
  });

  // What went out, as the local bus numbered it (the JS peer compares the headers with these).
  std::mutex out_mutex;
  std::uint64_t order_id = 0, tick_id = 0;
  std::int64_t order_published_ns = 0;
  auto watch_orders = bus.subscribe<order>("interop.to_js.orders.>", [&](const agentbus::event<order>& e) {
    std::lock_guard lock(out_mutex);
    order_id = e.id();
    order_published_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(e.published().time_since_epoch()).count();
  });
  auto watch_ticks = bus.subscribe<tick>("interop.to_js.ticks.>", [&](const agentbus::event<tick>& e) {
    std::lock_guard lock(out_mutex);
    tick_id = e.id();
  });

  // What came in.
  std::mutex in_mutex;
  std::vector<received_order> received;
  auto incoming = bus.subscribe<order>("interop.from_js.>", [&](const agentbus::event<order>& e) {
    received_order r;
    r.topic = std::string(e.topic());
    r.payload = e.payload();
    r.source = std::string(e.source());
    r.correlation_id = e.correlation_id();
    r.prio = e.priority();
    if (const auto d = e.deadline())
      r.ttl_left = std::chrono::duration_cast<std::chrono::milliseconds>(*d - agentbus::deadline_clock::now());
    for (const auto& h : e.headers()) r.headers.emplace_back(std::string(h.key), std::string(h.value));
    std::lock_guard lock(in_mutex);
    received.push_back(std::move(r));
  });

  bridge.export_type<order>("interop.to_js.orders.>");
  bridge.export_type<tick>("interop.to_js.ticks.>");
  bridge.import_type<order>("interop.from_js.>");
  bridge.export_requests<quote_request, quote>("interop.rpc.>", {.timeout = 20s});

  control ctl(url);
  std::printf("agentbus-peer: ready (bridge %s)\n", bridge.id().c_str());
  std::fflush(stdout);

  if (!ctl.expect("js-ready", 40s)) {
    check(false, "the JS peer said it was ready", "nothing on interop.ctl.to_cpp within 40 s");
    return 1;
  }

  // ---- 1. events out ----
  const agentbus::header out_headers[] = {{"traceparent", out_traceparent}, {"X-Interop", "phase-1"}};
  bus.publish("interop.to_js.orders.eu", order{"apple", 3, 0.5, {"red", "fresh"}},
              {.source = "planner", .correlation_id = 42, .prio = agentbus::priority::high, .ttl = 30s,
               .headers = out_headers});
  bus.publish("interop.to_js.ticks.x", tick{7, 0x01020304});
  bridge.connection().flush();
  {
    std::lock_guard lock(out_mutex);
    ctl.send("events-sent {\"bridge\":\"" + bridge.id() + "\",\"order_event_id\":\"" + std::to_string(order_id) +
             "\",\"tick_event_id\":\"" + std::to_string(tick_id) + "\",\"order_published_ns\":\"" +
             std::to_string(order_published_ns) + "\"}");
  }
  check(bridge.stats().sent == 2, "phase 1: the bridge sent the two events",
        "sent = " + std::to_string(bridge.stats().sent));

  // ---- 2. events in ----
  const auto published = ctl.expect("published", 30s);
  check(published.has_value(), "phase 2: the JS peer published its messages");
  // A (good), B (wrong fingerprint), C (good, the last one): one delivery thread per import,
  // in order, so once C is here B has been looked at.
  const bool got_last = wait_until(
      [&] {
        std::lock_guard lock(in_mutex);
        for (const auto& r : received)
          if (r.topic == "interop.from_js.orders.last") return true;
        return false;
      },
      10s);
  check(got_last, "phase 2: the last JS message was delivered");
  // The bridge counts a delivery when the local publish has returned: after our subscriber saw it.
  (void)wait_until([&] { return bridge.stats().received >= 2; }, 5s);
  {
    std::lock_guard lock(in_mutex);
    std::string topics;
    for (const auto& r : received) topics += r.topic + " ";
    check(received.size() == 2, "phase 2: two JS messages delivered (the wrong fingerprint one not)",
          std::to_string(received.size()) + " delivered: " + topics);
    const received_order* a = nullptr;
    const received_order* c = nullptr;
    for (const auto& r : received) {
      if (r.topic == "interop.from_js.orders.us") a = &r;
      if (r.topic == "interop.from_js.orders.last") c = &r;
    }
    check(topics.find("interop.from_js.orders.bad") == std::string::npos,
          "phase 2: the message with a wrong fingerprint is not delivered", topics);
    check(a != nullptr, "phase 2: message A (interop.from_js.orders.us) delivered", topics);
    if (a != nullptr) {
      check(a->payload.item == "pear" && a->payload.quantity == 7 && a->payload.price == 1.25 &&
                a->payload.tags == std::vector<std::string>{"green", "ripe"},
            "phase 2: A's payload decoded typed (pear, 7, 1.25, [green, ripe])",
            a->payload.item + " " + std::to_string(a->payload.quantity) + " " + std::to_string(a->payload.price) + " [" +
                join(a->payload.tags) + "]");
      check(a->source == "js-agent", "phase 2: A's source is js-agent", a->source);
      check(join(values_of(*a, "traceparent")) == in_traceparent, "phase 2: A's traceparent header",
            join(values_of(*a, "traceparent")));
      check(join(values_of(*a, "Agentbus-Origin")) == "nats", "phase 2: A without an origin carries Agentbus-Origin: nats",
            join(values_of(*a, "Agentbus-Origin")));
      check(a->prio == agentbus::priority::normal && a->correlation_id == 0 && !a->ttl_left,
            "phase 2: A's defaults: priority normal, correlation id 0, no deadline");
      check(values_of(*a, "Agentbus-Event-Id").empty(), "phase 2: A sent no event id, so it has none");
    }
    check(c != nullptr, "phase 2: message C (interop.from_js.orders.last) delivered", topics);
    if (c != nullptr) {
      check(c->payload.item == "pl\xc3\xbcm" && c->payload.quantity == -2 && c->payload.price == -1e300 &&
                c->payload.tags.empty(),
            "phase 2: C's payload decoded typed (UTF-8 item, negative int32, -1e300, no tags)",
            c->payload.item + " " + std::to_string(c->payload.quantity) + " " + std::to_string(c->payload.price));
      check(c->prio == agentbus::priority::high, "phase 2: C's Agentbus-Priority: high");
      check(c->correlation_id == 77, "phase 2: C's Agentbus-Correlation-Id: 77", std::to_string(c->correlation_id));
      check(c->source == "js-agent/2", "phase 2: C's source", c->source);
      check(c->ttl_left && c->ttl_left->count() > 20000 && c->ttl_left->count() <= 30000,
            "phase 2: C's Agentbus-Deadline (30 s ahead) became its TTL",
            c->ttl_left ? std::to_string(c->ttl_left->count()) + " ms left" : "no deadline");
      check(join(values_of(*c, "X-Trace")) == "a,b", "phase 2: C's repeated X-Trace header, both values",
            join(values_of(*c, "X-Trace")));
      check(join(values_of(*c, "Agentbus-Origin")) == "js-peer", "phase 2: C's own Agentbus-Origin is kept",
            join(values_of(*c, "Agentbus-Origin")));
      check(join(values_of(*c, "Agentbus-Event-Id")) == "5", "phase 2: C's Agentbus-Event-Id is kept",
            join(values_of(*c, "Agentbus-Event-Id")));
      check(values_of(*c, "agentbus-custom").empty(), "phase 2: C's agentbus-custom header is dropped");
      // The doc: the message's own headers, then Agentbus-Origin, then Agentbus-Event-Id.
      const auto n = c->headers.size();
      check(n >= 2 && c->headers[n - 2].first == "Agentbus-Origin" && c->headers[n - 1].first == "Agentbus-Event-Id",
            "phase 2: C's headers end with Agentbus-Origin then Agentbus-Event-Id");
    }
  }
  const auto stats = bridge.stats();
  check(stats.schema_mismatches == 1, "phase 2: the wrong fingerprint is counted as one schema mismatch",
        "schema_mismatches = " + std::to_string(stats.schema_mismatches));
  check(stats.received == 2 && stats.decode_errors == 0 && stats.expired == 0,
        "phase 2: stats: received 2, no decode error, none expired",
        "received " + std::to_string(stats.received) + ", decode_errors " + std::to_string(stats.decode_errors) +
            ", expired " + std::to_string(stats.expired));
  {
    std::lock_guard lock(problems_mutex);
    bool reported = false;
    std::string all;
    for (const auto& [kind, what] : problems) {
      all += what + " | ";
      if (kind == agentbus::nats_problem_kind::schema_mismatch &&
          what.find("interop.from_js.orders.bad") != std::string::npos &&
          what.find("fingerprint 7c1a8eb3a0ff9ab6") != std::string::npos)  // the JS peer's wrong one
        reported = true;
    }
    check(reported && problems.size() == 1,
          "phase 2: the problem handler was told of the schema mismatch, naming the wrong fingerprint", all);
  }

  // ---- 3. requests out, answered by the JS peer ----
  const agentbus::header rpc_headers[] = {{"traceparent", rpc_traceparent}};
  const agentbus::request_options rpc_options{.publish = {.source = "desk", .headers = rpc_headers}};
  {
    auto f = agentbus::request<quote>(bus, "interop.rpc.quote", quote_request{"ACME", 4}, 10s, rpc_options);
    try {
      const quote q = f.get();
      check(q.symbol == "ACME" && q.price == 10.0, "phase 3: the JS reply decoded typed (ACME, 4 x 2.5 = 10)",
            q.symbol + " " + std::to_string(q.price));
      const std::string expected_note = "desk|" + std::string(rpc_traceparent);
      check(q.note == expected_note, "phase 3: the JS peer read the request's source and traceparent", q.note);
    } catch (const std::exception& e) {
      check(false, "phase 3: the JS peer answered interop.rpc.quote", e.what());
    }
  }
  {
    auto f = agentbus::request<quote>(bus, "interop.rpc.reject", quote_request{"XYZ", 1}, 10s, rpc_options);
    const auto [code, what] = outcome(f);
    check(code == agentbus::request_errc::rejected, "phase 3: Agentbus-Error: rejected is request_errc::rejected", what);
    check(what.find("no quotes for XYZ") != std::string::npos, "phase 3: Agentbus-Error-Detail is in what()", what);
  }
  {
    auto f = agentbus::request<quote>(bus, "interop.rpc.unknown", quote_request{"XYZ", 1}, 10s, rpc_options);
    const auto [code, what] = outcome(f);
    check(code == agentbus::request_errc::server_failed,
          "phase 3: an Agentbus-Error name agentbus does not know is server_failed", what);
  }
  {
    auto f = agentbus::request<quote>(bus, "interop.rpc.badreply", quote_request{"XYZ", 1}, 10s, rpc_options);
    const auto [code, what] = outcome(f);
    check(code == agentbus::request_errc::wrong_type, "phase 3: a reply with a wrong fingerprint is wrong_type", what);
  }
  const auto rs = bridge.stats();
  check(rs.requests_sent == 4 && rs.replies_received == 4 && rs.requests_waiting == 0 && rs.late_replies == 0,
        "phase 3: stats: 4 requests sent, 4 replies received, none waiting or late",
        "sent " + std::to_string(rs.requests_sent) + ", received " + std::to_string(rs.replies_received) +
            ", waiting " + std::to_string(rs.requests_waiting) + ", late " + std::to_string(rs.late_replies));

  ctl.send("done " + std::to_string(failures));
  std::printf("# agentbus peer: %d passed, %d failed\n", passed, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace interop

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s nats://127.0.0.1:<port>\n", argv[0]);
    return 2;
  }
  int rc = 1;
  try {
    rc = interop::run(argv[1]);
  } catch (const std::exception& e) {
    std::printf("not ok - the agentbus peer stopped: %s\n", e.what());
    rc = 1;
  }
  agentbus::nats_library_close();
  return rc;
}
