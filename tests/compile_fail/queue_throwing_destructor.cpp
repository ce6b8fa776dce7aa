// SPDX-License-Identifier: MIT
// Must not compile. expect: T's destructor must not throw
#include <agentbus/queue/mpmc_queue.hpp>
struct bad { ~bad() noexcept(false) {} };
int main() { agentbus::mpmc_queue<bad> q(4); }
