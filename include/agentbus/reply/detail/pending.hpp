// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_DETAIL_PENDING_HPP
#define AGENTBUS_REPLY_DETAIL_PENDING_HPP

// The requests waiting for replies, process-wide, by request id.
//
// A request is one shared state (pending_reply_of<Rep>: the replies so far, or why there is
// none) registered under a fresh id, which travels as the request event's correlation id.
// A server's responder finds the state by that id and moves its reply in: routing a reply is
// one hash lookup in a sharded table, whatever the number of requests in flight, and creates
// no topic. The requester's future removes the id when it is done with it (reply taken,
// timeout, cancel, destruction); a reply that comes later finds nothing and is counted.
//
// Ending a request: a state is *closed* once (a reply, a failure, the deadline, a cancel: the
// first wins, under the state's mutex). A state that someone must hear about when it ends (a
// callback request, a request through a circuit breaker: `observed`) has finish() called once,
// on the thread that closed it, outside every lock; `finished` tells the others when it has
// returned. Plain futures are not observed: closing them costs nothing more than before.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/core/clock.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/detail/unpredictable.hpp"
#include "agentbus/reply/error.hpp"

namespace agentbus::detail {

/// Request ids have the top bit set, so that a plain event's correlation id (a user's) is
/// never taken for a request's.
inline constexpr std::uint64_t request_id_bit = std::uint64_t{1} << 63;

/// Process-wide counters of request/reply (reply_stats()).
struct reply_counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> replies{0};
  std::atomic<std::uint64_t> late_replies{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> wrong_type_replies{0};
  std::atomic<std::uint64_t> callback_failures{0};

  static reply_counters& instance() noexcept {
    static reply_counters* c = new reply_counters;  // immortal: requests may end during static destruction
    return *c;
  }
};

class request_timer;

/// One request's state, without the reply type (what the table holds).
struct pending_reply {
  pending_reply(type_id reply_type, std::size_t wanted_replies, bool observed_end) noexcept
      : type(reply_type), wanted(wanted_replies), observed(observed_end) {}
  pending_reply(const pending_reply&) = delete;
  pending_reply& operator=(const pending_reply&) = delete;
  virtual ~pending_reply() = default;

  // The fields a request and its reply touch first, in the order they had before the fields
  // of callbacks and timers were added (those come last, off the reply's path).
  const type_id type;        // the reply type the requester expects
  const std::size_t wanted;  // replies that complete the request (1, or a gather's count)
  std::mutex mutex;
  std::condition_variable arrived;
  std::size_t got = 0;                  // replies moved in (guarded by mutex)
  bool closed = false;                  // no more replies are taken (guarded by mutex)
  const bool observed;                  // finish() does something: run it, and tell when it has returned
  bool finished = false;                // observed: finish() has returned (guarded by mutex)
  std::optional<request_errc> failure;  // why there is no reply, when there is none
  std::string failure_detail;
  /// Set (after the mutex is released) whenever a reply or a failure came: a requester spins
  /// on it briefly before sleeping on `arrived`, since a cross-thread reply often takes less
  /// time than waking a sleeping thread.
  std::atomic<bool> news{false};
  std::uint64_t id = 0;      // the request id (set before the request is published)
  std::thread::id closer{};  // observed: the thread that closed it, which runs finish() (guarded by mutex)
  /// The timer that will end it at its deadline, if one was armed (request_timer's own
  /// fields: set by arm(), read by disarm()).
  request_timer* timer = nullptr;
  clock_source::time_point deadline{};

  void announce() noexcept {
    news.store(true, std::memory_order_release);
    arrived.notify_all();
  }

  /// Marks the state closed (mutex held) and notes who closed it, for finish().
  void close_locked() noexcept {
    closed = true;
    if (observed) closer = std::this_thread::get_id();
  }

  /// Runs after this state was closed, once, by the thread that closed it, outside every lock.
  virtual void finish() noexcept {}

  /// What the thread that closed the state does once it released the mutex.
  void after_close() noexcept {
    announce();
    if (!observed) return;
    finish();
    {
      std::lock_guard lock(mutex);
      finished = true;
    }
    arrived.notify_all();
  }

  /// Waits (mutex held through `lock`) until finish() has returned, unless this thread is the
  /// one running it (a callback that cancels its own request).
  void wait_finished(std::unique_lock<std::mutex>& lock) {
    if (!observed || !closed || closer == std::this_thread::get_id()) return;
    arrived.wait(lock, [&] { return finished; });
  }

  /// Records a failure unless a reply or another failure came first; wakes the requester.
  /// False when it came too late (nothing recorded).
  bool fail(request_errc why, std::string detail = {}) {
    bool closed_now = false;
    {
      std::lock_guard lock(mutex);
      if (closed || got != 0 || failure) return false;
      failure = why;
      failure_detail = std::move(detail);
      if (wanted == 1) {
        close_locked();
        closed_now = true;
      }
    }
    if (closed_now) after_close();
    else announce();
    return true;
  }

  /// Closes the request with `why` (timeout, cancelled) unless it is closed already (the
  /// first end wins). A request closed with replies keeps them (a gather's partial result).
  /// Returns true when this call closed it.
  bool end(request_errc why) noexcept {
    {
      std::lock_guard lock(mutex);
      if (!end_locked(why)) return false;
    }
    after_close();
    return true;
  }

  /// end() with the mutex held; the caller calls after_close() once it released it.
  bool end_locked(request_errc why) noexcept {
    if (closed) return false;
    close_locked();
    if (got == 0 && !failure) {
      failure = why;
      if (why == request_errc::timeout) reply_counters::instance().timeouts.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  }

  /// Closes the request without telling anyone (finish() never runs): request() throwing
  /// before the request was sent. True when this call closed it.
  bool close_silently() noexcept {
    std::lock_guard lock(mutex);
    if (closed) return false;
    closed = true;
    finished = true;  // nothing will run: nobody waits for it
    return true;
  }
};

template <class Rep>
struct pending_reply_of : pending_reply {
  explicit pending_reply_of(std::size_t wanted_replies, bool observed_end = false)
      : pending_reply(type_id_of<Rep>(), wanted_replies, observed_end) {
    replies.reserve(wanted_replies == 1 ? 1 : 0);
  }
  std::vector<Rep> replies;  // guarded by mutex

  /// Moves a reply in; false when the request takes no more (answered, timed out, cancelled).
  template <class R>
  bool offer(R&& reply) {
    bool closed_now = false;
    {
      std::lock_guard lock(mutex);
      if (closed) return false;
      replies.push_back(std::forward<R>(reply));
      if (++got >= wanted) {
        close_locked();
        closed_now = true;
      }
    }
    if (closed_now) after_close();
    else announce();
    return true;
  }
};

/// A request whose end runs `Hook` (`void(pending_reply_of<Rep>&) noexcept`), once, on the
/// thread that ended it: callback requests, requests through a circuit breaker. The hook is
/// destroyed right after it ran, so that what it captured is released with the request.
template <class Rep, class Hook>
struct hooked_reply final : pending_reply_of<Rep> {
  template <class H>
  explicit hooked_reply(H&& h) : hooked_reply(1, std::forward<H>(h)) {}
  /// A gather's: ends after `wanted` replies (or at its deadline).
  template <class H>
  hooked_reply(std::size_t wanted_replies, H&& h)
      : pending_reply_of<Rep>(wanted_replies, true), hook(std::forward<H>(h)) {}
  std::optional<Hook> hook;
  void finish() noexcept override {
    if (!hook) return;
    (*hook)(*this);
    hook.reset();
  }
};

class reply_table {
 public:
  static reply_table& instance() noexcept {
    static reply_table* t = new reply_table;  // immortal: futures may outlive static destruction
    return *t;
  }

  /// Registers `p` under a fresh request id (also stored in p->id).
  std::uint64_t add(std::shared_ptr<pending_reply> p) {
    const std::uint64_t id = request_id_bit | ((next_.fetch_add(1, std::memory_order_relaxed) + 1) & ~request_id_bit);
    p->id = id;
    shard& s = shard_of(id);
    std::lock_guard lock(s.mutex);
    s.map.emplace(id, std::move(p));
    return id;
  }
  /// The request `id` is waiting, or null (done, or not a request id).
  std::shared_ptr<pending_reply> find(std::uint64_t id) {
    if ((id & request_id_bit) == 0) return nullptr;
    shard& s = shard_of(id);
    std::lock_guard lock(s.mutex);
    const auto it = s.map.find(id);
    return it == s.map.end() ? nullptr : it->second;
  }
  /// Forgets `id` (the requester is done with it).
  void remove(std::uint64_t id) noexcept {
    if (id == 0) return;
    shard& s = shard_of(id);
    std::shared_ptr<pending_reply> gone;  // released outside the lock
    std::lock_guard lock(s.mutex);
    if (const auto it = s.map.find(id); it != s.map.end()) {
      gone = std::move(it->second);
      s.map.erase(it);
    }
  }
  /// Requests waiting now.
  std::size_t waiting() {
    std::size_t n = 0;
    for (shard& s : shards_) {
      std::lock_guard lock(s.mutex);
      n += s.map.size();
    }
    return n;
  }

  reply_counters& counters = reply_counters::instance();

 private:
  struct shard {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, std::shared_ptr<pending_reply>> map;
  };
  shard& shard_of(std::uint64_t id) noexcept { return shards_[id % shards_.size()]; }

  std::array<shard, 16> shards_;
  // From a different point in every process: a journal stores requests with their ids, and a
  // server catching up on them (serve() with history) must not answer today's requests with
  // yesterday's replies, as it did when every process counted from 1.
  std::atomic<std::uint64_t> next_{unpredictable_u64()};
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_REPLY_DETAIL_PENDING_HPP
