// SPDX-License-Identifier: MIT
// Compressed payloads (nats_options::compress_above) across the NATS bridge: large payloads go
// out as zstd frames with Agentbus-Encoding, any receiver with zstd reads them, and a frame
// that is damaged, claims too much, or names an unknown encoding is a counted decode error.
// Against a real nats-server each test starts on 127.0.0.1 on a free port and stops by its
// PID; skipped with a message when nats-server is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/nats_server.hpp"

namespace nats_compression_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct report {
  static constexpr std::string_view event_name = "test.report";
  std::string text;
};
void agentbus_encode(agentbus::byte_writer& out, const report& r) { out.write_string(r.text); }
report agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<report>) { return {in.read_string()}; }

// What a raw subscriber saw of one message.
struct seen_message {
  std::string encoding;  // "(none)" without the header
  int bytes = 0;
};

}  // namespace nats_compression_test

using namespace nats_compression_test;

#if AGENTBUS_HAS_NATS_ZSTD

TEST_CASE("nats compression: large payloads cross as zstd frames and come back whole") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus a, b;
  agentbus::nats_bridge out(a, {.url = server->url(), .compress_above = 256});
  agentbus::nats_bridge in(b, {.url = server->url()});  // reads compressed payloads without asking
  out.export_type<report>("reports.>");
  in.import_type<report>("reports.>");

  agentbus::nats_connection raw({.url = server->url()});
  natsSubscription* tap = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&tap, raw.get(), "reports.>") == NATS_OK);
  raw.flush();

  std::mutex mutex;
  std::vector<std::string> got;
  auto sub = b.subscribe<report>("reports.>", [&](const report& r) {
    std::lock_guard lock(mutex);
    got.push_back(r.text);
  });

  std::string big;
  for (int i = 0; i < 400; ++i) big += "line " + std::to_string(i % 7) + " of a report that repeats itself\n";
  (void)a.publish("reports.daily", report{big});
  (void)a.publish("reports.short", report{"short"});  // under the threshold: as it is
  REQUIRE(wait_until([&] {
    std::lock_guard lock(mutex);
    return got.size() == 2;
  }));
  {
    std::lock_guard lock(mutex);
    CHECK(got[0] == big);
    CHECK(got[1] == "short");
  }

  std::vector<seen_message> tapped;
  for (int i = 0; i < 2; ++i) {
    natsMsg* m = nullptr;
    REQUIRE(natsSubscription_NextMsg(&m, tap, 2000) == NATS_OK);
    const char* enc = nullptr;
    tapped.push_back({natsMsgHeader_Get(m, agentbus::nats_header::encoding, &enc) == NATS_OK ? enc : "(none)",
                      natsMsg_GetDataLength(m)});
    natsMsg_Destroy(m);
  }
  CHECK(tapped[0].encoding == "zstd");
  CHECK(tapped[0].bytes < static_cast<int>(big.size()) / 4);  // repetitive text: far smaller
  CHECK(tapped[1].encoding == "(none)");
  CHECK(tapped[1].bytes == 4 + 5);  // the codec bytes of "short"
  (void)natsSubscription_Unsubscribe(tap);
  natsSubscription_Destroy(tap);
}

TEST_CASE("nats compression: a damaged or oversized frame, or an unknown encoding, is a counted decode error") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  agentbus::bus b;
  std::mutex mutex;
  std::vector<std::string> problems;
  agentbus::nats_bridge in(b, {.url = server->url(), .on_problem = [&](const agentbus::nats_bridge_problem& p) {
                                 std::lock_guard lock(mutex);
                                 problems.emplace_back(p.what);
                               }});
  in.import_type<report>("reports.>");
  std::atomic<int> delivered{0};
  auto sub = b.subscribe<report>("reports.>", [&](const report&) { ++delivered; });

  agentbus::nats_connection raw({.url = server->url()});
  auto send = [&](const std::vector<char>& payload, const char* encoding) {
    agentbus::detail::nats_message msg("reports.x", payload.data(), payload.size());
    REQUIRE(agentbus::detail::add_schema_headers_one_by_one<report>(msg) == NATS_OK);
    REQUIRE(msg.add_header(agentbus::nats_header::encoding, encoding) == NATS_OK);
    REQUIRE(natsConnection_PublishMsg(raw.get(), msg.get()) == NATS_OK);
  };
  // A frame that says it holds 65 MiB (of zeros: it is tiny on the wire): refused unopened.
  {
    const std::vector<char> zeros((std::size_t{65} << 20), 0);
    std::vector<char> frame(ZSTD_compressBound(zeros.size()));
    const std::size_t n = ZSTD_compress(frame.data(), frame.size(), zeros.data(), zeros.size(), 1);
    REQUIRE_FALSE(ZSTD_isError(n));
    frame.resize(n);
    send(frame, "zstd");
  }
  send({'n', 'o', 't', ' ', 'z', 's', 't', 'd'}, "zstd");
  send({1, 0, 0, 0, 'x'}, "brotli");
  raw.flush();
  REQUIRE(wait_until([&] { return in.stats().decode_errors == 3; }));
  CHECK(delivered == 0);
  std::lock_guard lock(mutex);
  REQUIRE(problems.size() == 3);
  CHECK_THAT(problems[0], Catch::Contains("more than the 64 MiB"));
  CHECK_THAT(problems[1], Catch::Contains("not a zstd frame"));
  CHECK_THAT(problems[2], Catch::Contains("unknown Agentbus-Encoding 'brotli'"));
}

#endif  // AGENTBUS_HAS_NATS_ZSTD

#endif
