// SPDX-License-Identifier: MIT
// Must not compile. expect: consumer groups and durable consumers need a bus that stores events
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/durable.hpp>
struct task { int id; };
int main() { agentbus::bus bus; agentbus::durable_consumer<task> c(bus, "worker", "tasks.>"); }
