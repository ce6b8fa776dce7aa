// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_POLICY_HPP
#define AGENTBUS_STORAGE_POLICY_HPP

// Storage policies decide what the bus keeps of published events. This header holds the
// concept every storage policy satisfies and the default, storage::none. The others:
// storage::memory_ring<N> (agentbus/storage/memory_ring.hpp) and storage::journal
// (agentbus/storage/journal.hpp), each static_asserted against the concept in its header.
//
// A persisting policy (persists == true) also has `options` (what the bus constructor takes)
// and `store` (what the bus owns), which the bus uses like this:
//   store(const options&)                       opens the storage
//   std::uint64_t next_offset()                 the offset the next stored event gets
//   std::uint64_t append(event<T>&)             stores an event before it is dispatched, sets
//                                               and returns its offset (keeps_blocks: the
//                                               event lives in a shared block)
//   cursor<T> open<T>(history, optional<topic_pattern>)  a reader: next(), current(),
//                                               position(), stats(); it follows new events

#include <concepts>
#include <cstdint>
#include <optional>

#include "agentbus/core/event.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/history.hpp"

namespace agentbus {

/// @brief A storage policy: a type with `using storage_tag = void;` and a
/// `static constexpr bool persists` saying whether published events are kept; a persisting
/// one also has `options` and a `store` constructible from them (see above).
/// (Checked with one event type, std::uint64_t, which every policy can store.)
template <class S>
concept storage_policy = requires {
  typename S::storage_tag;
  { S::persists } -> std::convertible_to<bool>;
} && (!S::persists || requires(typename S::store& store, const typename S::store& reader,
                               event<std::uint64_t>& ev, history from) {
  typename S::options;
  requires std::constructible_from<typename S::store, const typename S::options&>;
  { store.next_offset() } -> std::convertible_to<std::uint64_t>;
  { S::store::keeps_blocks } -> std::convertible_to<bool>;
  { store.append(ev) } -> std::convertible_to<std::uint64_t>;
  requires requires(decltype(reader.template open<std::uint64_t>(from, std::optional<topic_pattern>{})) cursor) {
    { cursor.next() } -> std::convertible_to<bool>;
    { cursor.current() } -> std::convertible_to<const event<std::uint64_t>&>;
    { cursor.position() } -> std::convertible_to<std::uint64_t>;
    cursor.stats();
  };
});

namespace storage {

/// @brief Keep nothing: events exist only while they are being delivered (the default).
struct none {
  /// @brief Marks this type as a storage policy.
  using storage_tag = void;
  /// @brief Nothing is kept: no offsets, replay or history.
  static constexpr bool persists = false;
};

}  // namespace storage

static_assert(storage_policy<storage::none>);

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_POLICY_HPP
