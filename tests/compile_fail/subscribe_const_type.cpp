// SPDX-License-Identifier: MIT
// Must not compile. expect: T must be a movable, non-const object type
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto s = bus.subscribe<const task>("a", [](const task&) {}); }
