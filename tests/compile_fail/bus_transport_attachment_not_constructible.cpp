// SPDX-License-Identifier: MIT
// Must not compile. expect: the transport policy's attachment must be constructible from (bus&, const options&)
#include <agentbus/agentbus.hpp>
template <class Bus>
struct attachment_without_bus {
  explicit attachment_without_bus(int) {}
};
struct my_transport {
  using transport_tag = void;
  static constexpr bool bridges = true;
  struct options {};
  template <class Bus>
  using attachment = attachment_without_bus<Bus>;
};
int main() { agentbus::basic_bus<agentbus::storage::none, my_transport> bus; }
