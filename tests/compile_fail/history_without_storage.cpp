// SPDX-License-Identifier: MIT
// Must not compile. expect: subscribe with history needs a bus that stores events
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto s = bus.subscribe("a", [](const task&) {}, agentbus::history::all()); }
