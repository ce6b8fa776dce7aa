// SPDX-License-Identifier: MIT
// Must not compile. expect: register_printer<T> decodes with T's codec
#include <agentbus/journal/inspect.hpp>
#include <agentbus/storage/codec.hpp>
#include <string>
struct note { std::string text; };  // no codec: no hooks, no codec<note>
int main() {
  agentbus::journal_inspector inspector;
  inspector.register_printer<note>([](const note& n) { return n.text; });
}
