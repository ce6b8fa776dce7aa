// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_REQUEST_HPP
#define AGENTBUS_REPLY_REQUEST_HPP

// The requesting side of request/reply (the serving side: reply/serve.hpp).
//
//   auto answer = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 50ms);
//   quote q = answer.get();  // waits for the reply; throws request_error when there is none
//
// A request is an ordinary publish whose correlation id names a waiting state (see
// detail/pending.hpp): any subscriber made with serve() can answer it, from inside the publish
// (a synchronous server: the future is ready when request() returns) or later from an agent's
// thread. The first reply wins; request_all() collects several (scatter-gather). A reply is
// moved, never copied, from the server to the requester. Errors are values of request_errc:
// no_responders is known at once (nothing took the request), timeout when the deadline passes.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/reply/detail/pending.hpp"
#include "agentbus/reply/error.hpp"

namespace agentbus {

/// @brief Process-wide request/reply counters.
struct reply_stats {
  std::uint64_t requests = 0;            ///< requests published
  std::uint64_t replies = 0;             ///< replies a requester accepted
  std::uint64_t late_replies = 0;        ///< replies that came after the request was done (timed out, answered, cancelled)
  std::uint64_t timeouts = 0;            ///< requests that reached their deadline without a reply
  std::uint64_t wrong_type_replies = 0;  ///< replies of another type than the requester expected
  std::size_t waiting = 0;               ///< requests waiting now
};

/// @brief A snapshot of the request/reply counters.
inline reply_stats request_reply_stats() {
  auto& t = detail::reply_table::instance();
  reply_stats s;
  s.requests = t.counters.requests.load(std::memory_order_relaxed);
  s.replies = t.counters.replies.load(std::memory_order_relaxed);
  s.late_replies = t.counters.late_replies.load(std::memory_order_relaxed);
  s.timeouts = t.counters.timeouts.load(std::memory_order_relaxed);
  s.wrong_type_replies = t.counters.wrong_type_replies.load(std::memory_order_relaxed);
  s.waiting = t.waiting();
  return s;
}

namespace detail {

/// How many pauses get() spins for a reply before it sleeps: a microsecond or a few (pause
/// latency varies by CPU), about a cross-thread round trip when the server's thread is awake.
inline constexpr unsigned reply_spins = 512;

/// What request() and request_all() share: the state, the deadline, waiting and cancelling.
template <class Rep>
class reply_future_base {
 public:
  reply_future_base(const reply_future_base&) = delete;
  reply_future_base& operator=(const reply_future_base&) = delete;

  /// @brief The request's id (its events' correlation id).
  std::uint64_t id() const noexcept { return id_; }
  /// @brief True when get() would not wait.
  bool ready() const {
    if (!state_) return true;
    std::lock_guard lock(state_->mutex);
    return state_->closed || (state_->failure.has_value() && state_->wanted == 1) ||
           deadline_clock::now() >= deadline_;
  }
  /// @brief Gives up the request: replies that come later are dropped (and counted);
  /// get() then throws request_error(cancelled). Idempotent.
  void cancel() noexcept {
    if (!state_) return;
    close(request_errc::cancelled);
  }

 protected:
  reply_future_base() = default;
  reply_future_base(std::shared_ptr<pending_reply_of<Rep>> s, std::uint64_t id, deadline_clock::time_point d) noexcept
      : state_(std::move(s)), id_(id), deadline_(d) {}
  reply_future_base(reply_future_base&& o) noexcept
      : state_(std::move(o.state_)), id_(std::exchange(o.id_, 0)), deadline_(o.deadline_) {}
  reply_future_base& operator=(reply_future_base&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::move(o.state_);
      id_ = std::exchange(o.id_, 0);
      deadline_ = o.deadline_;
    }
    return *this;
  }
  ~reply_future_base() { release(); }

  // Waits until `done(state)` or the deadline; then closes the request (no more replies) and
  // forgets it. Returns with the state's mutex held through `lock`.
  template <class Done>
  void wait_and_close(std::unique_lock<std::mutex>& lock, Done done) {
    if (!done(*state_) && state_->wanted == 1) {
      // A reply from another thread often comes sooner than a sleeping thread wakes up (a few
      // microseconds): pause-spin briefly first (bounded by reply_spins: no yield, no clock read,
      // so that on a loaded machine the spin stays short).
      lock.unlock();
      for (unsigned spins = 0; spins < reply_spins && !state_->news.load(std::memory_order_acquire); ++spins) cpu_relax();
      lock.lock();
    }
    if (!state_->arrived.wait_until(lock, deadline_, [&] { return done(*state_); }) && !state_->closed) {
      state_->closed = true;
      if (state_->got == 0 && !state_->failure) {
        state_->failure = request_errc::timeout;
        reply_table::instance().counters.timeouts.fetch_add(1, std::memory_order_relaxed);
      }
    }
    state_->closed = true;
    forget();
  }

  void forget() noexcept {
    if (id_ != 0) reply_table::instance().remove(std::exchange(id_, 0));
  }
  void close(request_errc why) noexcept {
    {
      std::lock_guard lock(state_->mutex);
      if (!state_->closed) {
        state_->closed = true;
        if (!state_->failure && state_->got == 0) state_->failure = why;
      }
    }
    forget();
  }
  void release() noexcept {
    if (state_) close(request_errc::cancelled);
    state_.reset();
  }

  std::shared_ptr<pending_reply_of<Rep>> state_;
  std::uint64_t id_ = 0;
  deadline_clock::time_point deadline_{};
};

/// Publishes `request` with a fresh request id as its correlation id; registers the state first
/// (a synchronous server answers inside the publish). Fails the state at once when nothing
/// took the request.
template <class Rep, class Bus, class Req>
std::pair<std::shared_ptr<pending_reply_of<Rep>>, std::uint64_t> send_request(Bus& on, std::string_view topic,
                                                                              Req&& request, std::size_t wanted,
                                                                              publish_options options) {
  auto state = std::make_shared<pending_reply_of<Rep>>(wanted);
  auto& table = reply_table::instance();
  const std::uint64_t id = table.add(state);
  options.correlation_id = id;
  table.counters.requests.fetch_add(1, std::memory_order_relaxed);
  try {
    const auto result = on.publish(topic, std::forward<Req>(request), options);
    if (result.delivered == 0 && result.failed == 0)
      state->fail(result.rejected != 0 ? request_errc::rejected : request_errc::no_responders,
                  std::string(topic));
  } catch (...) {
    table.remove(id);
    throw;
  }
  return {std::move(state), id};
}

}  // namespace detail

/// @brief The reply to one request (from agentbus::request): move-only; destroying it, or
/// cancel(), gives the request up.
template <class Rep>
class reply_future : public detail::reply_future_base<Rep> {
  using base = detail::reply_future_base<Rep>;

 public:
  /// @brief An empty future (get() throws cancelled).
  reply_future() = default;
  /// @brief Takes over `other`'s request; `other` is left empty.
  reply_future(reply_future&&) noexcept = default;
  /// @brief Takes over `other`'s request; `other` is left empty.
  reply_future& operator=(reply_future&&) noexcept = default;

  /// @brief Waits for the reply (until the request's deadline) and returns it, moved; throws
  /// request_error when there is none (no_responders, rejected, timeout, cancelled,
  /// server_failed, abandoned, wrong_type). Call once.
  Rep get() {
    if (!this->state_) throw request_error(request_errc::cancelled, "empty reply_future");
    auto state = this->state_;
    std::unique_lock lock(state->mutex);
    this->wait_and_close(lock, [](const auto& s) { return s.got != 0 || s.failure.has_value(); });
    if (state->got != 0) {
      Rep out = std::move(state->replies.front());
      lock.unlock();
      this->state_.reset();  // taken: the future is empty now
      detail::reply_table::instance().counters.replies.fetch_add(1, std::memory_order_relaxed);
      return out;
    }
    const request_error error(*state->failure, state->failure_detail);
    lock.unlock();
    this->state_.reset();
    throw error;
  }

 private:
  template <class R, class Bus, class Req>
  friend reply_future<R> request(Bus&, std::string_view, Req&&, deadline_clock::duration, publish_options);
  using base::base;
};

/// @brief The replies to a scatter-gather request (from agentbus::request_all).
template <class Rep>
class gathered_replies : public detail::reply_future_base<Rep> {
  using base = detail::reply_future_base<Rep>;

 public:
  gathered_replies() = default;
  /// @brief Takes over `other`'s request; `other` is left empty.
  gathered_replies(gathered_replies&&) noexcept = default;
  /// @brief Takes over `other`'s request; `other` is left empty.
  gathered_replies& operator=(gathered_replies&&) noexcept = default;

  /// @brief Waits until `count` replies came or the deadline passed, and returns those that
  /// came (in arrival order; possibly none). Throws request_error only when the request
  /// reached no server (no_responders, rejected) or was cancelled. Call once.
  std::vector<Rep> get() {
    if (!this->state_) throw request_error(request_errc::cancelled, "empty gathered_replies");
    auto state = this->state_;
    std::unique_lock lock(state->mutex);
    this->wait_and_close(lock, [](const auto& s) {
      return s.got >= s.wanted || (s.failure && (*s.failure == request_errc::no_responders || *s.failure == request_errc::rejected));
    });
    std::vector<Rep> out = std::move(state->replies);
    const bool unreached = out.empty() && state->failure &&
                           (*state->failure == request_errc::no_responders || *state->failure == request_errc::rejected ||
                            *state->failure == request_errc::cancelled);
    const request_error error(unreached ? *state->failure : request_errc::timeout, state->failure_detail);
    lock.unlock();
    this->state_.reset();
    if (unreached) throw error;
    detail::reply_table::instance().counters.replies.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

 private:
  template <class R, class Bus, class Req>
  friend gathered_replies<R> request_all(Bus&, std::string_view, Req&&, std::size_t, deadline_clock::duration,
                                         publish_options);
  using base::base;
};

/// @brief Publishes `request` on `topic` of the bus `on` and returns the future of its reply of type Rep,
/// due within `timeout`. `options` are those of any publish (their correlation_id is replaced
/// by the request's id). Thread-safe; any number of requests may be in flight.
template <class Rep, class Bus, class Req>
reply_future<Rep> request(Bus& on, std::string_view topic, Req&& request, deadline_clock::duration timeout,
                          publish_options options = {}) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request<Rep>: the reply type must be movable");
  const auto deadline = deadline_clock::now() + timeout;
  auto [state, id] = detail::send_request<Rep>(on, topic, std::forward<Req>(request), 1, options);
  return reply_future<Rep>(std::move(state), id, deadline);
}

/// @brief Scatter-gather: publishes `request` and collects up to `count` replies of type Rep
/// (one per server, or more if servers reply several times) until the deadline.
template <class Rep, class Bus, class Req>
gathered_replies<Rep> request_all(Bus& on, std::string_view topic, Req&& request, std::size_t count,
                                  deadline_clock::duration timeout, publish_options options = {}) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request_all<Rep>: the reply type must be movable");
  const auto deadline = deadline_clock::now() + timeout;
  auto [state, id] = detail::send_request<Rep>(on, topic, std::forward<Req>(request), count == 0 ? 1 : count, options);
  return gathered_replies<Rep>(std::move(state), id, deadline);
}

}  // namespace agentbus

#endif  // AGENTBUS_REPLY_REQUEST_HPP
