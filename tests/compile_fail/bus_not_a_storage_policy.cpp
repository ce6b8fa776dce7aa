// SPDX-License-Identifier: MIT
// Must not compile. expect: the first basic_bus parameter must be a storage policy
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::basic_bus<int> bus; }
