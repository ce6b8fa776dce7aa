// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_TRANSPORT_POLICY_HPP
#define AGENTBUS_TRANSPORT_POLICY_HPP

// Transport policies decide whether events leave the process. This header holds the concept
// every transport policy satisfies and the default, transport::in_process.
//
// What the bus needs of a transport is its lifecycle, nothing else: a bridging transport is a
// module above the bus (its "attachment", e.g. nats_bridge) that sends and receives through
// the bus's public API — subscriptions that send, publishes of what comes in, requests through
// agentbus::serve / request. basic_bus<S, T> constructs T's attachment after its storage is
// open (from the options T names) and destroys it before it shuts its router down, so nothing
// bridged outlives the bus; a bus whose transport does not bridge holds nothing and its publish
// path is unchanged.

#include <concepts>

namespace agentbus {

/// @brief A transport policy: a type with `using transport_tag = void;`, a `static constexpr
/// bool bridges` saying whether events cross the process boundary, and `using options = ...;`
/// (what the bus's constructor takes for it). A bridging one (bridges == true) also names
/// `template <class Bus> using attachment = ...;`, constructible from `(Bus&, const options&)`:
/// see transport_attachment_for.
template <class T>
concept transport_policy = requires {
  typename T::transport_tag;
  { T::bridges } -> std::convertible_to<bool>;
  typename T::options;
};

/// @brief True when the transport policy T bridges and its attachment for `Bus` can be made
/// from the bus and T's options.
template <class T, class Bus>
concept transport_attachment_for = transport_policy<T> && T::bridges && requires {
  typename T::template attachment<Bus>;
} && std::constructible_from<typename T::template attachment<Bus>, Bus&, const typename T::options&>;

namespace transport {

/// @brief Events stay in this process (the default).
struct in_process {
  /// @brief Marks this type as a transport policy.
  using transport_tag = void;
  /// @brief Nothing leaves the process.
  static constexpr bool bridges = false;
  /// @brief Nothing to configure.
  struct options {};
};

}  // namespace transport

static_assert(transport_policy<transport::in_process>);

}  // namespace agentbus

#endif  // AGENTBUS_TRANSPORT_POLICY_HPP
