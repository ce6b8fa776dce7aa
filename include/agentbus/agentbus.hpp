// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_AGENTBUS_HPP
#define AGENTBUS_AGENTBUS_HPP

// The umbrella header: everything in the core, standard library only. Not included here:
// the journal (POSIX only: agentbus/journal/ for the engine, agentbus/storage/journal.hpp for
// the bus's storage::journal policy), consumer/ (durable consumers keep files), and bridges to
// third-party systems (NATS). The module
// map and the dependency order are in docs/architecture.md.

#include "agentbus/version.hpp"
#include "agentbus/fwd.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/result.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/queue/mpmc_queue.hpp"
#include "agentbus/storage/policy.hpp"
#include "agentbus/storage/codec.hpp"
#include "agentbus/storage/history.hpp"
#include "agentbus/storage/memory_ring.hpp"
#include "agentbus/transport/policy.hpp"
#include "agentbus/delivery/delivery.hpp"
#include "agentbus/delivery/synchronous.hpp"
#include "agentbus/delivery/mailbox.hpp"
#include "agentbus/bus/options.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/bus/subscription_set.hpp"
#include "agentbus/bus/channel.hpp"
#include "agentbus/bus/basic_bus.hpp"
#include "agentbus/agent/executor.hpp"
#include "agentbus/agent/agent.hpp"
#include "agentbus/reply/error.hpp"
#include "agentbus/reply/request.hpp"
#include "agentbus/reply/serve.hpp"
#include "agentbus/reply/breaker.hpp"

#endif  // AGENTBUS_AGENTBUS_HPP
