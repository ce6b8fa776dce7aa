// SPDX-License-Identifier: MIT
// agentbus from its package: one event through the bus; with AGENTBUS_TEST_PACKAGE_NATS, the
// NATS bridge's header and the NATS C client as well (no server needed).
#include <agentbus/agentbus.hpp>

#include <cstdio>

#if AGENTBUS_TEST_PACKAGE_NATS
#include <agentbus/bridge/nats.hpp>
static_assert(AGENTBUS_HAS_NATS == 1, "the package's nats component gave no <nats/nats.h>");
#endif

struct greeting {
  int n;
};

int main() {
  agentbus::bus bus;
  int received = 0;
  auto subscription = bus.subscribe("test.*", [&](const greeting& g) { received += g.n; });
  bus.publish("test.package", greeting{42});
  std::printf("agentbus %d.%d.%d from its package: received %d\n", AGENTBUS_VERSION_MAJOR, AGENTBUS_VERSION_MINOR,
              AGENTBUS_VERSION_PATCH, received);
  bool ok = received == 42;
#if AGENTBUS_TEST_PACKAGE_NATS
  const bool compatible = nats_CheckCompatibility();
  std::printf("NATS C client %s, compatible with its header: %s\n", nats_GetVersion(), compatible ? "yes" : "no");
  agentbus::nats_library_close();
  ok = ok && compatible;
#endif
  return ok ? 0 : 1;
}
