// SPDX-License-Identifier: MIT
// Must not compile. expect: channel<T>: T must be a movable, non-const object type
#include <agentbus/agentbus.hpp>
#include <memory>
struct task { int id; };
int main() { agentbus::bus bus; auto c = bus.channel<const task>("a"); }
