// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_REPLY_SERVE_HPP
#define AGENTBUS_REPLY_SERVE_HPP

// The serving side of request/reply (the requesting side: reply/request.hpp).
//
//   auto server = agentbus::serve<quote_request, quote>(bus, "pricing.quote",
//       [](const quote_request& r) { return quote{r.symbol, 101.5}; });
//
// serve() is a subscription (it takes the same delivery kinds: `agentbus::async(agent)` runs
// the handler on the agent's thread) whose handler answers requests. A handler either returns
// the reply, or takes a responder<Rep> as its second parameter and replies through it, now or
// later from any thread (after its own I/O, say). A handler that throws answers with
// server_failed (the exception is also counted and reported by the bus as usual); a responder
// dropped without replying answers with abandoned. An event that is not a request (published
// with publish(), no request id) still reaches the handler; its reply goes nowhere.

#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "agentbus/core/event.hpp"
#include "agentbus/reply/detail/pending.hpp"
#include "agentbus/reply/error.hpp"

namespace agentbus {

template <class Rep>
class responder;

namespace detail {

/// Answers `state`'s request (if any) with abandoned: a responder dropped without replying.
inline void abandon_reply(std::shared_ptr<pending_reply> state) noexcept {
  if (state) try {
      state->fail(request_errc::abandoned, "the server dropped its responder without replying");
    } catch (...) {  // allocating the text failed: the requester times out instead
    }
}

/// A responder that serve() handed to its handler, kept aside when the handler's exception
/// destroys it (a handler taking its responder by value): serve() then answers server_failed
/// with the exception's text, not the abandoned that the destructor would send. One per
/// serve() call on this thread's stack (nesting: a handler that serves a request inline).
class serve_rescue {
 public:
  template <class Rep>
  explicit serve_rescue(const responder<Rep>& handed) noexcept : expected_(handed.state_.get()), outer_(current()) {
    current() = this;
  }
  serve_rescue(const serve_rescue&) = delete;
  serve_rescue& operator=(const serve_rescue&) = delete;
  /// Abandons what it kept when no exception reached serve() (the handler caught its own).
  ~serve_rescue() {
    current() = outer_;
    abandon_reply(std::move(kept_));
  }
  /// Answers the kept request with server_failed; false when nothing was kept.
  bool fail(const std::string& what) {
    auto state = std::move(kept_);
    if (!state) return false;
    state->fail(request_errc::server_failed, what);
    return true;
  }
  /// From a responder's destructor during unwinding: keeps `state` when it is this serve()'s.
  static bool keep(std::shared_ptr<pending_reply>& state) noexcept {
    serve_rescue* r = current();
    if (r == nullptr || r->expected_ != state.get() || r->kept_) return false;
    r->kept_ = std::move(state);
    return true;
  }

 private:
  static serve_rescue*& current() noexcept {
    static thread_local serve_rescue* top = nullptr;
    return top;
  }
  const pending_reply* expected_;
  serve_rescue* outer_;
  std::shared_ptr<pending_reply> kept_;
};

}  // namespace detail

/// @brief Replies to one request, once: move-only; usable from any thread. Destroying it
/// without replying answers the request with request_errc::abandoned (but a responder that
/// serve() gave a handler, destroyed by the handler's exception, answers server_failed).
template <class Rep>
class responder {
 public:
  /// @brief A responder for the request whose event has correlation id `request_id` (one
  /// that is not a request id makes a responder whose replies go nowhere).
  explicit responder(std::uint64_t request_id) : state_(detail::reply_table::instance().find(request_id)) {}
  /// @brief Takes over `other`'s request; `other` replies nowhere.
  responder(responder&& other) noexcept : state_(std::move(other.state_)) {}
  /// @brief Abandons this responder's own request (if unanswered), then takes over `other`'s.
  responder& operator=(responder&& other) noexcept {
    if (this != &other) {
      abandon();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder() {
    // Destroyed by an exception thrown after this responder was made: serve() may answer
    // server_failed for it (detail::serve_rescue) instead.
    if (state_ && std::uncaught_exceptions() > exceptions_at_birth_ && detail::serve_rescue::keep(state_)) return;
    abandon();
  }

  /// @brief Sends the reply (moved to the requester, never copied). Returns false when it
  /// went nowhere: the request was answered already, timed out, was cancelled, or this
  /// responder is not for a request. Counted as a late reply when a request was waiting for it.
  template <class R = Rep>
  bool reply(R&& value) {
    auto state = std::move(state_);
    if (!state) return false;
    auto& counters = detail::reply_table::instance().counters;
    if (state->type != type_id_of<Rep>()) {
      counters.wrong_type_replies.fetch_add(1, std::memory_order_relaxed);
      state->fail(request_errc::wrong_type, "the requester expects another reply type");
      return false;
    }
    if (static_cast<detail::pending_reply_of<Rep>&>(*state).offer(Rep(std::forward<R>(value)))) return true;
    counters.late_replies.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  /// @brief Answers with an error instead of a reply (server_failed, with `what`). Returns
  /// false when it went nowhere, as reply() does.
  bool fail(std::string_view what) { return fail(request_errc::server_failed, what); }
  /// @brief Answers with the error `code` and the explanation `what` (for a server that
  /// forwards requests, such as the NATS bridge, passing on why its own server did not reply).
  /// Returns false when it went nowhere, as reply() does.
  bool fail(request_errc code, std::string_view what) {
    auto state = std::move(state_);
    return state != nullptr && state->fail(code, std::string(what));
  }
  /// @brief True while a request may still take this responder's reply.
  bool pending() const noexcept { return state_ != nullptr; }

 private:
  void abandon() noexcept { detail::abandon_reply(std::move(state_)); }
  friend class detail::serve_rescue;
  template <class Req, class R, class Bus, class F, class... With>
  friend auto serve(Bus&, std::string_view, F&&, const With&...);
  struct never_rescued {};
  // For serve()'s own responder when the handler returns its reply: it never leaves serve(),
  // so no exception can destroy it unanswered, and the two uncaught_exceptions() calls (~70
  // instructions a request, measured with callgrind) are skipped.
  responder(std::uint64_t request_id, never_rescued)
      : state_(detail::reply_table::instance().find(request_id)), exceptions_at_birth_(std::numeric_limits<int>::max()) {}
  std::shared_ptr<detail::pending_reply> state_;
  int exceptions_at_birth_ = std::uncaught_exceptions();
};

namespace detail {

inline std::string what_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "a non-standard exception";
  }
}

template <class Req, class Rep, class F>
constexpr bool serve_handler_ok() {
  constexpr bool with_responder = std::is_invocable_v<F&, const event<Req>&, responder<Rep>> ||
                                  std::is_invocable_v<F&, const Req&, responder<Rep>>;
  constexpr bool returning = std::is_invocable_r_v<Rep, F&, const event<Req>&> || std::is_invocable_r_v<Rep, F&, const Req&>;
  static_assert(with_responder || returning,
                "agentbus: serve<Req, Rep>: the handler must be `Rep(const Req&)` or `Rep(const event<Req>&)`, or take "
                "a responder<Rep> second: `void(const Req&, responder<Rep>)` / `void(const event<Req>&, responder<Rep>)`");
  return with_responder || returning;
}

}  // namespace detail

/// @brief Serves requests of type Req on `pattern` of the bus `on` with replies of type Rep; returns the
/// subscription (end it to stop serving). `with...`: what subscribe() takes after the handler
/// (a delivery kind such as `agentbus::async(agent)`, subscribe_options).
template <class Req, class Rep, class Bus, class F, class... With>
[[nodiscard("serving ends when the returned subscription is destroyed")]] auto serve(Bus& on, std::string_view pattern,
                                                                                      F&& handler, const With&... with) {
  if constexpr (detail::serve_handler_ok<Req, Rep, std::decay_t<F>>()) {
    return on.template subscribe<Req>(
        pattern,
        [h = std::forward<F>(handler)](const event<Req>& ev) mutable {
          using handler_type = decltype(h)&;
          constexpr bool takes_responder = std::is_invocable_v<handler_type, const event<Req>&, responder<Rep>> ||
                                           std::is_invocable_v<handler_type, const Req&, responder<Rep>>;
          if constexpr (takes_responder) {
            responder<Rep> answer(ev.correlation_id());
            detail::serve_rescue rescue(answer);
            try {
              if constexpr (std::is_invocable_v<handler_type, const event<Req>&, responder<Rep>>)
                h(ev, std::move(answer));
              else
                h(ev.payload(), std::move(answer));
            } catch (...) {
              const std::string what = detail::what_of(std::current_exception());
              if (answer.pending())
                answer.fail(what);
              else
                (void)rescue.fail(what);  // the handler's own responder, destroyed by this exception
              throw;  // the bus counts and reports it too
            }
          } else {
            responder<Rep> answer(ev.correlation_id(), typename responder<Rep>::never_rescued{});
            try {
              if constexpr (std::is_invocable_r_v<Rep, handler_type, const event<Req>&>)
                answer.reply(h(ev));
              else
                answer.reply(h(ev.payload()));
            } catch (...) {
              answer.fail(detail::what_of(std::current_exception()));
              throw;  // the bus counts and reports it too
            }
          }
        },
        with...);
  } else {
    return on.template subscribe<Req>(pattern, [](const event<Req>&) {});
  }
}

}  // namespace agentbus

#endif  // AGENTBUS_REPLY_SERVE_HPP
