// SPDX-License-Identifier: MIT
// The consumer projects' program: uses agentbus with nothing but the package's target.
#include <agentbus/agentbus.hpp>

#include <cstdio>

struct hello {
  int n;
};

int main() {
  agentbus::bus bus;
  int sum = 0;
  auto s = bus.subscribe("consumer.*", [&](const hello& h) { sum += h.n; });
  bus.publish("consumer.test", hello{2});
  bus.channel<hello>("consumer.channel").publish(hello{3});
  std::printf("consumer: agentbus %d, sum %d\n", AGENTBUS_VERSION, sum);
  return sum == 5 ? 0 : 1;
}
