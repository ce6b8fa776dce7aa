// SPDX-License-Identifier: MIT
// TLS credentials pass through to the client (nats_options::tls_ca_file, tls_cert_file,
// tls_key_file): against a nats-server that requires TLS and verifies client certificates,
// started on 127.0.0.1 on a free port with certificates this test makes with the openssl
// command (a CA, a server certificate for 127.0.0.1, a client certificate), stopped by its PID.
// Skipped with a message when nats-server or openssl is missing.
#include <catch2/catch.hpp>

#if defined(AGENTBUS_TEST_NATS)

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "transport/nats_server.hpp"

namespace nats_tls_test {

using agentbus::test::wait_until;

struct ping {
  static constexpr std::string_view event_name = "test.ping";
  static constexpr bool agentbus_bitwise_codec = true;
  std::int32_t n = 0;
};

// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA;
// and a second CA that signed nothing here. Empty when openssl is missing or fails.
struct certificates {
  std::filesystem::path dir;
  bool made = false;

  certificates() {
    dir = std::filesystem::temp_directory_path() / ("agentbus_tls_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string d = dir.string();
    std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    const std::string quiet = " >/dev/null 2>&1";
    const std::string script =
        "cd '" + d + "' && " +
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=agentbus-test-ca" + quiet +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca" +
        quiet + " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1" + quiet +
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext" +
        quiet + " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=agentbus-client" +
        quiet + " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2" + quiet;
    made = std::system(script.c_str()) == 0;
  }
  ~certificates() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string file(std::string_view name) const { return (dir / name).string(); }
};

}  // namespace nats_tls_test

using namespace nats_tls_test;

TEST_CASE("nats tls: a bridge with the CA and a client certificate talks to a server that requires both") {
  const auto program = agentbus::test::find_nats_server();
  if (!program) {
    WARN("skipped: nats-server is not installed (Debian: apt-get install nats-server; or set AGENTBUS_NATS_SERVER)");
    return;
  }
  certificates certs;
  if (!certs.made) {
    WARN("skipped: the openssl command is missing or failed (Debian: apt-get install openssl)");
    return;
  }
  agentbus::test::nats_server server(
      *program, {.extra_args = {"--tls", "--tlscert", certs.file("server.pem"), "--tlskey", certs.file("server.key"),
                                "--tlscacert", certs.file("ca.pem"), "--tlsverify"}});

  agentbus::bus a, b;
  const agentbus::nats_options secure{.url = server.url(),
                                      .tls_ca_file = certs.file("ca.pem"),
                                      .tls_cert_file = certs.file("client.pem"),
                                      .tls_key_file = certs.file("client.key")};
  agentbus::nats_bridge out(a, secure);
  agentbus::nats_bridge in(b, secure);
  out.export_type<ping>("pings.>");
  in.import_type<ping>("pings.>");
  std::atomic<int> got{0};
  auto sub = b.subscribe<ping>("pings.>", [&](const ping& p) { got += p.n; });
  (void)a.publish("pings.one", ping{5});
  REQUIRE(wait_until([&] { return got.load() == 5; }));

  // Without a client certificate the server refuses the connection: a clear error, at once.
  agentbus::nats_options no_client_cert = secure;
  no_client_cert.tls_cert_file.clear();
  no_client_cert.tls_key_file.clear();
  agentbus::bus c;
  CHECK_THROWS_AS(agentbus::nats_bridge<agentbus::bus>(c, no_client_cert), agentbus::nats_error);
  // A CA that did not sign the server's certificate: the client refuses the server.
  agentbus::nats_options wrong_ca = secure;
  wrong_ca.tls_ca_file = certs.file("other-ca.pem");
  CHECK_THROWS_AS(agentbus::nats_bridge<agentbus::bus>(c, wrong_ca), agentbus::nats_error);
  // A CA file that is not there: named in the error.
  agentbus::nats_options missing = secure;
  missing.tls_ca_file = certs.file("no-such-ca.pem");
  try {
    agentbus::nats_bridge<agentbus::bus> refused(c, missing);
    FAIL("connected with a CA file that does not exist");
  } catch (const agentbus::nats_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("invalid connection options"));
  }
}

#endif
