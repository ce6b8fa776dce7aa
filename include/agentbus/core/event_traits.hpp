// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_EVENT_TRAITS_HPP
#define AGENTBUS_CORE_EVENT_TRAITS_HPP

// Schema identity of event types: a stable name and a version per type, read through
// event_traits<T>, plus a cheap in-process type identity used for typed delivery.

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace agentbus {

/// @brief What a type needs to be published: a movable object type that destroys without throwing.
template <class T>
concept event_type = std::is_object_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T> &&
                     !std::is_array_v<T> && std::is_nothrow_destructible_v<T> && std::move_constructible<T>;

namespace detail {

/// The compiler's spelling of T, cut out of __PRETTY_FUNCTION__ at compile time.
template <class T>
constexpr std::string_view compiler_type_name() noexcept {
  std::string_view f = __PRETTY_FUNCTION__;
  // GCC: "... [with T = ns::foo; std::string_view = ...]"; Clang: "... [T = ns::foo]".
  const auto start = f.find("T = ") + 4;
  auto end = f.find(';', start);
  if (end == std::string_view::npos) end = f.rfind(']');
  return f.substr(start, end - start);
}

/// compiler_type_name<T>() computed once, at compile time (a call at run time would search
/// the function's signature on every record a journal reads or writes).
template <class T>
inline constexpr std::string_view compiler_type_name_v = compiler_type_name<T>();

/// One object per type; its address is the type's identity. Static data members of class
/// templates are inline, so every translation unit sees the same address. Aligned to 2 so that
/// the lowest bit of a type_id is always clear: a receiver list marks entries with it
/// (router/detail/receiver.hpp: superseded lists).
template <class T>
struct type_tag {
  alignas(2) static constexpr char id = 0;
};

}  // namespace detail

/// @brief In-process identity of an event type (not stable across processes: use event_traits).
using type_id = const void*;

/// @brief The type_id of T (cv-ref qualifiers ignored).
template <class T>
constexpr type_id type_id_of() noexcept {
  return &detail::type_tag<std::remove_cvref_t<T>>::id;
}

/// @brief Schema identity of an event type: stable name and version.
///
/// By default the name is `T::event_name` and the version `T::event_version` when T declares
/// them (`static constexpr std::string_view event_name = "tasks.created";`), else the
/// compiler's spelling of the type and version 1. The compiler's spelling differs between
/// compilers and is *not* a stable schema name: declare `event_name` (or specialize this
/// template) for any type that is persisted or crosses a process boundary.
template <class T>
struct event_traits {
  /// @brief Stable schema name of T.
  static constexpr std::string_view name() noexcept {
    if constexpr (requires { { T::event_name } -> std::convertible_to<std::string_view>; })
      return std::string_view{T::event_name};
    else
      return detail::compiler_type_name_v<T>;
  }
  /// @brief Schema version of T (1 unless T declares event_version).
  static constexpr std::uint32_t version() noexcept {
    if constexpr (requires { { T::event_version } -> std::convertible_to<std::uint32_t>; })
      return static_cast<std::uint32_t>(T::event_version);
    else
      return 1;
  }
};

}  // namespace agentbus

#endif  // AGENTBUS_CORE_EVENT_TRAITS_HPP
