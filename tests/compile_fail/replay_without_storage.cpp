// SPDX-License-Identifier: MIT
// Must not compile. expect: replay needs a bus that stores events
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; (void)bus.replay<task>(agentbus::history::all(), ">", [](const task&) {}); }
