// SPDX-License-Identifier: MIT
// Signed messages (nats_options::signing_key) across the NATS bridge: what one bridge signs
// another with the same key delivers; an unsigned, tampered or wrongly keyed message is
// rejected and counted. Against a real nats-server each test starts on 127.0.0.1 on a free
// port and stops by its PID; skipped with a message when nats-server is missing.
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

namespace nats_security_test {

using namespace std::chrono_literals;
using agentbus::test::wait_until;

struct command {
  static constexpr std::string_view event_name = "test.command";
  std::string action;
};
void agentbus_encode(agentbus::byte_writer& out, const command& c) { out.write_string(c.action); }
command agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<command>) { return {in.read_string()}; }

// A message as the bridge would send it for `c` on `subject` (envelope headers), signed with
// `key` when not empty; `tamper` runs after signing.
template <class Tamper>
void publish_raw(agentbus::nats_connection& conn, const std::string& subject, const command& c, const std::string& key,
                 Tamper tamper) {
  agentbus::byte_writer writer;
  auto msg = agentbus::detail::encode_payload(c, subject, writer);
  REQUIRE(agentbus::detail::add_schema_headers_one_by_one<command>(msg) == NATS_OK);
  REQUIRE(msg.add_header(agentbus::nats_header::source, "operator") == NATS_OK);
  REQUIRE(msg.add_header(agentbus::nats_header::origin, "raw-client") == NATS_OK);
  if (!key.empty()) REQUIRE(agentbus::detail::message_signer(key).sign(msg) == NATS_OK);
  tamper(msg);
  REQUIRE(natsConnection_PublishMsg(conn.get(), msg.get()) == NATS_OK);
  conn.flush();
}

}  // namespace nats_security_test

using namespace nats_security_test;

#if AGENTBUS_HAS_NATS_SIGNING

TEST_CASE("nats signing: events signed with the shared key arrive, others are rejected and counted") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  const std::string key = "correct horse battery staple";
  agentbus::bus a, b;
  std::mutex mutex;
  std::vector<std::string> problems;
  agentbus::nats_bridge out(a, {.url = server->url(), .signing_key = key});
  agentbus::nats_bridge in(b, {.url = server->url(), .signing_key = key, .on_problem = [&](const agentbus::nats_bridge_problem& p) {
                                 if (p.kind != agentbus::nats_problem_kind::bad_signature) return;
                                 std::lock_guard lock(mutex);
                                 problems.emplace_back(p.what);
                               }});
  out.export_type<command>("commands.>");
  in.import_type<command>("commands.>");
  std::mutex got_mutex;
  std::vector<std::string> got;
  auto sub = b.subscribe<command>("commands.>", [&](const command& c) {
    std::lock_guard lock(got_mutex);
    got.push_back(c.action);
  });
  auto actions = [&] {
    std::lock_guard lock(got_mutex);
    return got;
  };

  (void)a.publish("commands.run", command{"signed by the bridge"});
  REQUIRE(wait_until([&] { return actions().size() == 1; }));

  agentbus::nats_connection raw({.url = server->url()});
  // Signed by hand with the right key: delivered (a client in another language can do this).
  publish_raw(raw, "commands.run", command{"signed by hand"}, key, [](auto&) {});
  REQUIRE(wait_until([&] { return actions().size() == 2; }));
  // Unsigned, signed with another key, and a signed message whose header changed afterwards.
  publish_raw(raw, "commands.run", command{"unsigned"}, "", [](auto&) {});
  publish_raw(raw, "commands.run", command{"wrong key"}, "another key", [](auto&) {});
  publish_raw(raw, "commands.run", command{"tampered"}, key, [](agentbus::detail::nats_message& m) {
    REQUIRE(natsMsgHeader_Set(m.get(), agentbus::nats_header::source, "intruder") == NATS_OK);
  });
  // The same signed headers over other payload bytes (the signature covers the codec bytes).
  {
    agentbus::byte_writer writer;
    auto genuine = agentbus::detail::encode_payload(command{"pay 10"}, "commands.run", writer);
    REQUIRE(agentbus::detail::add_schema_headers_one_by_one<command>(genuine) == NATS_OK);
    const std::string signature = agentbus::detail::message_signer(key).signature(genuine.get());
    agentbus::byte_writer other;
    auto forged = agentbus::detail::encode_payload(command{"pay 99"}, "commands.run", other);
    REQUIRE(agentbus::detail::add_schema_headers_one_by_one<command>(forged) == NATS_OK);
    REQUIRE(forged.add_header(agentbus::nats_header::signature, signature.c_str()) == NATS_OK);
    REQUIRE(natsConnection_PublishMsg(raw.get(), forged.get()) == NATS_OK);
    raw.flush();
  }
  REQUIRE(wait_until([&] { return in.stats().signature_failures == 4; }));
  (void)a.publish("commands.run", command{"signed again"});  // still flowing
  REQUIRE(wait_until([&] { return actions().size() == 3; }));

  const auto all = actions();
  CHECK(all == std::vector<std::string>{"signed by the bridge", "signed by hand", "signed again"});
  CHECK(in.stats().received == 3);
  std::lock_guard lock(mutex);
  REQUIRE(problems.size() == 4);
  CHECK_THAT(problems[0], Catch::Contains("no Agentbus-Signature"));
  CHECK_THAT(problems[1], Catch::Contains("does not match"));
}

TEST_CASE("nats signing: requests and replies are signed too, an unsigned requester gets no answer") {
  AGENTBUS_NATS_SERVER_OR_SKIP(server);
  const std::string key = "k3y";
  agentbus::bus client_bus, server_bus, stranger_bus;
  agentbus::nats_bridge client(client_bus, {.url = server->url(), .signing_key = key});
  agentbus::nats_bridge served(server_bus, {.url = server->url(), .signing_key = key});
  agentbus::nats_bridge stranger(stranger_bus, {.url = server->url()});  // no key
  client.export_requests<command, command>("ops.>");
  stranger.export_requests<command, command>("ops.>");
  served.import_requests<command, command>("ops.>");
  auto echo = agentbus::serve<command, command>(server_bus, "ops.echo", [](const command& c) {
    return command{"done: " + c.action};
  });

  CHECK(agentbus::request<command>(client_bus, "ops.echo", command{"restart"}, 5s).get().action == "done: restart");
  auto refused = agentbus::request<command>(stranger_bus, "ops.echo", command{"restart"}, 300ms);
  CHECK_THROWS_AS(refused.get(), agentbus::request_error);  // timeout: the server does not answer strangers
  REQUIRE(wait_until([&] { return served.stats().signature_failures == 1; }));
  CHECK(served.stats().requests_received == 1);
}

#endif  // AGENTBUS_HAS_NATS_SIGNING

TEST_CASE("nats signing: canonical bytes cover subject, reply subject, sorted headers and payload") {
  // No connection here opens the client library, which its messages need (run alone, this test
  // is the process's first use of it).
  REQUIRE(nats_Open(-1) == NATS_OK);
  agentbus::byte_writer writer;
  auto msg = agentbus::detail::encode_payload(command{"go"}, "ops.run", writer, "_INBOX.x.1");
  REQUIRE(msg.add_header("b-header", "2") == NATS_OK);
  REQUIRE(msg.add_header("A-header", "1") == NATS_OK);
  REQUIRE(msg.add_header(agentbus::nats_header::signature, "ignored") == NATS_OK);
  const std::string bytes = agentbus::detail::canonical_signed_bytes(msg.get());
  const std::string payload("\x02\x00\x00\x00go", 6);  // the string codec: u32 length, then the bytes
  CHECK(bytes == std::string("agentbus-signature-v1\nops.run\n_INBOX.x.1\nA-header:1\nb-header:2\n\n") + payload);
}

#endif
