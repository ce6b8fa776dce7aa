// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_AGENT_EXECUTOR_HPP
#define AGENTBUS_AGENT_EXECUTOR_HPP

// A small fixed pool of worker threads that runs many agents' mailboxes.
//
// An agent with queued events is put in the run queue once (its mailbox's wake flag makes sure
// of that); a worker takes it out, handles up to `batch` events, and puts it back at the end of
// the queue if more are waiting. So one agent's handlers never run concurrently with each other
// (per-agent order is kept), and a slow or busy agent delays others by at most one batch.

#include <cstddef>
#include <stdexcept>
#include <thread>
#include <vector>

#include "agentbus/queue/mpmc_queue.hpp"

namespace agentbus {

namespace detail {
/// Something an executor runs: an agent's mailbox.
class schedulable {
 public:
  /// Handles a batch of events; called by one worker at a time.
  virtual void run_scheduled() noexcept = 0;

 protected:
  ~schedulable() = default;
};
}  // namespace detail

/// @brief Settings of an executor.
struct executor_options {
  std::size_t threads = 2;       ///< worker threads
  std::size_t max_agents = 4096;  ///< agents that may be attached at once (run queue capacity)
  std::size_t batch = 64;        ///< events one agent handles before yielding its worker
};

/// @brief A fixed pool of worker threads running agents' mailboxes (see agent).
///
/// Thread safety: agents attach and detach from any thread. Destroy every attached agent
/// before its executor.
class executor {
 public:
  /// @brief Starts the worker threads.
  explicit executor(const executor_options& options = {})
      : options_(options), run_queue_(options.max_agents == 0 ? 1 : options.max_agents) {
    if (options.threads == 0) throw std::invalid_argument("agentbus: executor needs at least one thread");
    if (options.max_agents == 0) throw std::invalid_argument("agentbus: executor_options::max_agents must be at least 1");
    for (std::size_t i = 0; i < options.threads; ++i)
      workers_.emplace_back([this] {
        current_worker() = this;
        detail::schedulable* next = nullptr;
        while (run_queue_.pop(next)) next->run_scheduled();
      });
  }
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;
  /// @brief Stops and joins the workers.
  ~executor() {
    run_queue_.close();
    for (auto& w : workers_) w.join();
  }

  /// @brief Events one agent handles per turn.
  std::size_t batch() const noexcept { return options_.batch == 0 ? 1 : options_.batch; }
  /// @brief Worker thread count.
  std::size_t threads() const noexcept { return workers_.size(); }

  /// @brief Queues an agent for a turn (internal: called when its mailbox wakes).
  void schedule(detail::schedulable* s) noexcept {
    // Each attached agent is in the queue at most once and attach() bounds their number, so
    // this never waits for room; it fails only once the executor is shutting down.
    (void)run_queue_.push(s);
  }

  /// @brief Reserves room for one more agent; throws when max_agents are attached.
  void attach() {
    // Against the option, not the run queue's capacity (rounded up to a power of two).
    if (attached_.fetch_add(1, std::memory_order_relaxed) >= options_.max_agents) {
      attached_.fetch_sub(1, std::memory_order_relaxed);
      throw std::length_error("agentbus: executor has max_agents agents attached; raise executor_options::max_agents");
    }
  }
  /// @brief Releases an agent's room.
  void detach() noexcept { attached_.fetch_sub(1, std::memory_order_relaxed); }

  /// @brief True when the calling thread is one of this executor's workers (internal).
  bool on_worker_thread() const noexcept { return current_worker() == this; }
  /// @brief Runs one queued agent's turn on the calling thread, one of this executor's
  /// workers; false when none was queued (internal: for a worker that must wait for a turn
  /// still in the queue, such as a handler stopping another agent of the same executor, when
  /// no other worker may be free to run it).
  bool help_once() noexcept {
    detail::schedulable* next = nullptr;
    if (!run_queue_.try_pop(next)) return false;
    next->run_scheduled();
    return true;
  }

 private:
  static const executor*& current_worker() noexcept {
    static thread_local const executor* worker_of = nullptr;
    return worker_of;
  }

  executor_options options_;
  mpmc_queue<detail::schedulable*> run_queue_;
  std::atomic<std::size_t> attached_{0};
  std::vector<std::thread> workers_;
};

}  // namespace agentbus

#endif  // AGENTBUS_AGENT_EXECUTOR_HPP
