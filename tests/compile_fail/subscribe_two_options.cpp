// SPDX-License-Identifier: MIT
// Must not compile. expect: give at most one of subscribe_options and history
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::basic_bus<agentbus::storage::memory_ring<4>> bus; auto s = bus.subscribe("a", [](const task&) {}, agentbus::history::all(), agentbus::subscribe_options{}); }
