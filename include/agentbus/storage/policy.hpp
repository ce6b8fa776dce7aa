// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_POLICY_HPP
#define AGENTBUS_STORAGE_POLICY_HPP

// Storage policies decide what the bus keeps of published events. This header holds the
// concept every storage policy satisfies and the default, storage::none.

#include <concepts>

namespace agentbus {

/// @brief A storage policy: a type with `using storage_tag = void;` and a
/// `static constexpr bool persists` saying whether published events are kept.
template <class S>
concept storage_policy = requires {
  typename S::storage_tag;
  { S::persists } -> std::convertible_to<bool>;
};

namespace storage {

/// @brief Keep nothing: events exist only while they are being delivered (the default).
struct none {
  using storage_tag = void;
  static constexpr bool persists = false;
};

}  // namespace storage

static_assert(storage_policy<storage::none>);

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_POLICY_HPP
