// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_DETAIL_JETSTREAM_WIRE_HPP
#define AGENTBUS_BRIDGE_DETAIL_JETSTREAM_WIRE_HPP

// What the JetStream path (agentbus/bridge/jetstream.hpp) writes and reads beyond the envelope
// of bridge/detail/envelope.hpp: the acknowledgement protocol of pull consumers (payloads sent to
// a message's reply subject), the message id that makes the server deduplicate, the headers of
// a stored message as event headers, dead-letter messages, and small helpers (names, time,
// backoff). Internal: nothing here is part of the API.

#include "agentbus/transport/nats.hpp"
#include "agentbus/bridge/detail/envelope.hpp"
#include "agentbus/detail/chrono.hpp"

#if AGENTBUS_HAS_NATS

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/consumer/detail/backoff.hpp"
#include "agentbus/consumer/group.hpp"
#include "agentbus/consumer/options.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/storage/dedup.hpp"

namespace agentbus::detail {

/// The publish time the message carries (Agentbus-Published, Unix ns); 0 when none.
inline std::int64_t published_ns(natsMsg* msg) noexcept {
  const char* text = nats_header_value(msg, nats_header::published);
  return text != nullptr ? parse_unix_ns(text).value_or(0) : 0;
}

/// The Nats-Msg-Id of a local event: its idempotency key (agentbus-msg-id) when it has one,
/// else `<origin>:<event id>` (unique per publisher and event).
template <class T>
std::string jetstream_msg_id(const event<T>& e, std::string_view origin) {
  if (const auto key = e.header_value(idempotency_header); key && !key->empty()) return std::string(*key);
  std::string id(origin);
  id += ':';
  id += std::to_string(e.id());
  return id;
}

/// JetStream stream and durable names: 1-128 characters of [A-Za-z0-9_-] (the server refuses
/// '.', '*', '>' and white space in them; they are subject tokens of its API).
inline bool valid_jetstream_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

template <class Rep, class Period>
std::int64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

/// The acknowledgement payloads a pull consumer sends to a message's reply subject (server 2.9).
namespace js_ack {
inline constexpr std::string_view ack = "+ACK";
inline constexpr std::string_view nak = "-NAK";
inline constexpr std::string_view progress = "+WPI";
inline constexpr std::string_view term = "+TERM";
/// `-NAK {"delay": <ns>}`: redeliver after `delay` (a plain -NAK redelivers at once).
inline std::string nak_after(std::chrono::nanoseconds delay) {
  if (delay <= std::chrono::nanoseconds::zero()) return std::string(nak);
  return "-NAK {\"delay\": " + std::to_string(delay.count()) + "}";
}
}  // namespace js_ack

/// Sends `payload` to `reply`; with `confirm`, waits (up to `timeout`, retrying while the
/// connection comes back) until the server answers, which it does once it has applied it.
inline natsStatus send_ack(natsConnection* nc, const std::string& reply, std::string_view payload, bool confirm,
                           std::chrono::milliseconds timeout) {
  if (reply.empty()) return NATS_INVALID_SUBJECT;
  if (!confirm) return natsConnection_Publish(nc, reply.c_str(), payload.data(), static_cast<int>(payload.size()));
  const auto until = std::chrono::steady_clock::now() + timeout;
  natsStatus s = NATS_TIMEOUT;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return s;
    natsMsg* answer = nullptr;
    // A try of at most a second: an answer lost with a server that went away is asked for again
    // (the server answers a repeated ack too) once the connection is back.
    s = natsConnection_Request(&answer, nc, reply.c_str(), payload.data(), static_cast<int>(payload.size()),
                               std::min<std::int64_t>(left.count(), 1000));
    natsMsg_Destroy(answer);
    if (s == NATS_OK) return s;
    if (s != NATS_TIMEOUT) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

/// Attempt n (1-based) failed: the wait before the redelivery (as the in-process consumer
/// waits: consumer/detail/backoff.hpp). `rng` is a xorshift state.
inline std::chrono::nanoseconds backoff_delay(const backoff& b, std::uint64_t attempt, std::uint64_t& rng) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(backoff_wait(b, attempt, rng));
}

/// What a dead letter says about the event it carries.
struct dead_letter_fields {
  std::string reason;
  std::uint64_t attempts = 0;
  std::string_view consumer;
  std::uint64_t sequence = 0;
  std::string_view topic;
  std::string_view stream;
};

/// The payload bytes of `original` as a message on `subject` (a dead letter's body).
inline nats_message copy_payload(natsMsg* original, const std::string& subject) {
  const char* data = natsMsg_GetData(original);
  const int size = natsMsg_GetDataLength(original);
  return nats_message(subject, data, data != nullptr && size > 0 ? static_cast<std::size_t>(size) : 0);
}

/// Makes `out` a dead letter of `original`: its headers (JetStream's own and earlier dead-letter
/// headers left out), the dead-letter headers of consumer/dead_letters.hpp, and a Nats-Msg-Id
/// made of the stream, consumer and sequence, so that dead-lettering one event twice (a crash
/// between the dead letter and the terminate) stores it once inside the dead-letter stream's
/// window. NATS_OK or the first error.
inline natsStatus add_dead_letter_headers(nats_message& out, natsMsg* original, const dead_letter_fields& f) {
  natsStatus status = NATS_OK;
  const char** keys = nullptr;
  int key_count = 0;
  if (natsMsgHeader_Keys(original, &keys, &key_count) == NATS_OK) {
    for (int k = 0; k < key_count && status == NATS_OK; ++k) {
      if (is_jetstream_header(keys[k])) continue;
      const std::string_view key(keys[k]);
      if (key.size() >= 13 && same_header_name(key.substr(0, 13), "agentbus-dlq-")) continue;  // a replayed one's
      const char** values = nullptr;
      int value_count = 0;
      if (natsMsgHeader_Values(original, keys[k], &values, &value_count) == NATS_OK) {
        for (int v = 0; v < value_count && status == NATS_OK; ++v) status = out.add_header(keys[k], values[v]);
        std::free(static_cast<void*>(values));
      }
    }
    std::free(static_cast<void*>(keys));
  }
  auto add = [&](std::string_view key, const std::string& value) {
    if (status == NATS_OK) status = out.add_header(std::string(key).c_str(), value.c_str());
  };
  add(dead_letter_header::reason, f.reason);
  add(dead_letter_header::attempts, std::to_string(f.attempts));
  add(dead_letter_header::consumer, std::string(f.consumer));
  add(dead_letter_header::offset, std::to_string(f.sequence));
  add(dead_letter_header::topic, std::string(f.topic));
  add(nats_header::msg_id,
      "agentbus-dlq:" + std::string(f.stream) + ":" + std::string(f.consumer) + ":" + std::to_string(f.sequence));
  return status;
}

/// The text of a failed JetStream call: the client's status, the server's error code and text.
inline std::string jetstream_status_text(natsStatus s, int code) {
  std::string text = nats_status_text(s);
  if (code != 0) text += " [JetStream error " + std::to_string(code) + "]";
  return text;
}

/// Publishers' async-ack callbacks reach their state through this registry, by a number, never
/// by a pointer into a publisher: the client may call back after (or while) a publisher is
/// destroyed, and then finds nothing. Never freed (callbacks may come during exit).
template <class State>
class callback_registry {
 public:
  static callback_registry& instance() {
    static auto* registry = new callback_registry();  // NOLINT: intentionally never destroyed
    return *registry;
  }
  std::uintptr_t add(std::shared_ptr<State> state) {
    std::lock_guard lock(mutex_);
    const std::uintptr_t id = ++next_;
    states_.emplace(id, std::move(state));
    return id;
  }
  std::shared_ptr<State> find(std::uintptr_t id) {
    std::lock_guard lock(mutex_);
    const auto it = states_.find(id);
    return it == states_.end() ? nullptr : it->second;
  }
  void remove(std::uintptr_t id) {
    std::lock_guard lock(mutex_);
    states_.erase(id);
  }

 private:
  std::mutex mutex_;
  std::uintptr_t next_ = 0;
  std::unordered_map<std::uintptr_t, std::shared_ptr<State>> states_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_DETAIL_JETSTREAM_WIRE_HPP
