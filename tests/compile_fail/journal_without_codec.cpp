// SPDX-License-Identifier: MIT
// Must not compile. expect: this event type has no codec, so it cannot be persisted
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>
#include <string>
struct note { std::string text; };
int main() { agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = "x"}); bus.publish("a", note{}); }
