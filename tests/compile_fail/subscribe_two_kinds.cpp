// SPDX-License-Identifier: MIT
// Must not compile. expect: give at most one delivery kind
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; agentbus::agent a("a"); auto s = bus.subscribe("a", [](const task&) {}, agentbus::async(a), agentbus::synchronous{}); }
