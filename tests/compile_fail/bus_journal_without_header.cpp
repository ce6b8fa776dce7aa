// SPDX-License-Identifier: MIT
// Must not compile. expect: declared but not defined here: for storage::journal, #include <agentbus/storage/journal.hpp>
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::basic_bus<agentbus::storage::journal> bus; }
