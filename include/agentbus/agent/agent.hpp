// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_AGENT_AGENT_HPP
#define AGENTBUS_AGENT_AGENT_HPP

// An agent: a named mailbox plus whatever runs its handlers.
//
//   agentbus::agent planner("planner");            // caller-pumped: planner.poll() / run_for()
//   planner.start();                               // ...or its own thread
//   agentbus::agent coder("coder", pool);          // ...or a shared executor
//   auto sub = planner.subscribe(bus, "tasks.*", [](const agentbus::event<task>& e) { ... });
//   // or: bus.subscribe("tasks.*", handler, agentbus::async(planner));
//
// Handlers of one agent run one at a time, in mailbox order (high priority first, then FIFO
// per priority and publishing thread), on the agent's consumer, never inside publish().
//
// Thread safety: subscribe, stop and stats from any thread. poll/run_for from one thread at a
// time (concurrent callers take turns). stop() must not be called from the agent's own handler.
// Destroying an agent stops it with stop_mode::discard (what is still queued is discarded,
// counted and reported; a running handler is waited for), joins its thread and ends its
// subscriptions: it never hangs on queued work and no handler of it runs afterwards.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "agentbus/agent/executor.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/detail/tuning.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/delivery/mailbox.hpp"
#include "agentbus/detail/chrono.hpp"

namespace agentbus {

class agent;

/// @brief An agent: a mailbox whose handlers run on the agent's thread, an executor, or the
/// application's own loop (see the top of agent.hpp).
class agent final : detail::schedulable {
 public:
  /// @brief A caller-pumped agent: handlers run inside poll() / run_for(), or, after start(),
  /// on the agent's own thread.
  explicit agent(std::string name, const mailbox_options& options = {}) : box_(std::move(name), options) {
    box_.set_wake(&wake, this);
  }

  /// @brief An agent run by `pool`'s workers, `pool.batch()` events per turn.
  agent(std::string name, executor& pool, const mailbox_options& options = {})
      : box_(std::move(name), options), pool_(&pool), mode_(mode::pooled) {
    pool.attach();
    box_.set_wake(&wake, this);
  }

  agent(const agent&) = delete;
  agent& operator=(const agent&) = delete;

  /// @brief Stops the agent with stop_mode::discard unless it was stopped (what is queued is
  /// discarded, counted and reported), joins the thread, then ends the subscriptions (one
  /// grace period per bus).
  ~agent() {
    // Stop first, then unsubscribe: the other order let the consumer take the backlog out as
    // "for an ended subscription" (counted, not reported) before the discard began; this way
    // every event not handled is reported to on_undelivered (discarded, or closed for those
    // published until the subscriptions end).
    if (!stopped_.load(std::memory_order_acquire)) stop(stop_mode::discard);
    box_.unsubscribe_all();
    if (pool_) pool_->detach();
  }

  /// @brief The agent's name.
  const std::string& name() const noexcept { return box_.name(); }

  /// @brief Runs the agent's handlers on a thread of its own. Only for agents made without an
  /// executor; throws std::logic_error when already started, pooled or stopped.
  void start() {
    std::lock_guard pump(pump_mutex_);  // not while someone polls
    if (mode_.load() != mode::pumped || stopped_.load(std::memory_order_acquire))
      throw std::logic_error("agentbus: agent::start(): agent " + name() + " is already running, pooled or stopped");
    thread_ = std::thread([this] { thread_main(); });
    mode_.store(mode::threaded);
    box_.sleep_flag().notify_one();  // in case the thread parked before the mode changed
  }

  /// @brief Stops the agent: the mailbox accepts nothing more (later events are counted as
  /// closed); with stop_mode::drain everything already queued is handled first, with
  /// stop_mode::discard it is dropped (counted, reported), including the rest of a round the
  /// consumer is running (a handler already running finishes). Every event that a publish
  /// queued is handled or counted by the time stop returns, also one whose publish was
  /// still under way when the mailbox closed. Then joins the thread. Idempotent.
  void stop(stop_mode how = stop_mode::drain) {
    if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
    stop_mode_.store(how, std::memory_order_relaxed);
    box_.close(how);  // discard: a consumer in the middle of a round stops handling at once
    if (mode_.load() == mode::pooled) {
      // Take the mailbox (no worker will be given it again), then wait for a worker still
      // finishing its turn, which may touch the mailbox after giving it up; then finish here.
      backoff([this] { return box_.try_claim(); }, pool_);
      backoff([this] { return in_turn_.load(std::memory_order_acquire) == 0; }, pool_);
      finish(how);
      return;
    }
    // Caller-pumped or threaded: start() turns the one into the other under the pump lock, so
    // the mode is read under it too (read before, a start() in progress was missed: its thread
    // went on consuming, unjoined, while this one drained). A run_for / run_until waiting on
    // another thread holds the pump: wake it first (it sees the close and returns) rather
    // than wait for its timeout.
    if (box_.try_claim()) wake(this);
    std::unique_lock pump(pump_mutex_);
    if (mode_.load() == mode::threaded) {
      pump.unlock();
      // The thread may have parked before the close; whoever took its wake above may have
      // woken it the caller-pumped way (start() was under way): wake it here, for sure.
      (void)box_.try_claim();
      box_.sleep_flag().notify_one();
      thread_.join();
    } else {
      finish(how);
    }
  }

  /// @brief Caller-pumped agents: runs up to `max` handlers on queued events now, without
  /// waiting. Returns how many handler calls ran (returned or threw). Events that run no
  /// handler (expired, for an ended subscription) are taken out too, counted in stats(),
  /// and do not count against `max`. The first poll on a thread that never published or
  /// handled an event registers the thread (one small allocation): out of memory, it throws
  /// std::bad_alloc before taking anything out (poll_for and run_for likewise).
  std::size_t poll(std::size_t max = std::numeric_limits<std::size_t>::max()) {
    std::lock_guard pump(pump_mutex_);  // then the mode: a start() may be under way
    require_pumped("poll");
    return box_.run_batch(max).ran;
  }

  /// @brief Caller-pumped agents: runs handlers on what is queued until the mailbox is empty
  /// or `budget` has passed, whichever comes first; never waits for events (a game or UI
  /// loop's slice). Returns how many handler calls ran. The budget is checked between
  /// rounds of a few dozen handlers, so one slow handler can overrun it.
  template <class Rep, class Period>
  std::size_t poll_for(std::chrono::duration<Rep, Period> budget) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    std::lock_guard pump(pump_mutex_);
    require_pumped("poll_for");
    std::size_t total = 0;
    for (;;) {
      const auto r = box_.run_batch(default_batch);
      total += r.ran;
      if (r.ran < default_batch && box_.empty()) return total;  // nothing more queued
      if (std::chrono::steady_clock::now() >= deadline) return total;
    }
  }

  /// @brief Caller-pumped agents: handles events as they come until `done()` returns true
  /// (checked before waiting and after every round of handlers) or `timeout` has passed.
  /// Waits without spinning when the mailbox is empty. Returns `done()`'s last answer.
  template <class Predicate, class Rep, class Period>
  bool run_until(Predicate done, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::lock_guard pump(pump_mutex_);
    require_pumped("run_until");
    for (;;) {
      if (done()) return true;
      (void)box_.run_batch(default_batch);
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline || box_.closing()) return false;
      wait_for_events(deadline);
    }
  }

  /// @brief Caller-pumped agents: handles events as they come until `timeout` has passed (or
  /// the agent is stopped). Waits without spinning when the mailbox is empty. Returns how
  /// many handler calls ran.
  template <class Rep, class Period>
  std::size_t run_for(std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::lock_guard pump(pump_mutex_);
    require_pumped("run_for");
    std::size_t total = 0;
    for (;;) {
      total += box_.run_batch(default_batch).ran;
      if (std::chrono::steady_clock::now() >= deadline || box_.closing()) return total;
      wait_for_events(deadline);
    }
  }

  /// @brief Subscribes `handler` on the bus `on`; it runs on this agent. Same as
  /// `bus.subscribe(pattern, handler, async(*this))`.
  template <class T, class Bus, class F>
  [[nodiscard]] subscription subscribe(Bus& on, std::string_view pattern, F&& handler) {
    return on.template subscribe<T>(pattern, std::forward<F>(handler), mailbox_delivery{&box_});
  }
  /// @brief As above, deducing the event type from the handler.
  template <class Bus, class F>
  [[nodiscard]] subscription subscribe(Bus& on, std::string_view pattern, F&& handler) {
    return on.subscribe(pattern, std::forward<F>(handler), mailbox_delivery{&box_});
  }

  /// @brief Installs the hook told about every event this agent's mailbox did not handle.
  void on_undelivered(undelivered_handler hook) { box_.set_undelivered_handler(std::move(hook)); }

  /// @brief The mailbox's counters.
  mailbox_stats stats() const noexcept { return box_.stats(); }

 private:
  friend mailbox_delivery async(agent& a) noexcept;
  enum class mode : std::uint8_t { pumped, threaded, pooled };
  static constexpr std::size_t default_batch = detail::tuning::agent_round;
  static constexpr std::size_t pace_min_capacity = detail::tuning::pace_min_capacity;

  void require_pumped(const char* what) const {
    if (mode_.load() != mode::pumped)
      throw std::logic_error(std::string("agentbus: agent::") + what + "(): agent " + name() +
                             " runs on its own thread or an executor");
  }

  // Polls `done` with a yield, then short sleeps: used only by stop(). On a worker of `pool`
  // (a handler stopping another agent of its executor), runs queued turns instead: the turn
  // waited for may be queued behind the caller's own, with no other worker free to run it.
  template <class Done>
  static void backoff(Done done, executor* pool = nullptr) {
    const bool help = pool != nullptr && pool->on_worker_thread();
    for (unsigned spins = 0; !done(); ++spins)
      if (help && pool->help_once())
        continue;
      else if (spins < detail::tuning::stop_yields)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  // The final drain, after the mailbox is closed. An empty round is not the end: a publish
  // may have claimed a queue slot before the close and not filled it yet, and its event would
  // otherwise stay queued, uncounted, until the mailbox is freed. drain_settled() waits those
  // out (a few instructions of the publisher's; yield in case it was descheduled there).
  void finish(stop_mode how) {
    for (;;) {
      if (box_.run_batch(default_batch, how).taken > 0) continue;
      if (box_.drain_settled()) return;
      std::this_thread::yield();
    }
  }

  // Caller-pumped: sleeps until an event arrives (or the agent closes) or `deadline` passes;
  // returns at once when events are already waiting. Call with pump_mutex_ held.
  void wait_for_events(std::chrono::steady_clock::time_point deadline) {
    if (!box_.empty() || !box_.prepare_sleep(true)) return;
    std::unique_lock lock(wake_mutex_);
    wake_cv_.wait_until(lock, deadline, [this] { return !box_.is_sleeping(); });
  }

  static void pace(std::chrono::nanoseconds how_long) noexcept {
    const auto until = std::chrono::steady_clock::now() + how_long;
    do {
      for (unsigned k = 0; k < 8; ++k) detail::cpu_relax();
    } while (std::chrono::steady_clock::now() < until);
  }

  // Rounds without pacing after a pace that gathered no burst (see thread_main).
  static std::uint32_t next_backoff(std::uint32_t last) noexcept {
    if (last == 0) return detail::tuning::pace_backoff_min;
    return last >= detail::tuning::pace_backoff_max / 2 ? detail::tuning::pace_backoff_max : 2 * last;
  }

  void thread_main() {
    const std::chrono::nanoseconds pace_for = box_.options().pace;
    const std::chrono::microseconds spin_before_park = box_.options().spin_before_park;
    const bool may_pace = pace_for.count() > 0 && box_.capacity() >= pace_min_capacity;
    bool streaming = false;          // the previous round found events too
    bool paced = false;              // this round follows a pace: judge it by what it finds
    std::uint32_t pace_skip = 0;     // rounds to go before pacing is tried again
    std::uint32_t pace_backoff = 0;  // what pace_skip was last set to (0: pacing pays off)
    for (;;) {
      if (const std::size_t n = box_.run_batch(default_batch, stop_mode::drain, true).taken; n > 0) {
        // Events arriving about as fast as we handle them: a consumer that takes each one as
        // soon as it is published reads every line the publisher is still writing (queue
        // slots, block headers), and the two cores pass those lines back and forth several
        // times per event, which slows both down (measured: 2-3x). Give the publisher a head
        // start of a few events instead, then take them in one burst. Only when the previous
        // round found events too, so a lone event (latency) is never held back, and only for
        // mailboxes with room for a head start (a small one would just fill up meanwhile).
        //
        // A pace is a bet that the publisher is streaming, and the burst after it says whether
        // it was won: one event or none means it was not (request/response traffic, where
        // the publisher waits for our handler before it publishes again, or a publisher
        // slower than a pace). Then pacing is skipped for pace_backoff rounds, doubling up to
        // tuning::pace_backoff_max while it keeps losing, so that one event in flight is
        // handled as soon as it arrives (a lost bet costs a whole pace, ~10x the round trip)
        // and streaming, whose bursts after a pace hold many events, keeps pacing every round.
        if (paced) {
          paced = false;
          if (n <= 1) {
            pace_skip = pace_backoff = next_backoff(pace_backoff);
          } else {
            pace_backoff = 0;
          }
        }
        if (n < default_batch && streaming && may_pace) {
          if (pace_skip > 0) {
            --pace_skip;
          } else {
            pace(pace_for);
            paced = true;
          }
        }
        streaming = true;
        continue;
      }
      streaming = false;
      if (paced) {  // the pace found nothing at all: lost too
        paced = false;
        pace_skip = pace_backoff = next_backoff(pace_backoff);
      }
      if (box_.closed()) {  // not closing(): the final drain must follow the close of every queue
        finish(stop_mode_.load(std::memory_order_relaxed));
        return;
      }
      // Spin a little before parking. Parking is expensive for both sides: the publisher that
      // finds us asleep pays for the wake-up system call (tens of microseconds in a VM), and
      // if we park again before that call even returns, every event costs a wake-up. So poll
      // for up to spin_before_park (a fraction of a time slice) first. Poll by trying to pop,
      // which reads only our own index and the next slot. An event found here is handled at
      // once and we go back to the top without pausing: in request/response traffic the next
      // event follows as soon as the publisher has seen our handler's effect. One burst per
      // poll (one_pass), so that a stream which resumes goes back to the paced loop above
      // instead of being taken event by event right behind its publisher.
      bool more = false;
      const auto spin_until = std::chrono::steady_clock::now() + spin_before_park;
      for (unsigned i = 0;; ++i) {
        if ((more = box_.run_batch(default_batch, stop_mode::drain, true).taken > 0)) break;
        for (unsigned k = 0; k < detail::tuning::agent_poll_pauses; ++k) detail::cpu_relax();  // poll gently
        if ((i & 15) == 15 && std::chrono::steady_clock::now() >= spin_until) break;
      }
      if (more || !box_.prepare_sleep(true)) continue;
      box_.sleep_flag().wait(true, std::memory_order_acquire);
    }
  }

  // A count, not a flag: a worker that has just given the mailbox up may still be finishing
  // prepare_sleep() while a producer's wake-up already started another worker's turn.
  void run_scheduled() noexcept override {
    in_turn_.fetch_add(1, std::memory_order_relaxed);
    executor* pool = pool_;
    const std::size_t batch = pool->batch();
    const bool keep = box_.run_batch(batch).ran == batch || !box_.prepare_sleep(false);
    in_turn_.fetch_sub(1, std::memory_order_release);
    if (keep) pool->schedule(this);  // still ours: hand it on (after this, another worker may run it)
  }

  // Called by a producer that found the mailbox asleep (and took the wake): get it consumed.
  static void wake(void* self) noexcept {
    auto* a = static_cast<agent*>(self);
    switch (a->mode_.load(std::memory_order_acquire)) {
      case mode::threaded: a->box_.sleep_flag().notify_one(); break;
      case mode::pooled: a->pool_->schedule(a); break;
      case mode::pumped: {
        { std::lock_guard lock(a->wake_mutex_); }  // orders the flag change before a waiter's predicate check
        a->wake_cv_.notify_all();
        break;
      }
    }
  }

  detail::mailbox box_;
  executor* pool_ = nullptr;
  std::atomic<mode> mode_{mode::pumped};
  std::atomic<bool> stopped_{false};
  std::atomic<int> in_turn_{0};  // workers inside run_scheduled()
  std::atomic<stop_mode> stop_mode_{stop_mode::drain};
  std::thread thread_;
  std::mutex pump_mutex_;
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
};

/// @brief Routes a subscription into `a`'s mailbox: `bus.subscribe(pattern, handler, async(a))`.
inline mailbox_delivery async(agent& a) noexcept { return mailbox_delivery{&a.box_}; }

}  // namespace agentbus

#endif  // AGENTBUS_AGENT_AGENT_HPP
