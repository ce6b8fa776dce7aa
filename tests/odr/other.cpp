// SPDX-License-Identifier: MIT
#include <agentbus/agentbus.hpp>

#include "odr_event.hpp"

int publish_from_other_tu(agentbus::bus& bus) {
  return static_cast<int>(bus.publish("odr.check", odr_event{7}).delivered);
}
