// SPDX-License-Identifier: MIT
// Tutorial 08 — two processes, one bus API: typed events and requests through NATS.
//
// Tutorial 05 bridged two buses inside one program. Here they are two real processes, started
// by examples/08_two_processes.sh with a private nats-server:
//
//   example_08_two_processes pricing nats://127.0.0.1:PORT    (the serving process)
//   example_08_two_processes desk    nats://127.0.0.1:PORT    (the requesting process)
//
//   desk    exports orders.*  and its requests on pricing.>;  imports fills.>
//   pricing imports orders.*  and answers requests on pricing.>;  exports fills.>
//
// Each process writes its code as if the other were in it: bus.publish, subscribe,
// agentbus::request and agentbus::serve. Only the bridge's few lines know about NATS.
// Needs agentbus::nats (Debian: libnats-dev); the script needs nats-server.

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

using namespace std::chrono_literals;

// The event types both programs share (in a real system: a header both include). Each needs a
// stable schema name and a codec, because its codec bytes cross the wire.
struct order {
  static constexpr std::string_view event_name = "desk.order";
  std::string symbol;
  int quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const order& o) {
  out.write_string(o.symbol);
  out.write_value(o.quantity);
}
order agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order>) {
  order o;
  o.symbol = in.read_string();
  o.quantity = in.read_value<int>();
  return o;
}

struct fill {  // bytes that mean the same in both processes: the bitwise codec
  static constexpr std::string_view event_name = "pricing.fill";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int32_t quantity = 0;
  double price = 0;
};

struct quote_request {
  static constexpr std::string_view event_name = "pricing.quote_request";
  std::string symbol;
};
void agentbus_encode(agentbus::byte_writer& out, const quote_request& r) { out.write_string(r.symbol); }
quote_request agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<quote_request>) {
  return {in.read_string()};
}

struct quote {
  static constexpr std::string_view event_name = "pricing.quote";
  static constexpr bool agentbus_bitwise_codec = true;
  double bid = 0, ask = 0;
};

// The serving process: answers quotes, fills orders, stops when told to.
int run_pricing(const std::string& url) {
  agentbus::bus bus;
  agentbus::nats_bridge bridge(bus, {.url = url});
  bridge.import_type<order>("orders.*");
  bridge.import_requests<quote_request, quote>("pricing.>");
  bridge.export_type<fill>("fills.>");

  // Requests are served exactly as in one process.
  auto quotes = agentbus::serve<quote_request, quote>(bus, "pricing.quote", [](const quote_request& r) {
    if (r.symbol == "NONE") throw std::invalid_argument("no market for " + r.symbol);
    return quote{99.5, 100.5};
  });

  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  int orders = 0;
  // Orders arrive typed, on the bridge's delivery thread; the fill goes back out through NATS.
  auto desk_orders = bus.subscribe<order>("orders.*", [&](const agentbus::event<order>& e) {
    if (e.topic() == "orders.stop") {
      std::lock_guard lock(m);
      stop = true;
      cv.notify_all();
      return;
    }
    fmt::print("pricing: {} {} x{} from {}\n", e.topic(), e.payload().symbol, e.payload().quantity, e.source());
    bus.publish("fills." + e.payload().symbol, fill{e.payload().quantity, 100.0});
    std::lock_guard lock(m);
    ++orders;
  });

  fmt::print("pricing: ready\n");
  std::fflush(stdout);
  std::unique_lock lock(m);
  if (!cv.wait_for(lock, 30s, [&] { return stop; })) {
    fmt::print("pricing: no stop order within 30 s\n");
    return 1;
  }
  const auto s = bridge.stats();
  fmt::print("pricing: done: {} orders, {} requests answered, {} fills sent\n", orders, s.requests_received, s.sent);
  return orders == 2 && s.requests_received == 3 ? 0 : 1;  // quote, NONE, history
}

// The requesting process: asks for quotes, sends orders, waits for the fills.
int run_desk(const std::string& url) {
  agentbus::bus bus;
  agentbus::nats_bridge bridge(bus, {.url = url});
  bridge.export_type<order>("orders.*");
  bridge.export_requests<quote_request, quote>("pricing.>");
  bridge.import_type<fill>("fills.>");

  std::atomic<int> fills{0};
  auto on_fill = bus.subscribe<fill>("fills.>", [&](const agentbus::event<fill>& e) {
    fmt::print("desk: {} {} at {}\n", e.topic(), e.payload().quantity, e.payload().price);
    ++fills;
  });

  int failures = 0;
  // A request, as in one process: the reply comes from the other process.
  const quote q = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 2s).get();
  fmt::print("desk: quote ACME {} / {}\n", q.bid, q.ask);

  // The other process's failure comes back as the same error an in-process server gives.
  try {
    (void)agentbus::request<quote>(bus, "pricing.quote", quote_request{"NONE"}, 2s).get();
    ++failures;
  } catch (const agentbus::request_error& e) {
    fmt::print("desk: {}\n", e.what());
    failures += e.code() == agentbus::request_errc::server_failed ? 0 : 1;
  }
  // Nobody in any process serves this topic: no_responders, at once (not the timeout).
  try {
    (void)agentbus::request<quote>(bus, "pricing.history", quote_request{"ACME"}, 2s).get();
    ++failures;
  } catch (const agentbus::request_error& e) {
    fmt::print("desk: {}\n", e.what());
    failures += e.code() == agentbus::request_errc::no_responders ? 0 : 1;
  }

  bus.publish("orders.buy", order{"ACME", 10}, {.source = "desk"});
  bus.publish("orders.sell", order{"INIT", 5}, {.source = "desk"});
  for (int waited = 0; fills.load() < 2 && waited < 5000; waited += 10) std::this_thread::sleep_for(10ms);
  bus.publish("orders.stop", order{});
  bridge.connection().flush();
  fmt::print("desk: done: {} fills\n", fills.load());
  return fills.load() == 2 && failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc != 3 || (std::string_view(argv[1]) != "pricing" && std::string_view(argv[1]) != "desk")) {
    fmt::print(stderr, "usage: {} pricing|desk nats://HOST:PORT (examples/08_two_processes.sh runs both)\n", argv[0]);
    return 2;
  }
  int rc = 1;
  try {
    rc = std::string_view(argv[1]) == "pricing" ? run_pricing(argv[2]) : run_desk(argv[2]);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", argv[1], e.what());
  }
  agentbus::nats_library_close();
  return rc;
}
