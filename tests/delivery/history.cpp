// SPDX-License-Identifier: MIT
// History subscriptions (delivery/history.hpp: the decorator in front of any delivery kind):
// stored events first, then live ones, with no gap and no duplicate at the seam, for a
// synchronous handler and for a mailbox, on both storage kinds (a memory ring and a journal).
// The seam under concurrent publishers is in tests/stress/history_stress.cpp.
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>
#include <agentbus/storage/memory_ring.hpp>

#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/copy_counter.hpp"
#include "support/journal_dir.hpp"

namespace {

using ring_bus = agentbus::basic_bus<agentbus::storage::memory_ring<8>>;
using journaled_bus = agentbus::basic_bus<agentbus::storage::journal>;

// A fresh journal directory per test, removed afterwards.
struct history_dir : agentbus::test::journal_dir {
  history_dir() : journal_dir("history") {}
};

// An event with its own codec, so that a journal can store it.
struct history_note {
  static constexpr std::string_view event_name = "test.history_note";
  std::string text;
  int priority_level = 0;
};
void agentbus_encode(agentbus::byte_writer& out, const history_note& n) {
  agentbus::encode(out, n.text);
  agentbus::encode(out, n.priority_level);
}
history_note agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<history_note>) {
  history_note n;
  n.text = agentbus::codec<std::string>::decode(in);
  n.priority_level = agentbus::codec<int>::decode(in);
  return n;
}

// A memory ring that runs a test's hook on the publishing thread once, between storing an
// event and dispatching it: the moment a late joiner's seam is decided.
struct paused_ring {
  using storage_tag = void;
  static constexpr bool persists = true;
  struct options {};
  class store : public agentbus::detail::ring_store {
   public:
    explicit store(const options& = {}) : ring_store(64) {}
    template <class T>
    std::uint64_t append(agentbus::event<T>& ev) {
      const std::uint64_t offset = ring_store::append(ev);
      if (after_append) std::exchange(after_append, nullptr)();
      return offset;
    }
    std::function<void()> after_append;
  };
};
static_assert(agentbus::storage_policy<paused_ring>);

}  // namespace

// ---- on a memory ring ----

TEST_CASE("memory_ring: a history subscription gets stored events, then live ones", "[delivery][history][memory_ring]") {
  ring_bus bus;
  for (int i = 0; i < 3; ++i) (void)bus.publish("a.b", i);
  std::vector<int> got;
  agentbus::replay_stats report;
  auto sub = bus.subscribe<int>("a.b", [&](int v) { got.push_back(v); }, agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
  CHECK(got == std::vector<int>{0, 1, 2});
  CHECK(report.delivered == 3);
  (void)bus.publish("a.b", 3);
  CHECK(got == std::vector<int>{0, 1, 2, 3});

  // Deduced event type, history from an offset.
  std::vector<int> late;
  auto sub2 = bus.subscribe("a.*", [&](const agentbus::event<int>& e) { late.push_back(*e); },
                            agentbus::history::from_offset(2));
  (void)bus.publish("a.b", 4);
  CHECK(late == std::vector<int>{2, 3, 4});

  // An offset not assigned yet: nothing replayed, then every live event (none skipped).
  std::vector<int> ahead;
  auto sub3 = bus.subscribe<int>("a.b", [&](int v) { ahead.push_back(v); }, agentbus::history::from_offset(100));
  CHECK(ahead.empty());
  (void)bus.publish("a.b", 5);
  CHECK(ahead == std::vector<int>{5});
  CHECK(bus.replay<int>(agentbus::history::from_offset(100), ">", [](int) {}).delivered == 0);
}

TEST_CASE("memory_ring: a handler may publish during its history replay", "[delivery][history][memory_ring]") {
  ring_bus bus;
  (void)bus.publish("a.b", 1);
  std::vector<int> got;
  auto sub = bus.subscribe<int>("a.b", [&](int v) {
    got.push_back(v);
    if (v < 3) (void)bus.publish("a.b", v + 1);  // reentrant publish while catching up
  }, agentbus::history::all());
  CHECK(got == std::vector<int>{1, 2, 3});
}

TEST_CASE("history seam: an event stored before a joiner's replay ends and dispatched after it arrives once",
          "[delivery][history][memory_ring]") {
  agentbus::basic_bus<paused_ring> bus;
  (void)bus.publish("a.b", 0);
  std::vector<int> got;
  agentbus::replay_stats report;
  agentbus::subscription sub;
  // Event 1 is stored but not dispatched yet when another thread subscribes with history: its
  // replay delivers 0 and 1 and it goes live before event 1's dispatch reaches it, which must
  // then skip it (no duplicate at the seam).
  bus.storage().after_append = [&] {
    std::thread([&] {
      sub = bus.subscribe<int>("a.b", [&](int v) { got.push_back(v); },
                               agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
    }).join();
  };
  (void)bus.publish("a.b", 1);
  CHECK(report.delivered == 2);
  CHECK(got == std::vector<int>{0, 1});
  (void)bus.publish("a.b", 2);  // live, after the seam: no gap
  CHECK(got == std::vector<int>{0, 1, 2});
}

TEST_CASE("memory_ring: an agent subscribes with history and shares the ring's blocks", "[delivery][history][memory_ring]") {
  agentbus::basic_bus<agentbus::storage::memory_ring<4>> bus;
  (void)bus.publish("a.b", agentbus::test::copy_counter{1});
  (void)bus.publish("a.b", agentbus::test::copy_counter{2});
  agentbus::test::copy_counter::reset();
  agentbus::agent worker("worker");
  std::vector<int> got;
  auto sub = bus.subscribe<agentbus::test::copy_counter>(
      "a.b", [&](const agentbus::test::copy_counter& c) { got.push_back(c.value); }, agentbus::async(worker),
      agentbus::history::all());
  (void)bus.publish("a.b", agentbus::test::copy_counter{3});
  CHECK(worker.poll() == 3);
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(agentbus::test::copy_counter::copies == 0);
}

// ---- on a journal ----

TEST_CASE("journal bus: a late joiner gets history then live events", "[delivery][history][journal]") {
  history_dir dir;
  {
    journaled_bus bus(dir.options());
    for (int i = 0; i < 3; ++i) (void)bus.publish("jobs.a", i);
  }
  journaled_bus bus(dir.options());  // history survives the restart
  (void)bus.publish("jobs.a", 3);
  std::vector<int> got;
  agentbus::replay_stats report;
  auto sub = bus.subscribe<int>("jobs.*", [&](int v) { got.push_back(v); }, agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
  CHECK(got == std::vector<int>{0, 1, 2, 3});
  CHECK(report.delivered == 4);
  (void)bus.publish("jobs.a", 4);
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("journal bus: a history subscription behind a damaged newest record goes live instead of waiting for ever",
          "[delivery][history][journal]") {
  // The cursor reports the damaged record and then waits for an intact one after it, which
  // may never come: subscribe() used to spin until another event was published.
  history_dir dir;
  journaled_bus bus(dir.options());
  for (int i = 0; i < 10; ++i) (void)bus.publish("t.x", std::string(40, static_cast<char>('a' + i)));
  {  // damage one byte of the newest record's payload, from outside, while the bus is open
    std::fstream log(dir.path / "00000000000000000000.log", std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(log);
    const std::string bytes((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    const std::size_t at = bytes.find(std::string(40, 'j'));
    REQUIRE(at != std::string::npos);
    log.seekp(static_cast<std::streamoff>(at));
    log.put('Z');
  }
  std::vector<std::string> got;
  agentbus::replay_stats report;
  auto sub = bus.subscribe<std::string>("t.>", [&](const std::string& v) { got.push_back(v); },
                                        agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
  CHECK(got.size() == 9);  // a..i; j is damaged
  CHECK(report.corrupt == 1);
  CHECK_FALSE(report.clean());
  bool said = false;
  for (const std::string& p : report.problems) said = said || p.find("from offset 9 to 9 could not be read") != std::string::npos;
  CHECK(said);
  (void)bus.publish("t.x", std::string("live"));
  REQUIRE(got.size() == 10);
  CHECK(got.back() == "live");
}

TEST_CASE("journal bus: an agent subscribes with history, then gets live events", "[delivery][history][journal]") {
  history_dir dir;
  journaled_bus bus(dir.options());
  for (int i = 0; i < 3; ++i) (void)bus.publish("jobs.a", history_note{"old" + std::to_string(i), i});
  agentbus::agent worker("worker");  // caller-pumped
  std::vector<std::string> got;
  agentbus::replay_stats report;
  auto sub = bus.subscribe<history_note>("jobs.*", [&](const history_note& n) { got.push_back(n.text); }, agentbus::async(worker),
                                 agentbus::subscribe_options{.history = agentbus::history::from_offset(1), .report = &report});
  CHECK(report.delivered == 2);
  (void)bus.publish("jobs.b", history_note{"live", 9});
  CHECK(worker.poll() == 3);
  CHECK(got == std::vector<std::string>{"old1", "old2", "live"});

  // From an offset not assigned yet: nothing replayed, and no live event skipped.
  std::vector<std::string> ahead;
  agentbus::replay_stats none;
  auto sub2 = bus.subscribe<history_note>("jobs.*", [&](const history_note& n) { ahead.push_back(n.text); }, agentbus::async(worker),
                                  agentbus::subscribe_options{.history = agentbus::history::from_offset(1000), .report = &none});
  CHECK(none.delivered == 0);
  (void)bus.publish("jobs.c", history_note{"next", 10});
  worker.poll();
  CHECK(ahead == std::vector<std::string>{"next"});
}

TEST_CASE("memory_ring: a history subscription does not replay a delayed event (live subscriptions never get one)",
          "[delivery][history][memory_ring]") {
  using namespace std::chrono_literals;
  ring_bus bus;
  (void)bus.publish("a.b", 1);
  (void)bus.publish("a.b", 2, agentbus::publish_options{.delay = std::chrono::hours(1)});  // due in an hour
  (void)bus.publish("a.b", 3);
  std::vector<int> live;
  auto plain = bus.subscribe<int>("a.b", [&](int v) { live.push_back(v); });
  (void)bus.publish("a.b", 4, agentbus::publish_options{.delay = std::chrono::hours(1)});
  CHECK(live.empty());  // a live subscription never receives a delayed event
  std::vector<int> got;
  agentbus::replay_stats report;
  auto sub = bus.subscribe<int>("a.b", [&](int v) { got.push_back(v); },
                                agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
  CHECK(got == std::vector<int>{1, 3});  // not 2 and 4, an hour early
  CHECK(report.delivered == 2);
  // A subscription that asked for delayed events gets them in its replay too.
  std::vector<int> exported;
  auto exporter = bus.subscribe<int>("a.b", [&](int v) { exported.push_back(v); },
                                     agentbus::subscribe_options{.history = agentbus::history::all(), .delayed = true});
  CHECK(exported == std::vector<int>{1, 2, 3, 4});
}
