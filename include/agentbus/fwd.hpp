// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_FWD_HPP
#define AGENTBUS_FWD_HPP

// Forward declarations, with the default template arguments (written here once, not at the
// definitions), and the default aliases.

namespace agentbus {

namespace storage {
struct none;
struct journal;  // defined in agentbus/storage/journal.hpp (POSIX only, not in the umbrella)
}
namespace transport {
struct in_process;
}

template <class Storage = storage::none, class Transport = transport::in_process>
class basic_bus;
template <class T>
class event;
template <class T>
class shared_event;
template <class T, class Store = void>
class channel;
class subscription;
struct synchronous;
struct mailbox_delivery;
struct subscribe_options;
struct bus_options;
class topic;
class topic_pattern;

/// @brief The bus with the embedded defaults: no storage, in-process transport.
using bus = basic_bus<storage::none, transport::in_process>;

}  // namespace agentbus

#endif  // AGENTBUS_FWD_HPP
