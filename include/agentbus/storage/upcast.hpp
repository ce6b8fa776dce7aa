// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_STORAGE_UPCAST_HPP
#define AGENTBUS_STORAGE_UPCAST_HPP

// Upcasters: functions that turn the codec bytes of an older schema version of T into a T of
// the current version. Whatever reads events written by another program (the journal reading
// old records, the NATS bridge importing from a process not yet upgraded) keeps one registry
// of them and asks it when a record's version is not T's:
//
//   registry.add<order>(1, [](agentbus::byte_reader& in) { return order{in.read_string(), 1}; });
//   if (auto convert = registry.find<order>(record_version)) value = (*convert)(reader);
//
// Thread safe: add() and find() may run at the same time on any threads; what find() returns
// stays valid after a later add() replaces it.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "agentbus/core/event_traits.hpp"
#include "agentbus/storage/codec.hpp"

namespace agentbus {

/// @brief A registry of upcasters, by event type and the schema version they convert from.
class upcaster_registry {
 public:
  /// @brief The function that converts one older version's bytes: `T convert(byte_reader&)`.
  template <class T>
  using converter = std::function<T(byte_reader&)>;

  /// @brief Registers `convert` for T's schema version `from_version` (replacing a previous one).
  /// What `convert` throws that is not a std::exception reaches the reader as a codec_error.
  template <class T, class F>
  void add(std::uint32_t from_version, F convert) {
    auto fn = std::make_shared<const converter<T>>(
        [convert = std::move(convert)](byte_reader& in) mutable -> T {
          return detail::run_decoder([&]() -> T { return convert(in); });
        });
    std::lock_guard lock(mutex_);
    for (auto& e : entries_)
      if (e.type == type_id_of<T>() && e.from_version == from_version) {
        e.fn = std::move(fn);
        return;
      }
    entries_.push_back({type_id_of<T>(), from_version, std::move(fn)});
  }

  /// @brief The upcaster of T from `from_version`, or null when none is registered.
  template <class T>
  std::shared_ptr<const converter<T>> find(std::uint32_t from_version) const {
    std::lock_guard lock(mutex_);
    for (const auto& e : entries_)
      if (e.type == type_id_of<T>() && e.from_version == from_version)
        return std::static_pointer_cast<const converter<T>>(e.fn);
    return nullptr;
  }

 private:
  struct entry {
    type_id type;
    std::uint32_t from_version;
    std::shared_ptr<const void> fn;  // const converter<T>
  };
  mutable std::mutex mutex_;
  std::vector<entry> entries_;
};

}  // namespace agentbus

#endif  // AGENTBUS_STORAGE_UPCAST_HPP
