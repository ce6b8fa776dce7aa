// SPDX-License-Identifier: MIT
// Must not compile. expect: after the handler come a delivery kind
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto s = bus.subscribe("a", [](const task&) {}, 42); }
