// SPDX-License-Identifier: MIT
// Must not compile. expect: the second basic_bus parameter must be a transport policy
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::basic_bus<agentbus::storage::none, int> bus; }
