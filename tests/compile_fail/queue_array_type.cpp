// SPDX-License-Identifier: MIT
// Must not compile. expect: mpmc_queue<T>: T must be an object type
#include <agentbus/queue/mpmc_queue.hpp>
int main() { agentbus::mpmc_queue<int[2]> q(4); }
