// SPDX-License-Identifier: MIT
// Must not compile. expect: N (how many events to keep) must be at least 1
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::basic_bus<agentbus::storage::memory_ring<0>> bus; }
