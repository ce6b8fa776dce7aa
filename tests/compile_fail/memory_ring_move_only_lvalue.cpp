// SPDX-License-Identifier: MIT
// Must not compile. expect: keeps every event, which means copying the payload
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
struct job { std::unique_ptr<int> n; };
int main() { agentbus::basic_bus<agentbus::storage::memory_ring<4>> bus; job j; bus.publish("a", j); }
