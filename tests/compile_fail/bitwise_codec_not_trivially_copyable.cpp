// SPDX-License-Identifier: MIT
// Must not compile. expect: opts into the bitwise codec
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>
#include <string>
struct named { static constexpr bool agentbus_bitwise_codec = true; std::string name; };
int main() { agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = "x"}); bus.publish("a", named{}); }
