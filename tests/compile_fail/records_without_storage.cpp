// SPDX-License-Identifier: MIT
// Must not compile. expect: records needs a bus that stores events
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; (void)bus.records<task>(agentbus::history::all()); }
