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

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/reply/error.hpp"

namespace agentbus::detail {

/// Request ids have the top bit set, so that a plain event's correlation id (a user's) is
/// never taken for a request's.
inline constexpr std::uint64_t request_id_bit = std::uint64_t{1} << 63;

/// One request's state, without the reply type (what the table holds).
struct pending_reply {
  pending_reply(type_id reply_type, std::size_t wanted_replies) noexcept : type(reply_type), wanted(wanted_replies) {}
  virtual ~pending_reply() = default;

  const type_id type;          // the reply type the requester expects
  const std::size_t wanted;    // replies that complete the request (1, or a gather's count)
  std::mutex mutex;
  std::condition_variable arrived;
  std::size_t got = 0;         // replies moved in (guarded by mutex)
  bool closed = false;         // no more replies are taken (guarded by mutex)
  std::optional<request_errc> failure;  // why there is no reply, when there is none
  std::string failure_detail;
  /// Set (after the mutex is released) whenever a reply or a failure came: a requester spins
  /// on it briefly before sleeping on `arrived`, since a cross-thread reply often takes less
  /// time than waking a sleeping thread.
  std::atomic<bool> news{false};

  void announce() noexcept {
    news.store(true, std::memory_order_release);
    arrived.notify_all();
  }

  /// Records a failure unless a reply or another failure came first; wakes the requester.
  void fail(request_errc why, std::string detail = {}) {
    {
      std::lock_guard lock(mutex);
      if (closed || got != 0 || failure) return;
      failure = why;
      failure_detail = std::move(detail);
      if (wanted == 1) closed = true;
    }
    announce();
  }
};

template <class Rep>
struct pending_reply_of final : pending_reply {
  explicit pending_reply_of(std::size_t wanted_replies) : pending_reply(type_id_of<Rep>(), wanted_replies) {
    replies.reserve(wanted_replies == 1 ? 1 : 0);
  }
  std::vector<Rep> replies;  // guarded by mutex

  /// Moves a reply in; false when the request takes no more (answered, timed out, cancelled).
  template <class R>
  bool offer(R&& reply) {
    {
      std::lock_guard lock(mutex);
      if (closed) return false;
      replies.push_back(std::forward<R>(reply));
      if (++got >= wanted) closed = true;
    }
    announce();
    return true;
  }
};

/// Process-wide counters of request/reply (reply_stats()).
struct reply_counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> replies{0};
  std::atomic<std::uint64_t> late_replies{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> wrong_type_replies{0};
};

class reply_table {
 public:
  static reply_table& instance() noexcept {
    static reply_table* t = new reply_table;  // immortal: futures may outlive static destruction
    return *t;
  }

  /// Registers `p` under a fresh request id.
  std::uint64_t add(std::shared_ptr<pending_reply> p) {
    const std::uint64_t id = request_id_bit | (next_.fetch_add(1, std::memory_order_relaxed) + 1);
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

  reply_counters counters;

 private:
  struct shard {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, std::shared_ptr<pending_reply>> map;
  };
  shard& shard_of(std::uint64_t id) noexcept { return shards_[id % shards_.size()]; }

  std::array<shard, 16> shards_;
  std::atomic<std::uint64_t> next_{0};
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_REPLY_DETAIL_PENDING_HPP
