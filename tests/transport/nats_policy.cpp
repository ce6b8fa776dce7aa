// SPDX-License-Identifier: MIT
// transport::nats as the bus's transport policy: basic_bus<S, transport::nats> for each storage
// policy S owns its bridge (bus.transport()), connects in its constructor and closes the bridge
// before it shuts down. Against a real nats-server each test starts on 127.0.0.1 on a free port
// and stops by its PID; skipped with a message when nats-server is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>
#include <agentbus/storage/journal.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/journal_dir.hpp"
#include "transport/nats_server.hpp"

namespace nats_policy_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct reading {
  static constexpr std::string_view event_name = "test.reading";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int32_t sensor = 0;
  double value = 0;
};

struct other_reading {  // the same schema name, another layout: a fingerprint mismatch
  static constexpr std::string_view event_name = "test.reading";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int64_t sensor = 0;
};

using nats_bus = agentbus::basic_bus<agentbus::storage::none, agentbus::transport::nats>;
using ring_nats_bus = agentbus::basic_bus<agentbus::storage::memory_ring<64>, agentbus::transport::nats>;
using journal_nats_bus = agentbus::basic_bus<agentbus::storage::journal, agentbus::transport::nats>;

}  // namespace nats_policy_test

using namespace nats_policy_test;

TEST_CASE("nats transport: a bus of each storage policy bridges through its own transport") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  STATIC_REQUIRE(agentbus::transport_attachment_for<agentbus::transport::nats, nats_bus>);
  STATIC_REQUIRE(std::is_same_v<std::remove_cvref_t<decltype(std::declval<nats_bus&>().transport())>,
                                agentbus::nats_bridge<nats_bus>>);
  agentbus::test::journal_dir dir("nats_policy");

  nats_bus sensors({.url = server->url(), .outgoing = {"readings.>"}});
  ring_nats_bus dashboard(agentbus::storage::memory_ring<64>::options{}, {}, {.url = server->url()});
  journal_nats_bus archive(dir.options(), {}, {.url = server->url()});
  sensors.transport().export_type<reading>("readings.>");
  dashboard.transport().import_type<reading>("readings.*");
  archive.transport().import_type<reading>("readings.>");

  std::atomic<int> live{0};
  auto on_dashboard = dashboard.subscribe<reading>("readings.*", [&](const reading&) { ++live; });
  for (int i = 0; i < 5; ++i) sensors.publish("readings.t" + std::to_string(i), reading{i, 20.0 + i});
  sensors.publish("readings.deep.t9", reading{9, 1.0});  // matches readings.> only

  REQUIRE(wait_until([&] { return live.load() == 5 && archive.transport().stats().received == 6; }));
  CHECK(sensors.transport().stats().sent == 6);
  CHECK(dashboard.transport().stats().received == 5);

  // What came in was stored like any local publish: the ring keeps it, the journal persists it.
  int ring_count = 0;
  for (const auto& e : dashboard.records<reading>(agentbus::history::all())) ring_count += e.payload().sensor >= 0;
  CHECK(ring_count == 5);
  std::vector<std::string> journaled;
  for (const auto& e : archive.records<reading>(agentbus::history::all())) journaled.emplace_back(e.topic());
  CHECK(journaled.size() == 6);
  CHECK(journaled.back() == "readings.deep.t9");
}

TEST_CASE("nats transport: a server that is not there fails the bus's constructor and releases its storage") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::test::journal_dir dir("nats_policy_down");
  const std::string nobody = "nats://127.0.0.1:1";  // nothing listens on port 1
  CHECK_THROWS_AS(journal_nats_bus(dir.options(), {}, {.url = nobody, .connect_timeout = 500ms}), agentbus::nats_error);
  // The journal directory was closed again (its lock released): a bus opens it now.
  journal_nats_bus again(dir.options(), {}, {.url = server->url()});
  CHECK(again.transport().stats().connected);
}

TEST_CASE("nats transport: the bus's problem handler comes from its options and requests cross too") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  std::atomic<int> problems{0};
  nats_bus a({.url = server->url()});
  nats_bus b({.url = server->url(), .on_problem = [&](const agentbus::nats_bridge_problem& p) {
                if (p.kind == agentbus::nats_problem_kind::schema_mismatch) ++problems;
              }});
  a.transport().export_type<reading>("readings.>");
  b.transport().import_type<other_reading>("readings.>");
  a.publish("readings.x", reading{1, 2.0});
  REQUIRE(wait_until([&] { return problems.load() == 1; }));
  CHECK(b.transport().stats().schema_mismatches == 1);

  a.transport().export_requests<reading, reading>("calibrate");
  b.transport().import_requests<reading, reading>("calibrate");
  auto calibrate = agentbus::serve<reading, reading>(b, "calibrate", [](const reading& r) {
    return reading{r.sensor, r.value * 2};
  });
  CHECK(agentbus::request<reading>(a, "calibrate", reading{3, 1.5}, 5s).get().value == 3.0);
}

#endif
