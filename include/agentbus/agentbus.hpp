// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_AGENTBUS_HPP
#define AGENTBUS_AGENTBUS_HPP

// The umbrella header: everything in the core. Bridges to third-party systems (NATS) are
// opt-in headers and are not included here.

#include "agentbus/version.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/handler_failure.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/router/router.hpp"
#include "agentbus/router/subscription.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/storage/codec.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/memory_ring.hpp"
#include "agentbus/transport/policy.hpp"
#include "agentbus/bus/channel.hpp"
#include "agentbus/bus/basic_bus.hpp"
#include "agentbus/queue/mpmc_queue.hpp"
#include "agentbus/agent/mailbox.hpp"
#include "agentbus/agent/executor.hpp"
#include "agentbus/agent/agent.hpp"

#endif  // AGENTBUS_AGENTBUS_HPP
