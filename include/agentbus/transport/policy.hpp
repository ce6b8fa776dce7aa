// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_TRANSPORT_POLICY_HPP
#define AGENTBUS_TRANSPORT_POLICY_HPP

// Transport policies decide whether events leave the process. This header holds the concept
// every transport policy satisfies and the default, transport::in_process.

#include <concepts>

namespace agentbus {

/// @brief A transport policy: a type with `using transport_tag = void;` and a
/// `static constexpr bool bridges` saying whether events cross the process boundary.
template <class T>
concept transport_policy = requires {
  typename T::transport_tag;
  { T::bridges } -> std::convertible_to<bool>;
};

namespace transport {

/// @brief Events stay in this process (the default).
struct in_process {
  /// @brief Marks this type as a transport policy.
  using transport_tag = void;
  /// @brief Nothing leaves the process.
  static constexpr bool bridges = false;
};

}  // namespace transport

static_assert(transport_policy<transport::in_process>);

}  // namespace agentbus

#endif  // AGENTBUS_TRANSPORT_POLICY_HPP
