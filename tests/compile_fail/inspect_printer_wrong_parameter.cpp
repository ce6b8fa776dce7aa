// SPDX-License-Identifier: MIT
// Must not compile. expect: print takes a const T&
#include <agentbus/journal/inspect.hpp>
#include <agentbus/storage/codec.hpp>
#include <string>
int main() {
  agentbus::journal_inspector inspector;
  inspector.register_printer<int>([](const std::string& s) { return s; });
}
