// SPDX-License-Identifier: MIT
// Must not compile. expect: a durable handler takes `const agentbus::delivered<T>&`
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/durable.hpp>
struct task { int id; };
int main() {
  agentbus::basic_bus<agentbus::storage::memory_ring<16>> bus;
  agentbus::durable_consumer<task> c(bus, "worker", "tasks.>");
  c.poll([](const task&) {});
}
