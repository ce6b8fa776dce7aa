// SPDX-License-Identifier: MIT
// Must not compile. expect: T must be move-constructible
#include <agentbus/queue/mpmc_queue.hpp>
struct pinned { pinned() = default; pinned(pinned&&) = delete; };
int main() { agentbus::mpmc_queue<pinned> q(4); }
