// SPDX-License-Identifier: MIT
// The transport policy concept and the default policy, transport::in_process (no NATS needed).
#include <agentbus/agentbus.hpp>
#include <agentbus/transport/policy.hpp>

#include <catch2/catch.hpp>

namespace transport_policy_test {
struct not_a_transport {};
struct pretend_bridge {
  using transport_tag = void;
  static constexpr bool bridges = true;
};
}  // namespace transport_policy_test

TEST_CASE("transport::in_process is the default transport policy and keeps events in the process") {
  STATIC_REQUIRE(agentbus::transport_policy<agentbus::transport::in_process>);
  STATIC_REQUIRE_FALSE(agentbus::transport::in_process::bridges);
  STATIC_REQUIRE(std::is_same_v<agentbus::bus::transport_type, agentbus::transport::in_process>);
  STATIC_REQUIRE_FALSE(agentbus::transport_policy<transport_policy_test::not_a_transport>);
  STATIC_REQUIRE(agentbus::transport_policy<transport_policy_test::pretend_bridge>);
}
