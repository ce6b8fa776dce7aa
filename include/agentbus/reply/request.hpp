// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_REQUEST_HPP
#define AGENTBUS_REPLY_REQUEST_HPP

// The requesting side of request/reply (the serving side: reply/serve.hpp).
//
//   auto answer = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 50ms);
//   quote q = answer.get();  // waits for the reply; throws request_error when there is none
//
//   // The callback form: no thread waits; the callback is called exactly once.
//   agentbus::request_handle pending = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 50ms,
//       [](agentbus::reply_result<quote> r) { if (r) use(*r); else log(r.error().what()); });
//
//   // The timeout measured on another clock (tests: a manual clock, no sleeping).
//   agentbus::manual_clock clock;
//   auto later = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 50ms, {.clock = &clock});
//   clock.advance(50ms);  // `later` has timed out
//
// A request is an ordinary publish whose correlation id names a waiting state (see
// detail/pending.hpp): any subscriber made with serve() can answer it, from inside the publish
// (a synchronous server: the future is ready when request() returns) or later from an agent's
// thread. The first reply wins; request_all() collects several (scatter-gather). A reply is
// moved, never copied, from the server to the requester. Errors are values of request_errc:
// no_responders is known at once (nothing took the request), timeout when the deadline passes.
//
// Time: a request's deadline is `timeout` after request() on its clock (request_options::clock,
// null meaning clock_source::steady()). A future's deadline is noticed by get() (and ready());
// a callback request's by the request timer of its clock (reply/detail/timer.hpp): one thread
// per clock, process-wide, started on first use, that sleeps on that clock until the earliest
// deadline; with a manual_clock, advance() wakes it and the due callbacks run. The clock must
// outlive the requests measured on it.
//
// The callback form: callback(reply_result<Rep>) is called exactly once, on
//   - the replying thread: a reply, server_failed, abandoned, wrong_type (the server's thread;
//     for a synchronous server that is the requesting thread, inside request());
//   - the requesting thread, inside request(): no_responders, rejected;
//   - the timer thread of the request's clock: timeout;
//   - the thread that calls cancel() or destroys the request_handle: cancelled.
// Keep callbacks short (a timeout callback that blocks delays every other timeout of its
// clock). A callback may make requests and cancel any request, its own included. When cancel()
// returns, the callback has returned (wherever it ran) and everything the request held is
// released: its table and timer entries, the callback and what it captured. If request()
// throws (an invalid topic), the callback is not called.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "agentbus/core/clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/reply/detail/pending.hpp"
#include "agentbus/reply/detail/timer.hpp"
#include "agentbus/reply/error.hpp"

namespace agentbus {

/// @brief Process-wide request/reply counters.
struct reply_stats {
  std::uint64_t requests = 0;            ///< requests published
  std::uint64_t replies = 0;             ///< replies a requester accepted
  /// replies that came after the request was done (timed out, answered, cancelled), from a
  /// responder made while it was still waiting; a responder made after it ended (a server
  /// whose mailbox held the request past its end) finds no request and is not counted
  std::uint64_t late_replies = 0;
  std::uint64_t timeouts = 0;            ///< requests that reached their deadline without a reply
  std::uint64_t wrong_type_replies = 0;  ///< replies of another type than the requester expected
  std::uint64_t callback_failures = 0;   ///< request callbacks that threw (the exception is swallowed)
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
  s.callback_failures = t.counters.callback_failures.load(std::memory_order_relaxed);
  s.waiting = t.waiting();
  return s;
}

/// @brief How a request is made, beyond its timeout: `request<Rep>(bus, topic, req, 50ms, {.clock = &clock})`.
struct request_options {
  clock_source* clock = nullptr;  ///< measures the timeout; null: clock_source::steady(); must outlive the request
  publish_options publish{};      ///< the request event's options (its correlation_id becomes the request's id)
};

/// @brief A reply or why there is none: what a request's callback receives.
template <class Rep>
class reply_result {
 public:
  /// @brief A result holding `reply`.
  explicit reply_result(Rep reply) noexcept(std::is_nothrow_move_constructible_v<Rep>)
      : v_(std::in_place_index<0>, std::move(reply)) {}
  /// @brief A result holding no reply, for the reason `error` gives.
  explicit reply_result(request_error error) noexcept : v_(std::in_place_index<1>, std::move(error)) {}

  /// @brief True when there is a reply.
  bool has_value() const noexcept { return v_.index() == 0; }
  /// @brief True when there is a reply.
  explicit operator bool() const noexcept { return has_value(); }

  /// @brief The reply; throws the request_error when there is none.
  Rep& value() & { return *checked(); }
  /// @brief The reply; throws the request_error when there is none.
  const Rep& value() const& { return *checked(); }
  /// @brief The reply, moved out; throws the request_error when there is none.
  Rep&& value() && { return std::move(*checked()); }
  /// @brief The reply (there must be one).
  Rep& operator*() noexcept { return *std::get_if<0>(&v_); }
  /// @brief The reply (there must be one).
  const Rep& operator*() const noexcept { return *std::get_if<0>(&v_); }
  /// @brief The reply's members (there must be one).
  Rep* operator->() noexcept { return std::get_if<0>(&v_); }
  /// @brief The reply's members (there must be one).
  const Rep* operator->() const noexcept { return std::get_if<0>(&v_); }

  /// @brief Why there is no reply (there must be none): code() and what().
  const request_error& error() const { return std::get<1>(v_); }

 private:
  Rep* checked() {
    if (v_.index() != 0) throw std::get<1>(v_);
    return std::get_if<0>(&v_);
  }
  const Rep* checked() const {
    if (v_.index() != 0) throw std::get<1>(v_);
    return std::get_if<0>(&v_);
  }
  std::variant<Rep, request_error> v_;
};

namespace detail {
struct reply_access;
}  // namespace detail

/// @brief The handle of a callback request (from the callback form of agentbus::request):
/// move-only; destroying it, or cancel(), cancels the request unless it has ended already.
class request_handle {
 public:
  /// @brief A handle of no request (done() is true).
  request_handle() noexcept = default;
  /// @brief Takes over `other`'s request; `other` is left empty.
  request_handle(request_handle&& other) noexcept : state_(std::move(other.state_)) {}
  /// @brief Cancels this handle's own request, then takes over `other`'s.
  request_handle& operator=(request_handle&& other) noexcept {
    if (this != &other) {
      cancel();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  request_handle(const request_handle&) = delete;
  request_handle& operator=(const request_handle&) = delete;
  /// @brief Cancels the request (see cancel()).
  ~request_handle() { cancel(); }

  /// @brief Cancels the request: unless it has ended already, its callback is called here with
  /// request_errc::cancelled. When cancel() returns the callback has returned, wherever it ran
  /// (unless cancel() is called from inside it), and the request holds nothing any more. A
  /// reply that comes later is dropped and counted. Idempotent; the handle is empty afterwards.
  void cancel() noexcept {
    auto state = std::move(state_);
    if (!state) return;
    state->end(request_errc::cancelled);
    std::unique_lock lock(state->mutex);
    state->wait_finished(lock);
  }
  /// @brief Lets the request run on without this handle: its callback will still be called
  /// exactly once. The handle is empty afterwards.
  void detach() noexcept { state_.reset(); }
  /// @brief True when the request has ended (its callback has been called, or is being
  /// called), or the handle is empty.
  bool done() const noexcept {
    if (!state_) return true;
    std::lock_guard lock(state_->mutex);
    return state_->closed;
  }
  /// @brief The request's id (its event's correlation id); 0 for an empty handle.
  std::uint64_t id() const noexcept { return state_ ? state_->id : 0; }

 private:
  friend struct detail::reply_access;
  explicit request_handle(std::shared_ptr<detail::pending_reply> s) noexcept : state_(std::move(s)) {}
  std::shared_ptr<detail::pending_reply> state_;
};

template <class Rep>
class reply_future;
template <class Rep>
class gathered_replies;

namespace detail {

/// How many pauses get() spins for a reply before it sleeps: a microsecond or a few (pause
/// latency varies by CPU), about a cross-thread round trip when the server's thread is awake.
inline constexpr unsigned reply_spins = 512;

/// The clock a future waits on: null for the steady clock, which it reads directly.
inline clock_source* future_clock(clock_source* c) noexcept { return c == &clock_source::steady() ? nullptr : c; }

/// Ends that mean no server got the request: nothing more can come (a gather ends on them).
inline bool no_server_reached(request_errc e) noexcept {
  return e == request_errc::no_responders || e == request_errc::rejected || e == request_errc::circuit_open;
}

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
    // What get() waits for: every reply wanted, a failure that ends the request (any, for a
    // single reply; for a gather one that reached no server), or the deadline.
    return state_->closed || state_->got >= state_->wanted ||
           (state_->failure.has_value() && (state_->wanted == 1 || no_server_reached(*state_->failure))) ||
           (clock_ == nullptr ? deadline_clock::now() : clock_->now()) >= deadline_;
  }
  /// @brief Gives up the request: replies that come later are dropped (and counted);
  /// get() then throws request_error(cancelled). Idempotent.
  void cancel() noexcept {
    if (!state_) return;
    close(request_errc::cancelled);
  }

 protected:
  reply_future_base() = default;
  reply_future_base(std::shared_ptr<pending_reply_of<Rep>> s, std::uint64_t id, clock_source::time_point d,
                    clock_source* clock) noexcept
      : state_(std::move(s)), id_(id), deadline_(d), clock_(future_clock(clock)) {}
  reply_future_base(reply_future_base&& o) noexcept
      : state_(std::move(o.state_)), id_(std::exchange(o.id_, 0)), deadline_(o.deadline_), clock_(o.clock_) {}
  reply_future_base& operator=(reply_future_base&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::move(o.state_);
      id_ = std::exchange(o.id_, 0);
      deadline_ = o.deadline_;
      clock_ = o.clock_;
    }
    return *this;
  }
  ~reply_future_base() { release(); }

  // Waits until `done(state)` or the deadline; then closes the request (no more replies) and
  // forgets it. Returns with the state's mutex held through `lock`.
  template <class Done>
  void wait_and_close(std::unique_lock<std::mutex>& lock, Done done) {
    pending_reply_of<Rep>& s = *state_;
    if (!done(s) && s.wanted == 1) {
      // A reply from another thread often comes sooner than a sleeping thread wakes up (a few
      // microseconds): pause-spin briefly first (bounded by reply_spins: no yield, no clock read,
      // so that on a loaded machine the spin stays short).
      lock.unlock();
      for (unsigned spins = 0; spins < reply_spins && !s.news.load(std::memory_order_acquire); ++spins) cpu_relax();
      lock.lock();
    }
    if (clock_ == nullptr) {
      s.arrived.wait_until(lock, deadline_, [&] { return done(s); });
    } else {
      while (!done(s) && clock_->now() < deadline_) clock_->wait_until(lock, s.arrived, deadline_);
    }
    if (s.end_locked(request_errc::timeout)) {
      // This thread ended it: one that someone observes (a breaker) hears of it before get() returns.
      if (s.observed) {
        lock.unlock();
        s.after_close();
        lock.lock();
      }
    } else {
      s.wait_finished(lock);
    }
    forget();
  }

  void forget() noexcept {
    if (id_ != 0) reply_table::instance().remove(std::exchange(id_, 0));
  }
  void close(request_errc why) noexcept {
    state_->end(why);
    forget();
  }
  void release() noexcept {
    if (state_) close(request_errc::cancelled);
    state_.reset();
  }

  std::shared_ptr<pending_reply_of<Rep>> state_;
  std::uint64_t id_ = 0;
  clock_source::time_point deadline_{};
  clock_source* clock_ = nullptr;  // null: the steady clock
};

/// Registers `state` under a fresh request id (and on `timer`, when there is one and the
/// deadline is not never), then publishes `request` with that id as its correlation id; a
/// synchronous server answers inside the publish. Fails the state at once when nothing took
/// the request. If the publish throws, the request is ended silently and released.
/// (`State` is the state's own type, so that passing it costs no reference count.)
template <class Bus, class Req, class State>
void send_request(Bus& on, std::string_view topic, Req&& request, const std::shared_ptr<State>& state,
                  publish_options options, request_timer* timer = nullptr,
                  clock_source::time_point deadline = clock_source::time_point::max()) {
  auto& table = reply_table::instance();
  options.correlation_id = table.add(state);
  try {
    if (timer != nullptr && deadline != clock_source::time_point::max()) timer->arm(state, deadline);
    table.counters.requests.fetch_add(1, std::memory_order_relaxed);
    const auto result = on.publish(topic, std::forward<Req>(request), options);
    if (result.delivered == 0 && result.failed == 0)
      state->fail(result.rejected != 0 ? request_errc::rejected : request_errc::no_responders, std::string(topic));
  } catch (...) {
    state->close_silently();
    release_request(*state);
    throw;
  }
}

/// The end of a callback request: takes the reply (or the error) out of the state, releases
/// the request, then calls the callback (an exception from it is counted and swallowed).
template <class Rep, class F>
struct callback_hook {
  F callback;
  void operator()(pending_reply_of<Rep>& s) noexcept {
    std::optional<reply_result<Rep>> result;
    {
      std::lock_guard lock(s.mutex);
      if (s.got != 0) result.emplace(std::move(s.replies.front()));
      else result.emplace(request_error(s.failure.value_or(request_errc::cancelled), s.failure_detail));
    }
    release_request(s);
    auto& counters = reply_counters::instance();
    if (result->has_value()) counters.replies.fetch_add(1, std::memory_order_relaxed);
    try {
      std::invoke(callback, std::move(*result));
    } catch (...) {
      counters.callback_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

template <class Rep, class F>
constexpr bool request_callback_ok() {
  static_assert(std::is_invocable_v<std::decay_t<F>&, reply_result<Rep>&&>,
                "agentbus: request<Rep>(bus, topic, req, timeout, callback): the callback must be callable as "
                "`void(agentbus::reply_result<Rep>)`");
  static_assert(std::is_move_constructible_v<std::decay_t<F>>,
                "agentbus: request<Rep>(..., callback): the callback must be movable (kept until the request ends)");
  return std::is_invocable_v<std::decay_t<F>&, reply_result<Rep>&&> && std::is_move_constructible_v<std::decay_t<F>>;
}

/// A 5th argument of request() that is neither options struct: the callback.
template <class F>
concept request_callback = !std::convertible_to<F, publish_options> && !std::same_as<std::decay_t<F>, request_options>;

/// How the modules of reply/ (circuit breakers) make futures and handles of their own states.
struct reply_access {
  template <class Rep>
  static reply_future<Rep> future(std::shared_ptr<pending_reply_of<Rep>> s, clock_source::time_point deadline,
                                  clock_source* clock) {
    const std::uint64_t id = s->id;
    return reply_future<Rep>(std::move(s), id, deadline, clock);
  }
  template <class Rep>
  static gathered_replies<Rep> gathered(std::shared_ptr<pending_reply_of<Rep>> s, clock_source::time_point deadline,
                                        clock_source* clock) {
    const std::uint64_t id = s->id;
    return gathered_replies<Rep>(std::move(s), id, deadline, clock);
  }
  static request_handle handle(std::shared_ptr<pending_reply> s) noexcept { return request_handle(std::move(s)); }

  /// A future that has failed already with `why` (no request was sent).
  template <class Rep>
  static reply_future<Rep> failed(request_errc why, std::string detail) {
    return future<Rep>(failed_state<Rep>(why, std::move(detail)), clock_source::time_point::min(), nullptr);
  }
  /// A gather that has failed already with `why` (no request was sent).
  template <class Rep>
  static gathered_replies<Rep> failed_gather(request_errc why, std::string detail) {
    return gathered<Rep>(failed_state<Rep>(why, std::move(detail)), clock_source::time_point::min(), nullptr);
  }
  template <class Rep>
  static std::shared_ptr<pending_reply_of<Rep>> failed_state(request_errc why, std::string detail) {
    auto s = std::make_shared<pending_reply_of<Rep>>(1);
    s->failure = why;
    s->failure_detail = std::move(detail);
    s->closed = true;
    return s;
  }

  /// Sends a callback request whose state is `state` (a hooked_reply): registered, armed on the
  /// timer of `clock` for `timeout`, published.
  template <class Bus, class Req>
  static request_handle send_callback(Bus& on, std::string_view topic, Req&& request,
                                      std::shared_ptr<pending_reply> state, clock_source::duration timeout,
                                      const request_options& options) {
    clock_source& clock = clock_source::or_steady(options.clock);
    const auto deadline = deadline_after(clock.now(), timeout);
    send_request(on, topic, std::forward<Req>(request), state, options.publish, &request_timer::of(options.clock),
                 deadline);
    return request_handle(std::move(state));
  }
};

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

  /// @brief Waits for the reply (until the request's deadline, on its clock) and returns it,
  /// moved; throws request_error when there is none (no_responders, rejected, timeout,
  /// cancelled, server_failed, abandoned, wrong_type, circuit_open). Call once.
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
  friend struct detail::reply_access;
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
  /// reached no server (no_responders, rejected, circuit_open through a circuit_breaker) or was
  /// cancelled. Call once.
  std::vector<Rep> get() {
    if (!this->state_) throw request_error(request_errc::cancelled, "empty gathered_replies");
    auto state = this->state_;
    std::unique_lock lock(state->mutex);
    this->wait_and_close(lock, [](const auto& s) {
      return s.got >= s.wanted || (s.failure && detail::no_server_reached(*s.failure));
    });
    std::vector<Rep> out = std::move(state->replies);
    const bool unreached_all = out.empty() && state->failure &&
                               (detail::no_server_reached(*state->failure) || *state->failure == request_errc::cancelled);
    const request_error error(unreached_all ? *state->failure : request_errc::timeout, state->failure_detail);
    lock.unlock();
    this->state_.reset();
    if (unreached_all) throw error;
    detail::reply_table::instance().counters.replies.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

 private:
  friend struct detail::reply_access;
  using base::base;
};

/// @brief Publishes `request` on `topic` of the bus `on` and returns the future of its reply of type Rep,
/// due within `timeout` (on the steady clock). `options` are those of any publish (their
/// correlation_id is replaced by the request's id). Thread-safe; any number of requests may be in flight.
template <class Rep, class Bus, class Req>
reply_future<Rep> request(Bus& on, std::string_view topic, Req&& request, deadline_clock::duration timeout,
                          publish_options options = {}) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request<Rep>: the reply type must be movable");
  const auto deadline = detail::deadline_after(deadline_clock::now(), timeout);
  auto state = std::make_shared<detail::pending_reply_of<Rep>>(1);
  detail::send_request(on, topic, std::forward<Req>(request), state, options);
  return detail::reply_access::future<Rep>(std::move(state), deadline, nullptr);
}

/// @brief request() with options: `timeout` measured on `options.clock`, `options.publish` for
/// the request event (`request<Rep>(bus, topic, req, 50ms, {.clock = &clock})`).
template <class Rep, class Bus, class Req, class Options = request_options>
  requires std::same_as<Options, request_options>
reply_future<Rep> request(Bus& on, std::string_view topic, Req&& request, deadline_clock::duration timeout,
                          const Options& options) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request<Rep>: the reply type must be movable");
  const auto deadline = detail::deadline_after(clock_source::or_steady(options.clock).now(), timeout);
  auto state = std::make_shared<detail::pending_reply_of<Rep>>(1);
  detail::send_request(on, topic, std::forward<Req>(request), state, options.publish);
  return detail::reply_access::future<Rep>(std::move(state), deadline, options.clock);
}

/// @brief The callback form: publishes `request` and calls `callback(reply_result<Rep>)` exactly
/// once, with the reply or why there is none (see the top of reply/request.hpp for the thread
/// each case runs on). No thread waits for the reply. Returns the request's handle: destroying
/// it cancels the request (call detach() to let it run on).
template <class Rep, class Bus, class Req, class F, class Options = request_options>
  requires std::same_as<Options, request_options> && detail::request_callback<F>
[[nodiscard("destroying the handle cancels the request: keep it, or call detach()")]] request_handle request(
    Bus& on, std::string_view topic, Req&& request, deadline_clock::duration timeout, const Options& options,
    F&& callback) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request<Rep>: the reply type must be movable");
  if constexpr (detail::request_callback_ok<Rep, F>()) {
    using hook = detail::callback_hook<Rep, std::decay_t<F>>;
    auto state = std::make_shared<detail::hooked_reply<Rep, hook>>(hook{std::forward<F>(callback)});
    return detail::reply_access::send_callback(on, topic, std::forward<Req>(request), std::move(state), timeout,
                                               options);
  } else {
    return {};
  }
}

/// @brief The callback form with default options (the steady clock).
template <class Rep, class Bus, class Req, class F>
  requires detail::request_callback<F>
[[nodiscard("destroying the handle cancels the request: keep it, or call detach()")]] request_handle request(
    Bus& on, std::string_view topic, Req&& request, deadline_clock::duration timeout, F&& callback) {
  return agentbus::request<Rep>(on, topic, std::forward<Req>(request), timeout, request_options{},
                                std::forward<F>(callback));
}

/// @brief Scatter-gather: publishes `request` and collects up to `count` replies of type Rep
/// (one per server, or more if servers reply several times) until the deadline, measured on
/// `options.clock`.
template <class Rep, class Bus, class Req, class Options = request_options>
  requires std::same_as<Options, request_options>
gathered_replies<Rep> request_all(Bus& on, std::string_view topic, Req&& request, std::size_t count,
                                  deadline_clock::duration timeout, const Options& options) {
  static_assert(std::is_move_constructible_v<Rep>, "agentbus: request_all<Rep>: the reply type must be movable");
  const auto deadline = detail::deadline_after(clock_source::or_steady(options.clock).now(), timeout);
  auto state = std::make_shared<detail::pending_reply_of<Rep>>(count == 0 ? 1 : count);
  detail::send_request(on, topic, std::forward<Req>(request), state, options.publish);
  return detail::reply_access::gathered<Rep>(std::move(state), deadline, options.clock);
}

/// @brief Scatter-gather with publish options, on the steady clock.
template <class Rep, class Bus, class Req>
gathered_replies<Rep> request_all(Bus& on, std::string_view topic, Req&& request, std::size_t count,
                                  deadline_clock::duration timeout, publish_options options = {}) {
  return agentbus::request_all<Rep>(on, topic, std::forward<Req>(request), count, timeout,
                                    request_options{.publish = options});
}

}  // namespace agentbus

#endif  // AGENTBUS_REPLY_REQUEST_HPP
