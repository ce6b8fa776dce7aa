// SPDX-License-Identifier: MIT
// Tutorial 04 — persistence: publish, crash, reopen, replay.
//
// A bus whose storage policy is storage::journal writes every event to an append-only journal
// on disk before delivering it. Here a child process publishes with durability::always and
// then really crashes (SIGKILL, mid-stream, no destructor runs). The parent reopens the same
// directory: recovery checks the journal's tail, and a late joiner catches up on everything
// the crashed process was told was stored, then keeps receiving live events.
//
//   example_04_persistence             the journal lives in a temporary directory, deleted at exit
//   example_04_persistence --keep DIR  the journal is written to DIR (new or empty) and kept, for
//                                      `agentbus-journal stats DIR`, `dump DIR`, `verify DIR`

#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>

#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

// 1. Stored events need a schema name (stable across builds) and a codec. Numbers, enums,
//    std::string and std::vector have one; a plain struct of numbers opts in with
//    `static constexpr bool agentbus_bitwise_codec = true;`; a struct with strings gets two
//    small hooks.
struct order_placed {
  static constexpr std::string_view event_name = "shop.order_placed";
  static constexpr std::uint32_t event_version = 1;
  int id = 0;
  std::string customer;
  std::vector<int> items;
};

void agentbus_encode(agentbus::byte_writer& out, const order_placed& o) {
  agentbus::encode(out, o.id);
  agentbus::encode(out, o.customer);
  agentbus::encode(out, o.items);
}
order_placed agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<order_placed>) {
  order_placed o;
  o.id = agentbus::codec<int>::decode(in);
  o.customer = agentbus::codec<std::string>::decode(in);
  o.items = agentbus::codec<std::vector<int>>::decode(in);
  return o;
}

// 2. The bus type: same API as agentbus::bus, plus offsets, replay and history.
using journaled_bus = agentbus::basic_bus<agentbus::storage::journal>;

int main(int argc, char** argv) {
  // Where the journal goes: --keep DIR keeps it there; otherwise a temporary directory.
  std::filesystem::path dir;
  bool keep = false;
  if (argc == 3 && std::string_view(argv[1]) == "--keep") {
    dir = argv[2];
    keep = true;
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
      fmt::print(stderr, "example_04_persistence: {} is not empty: give --keep a new or empty directory\n",
                 dir.string());
      return 2;
    }
  } else if (argc != 1) {
    fmt::print(stderr, "usage: example_04_persistence [--keep DIR]\n");
    return 2;
  } else {
    dir = std::filesystem::temp_directory_path() / ("agentbus_example_04_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
  }
  fmt::print("journal: {}{}\n", dir.string(), keep ? " (kept)" : " (deleted at exit; --keep DIR keeps one)");

  // 3. The "agent" that crashes: publishes, reports what the bus acknowledged, then dies.
  int ack_pipe[2];
  if (::pipe(ack_pipe) != 0) return 1;
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ack_pipe[0]);
    journaled_bus bus(agentbus::journal_options{.directory = dir, .durability = agentbus::durability::always()});
    for (int i = 1; i <= 5; ++i) {
      // publish() returns once the event is on disk (durability::always), with its offset.
      const auto r = bus.publish("shop.orders.eu", order_placed{i, "customer-" + std::to_string(i), {i, i * 10}},
                                 {.source = "checkout"});
      if (::write(ack_pipe[1], &r.offset, sizeof r.offset) != sizeof r.offset) ::_exit(1);
    }
    std::raise(SIGKILL);  // a real crash: no flush, no destructor
  }
  ::close(ack_pipe[1]);
  std::vector<std::uint64_t> acknowledged;
  std::uint64_t offset = 0;
  while (::read(ack_pipe[0], &offset, sizeof offset) == sizeof offset) acknowledged.push_back(offset);
  ::close(ack_pipe[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  fmt::print("checkout crashed ({}) after {} acknowledged orders\n",
             WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) : "exited", acknowledged.size());

  {
    // 4. Reopen: recovery validates the tail and says what it did.
    journaled_bus bus(agentbus::journal_options{.directory = dir});
    const auto& recovery = bus.storage().engine().recovery();
    fmt::print("reopened: {} records in {} segment(s), {} torn bytes cut\n", recovery.records, recovery.segments,
               recovery.truncated_bytes);

    // 5. Replay everything stored, filtered by a topic pattern.
    const auto stats = bus.replay<order_placed>(agentbus::history::all(), "shop.orders.*",
                                                [](const agentbus::event<order_placed>& ev) {
                                                  fmt::print("  replayed #{} offset {} for {} ({} items)\n", ev->id,
                                                             *ev.offset(), ev->customer, ev->items.size());
                                                });
    fmt::print("replay: {} delivered, clean: {}\n", stats.delivered, stats.clean());

    // 6. A late joiner: history first, then live events, no gap and no duplicate between them.
    int seen = 0;
    auto auditor = bus.subscribe<order_placed>("shop.>", [&seen](const order_placed&) { ++seen; },
                                               agentbus::history::from_offset(2));
    (void)bus.publish("shop.orders.us", order_placed{6, "customer-6", {}});
    fmt::print("auditor from offset 2: {} orders (3 stored + 1 live)\n", seen);

    if (stats.delivered != acknowledged.size() || seen != 4) return 1;
  }
  if (keep) {
    fmt::print("kept {}: inspect it with `agentbus-journal stats {}` (or dump, verify)\n", dir.string(), dir.string());
  } else {
    std::filesystem::remove_all(dir);
  }
}
