// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_TUNING_HPP
#define AGENTBUS_DETAIL_TUNING_HPP

// The internal tuning constants, in one place, each with why it has its value. The ones a
// user may want to change are options instead: bus_options (max_cached_topics),
// mailbox_options (capacity, overflow, priority_overflow, weights, block_timeout,
// spin_before_park, pace), executor_options, journal_options. Figures were measured on the 2-core development VM;
// cross-core costs there move 3-5x with vCPU placement, so the values are chosen for the
// shape of the curve, not a single number.

#include <cstddef>
#include <cstdint>

#include "agentbus/detail/chrono.hpp"

namespace agentbus::detail::tuning {

// ---- mpmc_queue (queue/mpmc_queue.hpp) ----

/// Try-and-pause rounds a blocking queue call makes before yielding. Covers the usual gap
/// between a push and the next pop on another core (a few microseconds) without burning the
/// time slice a descheduled peer needs when threads outnumber cores: designs that spin on a
/// claimed slot instead collapsed 100x+ at 2 producers / 2 consumers on 2 cores.
inline constexpr unsigned queue_spin_limit = 64;

/// Try-and-yield rounds a blocking queue call makes, after spinning, before it parks on the
/// event count (detail/sync/event_count.hpp). Parking costs the other side a wake-up.
inline constexpr unsigned queue_yield_limit = 8;

/// Slots ahead of its own that a push prefetches for writing (once per cache line of slots):
/// +7% 1P1C mailbox throughput; a prefetch per push before the stores cost +38 ns on a hot
/// round trip against +20 ns this way.
inline constexpr std::size_t queue_prefetch_ahead = 8;

// ---- block pool (detail/memory/block_pool.hpp) ----

/// Blocks moved between a thread's cache and the central list at once: the central lock is
/// taken once per this many events, not per event.
inline constexpr std::uint32_t pool_batch = 32;

/// Allocations between prefetching a block and handing it out: enough publishes to cover a
/// cache line's trip from the consumer's core.
inline constexpr std::uint32_t pool_prefetch_distance = 8;

// ---- mailbox (delivery/detail/mailbox.hpp) ----

/// Events a consumer claims from a queue at once (at most an eighth of its capacity): their
/// blocks are prefetched together, so a consumer behind the publisher pays its cache misses
/// in parallel. Measured: consumer cost ~50 -> ~32 ns/event cross-core.
inline constexpr std::size_t mailbox_burst = 64;

/// Slots of a priority's first ring (delivery/detail/mailbox.hpp: "Memory"); the full ring
/// (mailbox_options::capacity) is made when it fills. 32 slots are 1 KiB, about 2 KiB with the
/// queue's indices: 100 000 agents that each received one event hold ~0.2 GB of rings, not the
/// 3.3 GB of full 1024-slot rings. Streaming traffic fills it within its first 32 events and
/// then runs on the full ring, as before.
inline constexpr std::size_t mailbox_first_ring = 32;

/// A publisher on a full mailbox with overflow::block: rounds of waiting for a quarter of the
/// queue to free up before parking, the first `pause_rounds` with `pauses_per_round` PAUSEs
/// each, the rest yielding (a consumer may share our core). Waiting for a quarter rather than
/// one slot keeps the two threads on slots far apart.
inline constexpr unsigned full_wait_rounds = 4096;
inline constexpr unsigned full_wait_pause_rounds = 256;
inline constexpr unsigned full_wait_pauses_per_round = 16;

// ---- agent (agent/agent.hpp) ----

/// Events an agent's own thread (or a caller's run_for) handles per round before looking at
/// its state again (stop requests, pacing).
inline constexpr std::size_t agent_round = 64;

/// Mailboxes smaller than this are never paced (mailbox_options::pace): a small one would
/// just fill up while the consumer waits.
inline constexpr std::size_t pace_min_capacity = 256;

/// An agent's own thread, after a pace (mailbox_options::pace) that gathered at most one
/// event: rounds that skip pacing, doubling from min to max while paces keep losing.
/// Request/response traffic (one event in flight: the publisher waits for the handler) loses
/// every pace, and each lost pace costs that round trip a whole pace (~1 us against ~0.2-0.7
/// us); pacing is only tried in rounds that follow a round with events, which in ping-pong
/// are a fraction of the events, so with max 256 well under 1% of round trips pay one
/// (measured p99 0.31-0.45 us against 1.2-1.6 us before). Streaming wins its paces (a burst of
/// several events follows each) and keeps pacing every round; when it loses one (the
/// publisher was descheduled mid-pace on a busy machine) it gives up at most `max` rounds of
/// pacing, which is why max stays small.
inline constexpr std::uint32_t pace_backoff_min = 16;
inline constexpr std::uint32_t pace_backoff_max = 256;

/// An agent's own thread polling an empty mailbox before parking: PAUSEs between two polls.
/// One, as a raw queue ping-pong spins: measured on the agent ping-pong (bench/async) p50
/// 200-220 ns with 1, 270 with 4, 290-300 with 8 (raw queue: 120-140 ns). A poll reads only
/// our own index and the next slot, so polling often does not slow the publisher down; what
/// does (a consumer taking events one by one right behind it) is avoided by taking one
/// burst per poll and pacing from there (agent::thread_main).
inline constexpr unsigned agent_poll_pauses = 1;

/// stop() on a pooled agent: yields before it falls back to short sleeps while waiting for a
/// worker to give the mailbox up.
inline constexpr unsigned stop_yields = 64;

/// A history subscription whose replay reported a damaged record and then made no progress
/// for this long, while the store counts records beyond it, goes live from the store's end
/// (the records in between are the damaged tail, which no read can return: a journal reader
/// resumes only after the next intact record). A record merely being written is readable
/// within microseconds, so this only bounds how long subscribe() waits behind damage.
inline constexpr std::chrono::milliseconds history_damaged_tail_wait{50};

}  // namespace agentbus::detail::tuning

#endif  // AGENTBUS_DETAIL_TUNING_HPP
