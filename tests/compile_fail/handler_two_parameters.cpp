// SPDX-License-Identifier: MIT
// Must not compile. expect: cannot deduce the event type of this handler
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto s = bus.subscribe("a", [](const task&, int) {}); }
