// SPDX-License-Identifier: MIT
// ODR check: agentbus.hpp in two translation units linked into one program. Type identity,
// the quiescence domain and the thread slots must be one and the same in both.
#include <agentbus/agentbus.hpp>

#include <cstdio>

#include "odr_event.hpp"

int publish_from_other_tu(agentbus::bus& bus);

int main() {
  agentbus::bus bus;
  int received = 0;
  auto s = bus.subscribe("odr.check", [&](const odr_event& e) { received += e.value; });
  const int delivered = publish_from_other_tu(bus);
  if (delivered != 1 || received != 7) {
    std::printf("FAILED: delivered %d, received %d\n", delivered, received);
    return 1;
  }
  std::printf("ok: an event published in one translation unit reached a handler from the other\n");
  return 0;
}
