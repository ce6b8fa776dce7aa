// SPDX-License-Identifier: MIT
// Must not compile. expect: the payload must be a movable object type
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; bus.publish("a", "text"); }
