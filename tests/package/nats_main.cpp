// SPDX-License-Identifier: MIT
// The package tests' NATS program: the bridge's header and the NATS C client through nothing but
// the package (agentbus::nats, or `pkg-config agentbus-nats`). It needs no server: it checks that
// the client was found and links, and that the bridge's types are there.
#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include <cstdio>

static_assert(AGENTBUS_HAS_NATS == 1, "agentbus/transport/nats.hpp did not find <nats/nats.h>");

int main() {
  // The client's library is linked and is the version of the header compiled against.
  const bool compatible = nats_CheckCompatibility();
  agentbus::nats_options options;
  agentbus::nats_bridge_stats stats;
  agentbus::bus bus;
  std::printf("consumer (nats): agentbus %d, NATS C client %s, compatible %d, default url %s\n", AGENTBUS_VERSION,
              nats_GetVersion(), compatible ? 1 : 0, options.url.c_str());
  agentbus::nats_library_close();
  return compatible && !stats.connected && !options.url.empty() ? 0 : 1;
}
