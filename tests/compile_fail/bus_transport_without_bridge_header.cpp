// SPDX-License-Identifier: MIT
// Must not compile. expect: this bus's transport attaches a module that is declared but not defined here
#include <agentbus/agentbus.hpp>
#include <agentbus/transport/nats.hpp>
int main() { agentbus::basic_bus<agentbus::storage::none, agentbus::transport::nats> bus; }
