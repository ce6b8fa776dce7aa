// SPDX-License-Identifier: MIT
// Must not compile. expect: the handler must be callable with
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto s = bus.subscribe<task>("a", [](const int*) {}); }
