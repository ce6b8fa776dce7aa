// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_NATS_HPP
#define AGENTBUS_BRIDGE_NATS_HPP

// nats_bridge: chosen topics of a bus go out to core NATS, chosen NATS subjects come in as
// typed events, so buses in several processes (or machines) share events through a server.
// Not in the umbrella header: it needs the NATS C client (link agentbus::nats).
//
//   agentbus::bus bus;
//   agentbus::nats_bridge bridge(bus, {.url = "nats://127.0.0.1:4222",
//                                      .outgoing = {"orders.>"}, .incoming = {"prices.*"}});
//   bridge.export_type<order>("orders.>");   // local publishes of `order` on orders.> go out
//   bridge.import_type<price>("prices.*");   // NATS messages on prices.* come in as event<price>
//
// - The bridge attaches to an existing bus through its public API: an export is an ordinary
//   synchronous subscription (a bus without a bridge is unchanged; local subscribers get local
//   publishes directly, never through the server). The event goes out with its codec bytes
//   (agentbus/storage/codec.hpp: T needs a codec) and its envelope as NATS headers (the wire
//   format: agentbus/transport/nats.hpp). Sending happens inside publish(), on the publishing
//   thread; the client batches the writes.
// - An import is a NATS subscription; its messages are checked (schema name, version and codec
//   fingerprint must be T's; the bytes must decode), then published on the bus, from the
//   client's delivery thread (one per import), with the envelope they came with: source,
//   correlation id, priority, the remaining time to their deadline as the TTL, their headers.
//   The bus gives the event a new local id; the sender's id is in the header
//   Agentbus-Event-Id. A message that fails a check is counted (stats) and reported to the
//   problem handler, never delivered. One whose deadline has passed is counted as expired.
// - Patterns: the options' `outgoing` / `incoming` lists, when not empty, bound what
//   export_type / import_type may name (each pattern must lie inside one of them). Patterns
//   map one to one to NATS subjects. Topics starting with `$` are reserved: a pattern starting
//   with `$` is refused (std::invalid_argument), and a topic starting with `$` that a wildcard
//   matches is not sent (counted as reserved_skipped). Overlapping exports (or imports) of the
//   same type send (or deliver) an event once per pattern: keep them disjoint.
// - Loops: every imported event carries the header Agentbus-Origin (the sending bridge's id);
//   an export never sends an event that has it, so an event that came in does not go back
//   out, through this bridge or another one on the same bus. A bridge ignores messages
//   carrying its own id (and its connection asks the server not to echo its own publishes).
// - Faults: a server that is not there makes the constructor throw nats_error (no hang, no
//   retry). A connection lost later reconnects as described in agentbus/transport/nats.hpp;
//   every export that cannot be sent is counted in stats().dropped and reported.
// - Lifetime: destroy the bridge before the bus. The destructor ends the exports (waiting for
//   a send in progress), then the imports (waiting for a delivery in progress), then closes
//   the connection. Call export_type / import_type from one thread at a time (any thread).

#include "agentbus/transport/nats.hpp"
#include "agentbus/bridge/detail/envelope.hpp"

#if AGENTBUS_HAS_NATS

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "agentbus/bus/subscription.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/codec.hpp"

namespace agentbus {

/// @brief The bridge's counters (a snapshot).
struct nats_bridge_stats {
  std::uint64_t sent = 0;               ///< local events sent to NATS
  std::uint64_t received = 0;           ///< NATS messages published on the local bus
  std::uint64_t dropped = 0;            ///< local events that could not be sent (not connected, buffer full, closed)
  std::uint64_t dropped_incoming = 0;   ///< NATS messages the client dropped before delivery (slow consumer)
  std::uint64_t decode_errors = 0;      ///< NATS messages not delivered: bytes that do not decode, or a bad topic
  std::uint64_t schema_mismatches = 0;  ///< NATS messages not delivered: another schema name, version or fingerprint
  std::uint64_t expired = 0;            ///< NATS messages not delivered: their deadline had passed
  std::uint64_t not_sent_back = 0;      ///< local events that came in through a bridge, so not sent out again
  std::uint64_t own_ignored = 0;        ///< NATS messages sent by this bridge itself, ignored
  std::uint64_t reserved_skipped = 0;   ///< events on `$` topics that a wildcard matched, not bridged
  bool connected = false;               ///< the connection is up (false while reconnecting or once closed)
};

/// @brief Why the bridge did not send or deliver something (see nats_bridge_problem).
enum class nats_problem_kind : std::uint8_t {
  send_failed,      ///< a local event could not be sent (counted in dropped)
  decode_error,     ///< a NATS message's bytes did not decode, or its subject is not a valid topic
  schema_mismatch,  ///< a NATS message has another schema name, version or fingerprint than the import's type
  expired,          ///< a NATS message arrived after its deadline
};

/// @brief One problem, as handed to the problem handler. The views live for the call only.
struct nats_bridge_problem {
  nats_problem_kind kind;   ///< what went wrong
  std::string_view topic;   ///< the topic or subject concerned
  std::string_view what;    ///< a readable explanation
};

/// @brief Receives the bridge's problems, on the thread that met them (a publisher or the client's
/// delivery thread): keep it short and do not throw.
using nats_problem_handler = std::function<void(const nats_bridge_problem&)>;

namespace detail {

/// True when every subject `inner` matches is matched by `outer` (both valid patterns).
inline bool pattern_covers(std::string_view outer, std::string_view inner) {
  auto split = [](std::string_view s) {
    std::vector<std::string_view> out;
    for (std::size_t at = 0;;) {
      const auto dot = s.find('.', at);
      out.push_back(s.substr(at, dot == std::string_view::npos ? std::string_view::npos : dot - at));
      if (dot == std::string_view::npos) return out;
      at = dot + 1;
    }
  };
  const auto o = split(outer), in = split(inner);
  for (std::size_t i = 0; i < o.size(); ++i) {
    if (o[i] == ">") return i < in.size();  // one or more segments left in inner
    if (i >= in.size() || in[i] == ">") return false;
    if (o[i] != "*" && o[i] != in[i]) return false;
  }
  return in.size() == o.size();
}

inline std::string random_bridge_id() {
  std::random_device rd;
  const std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd() ^
                          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "agentbus-";
  for (int i = 15; i >= 0; --i) id += hex[(v >> (4 * i)) & 15];
  return id;
}

}  // namespace detail

/// @brief Bridges a bus to core NATS: exports chosen local topics, imports chosen subjects as
/// typed events (see the top of agentbus/bridge/nats.hpp). Not copyable, not movable.
template <class Bus>
class nats_bridge {
 public:
  /// @brief Connects to `options.url`: throws nats_error when no server answers there (at once
  /// for a refused connection, else after `options.connect_timeout`), std::invalid_argument for a
  /// reserved (`$`) pattern in the options, topic_error for an invalid one.
  nats_bridge(Bus& target, nats_options options, nats_problem_handler on_problem = {})
      : bus_(target),
        options_(std::move(options)),
        id_(detail::random_bridge_id()),
        on_problem_(std::move(on_problem)),
        allowed_(check_option_patterns(options_)),
        conn_(std::make_unique<nats_connection>(options_, id_)) {}
  nats_bridge(const nats_bridge&) = delete;
  nats_bridge& operator=(const nats_bridge&) = delete;
  /// @brief Ends the exports and imports (waiting for one in progress), then closes the connection.
  ~nats_bridge() {
    std::vector<subscription> exports;
    std::vector<std::unique_ptr<importer>> importers;
    {
      std::lock_guard lock(mutex_);
      exports.swap(exports_);
      importers.swap(importers_);
    }
    exports.clear();
    for (auto& imp : importers) {
      (void)natsSubscription_Unsubscribe(imp->sub);
      std::unique_lock wait(imp->mutex);
      if (!imp->cv.wait_for(wait, std::chrono::seconds(10), [&] { return imp->complete; })) {
        // The client never confirmed the last delivery: keep the importer alive rather than
        // risk a delivery thread reading freed memory.
        wait.unlock();
        (void)imp.release();
        continue;
      }
      wait.unlock();
      natsSubscription_Destroy(imp->sub);
    }
    importers.clear();
    conn_.reset();
  }

  /// @brief Local events of type T published on topics matching `pattern` go out to NATS.
  /// Throws std::invalid_argument for a reserved (`$`) pattern or one outside the options'
  /// `outgoing` list, topic_error for an invalid one.
  template <class T>
  void export_type(std::string_view pattern) {
    if constexpr (detail::require_codec<T>()) {
      check_pattern(pattern, allowed_.outgoing, "export_type");
      subscription sub = bus_.template subscribe<T>(pattern, [this](const event<T>& e) { send(e); });
      std::lock_guard lock(mutex_);
      exports_.push_back(std::move(sub));
    }
  }

  /// @brief NATS messages on subjects matching `pattern` come in as events of type T (checked:
  /// see the top of agentbus/bridge/nats.hpp). Throws std::invalid_argument for a reserved (`$`)
  /// pattern or one outside the options' `incoming` list, topic_error for an invalid one,
  /// nats_error when the client cannot subscribe. The subscription is live on the server when
  /// this returns.
  template <class T>
  void import_type(std::string_view pattern) {
    if constexpr (detail::require_codec<T>()) {
      check_pattern(pattern, allowed_.incoming, "import_type");
      auto imp = std::make_unique<importer>();
      imp->bridge = this;
      imp->handle = &nats_bridge::receive<T>;
      const std::string subject(pattern);
      natsStatus s = natsConnection_Subscribe(&imp->sub, conn_->get(), subject.c_str(), &on_message, imp.get());
      if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(imp->sub, &on_complete, imp.get());
      if (s == NATS_OK) s = natsConnection_FlushTimeout(conn_->get(), options_.connect_timeout.count());
      if (s != NATS_OK) {
        if (imp->sub != nullptr) {
          (void)natsSubscription_Unsubscribe(imp->sub);
          std::unique_lock wait(imp->mutex);
          if (!imp->cv.wait_for(wait, std::chrono::seconds(10), [&] { return imp->complete; })) {
            wait.unlock();
            (void)imp.release();  // see the destructor
          } else {
            wait.unlock();
            natsSubscription_Destroy(imp->sub);
          }
        }
        detail::throw_nats("cannot subscribe to " + subject, conn_->url(), s);
      }
      std::lock_guard lock(mutex_);
      importers_.push_back(std::move(imp));
    }
  }

  /// @brief A snapshot of the counters.
  nats_bridge_stats stats() const {
    nats_bridge_stats s;
    s.sent = counters_.sent.load(std::memory_order_relaxed);
    s.received = counters_.received.load(std::memory_order_relaxed);
    s.dropped = counters_.dropped.load(std::memory_order_relaxed);
    s.decode_errors = counters_.decode_errors.load(std::memory_order_relaxed);
    s.schema_mismatches = counters_.schema_mismatches.load(std::memory_order_relaxed);
    s.expired = counters_.expired.load(std::memory_order_relaxed);
    s.not_sent_back = counters_.not_sent_back.load(std::memory_order_relaxed);
    s.own_ignored = counters_.own_ignored.load(std::memory_order_relaxed);
    s.reserved_skipped = counters_.reserved_skipped.load(std::memory_order_relaxed);
    s.connected = conn_->connected();
    std::lock_guard lock(mutex_);
    for (const auto& imp : importers_) {
      std::int64_t n = 0;
      if (natsSubscription_GetDropped(imp->sub, &n) == NATS_OK && n > 0) s.dropped_incoming += static_cast<std::uint64_t>(n);
    }
    return s;
  }

  /// @brief This bridge's unique id (the Agentbus-Origin header of what it sends).
  const std::string& id() const noexcept { return id_; }
  /// @brief The connection (flush(), connected(), or the client's own handle).
  nats_connection& connection() noexcept { return *conn_; }

 private:
  struct allowed_patterns {
    std::vector<std::string> outgoing, incoming;
  };

  struct importer {
    nats_bridge* bridge = nullptr;
    void (*handle)(nats_bridge&, natsMsg*) = nullptr;
    natsSubscription* sub = nullptr;
    std::mutex mutex;
    std::condition_variable cv;
    bool complete = false;
  };

  struct counters {
    std::atomic<std::uint64_t> sent{0}, received{0}, dropped{0}, decode_errors{0}, schema_mismatches{0}, expired{0},
        not_sent_back{0}, own_ignored{0}, reserved_skipped{0};
  };

  [[noreturn]] static void refuse(std::string_view call, std::string_view pattern, std::string_view why) {
    std::string m = "agentbus: nats bridge: ";
    m += call;
    m += "(\"";
    m += pattern;
    m += "\"): ";
    m += why;
    throw std::invalid_argument(m);
  }

  static void check_reserved(std::string_view call, std::string_view pattern) {
    if (!pattern.empty() && pattern.front() == '$')
      refuse(call, pattern,
             "topics starting with '$' are reserved (NATS system subjects such as $SYS and $JS, agentbus's own "
             "reserved topics) and are never bridged");
    (void)topic_pattern(pattern);  // topic_error when invalid
  }

  static allowed_patterns check_option_patterns(const nats_options& options) {
    for (const auto& p : options.outgoing) check_reserved("nats_options::outgoing", p);
    for (const auto& p : options.incoming) check_reserved("nats_options::incoming", p);
    return {options.outgoing, options.incoming};
  }

  static void check_pattern(std::string_view pattern, const std::vector<std::string>& allowed, std::string_view call) {
    check_reserved(call, pattern);
    if (allowed.empty()) return;
    for (const auto& a : allowed)
      if (detail::pattern_covers(a, pattern)) return;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    refuse(call, pattern,
           std::string("the pattern is not inside the patterns the options allow (") + list +
               "): add it to nats_options::" + (call == "export_type" ? "outgoing" : "incoming"));
  }

  void report(nats_problem_kind kind, std::string_view topic, std::string_view what) noexcept {
    if (!on_problem_) return;
    try {
      on_problem_(nats_bridge_problem{kind, topic, what});
    } catch (...) {  // a problem handler must not throw: ignored
    }
  }

  // Export: runs inside the local publish (a synchronous subscription's handler).
  template <class T>
  void send(const event<T>& e) noexcept {
    const std::string_view topic = e.topic();
    if (!topic.empty() && topic.front() == '$') {
      counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (e.header_value(nats_header::origin)) {
      counters_.not_sent_back.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    try {
      thread_local byte_writer writer;
      auto msg = detail::encode_payload(e.payload(), std::string(topic), writer);
      natsStatus s = detail::add_envelope_headers(msg, e, id_);
      if (s == NATS_OK) s = natsConnection_PublishMsg(conn_->get(), msg.get());
      if (s != NATS_OK) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        report(nats_problem_kind::send_failed, topic, "not sent: " + detail::nats_status_text(s));
        return;
      }
      counters_.sent.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& ex) {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
      report(nats_problem_kind::send_failed, topic, ex.what());
    } catch (...) {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
      report(nats_problem_kind::send_failed, topic, "not sent: unknown exception");
    }
  }

  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) noexcept {
    auto* imp = static_cast<importer*>(closure);
    try {
      imp->handle(*imp->bridge, msg);
    } catch (...) {  // receive counts and reports; nothing may escape into the C client
    }
    natsMsg_Destroy(msg);
  }

  static void on_complete(void* closure) noexcept {
    auto* imp = static_cast<importer*>(closure);
    std::lock_guard lock(imp->mutex);
    imp->complete = true;
    imp->cv.notify_all();
  }

  // Import: runs on the client's delivery thread for this import.
  template <class T>
  static void receive(nats_bridge& self, natsMsg* msg) {
    const char* subject_c = natsMsg_GetSubject(msg);
    const std::string_view subject = subject_c != nullptr ? subject_c : "";
    const char* origin = detail::nats_header_value(msg, nats_header::origin);
    if (origin != nullptr && self.id_ == origin) {
      self.counters_.own_ignored.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!subject.empty() && subject.front() == '$') {
      self.counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }

    if (!detail::schema_matches<T>(msg)) {
      self.counters_.schema_mismatches.fetch_add(1, std::memory_order_relaxed);
      if (self.on_problem_) self.report(nats_problem_kind::schema_mismatch, subject, detail::schema_mismatch_text<T>(msg));
      return;
    }

    // Deadline: the time left becomes the local TTL.
    const auto left = detail::time_left(msg);
    if (left && left->count() <= 0) {
      self.counters_.expired.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::expired, subject,
                  "not delivered: its deadline passed " + std::to_string(-left->count() / 1000000) +
                      " ms before it arrived");
      return;
    }

    std::optional<T> value;
    try {
      value.emplace(detail::decode_payload<T>(msg));
    } catch (const std::exception& ex) {
      self.counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::decode_error, subject, std::string("not delivered: ") + ex.what());
      return;
    }

    std::vector<header> headers;
    const publish_options options = detail::incoming_options(msg, left, headers);

    try {
      (void)self.bus_.publish(subject, std::move(*value), options);
    } catch (const std::exception& ex) {  // topic_error: a subject that is not a valid topic
      self.counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::decode_error, subject, std::string("not delivered: ") + ex.what());
      return;
    }
    self.counters_.received.fetch_add(1, std::memory_order_relaxed);
  }

  Bus& bus_;
  nats_options options_;
  std::string id_;
  nats_problem_handler on_problem_;
  allowed_patterns allowed_;
  counters counters_;
  std::unique_ptr<nats_connection> conn_;
  mutable std::mutex mutex_;  // exports_ and importers_
  std::vector<std::unique_ptr<importer>> importers_;
  std::vector<subscription> exports_;
};

}  // namespace agentbus

#else  // no NATS client

namespace agentbus {

/// @brief Stands in for the NATS bridge when the NATS C client is missing: using it explains.
template <class Bus>
class nats_bridge {
  static_assert(sizeof(Bus) == 0,
                "agentbus: nats_bridge needs the NATS C client: install it (Debian: libnats-dev) and link the CMake "
                "target agentbus::nats, which CMake offers when pkg-config finds libnats");

 public:
  /// @brief Never usable (see the static_assert).
  template <class... Args>
  explicit nats_bridge(Bus&, Args&&...) {}
};

}  // namespace agentbus

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_NATS_HPP
