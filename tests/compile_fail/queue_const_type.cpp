// SPDX-License-Identifier: MIT
// Must not compile. expect: mpmc_queue<T>: T must not be const or volatile
#include <agentbus/queue/mpmc_queue.hpp>
int main() { agentbus::mpmc_queue<const int> q(4); }
