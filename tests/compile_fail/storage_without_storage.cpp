// SPDX-License-Identifier: MIT
// Must not compile. expect: this bus stores nothing
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; (void)bus.storage(); }
