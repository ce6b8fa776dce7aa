// SPDX-License-Identifier: MIT
// Tutorial 05 — leaving the process: the NATS bridge.
//
// A bus lives in one process. To share events with other processes or machines, a
// nats_bridge sends chosen topics to a NATS server and brings chosen subjects back as typed
// events. Topics are NATS subjects already ("*" and ">" mean the same there).
//
// Here two buses in one program stand for two processes, "shop" and "pricing", each with its
// own bridge and its own connection to the server:
//   shop    exports orders.>   imports prices.*
//   pricing imports orders.>   exports prices.*
//
// Run it with a server's URL (`example_05_nats_bridge nats://127.0.0.1:4222`, or $NATS_URL);
// without one it starts a private nats-server on a free port, if one is installed
// (Debian: apt-get install nats-server), and stops it at the end. Needs agentbus::nats
// (Debian: libnats-dev).

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <fmt/core.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

extern char** environ;

// Events that cross a process boundary need a stable schema name and a codec: the bridge sends
// their codec bytes. A struct whose bytes mean the same elsewhere opts into the bitwise codec;
// one with a string gets two small functions (agentbus/storage/codec.hpp).
struct order {
  static constexpr std::string_view event_name = "shop.order";
  std::string item;
  int quantity = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const order& o) {
  out.write_string(o.item);
  out.write_value(o.quantity);
}
order agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order>) {
  order o;
  o.item = in.read_string();
  o.quantity = in.read_value<int>();
  return o;
}

struct price {
  static constexpr std::string_view event_name = "pricing.price";
  static constexpr bool agentbus_bitwise_codec = true;
  double amount = 0;
};

namespace {
struct private_server {  // a nats-server of our own, on a free port, stopped by its PID
  pid_t pid = -1;
  std::string dir, url;
  ~private_server() {
    if (pid > 0) {
      kill(pid, SIGINT);
      waitpid(pid, nullptr, 0);
    }
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
};
bool start_private_server(private_server& s);
}  // namespace

int main(int argc, char** argv) {
  private_server server;
  std::string url = argc > 1 ? argv[1] : std::getenv("NATS_URL") != nullptr ? std::getenv("NATS_URL") : "";
  if (url.empty()) {
    if (!start_private_server(server)) {
      fmt::print("skipped: no server URL given and no nats-server installed to start one "
                 "(Debian: apt-get install nats-server)\n");
      return 77;
    }
    url = server.url;
  }

  agentbus::bus shop, pricing;  // two processes, in real life
  try {
    agentbus::nats_bridge shop_link(shop, {.url = url, .outgoing = {"orders.>"}, .incoming = {"prices.*"}});
    agentbus::nats_bridge pricing_link(pricing, {.url = url, .outgoing = {"prices.*"}, .incoming = {"orders.>"}});
    shop_link.export_type<order>("orders.>");
    shop_link.import_type<price>("prices.*");
    pricing_link.import_type<order>("orders.>");
    pricing_link.export_type<price>("prices.*");

    std::mutex mutex;
    std::condition_variable cv;
    bool priced = false;

    // The pricing side answers each order with a price, on its own bus: the bridge sends it.
    auto pricer = pricing.subscribe("orders.>", [&](const agentbus::event<order>& ev) {
      fmt::print("pricing <- {} {} x {} (from {}, trace {})\n", ev.topic(), ev->quantity, ev->item, ev.source(),
                 ev.header_value("traceparent").value_or("-"));
      pricing.publish("prices.widget", price{9.5 * ev->quantity}, {.source = "pricer"});
    });
    // The shop hears prices as typed events. Local subscribers get local events directly.
    auto buyer = shop.subscribe("prices.*", [&](const agentbus::event<price>& ev) {
      fmt::print("shop    <- {} {:.2f} (from {})\n", ev.topic(), ev->amount, ev.source());
      std::lock_guard lock(mutex);
      priced = true;
      cv.notify_all();
    });
    auto local = shop.subscribe("orders.>", [](const order& o) { fmt::print("shop    (local) order for {}\n", o.item); });

    const agentbus::header trace[] = {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};
    shop.publish("orders.eu.widget", order{"widget", 3}, {.source = "shop", .headers = trace});

    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return priced; })) {
      fmt::print("no price arrived within 5 s\n");
      return 1;
    }
    const auto s = shop_link.stats();
    fmt::print("shop bridge: sent {}, received {}, dropped {}, decode errors {}, schema mismatches {}\n", s.sent,
               s.received, s.dropped, s.decode_errors, s.schema_mismatches);
  } catch (const agentbus::nats_error& e) {
    fmt::print("{}\n", e.what());  // e.g. no server at that URL: a clear error, at once
    return 1;
  }
  agentbus::nats_library_close();  // optional: frees the client's threads (after every bridge is gone)
}

namespace {
bool start_private_server(private_server& s) {
  std::string program;
  for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"})
    if (access(p, X_OK) == 0) program = p;
  if (program.empty()) return false;
  std::string dir = (std::filesystem::temp_directory_path() / "agentbus-example-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return false;
  s.dir = dir;
  // -p -1: a free port, written to <dir>/nats-server_<pid>.ports.
  std::string args[] = {program, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", dir, "-l", dir + "/log"};
  char* argv[std::size(args) + 1] = {};
  for (std::size_t i = 0; i < std::size(args); ++i) argv[i] = args[i].data();
  if (posix_spawn(&s.pid, program.c_str(), nullptr, nullptr, argv, environ) != 0) return false;
  const std::string ports = dir + "/nats-server_" + std::to_string(s.pid) + ".ports";
  for (int i = 0; i < 5000; ++i) {
    std::ifstream in(ports);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("nats://");
    const auto end = at == std::string::npos ? at : text.find('"', at);
    if (end != std::string::npos) {
      s.url = text.substr(at, end - at);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}
}  // namespace
