// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_DETAIL_REQUESTS_HPP
#define AGENTBUS_BRIDGE_DETAIL_REQUESTS_HPP

// The parts of the NATS bridge's request/reply that know nothing of the bridge class:
//   - outstanding_requests: the requests this process sent out, waiting for their replies on
//     the bridge's inbox, each with the responder that answers the local requester;
//   - reply_link: what an imported request's reply callback needs to publish the reply, and
//     that the bridge cuts when it is destroyed (a callback may run later, on another thread);
//   - how a reply message turns into a reply or a request_errc, and back.

#include "agentbus/detail/chrono.hpp"
#include "agentbus/transport/nats.hpp"

#if AGENTBUS_HAS_NATS

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/bridge/detail/envelope.hpp"
#include "agentbus/bridge/detail/signing.hpp"
#include "agentbus/reply/error.hpp"
#include "agentbus/reply/serve.hpp"

namespace agentbus::detail {

/// The request_errc a reply's Agentbus-Error header names (server_failed for a name this
/// version does not know: a newer peer's error is still an error).
inline request_errc request_errc_from_text(std::string_view text) noexcept {
  for (auto code : {request_errc::no_responders, request_errc::rejected, request_errc::timeout, request_errc::cancelled,
                    request_errc::server_failed, request_errc::abandoned, request_errc::wrong_type,
                    request_errc::circuit_open})
    if (text == to_string(code)) return code;
  return request_errc::server_failed;
}

/// One request sent out: answers its local requester when the reply (or the failure) comes.
class remote_waiter {
 public:
  virtual ~remote_waiter() = default;
  /// Answers with what the reply message says (the message stays the caller's). False when
  /// the request had ended already (answered in this process first, cancelled): a late reply.
  virtual bool answer(natsMsg* reply) = 0;
  /// Answers with an error.
  virtual void fail(request_errc code, std::string_view what) = 0;
};

template <class Rep>
class remote_waiter_of final : public remote_waiter {
 public:
  explicit remote_waiter_of(responder<Rep> r) : responder_(std::move(r)) {}

  bool answer(natsMsg* reply) override {
    if (natsMsg_IsNoResponders(reply))
      return responder_.fail(request_errc::no_responders, "nothing served it in any process reached through NATS");
    if (const char* error = nats_header_value(reply, nats_header::error)) {
      const char* detail = nats_header_value(reply, nats_header::error_detail);
      return responder_.fail(request_errc_from_text(error), detail != nullptr ? detail : "");
    }
    if (!schema_matches<Rep>(reply))
      return responder_.fail(request_errc::wrong_type, "the remote reply: " + schema_mismatch_text<Rep>(reply));
    try {
      return responder_.reply(decode_payload<Rep>(reply));
    } catch (const std::exception& e) {
      return responder_.fail(request_errc::wrong_type, std::string("the remote reply does not decode: ") + e.what());
    }
  }
  void fail(request_errc code, std::string_view what) override { responder_.fail(code, what); }

 private:
  responder<Rep> responder_;
};

/// The requests sent out and not answered yet, by the token at the end of their reply subject.
/// Thread safe. A request whose deadline passed without a reply is failed with timeout on the
/// next add, take or expire_due() (the bridge's stats() calls it), whichever comes first, and
/// a reply that comes after that is not handed to it (take finds nothing: a late reply).
class outstanding_requests {
 public:
  using clock = std::chrono::steady_clock;

  /// Registers `waiter` until `deadline`; returns its token.
  std::uint64_t add(std::unique_ptr<remote_waiter> waiter, clock::time_point deadline) {
    std::vector<std::unique_ptr<remote_waiter>> due;
    std::uint64_t token = 0;
    {
      std::lock_guard lock(mutex_);
      token = ++last_token_;
      waiting_.emplace(token, std::move(waiter));
      deadlines_.push({deadline, token});
      collect_due_locked(clock::now(), due);
    }
    time_out(due);
    return token;
  }

  /// Takes the waiter of `token` out (nothing when it was answered or timed out already: due
  /// requests are timed out first, so a reply past its request's deadline is a late one).
  std::unique_ptr<remote_waiter> take(std::uint64_t token) {
    std::vector<std::unique_ptr<remote_waiter>> due;
    std::unique_ptr<remote_waiter> out;
    {
      std::lock_guard lock(mutex_);
      collect_due_locked(clock::now(), due);
      if (auto it = waiting_.find(token); it != waiting_.end()) {
        out = std::move(it->second);
        waiting_.erase(it);
      }
    }
    time_out(due);
    return out;
  }

  /// Fails the requests whose deadline has passed (with timeout).
  void expire_due() {
    std::vector<std::unique_ptr<remote_waiter>> due;
    {
      std::lock_guard lock(mutex_);
      collect_due_locked(clock::now(), due);
    }
    time_out(due);
  }

  /// Fails every waiting request with `code` (the bridge is going away).
  void fail_all(request_errc code, std::string_view what) {
    std::unordered_map<std::uint64_t, std::unique_ptr<remote_waiter>> all;
    {
      std::lock_guard lock(mutex_);
      all.swap(waiting_);
      deadlines_ = {};
    }
    for (auto& [token, waiter] : all) waiter->fail(code, what);
  }

  /// How many requests wait for a reply now.
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return waiting_.size();
  }
  /// How many requests timed out here (no reply before their deadline).
  std::uint64_t timed_out() const {
    std::lock_guard lock(mutex_);
    return timed_out_;
  }

 private:
  struct due_entry {
    clock::time_point deadline;
    std::uint64_t token;
    bool operator>(const due_entry& o) const noexcept { return deadline > o.deadline; }
  };

  void collect_due_locked(clock::time_point now, std::vector<std::unique_ptr<remote_waiter>>& due) {
    while (!deadlines_.empty() && deadlines_.top().deadline <= now) {
      const auto token = deadlines_.top().token;
      deadlines_.pop();
      if (auto it = waiting_.find(token); it != waiting_.end()) {
        due.push_back(std::move(it->second));
        waiting_.erase(it);
        ++timed_out_;
      }
    }
  }
  static void time_out(std::vector<std::unique_ptr<remote_waiter>>& due) {
    for (auto& w : due) w->fail(request_errc::timeout, "no reply through NATS before the request's deadline");
  }

  mutable std::mutex mutex_;
  std::uint64_t last_token_ = 0;
  std::uint64_t timed_out_ = 0;
  std::unordered_map<std::uint64_t, std::unique_ptr<remote_waiter>> waiting_;
  std::priority_queue<due_entry, std::vector<due_entry>, std::greater<>> deadlines_;
};

/// What an imported request's reply callback publishes through; the bridge cuts it (under
/// the mutex) before it closes its connection, so a late callback publishes nothing.
struct reply_link {
  std::mutex mutex;
  natsConnection* connection = nullptr;  // null once cut
  std::string origin;
  message_signer signer;                   // signs replies when the bridge signs
  payload_compression compression;         // compresses replies when the bridge compresses
  std::atomic<std::uint64_t> sent{0};      // replies (values or errors) handed to the client
  std::atomic<std::uint64_t> not_sent{0};  // replies that could not be: cut, refused, not encodable

  /// Publishes `msg` and counts it; false when the link is cut or the client refused it.
  bool publish(nats_message& msg) {
    std::lock_guard lock(mutex);
    const bool ok = connection != nullptr && natsConnection_PublishMsg(connection, msg.get()) == NATS_OK;
    (ok ? sent : not_sent).fetch_add(1, std::memory_order_relaxed);
    return ok;
  }
  /// Counts a reply that could not even be built.
  void count_unsent() noexcept { not_sent.fetch_add(1, std::memory_order_relaxed); }
  void cut() {
    std::lock_guard lock(mutex);
    connection = nullptr;
  }
};

/// The detail of a request_error: its what() without the "agentbus: request failed: <code>: "
/// that request_error puts in front (the requester's own request_error adds it again).
inline std::string_view request_error_detail(const request_error& e) noexcept {
  std::string_view text = e.what();
  const std::string_view lead = "agentbus: request failed: ";
  if (text.substr(0, lead.size()) != lead) return text;
  text.remove_prefix(lead.size());
  const std::string_view code = to_string(e.code());
  if (text.substr(0, code.size()) != code) return text;
  text.remove_prefix(code.size());
  if (text.substr(0, 2) == ": ") text.remove_prefix(2);
  return text;
}

/// An error reply on `reply_subject`: no payload, Agentbus-Error and Agentbus-Error-Detail.
inline bool send_error_reply(reply_link& link, const std::string& reply_subject, request_errc code,
                             std::string_view what) {
  try {
    nats_message msg(reply_subject, nullptr, 0);
    natsStatus s = msg.add_header(nats_header::error, to_string(code));
    if (s == NATS_OK && !what.empty()) s = msg.add_header(nats_header::error_detail, std::string(what).c_str());
    if (s == NATS_OK) s = msg.add_header(nats_header::origin, link.origin.c_str());
    if (s == NATS_OK) s = link.signer.sign(msg);
    if (s == NATS_OK) return link.publish(msg);
  } catch (...) {
  }
  link.count_unsent();
  return false;
}

/// A reply carrying `value` (its codec bytes and schema headers) on `reply_subject`; when the
/// value cannot be encoded, an error reply (server_failed) instead, so the requester learns why.
template <class Rep>
bool send_value_reply(reply_link& link, const std::string& reply_subject, const Rep& value) {
  std::string failure;
  try {
    thread_local byte_writer writer;
    auto msg = encode_payload(value, reply_subject, writer, nullptr, link.compression);
    natsStatus s = link.signer.enabled() ? add_schema_headers_one_by_one<Rep>(msg) : add_schema_headers<Rep>(msg);
    if (s == NATS_OK) s = msg.add_header(nats_header::origin, link.origin.c_str());
    if (s == NATS_OK) s = link.signer.sign(msg);
    if (s == NATS_OK) return link.publish(msg);
    failure = nats_status_text(s);
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  return send_error_reply(link, reply_subject, request_errc::server_failed, "the reply could not be sent: " + failure);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_DETAIL_REQUESTS_HPP
