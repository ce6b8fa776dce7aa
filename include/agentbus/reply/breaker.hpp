// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_BREAKER_HPP
#define AGENTBUS_REPLY_BREAKER_HPP

// Circuit breakers: requests to a target that keeps failing fail fast instead of waiting.
//
//   agentbus::circuit_breaker breakers(bus, {.failure_threshold = 5, .window = 10s, .cool_down = 30s});
//   auto watch = bus.subscribe<agentbus::breaker_event>("$breaker.>", [](const agentbus::breaker_event& e) {
//     log("{} {} -> {}", e.topic, to_string(e.from), to_string(e.to));
//   });
//   try {
//     quote q = breakers.request<quote>("pricing.quote", quote_request{"ACME"}, 50ms).get();
//   } catch (const agentbus::request_error& e) {
//     if (e.code() == agentbus::request_errc::circuit_open) use_the_cached_quote();  // failed fast: no request sent
//   }
//   // No waiting thread: breakers.request<quote>(topic, req, 50ms, [](agentbus::reply_result<quote> r) {...});
//   // Scatter-gather: breakers.request_all<quote>(topic, req, 3, 50ms).get() (a gather with no
//   // reply at all is the circuit's failure, one with any reply its success).
//
// One circuit per target topic (the concrete topic requests are published on), made on the
// first request to it and kept as long as the breaker (a few hundred bytes each: guard a set of
// services, not one topic per request):
//   - closed: requests go through. A failure is any end but a reply or a cancel (timeout,
//     no_responders, rejected, server_failed, abandoned, wrong_type). `failure_threshold`
//     failures within the last `window` open the circuit; older failures are forgotten.
//     Replies do not reset the count (it counts failures in a window, not in a row).
//   - open: requests fail at once with request_errc::circuit_open (nothing is published; the
//     error's text names the topic and when probes start). After `cool_down` the circuit is
//     half-open. That transition happens on the next request or state() call after the
//     cool-down (nothing runs in the background for it).
//   - half-open: up to `half_open_probes` requests are let through at once (the others fail
//     fast). A probe's reply closes the circuit; a probe's failure opens it again for another
//     cool-down; a cancelled probe frees its place.
// Outcomes of requests let through before the circuit's last transition do not move it (a
// slow request sent while closed that times out after the circuit opened is counted in the
// stats, not as a probe).
//
// Events: every transition is published on the bus as a breaker_event on the topic
// `$breaker.<target topic>` (subscribe to `$breaker.>` for all). The router treats `$` as an
// ordinary character: such topics are valid, and a catch-all `>` subscription matches them too
// (a subscriber of another type skips them, counted in bus_stats::type_mismatches). The NATS
// bridge never bridges `$` topics, so breaker events stay in the process. Events are published
// outside the breaker's locks, on the thread that caused the transition (a request that ended,
// or a call after the cool-down); two transitions of one circuit on two threads may be
// delivered out of order: breaker_event::sequence orders them. A breaker_event has a codec, so
// a storing bus persists it like any event.
//
// Time: failures, windows and cool-downs are read on breaker_options::clock, and so are the
// timeouts of the requests made through the breaker. Every request let through, futures
// included, is armed on that clock's request timer (reply/detail/timer.hpp), so a timeout
// counts at its deadline whether or not anyone calls get(). With a manual_clock a test moves a
// circuit from open to half-open with advance(), and times requests out the same way, without
// sleeping.
//
// Thread safety: every member function may be called from any thread, concurrently with any
// other (requests, state(), stats(), reset()), and from inside request callbacks and event
// handlers; outcomes are recorded on the thread that ends each request. Destroying (or moving
// from) the breaker must not run concurrently with its other calls, nor inside a handler of its
// own events (it waits for the events being published); requests still in flight then stay
// valid, their outcomes are dropped and no event is published after the destructor returns.
// The bus must outlive the breaker; the clock must outlive the breaker and its requests.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "agentbus/core/clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/reply/detail/pending.hpp"
#include "agentbus/reply/detail/timer.hpp"
#include "agentbus/reply/error.hpp"
#include "agentbus/reply/request.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/codec.hpp"

namespace agentbus {

/// @brief Where a circuit is: requests pass (closed), fail fast (open), or probe (half_open).
enum class breaker_state : std::uint8_t {
  closed,     ///< requests go through; failures are counted
  open,       ///< requests fail fast with request_errc::circuit_open until the cool-down has passed
  half_open,  ///< a few probe requests go through; a reply closes, a failure re-opens
};

/// @brief The name of a breaker state ("closed", "open", "half_open").
constexpr const char* to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "unknown";
}

/// @brief How a circuit_breaker trips and recovers (the same for every target topic).
struct breaker_options {
  std::size_t failure_threshold = 5;  ///< failures within `window` that open a closed circuit (at least 1)
  clock_source::duration window = std::chrono::seconds(10);    ///< how long a failure counts (positive)
  clock_source::duration cool_down = std::chrono::seconds(5);  ///< how long a circuit stays open before probing
  std::size_t half_open_probes = 1;  ///< requests let through at once while half-open (at least 1)
  clock_source* clock = nullptr;     ///< measures all of the above and the requests' timeouts; null: steady
  /// Publish every transition on the topic "$breaker." followed by the target topic. A target
  /// topic longer than 246 bytes has no such topic: its transitions are counted in
  /// breaker_stats::events_failed instead.
  bool publish_events = true;
};

/// @brief A circuit's transition, published on `$breaker.<topic>`.
struct breaker_event {
  /// @brief Stable schema name (breaker events may be stored).
  static constexpr std::string_view event_name = "agentbus.breaker_event";

  std::string topic;                           ///< the target topic whose circuit moved
  breaker_state from = breaker_state::closed;  ///< the state it left
  breaker_state to = breaker_state::closed;    ///< the state it entered
  std::uint32_t failures = 0;  ///< to open: the failures that opened it (those in the window, or 1 for a probe); else 0
  std::optional<request_errc> cause;  ///< to open: the failure that tripped it; else none
  std::uint64_t sequence = 0;         ///< the circuit's transitions so far, this one included (orders events)
  clock_source::time_point at{};      ///< when, on the breaker's clock
};

/// @brief Counters of a circuit_breaker (all its circuits, or one: circuit_breaker::stats()).
struct breaker_stats {
  std::uint64_t requests = 0;       ///< requests let through (probes included)
  std::uint64_t fast_failures = 0;  ///< requests failed at once with circuit_open (nothing sent)
  std::uint64_t successes = 0;      ///< requests let through that got a reply
  std::uint64_t failures = 0;       ///< requests let through that failed (timeouts, errors; cancels are neither)
  std::uint64_t opened = 0;         ///< transitions to open (from closed or half-open)
  std::uint64_t half_opened = 0;    ///< transitions from open to half-open
  std::uint64_t closed = 0;         ///< transitions to closed (a probe's reply, or reset())
  std::uint64_t events_failed = 0;  ///< transition events whose publish threw (swallowed)
  std::size_t circuits = 0;         ///< target topics with a circuit
  std::size_t open_now = 0;         ///< circuits open or half-open now
};

/// @brief A breaker_event's bytes: topic, states, failures, cause, sequence, time.
inline void agentbus_encode(byte_writer& out, const breaker_event& e) {
  out.write_string(e.topic);
  out.write_value(static_cast<std::uint8_t>(e.from));
  out.write_value(static_cast<std::uint8_t>(e.to));
  out.write_value(e.failures);
  out.write_value(static_cast<std::uint8_t>(e.cause ? static_cast<std::uint8_t>(*e.cause) : 0xffu));
  out.write_value(e.sequence);
  out.write_value(
      static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(e.at.time_since_epoch()).count()));
}

/// @brief A breaker_event from its bytes (codec_error for values out of range).
inline breaker_event agentbus_decode(byte_reader& in, codec_tag<breaker_event>) {
  breaker_event e;
  e.topic = in.read_string();
  const auto state = [&] {
    const auto v = in.read_value<std::uint8_t>();
    if (v > static_cast<std::uint8_t>(breaker_state::half_open))
      throw codec_error("agentbus: breaker_event: bad state");
    return static_cast<breaker_state>(v);
  };
  e.from = state();
  e.to = state();
  e.failures = in.read_value<std::uint32_t>();
  const auto cause = in.read_value<std::uint8_t>();
  if (cause != 0xffu) {
    if (cause > static_cast<std::uint8_t>(request_errc::circuit_open))
      throw codec_error("agentbus: breaker_event: bad cause");
    e.cause = static_cast<request_errc>(cause);
  }
  e.sequence = in.read_value<std::uint64_t>();
  e.at = clock_source::time_point(
      std::chrono::duration_cast<clock_source::duration>(std::chrono::nanoseconds(in.read_value<std::int64_t>())));
  return e;
}

namespace detail {

/// One target topic's circuit. Everything but the names is guarded by `mutex`.
struct circuit {
  explicit circuit(std::string target) : topic(std::move(target)), event_topic(check_event_topic(topic)) {}

  const std::string topic;
  // $breaker.<topic>; none for a target longer than max_topic_length - 9 bytes, whose
  // transitions are counted in events_failed instead (the target itself is valid).
  const std::optional<agentbus::topic> event_topic;
  std::mutex mutex;
  breaker_state state = breaker_state::closed;
  std::uint64_t generation = 0;                   // transitions so far
  std::deque<clock_source::time_point> failures;  // closed: when the failures in the window happened
  clock_source::time_point opened_at{};
  std::size_t probes = 0;  // half-open: probes in flight
  breaker_stats counts;    // circuits and open_now unused here

  static std::optional<agentbus::topic> check_event_topic(const std::string& target) {
    if (const auto c = agentbus::topic::validate(target); !c) throw topic_error(target, c);
    std::string name = "$breaker." + target;
    if (!agentbus::topic::validate(name)) return std::nullopt;  // too long
    return agentbus::topic(std::move(name));
  }
};

/// What admit() decided for one request.
struct admission {
  bool passed = false;
  bool probe = false;            // let through as a half-open probe
  std::uint64_t generation = 0;  // the circuit's generation it was let through in
  std::string refusal;           // why not (circuit_open's detail)
};

/// How a request let through ended, for the breaker.
enum class call_outcome : std::uint8_t { success, failure, neutral };

/// What a circuit_breaker shares with the requests it let through (which may outlive it).
template <class Bus>
class breaker_core {
 public:
  breaker_core(Bus& on, const breaker_options& options) : bus_(&on), options_(options) {
    if (options.failure_threshold == 0)
      throw std::invalid_argument("agentbus: breaker_options::failure_threshold must be at least 1");
    if (options.half_open_probes == 0)
      throw std::invalid_argument("agentbus: breaker_options::half_open_probes must be at least 1");
    if (options.window <= clock_source::duration::zero())
      throw std::invalid_argument("agentbus: breaker_options::window must be positive");
    if (options.cool_down < clock_source::duration::zero())
      throw std::invalid_argument("agentbus: breaker_options::cool_down must not be negative");
  }

  const breaker_options& options() const noexcept { return options_; }
  clock_source& clock() const noexcept { return clock_source::or_steady(options_.clock); }

  /// The circuit of `topic`, made on first use (topic_error for an invalid topic).
  std::shared_ptr<circuit> circuit_for(std::string_view topic) {
    {
      std::shared_lock lock(circuits_mutex_);
      if (const auto it = circuits_.find(topic); it != circuits_.end()) return it->second;
    }
    auto made = std::make_shared<circuit>(std::string(topic));
    std::unique_lock lock(circuits_mutex_);
    return circuits_.try_emplace(made->topic, made).first->second;
  }
  /// The circuit of `topic` if there is one.
  std::shared_ptr<circuit> find(std::string_view topic) const {
    std::shared_lock lock(circuits_mutex_);
    const auto it = circuits_.find(topic);
    return it == circuits_.end() ? nullptr : it->second;
  }
  template <class F>
  void for_each(F f) const {
    std::shared_lock lock(circuits_mutex_);
    for (const auto& [name, c] : circuits_) f(*c);
  }

  /// Lets a request through `c`, or not.
  admission admit(circuit& c) {
    admission a;
    std::optional<breaker_event> event;
    {
      std::lock_guard lock(c.mutex);
      const auto now = clock().now();
      event = half_open_if_due(c, now);
      if (c.state == breaker_state::closed ||
          (c.state == breaker_state::half_open && c.probes < options_.half_open_probes)) {
        a.passed = true;
        a.probe = c.state == breaker_state::half_open;
        if (a.probe) ++c.probes;
        a.generation = c.generation;
        ++c.counts.requests;
      } else {
        ++c.counts.fast_failures;
        a.refusal = refusal(c, now);
      }
    }
    if (event) publish(c, std::move(*event));
    return a;
  }

  /// Records how a request let through with `a` ended.
  void record(circuit& c, const admission& a, call_outcome o, std::optional<request_errc> cause) noexcept {
    std::optional<breaker_event> event;
    {
      std::lock_guard lock(c.mutex);
      if (o == call_outcome::success) ++c.counts.successes;
      if (o == call_outcome::failure) ++c.counts.failures;
      if (a.generation != c.generation) return;  // let through before the last transition
      const auto now = clock().now();
      if (c.state == breaker_state::closed && o == call_outcome::failure) {
        c.failures.push_back(now);
        forget_old_failures(c, now);
        if (c.failures.size() >= options_.failure_threshold)
          event = transition(c, breaker_state::open, now, static_cast<std::uint32_t>(c.failures.size()), cause);
      } else if (c.state == breaker_state::half_open && a.probe) {
        if (c.probes > 0) --c.probes;
        if (o == call_outcome::success)
          event = transition(c, breaker_state::closed, now, 0, std::nullopt);
        else if (o == call_outcome::failure)
          event = transition(c, breaker_state::open, now, 1, cause);
      }
    }
    if (event) publish(c, std::move(*event));
  }

  /// `c`'s state now (moves an open circuit whose cool-down has passed to half-open).
  breaker_state state(circuit& c) {
    std::optional<breaker_event> event;
    breaker_state s;
    {
      std::lock_guard lock(c.mutex);
      event = half_open_if_due(c, clock().now());
      s = c.state;
    }
    if (event) publish(c, std::move(*event));
    return s;
  }

  /// Closes `c` and forgets its failures.
  void reset(circuit& c) {
    std::optional<breaker_event> event;
    {
      std::lock_guard lock(c.mutex);
      c.failures.clear();
      if (c.state != breaker_state::closed)
        event = transition(c, breaker_state::closed, clock().now(), 0, std::nullopt);
    }
    if (event) publish(c, std::move(*event));
  }

  /// Counts the failures of `c` in the window now.
  std::size_t failures_in_window(circuit& c) const {
    std::lock_guard lock(c.mutex);
    if (c.state != breaker_state::closed) return 0;
    forget_old_failures(c, clock().now());
    return c.failures.size();
  }

  /// The breaker is gone: no event is published after this returns.
  void detach() noexcept {
    bus_.store(nullptr, std::memory_order_seq_cst);
    for (int n = publishing_.load(std::memory_order_seq_cst); n != 0; n = publishing_.load(std::memory_order_seq_cst))
      publishing_.wait(n, std::memory_order_seq_cst);
  }

 private:
  void forget_old_failures(circuit& c, clock_source::time_point now) const {
    while (!c.failures.empty() && now - c.failures.front() >= options_.window) c.failures.pop_front();
  }

  std::optional<breaker_event> half_open_if_due(circuit& c, clock_source::time_point now) {
    if (c.state != breaker_state::open || now - c.opened_at < options_.cool_down) return std::nullopt;
    return transition(c, breaker_state::half_open, now, 0, std::nullopt);
  }

  breaker_event transition(circuit& c, breaker_state to, clock_source::time_point now, std::uint32_t failures,
                           std::optional<request_errc> cause) {
    breaker_event e{c.topic, c.state, to, failures, cause, ++c.generation, now};
    c.state = to;
    c.probes = 0;
    c.failures.clear();
    switch (to) {
      case breaker_state::open:
        c.opened_at = now;
        ++c.counts.opened;
        break;
      case breaker_state::half_open: ++c.counts.half_opened; break;
      case breaker_state::closed: ++c.counts.closed; break;
    }
    return e;
  }

  std::string refusal(const circuit& c, clock_source::time_point now) const {
    if (c.state == breaker_state::half_open)
      return "the circuit of " + c.topic + " is half-open and its " + std::to_string(options_.half_open_probes) +
             " probe(s) are in flight";
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.opened_at + options_.cool_down - now);
    return "the circuit of " + c.topic + " is open; probes start in " + std::to_string(left.count()) + " ms";
  }

  void publish(circuit& c, breaker_event e) noexcept {
    if (!options_.publish_events) return;
    // Counted in before the bus is read, so that detach() (which clears the bus first) waits
    // for every publish that may have seen it. A counter, not a lock: an event's handler may
    // cause another transition, whose publish nests in this one.
    publishing_.fetch_add(1, std::memory_order_seq_cst);
    try {
      if (!c.event_topic) throw std::length_error("no event topic");  // counted below
      if (Bus* bus = bus_.load(std::memory_order_seq_cst))
        bus->publish(*c.event_topic, std::move(e), publish_options{.source = "agentbus.breaker"});
    } catch (...) {
      std::lock_guard lock(c.mutex);
      ++c.counts.events_failed;
    }
    if (publishing_.fetch_sub(1, std::memory_order_seq_cst) == 1) publishing_.notify_all();
  }

  std::atomic<Bus*> bus_;
  std::atomic<int> publishing_{0};  // publishes in progress
  const breaker_options options_;
  mutable std::shared_mutex circuits_mutex_;
  std::map<std::string, std::shared_ptr<circuit>, std::less<>> circuits_;
};

inline call_outcome outcome_of(const pending_reply& s) noexcept {
  if (s.got != 0) return call_outcome::success;
  if (!s.failure || *s.failure == request_errc::cancelled) return call_outcome::neutral;
  return call_outcome::failure;
}

/// The end of a future request through a breaker: records its outcome, releases it.
template <class Bus>
struct breaker_hook {
  std::shared_ptr<breaker_core<Bus>> core;
  std::shared_ptr<circuit> target;
  admission passed;
  template <class Rep>
  void operator()(pending_reply_of<Rep>& s) noexcept {
    call_outcome o;
    std::optional<request_errc> cause;
    {
      std::lock_guard lock(s.mutex);
      o = outcome_of(s);
      cause = s.failure;
    }
    release_request(s);
    core->record(*target, passed, o, cause);
  }
};

/// The callback of a callback request through a breaker: records, then calls the user's.
template <class Bus, class Rep, class F>
struct breaker_callback {
  std::shared_ptr<breaker_core<Bus>> core;
  std::shared_ptr<circuit> target;
  admission passed;
  F callback;
  void operator()(reply_result<Rep>&& r) {
    const call_outcome o = r.has_value()                                 ? call_outcome::success
                      : r.error().code() == request_errc::cancelled ? call_outcome::neutral
                                                                    : call_outcome::failure;
    core->record(*target, passed, o, r.has_value() ? std::nullopt : std::optional(r.error().code()));
    std::invoke(callback, std::move(r));
  }
};

}  // namespace detail

/// @brief Circuit breakers for requests on the bus `Bus`, one per target topic (see the top of
/// reply/breaker.hpp): `circuit_breaker breakers(bus, {.failure_threshold = 3});`.
template <class Bus>
class circuit_breaker {
 public:
  /// @brief Breakers for requests on the bus `on` (which must outlive this object). Throws
  /// std::invalid_argument for options out of range.
  explicit circuit_breaker(Bus& on, const breaker_options& options = {})
      : bus_(&on), core_(std::make_shared<detail::breaker_core<Bus>>(on, options)) {}
  circuit_breaker(const circuit_breaker&) = delete;
  circuit_breaker& operator=(const circuit_breaker&) = delete;
  /// @brief Takes over `other`'s circuits; `other` is left empty (use only to destroy or assign).
  circuit_breaker(circuit_breaker&&) noexcept = default;
  /// @brief Detaches this breaker's circuits (see ~circuit_breaker), then takes over `other`'s.
  circuit_breaker& operator=(circuit_breaker&& other) noexcept {
    if (this != &other) {
      if (core_) core_->detach();
      core_ = std::move(other.core_);
      bus_ = other.bus_;
    }
    return *this;
  }
  /// @brief Requests still in flight stay valid; their outcomes are dropped and no event is
  /// published after this returns.
  ~circuit_breaker() {
    if (core_) core_->detach();
  }

  /// @brief agentbus::request() through the circuit of `topic`: fails fast with
  /// request_errc::circuit_open when it is open (or half-open with its probes in flight), else
  /// sends the request, whose outcome moves the circuit. `timeout` is measured on the
  /// breaker's clock. Throws topic_error for an invalid topic.
  template <class Rep, class Req>
  reply_future<Rep> request(std::string_view topic, Req&& request, clock_source::duration timeout,
                            publish_options options = {}) {
    static_assert(std::is_move_constructible_v<Rep>,
                  "agentbus: circuit_breaker::request<Rep>: the reply type must be movable");
    return through_circuit<Rep>(
        topic, std::forward<Req>(request), 1, timeout, options,
        [](auto state, auto deadline, clock_source* clock) {
          return detail::reply_access::future<Rep>(std::move(state), deadline, clock);
        },
        [](std::string why) { return detail::reply_access::failed<Rep>(request_errc::circuit_open, std::move(why)); });
  }

  /// @brief agentbus::request_all() (scatter-gather) through the circuit of `topic`: fails fast
  /// when the circuit is open (get() throws request_errc::circuit_open), else collects up to
  /// `count` replies until the deadline, measured on the breaker's clock. For the circuit, a
  /// gather with at least one reply is a success, one with none a failure (its cause: the
  /// first error reply, no_responders, or timeout), a cancelled one neither. Throws topic_error
  /// for an invalid topic.
  template <class Rep, class Req>
  gathered_replies<Rep> request_all(std::string_view topic, Req&& request, std::size_t count,
                                    clock_source::duration timeout, publish_options options = {}) {
    static_assert(std::is_move_constructible_v<Rep>,
                  "agentbus: circuit_breaker::request_all<Rep>: the reply type must be movable");
    return through_circuit<Rep>(
        topic, std::forward<Req>(request), count == 0 ? 1 : count, timeout, options,
        [](auto state, auto deadline, clock_source* clock) {
          return detail::reply_access::gathered<Rep>(std::move(state), deadline, clock);
        },
        [](std::string why) {
          return detail::reply_access::failed_gather<Rep>(request_errc::circuit_open, std::move(why));
        });
  }

  /// @brief The callback form of request() through the circuit of `topic`: `callback(reply_result<Rep>)`
  /// is called exactly once (reply/request.hpp says on which thread); when the circuit is open
  /// that is at once, on this thread, with circuit_open, and the handle returned is empty. The
  /// breaker has recorded the outcome when the callback runs.
  template <class Rep, class Req, class F>
    requires detail::request_callback<F>
  [[nodiscard("destroying the handle cancels the request: keep it, or call detach()")]] request_handle request(
      std::string_view topic, Req&& request, clock_source::duration timeout, F&& callback,
      publish_options options = {}) {
    static_assert(std::is_move_constructible_v<Rep>,
                  "agentbus: circuit_breaker::request<Rep>: the reply type must be movable");
    if constexpr (detail::request_callback_ok<Rep, F>()) {
      auto target = core_->circuit_for(topic);
      detail::admission passed = core_->admit(*target);
      if (!passed.passed) {
        try {
          std::invoke(callback, reply_result<Rep>(request_error(request_errc::circuit_open, passed.refusal)));
        } catch (...) {
          detail::reply_counters::instance().callback_failures.fetch_add(1, std::memory_order_relaxed);
        }
        return {};
      }
      using wrapped = detail::breaker_callback<Bus, Rep, std::decay_t<F>>;
      using hook = detail::callback_hook<Rep, wrapped>;
      auto state = std::make_shared<detail::hooked_reply<Rep, hook>>(
          hook{wrapped{core_, target, passed, std::forward<F>(callback)}});
      try {
        return detail::reply_access::send_callback(
            core_bus(), topic, std::forward<Req>(request), std::move(state), timeout,
            request_options{.clock = core_->options().clock, .publish = options});
      } catch (...) {
        core_->record(*target, passed, detail::call_outcome::neutral, std::nullopt);
        throw;
      }
    } else {
      return {};
    }
  }

  /// @brief The state of the circuit of `topic` now (closed when it has none yet). An open
  /// circuit whose cool-down has passed becomes half-open here (and its event is published).
  breaker_state state(std::string_view topic) {
    const auto c = core_->find(topic);
    return c ? core_->state(*c) : breaker_state::closed;
  }
  /// @brief Failures of `topic`'s circuit in the window now (0 unless closed, or without a circuit).
  std::size_t failures(std::string_view topic) const {
    const auto c = core_->find(topic);
    return c ? core_->failures_in_window(*c) : 0;
  }
  /// @brief Closes the circuit of `topic` and forgets its failures (an operator's override);
  /// publishes the transition when it was not closed.
  void reset(std::string_view topic) {
    if (const auto c = core_->find(topic)) core_->reset(*c);
  }

  /// @brief The counters of every circuit, summed.
  breaker_stats stats() const {
    breaker_stats total;
    core_->for_each([&](detail::circuit& c) { add(total, c); });
    return total;
  }
  /// @brief The counters of the circuit of `topic` (all zero when it has none).
  breaker_stats stats(std::string_view topic) const {
    breaker_stats one;
    if (const auto c = core_->find(topic)) add(one, *c);
    return one;
  }
  /// @brief The options it was made with.
  const breaker_options& options() const noexcept { return core_->options(); }

 private:
  // What request() and request_all() share: admitted by the circuit of `topic` (else
  // `refuse(why)`), sent with the breaker's hook, which records the outcome when the request
  // ends, armed on the breaker's clock; `make(state, deadline, clock)` wraps it for the caller.
  template <class Rep, class Req, class Make, class Refuse>
  auto through_circuit(std::string_view topic, Req&& request, std::size_t wanted, clock_source::duration timeout,
                       const publish_options& options, Make make, Refuse refuse) {
    auto target = core_->circuit_for(topic);
    detail::admission passed = core_->admit(*target);
    if (!passed.passed) return refuse(std::move(passed.refusal));
    clock_source* const clock = core_->options().clock;
    const auto deadline = detail::deadline_after(clock_source::or_steady(clock).now(), timeout);
    using hook = detail::breaker_hook<Bus>;
    auto state = std::make_shared<detail::hooked_reply<Rep, hook>>(wanted, hook{core_, target, passed});
    try {
      detail::send_request(core_bus(), topic, std::forward<Req>(request), state, options,
                           &detail::request_timer::of(clock), deadline);
    } catch (...) {
      core_->record(*target, passed, detail::call_outcome::neutral, std::nullopt);
      throw;
    }
    return make(std::shared_ptr<detail::pending_reply_of<Rep>>(std::move(state)), deadline, clock);
  }

  Bus& core_bus() const noexcept { return *bus_; }
  static void add(breaker_stats& to, detail::circuit& c) {
    std::lock_guard lock(c.mutex);
    to.requests += c.counts.requests;
    to.fast_failures += c.counts.fast_failures;
    to.successes += c.counts.successes;
    to.failures += c.counts.failures;
    to.opened += c.counts.opened;
    to.half_opened += c.counts.half_opened;
    to.closed += c.counts.closed;
    to.events_failed += c.counts.events_failed;
    to.circuits += 1;
    to.open_now += c.state != breaker_state::closed ? 1 : 0;
  }

  Bus* bus_;
  std::shared_ptr<detail::breaker_core<Bus>> core_;
};

}  // namespace agentbus

#endif  // AGENTBUS_REPLY_BREAKER_HPP
