// SPDX-License-Identifier: MIT
// Must not compile. expect: whose bytes mean the same in another process opts in
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>
#include <string_view>
struct label { std::string_view text; };  // trivially copyable, but its bytes point into this process
int main() { agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = "x"}); bus.publish("a", label{}); }
