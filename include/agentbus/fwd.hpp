// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_FWD_HPP
#define AGENTBUS_FWD_HPP

// Forward declarations and the default aliases.

namespace agentbus {

namespace storage {
struct none;
}
namespace transport {
struct in_process;
}

template <class Storage, class Transport>
class basic_bus;
template <class T>
class event;
template <class T>
class shared_event;
template <class T>
class channel;
class subscription;
class topic;
class topic_pattern;

/// @brief The bus with the embedded defaults: no storage, in-process transport.
using bus = basic_bus<storage::none, transport::in_process>;

}  // namespace agentbus

#endif  // AGENTBUS_FWD_HPP
