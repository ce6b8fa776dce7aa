// SPDX-License-Identifier: MIT
// The transport policy concept and the default policy, transport::in_process (no NATS needed).
#include <agentbus/agentbus.hpp>
#include <agentbus/transport/policy.hpp>

#include <catch2/catch.hpp>

namespace transport_policy_test {
struct not_a_transport {};
struct pretend_bridge {  // claims to bridge but names no attachment
  using transport_tag = void;
  static constexpr bool bridges = true;
  struct options {};
};
template <class Bus>
struct counting_attachment {  // an attachment written in the test, through the bus's public API only
  counting_attachment(Bus& bus, const int& start) : sub(bus.template subscribe<int>("counted.>", [this](const agentbus::event<int>& e) { seen += e.payload(); })), seen(start) {}
  agentbus::subscription sub;
  int seen;
  static inline int destroyed = 0;
  ~counting_attachment() { ++destroyed; }
};
struct counting_transport {
  using transport_tag = void;
  static constexpr bool bridges = true;
  using options = int;
  template <class Bus>
  using attachment = counting_attachment<Bus>;
};
}  // namespace transport_policy_test

TEST_CASE("transport::in_process is the default transport policy and keeps events in the process") {
  STATIC_REQUIRE(agentbus::transport_policy<agentbus::transport::in_process>);
  STATIC_REQUIRE_FALSE(agentbus::transport::in_process::bridges);
  STATIC_REQUIRE(std::is_same_v<agentbus::bus::transport_type, agentbus::transport::in_process>);
  STATIC_REQUIRE_FALSE(agentbus::transport_policy<transport_policy_test::not_a_transport>);
  STATIC_REQUIRE(agentbus::transport_policy<transport_policy_test::pretend_bridge>);
  STATIC_REQUIRE_FALSE(agentbus::transport_attachment_for<transport_policy_test::pretend_bridge, agentbus::bus>);
  STATIC_REQUIRE(sizeof(agentbus::bus) ==
                 sizeof(agentbus::basic_bus<agentbus::storage::none, agentbus::transport::in_process>));
}

TEST_CASE("transport policy: a bridging transport's attachment is made with the bus and destroyed before it") {
  using bus_type = agentbus::basic_bus<agentbus::storage::memory_ring<8>, transport_policy_test::counting_transport>;
  STATIC_REQUIRE(agentbus::transport_attachment_for<transport_policy_test::counting_transport, bus_type>);
  const int destroyed_before = transport_policy_test::counting_attachment<bus_type>::destroyed;
  {
    bus_type bus(40);  // the transport's options
    bus.publish("counted.one", 2);
    CHECK(bus.transport().seen == 42);
    CHECK(bus.stats().subscriptions == 1);
  }
  CHECK(transport_policy_test::counting_attachment<bus_type>::destroyed == destroyed_before + 1);
}
