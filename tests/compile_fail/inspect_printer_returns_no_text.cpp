// SPDX-License-Identifier: MIT
// Must not compile. expect: print returns the text to show
#include <agentbus/journal/inspect.hpp>
#include <agentbus/storage/codec.hpp>
int main() {
  agentbus::journal_inspector inspector;
  inspector.register_printer<int>([](int v) { return v * 2; });
}
