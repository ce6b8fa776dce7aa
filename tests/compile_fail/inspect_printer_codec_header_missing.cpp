// SPDX-License-Identifier: MIT
// Must not compile. expect: include <agentbus/storage/codec.hpp>
#include <agentbus/journal/inspect.hpp>
struct sample { int value; static constexpr bool agentbus_bitwise_codec = true; };  // its codec lives in codec.hpp
int main() {
  agentbus::journal_inspector inspector;
  inspector.register_printer<sample>([](const sample& s) { return std::to_string(s.value); });
}
