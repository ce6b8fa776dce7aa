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
//   // Request/reply across processes, with the in-process API on both sides:
//   client_bridge.export_requests<quote_request, quote>("pricing.>");   // in the requesting process
//   server_bridge.import_requests<quote_request, quote>("pricing.>");   // in the serving process
//   auto q = agentbus::request<quote>(bus, "pricing.quote", quote_request{"ACME"}, 50ms).get();
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
// - Delayed events (publish_options::delay, on an exporting bus that stores events) go out at
//   once with their due time (agentbus-not-before). An importing bus that stores events stores
//   one with the time it still has to wait, so its durable consumers take it when due (live
//   subscriptions never see it, as in process); a bus that stores nothing cannot hold it:
//   counted (not_stored) and reported, not delivered. One already due is delivered at once.
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
//   every export that cannot be sent is counted in stats().dropped and reported. Exports
//   published while the connection is down wait in the client's reconnect buffer
//   (stats().buffered): sent when it reconnects, dropped and reported when it gives up. Core
//   NATS is at most once: what was on the wire when the server went away is lost uncounted.
// - Requests: export_requests sends this bus's requests out with a reply subject on the
//   bridge's inbox (_INBOX.<bridge id>.<n>); import_requests answers NATS requests with this
//   bus's servers (agentbus::serve) and sends the reply, or the request_errc that ended the
//   local request, back (the headers Agentbus-Error and Agentbus-Error-Detail). NATS's own
//   no-responders status becomes no_responders. Requests and replies use a second connection
//   that sends at once; bulk publishes stay batched on the first. A request's deadline crosses
//   as Agentbus-Deadline (its event's TTL, else nats_request_options::timeout), so the serving
//   process gives up when the requester does.
// - Lifetime: destroy the bridge before the bus. The destructor ends the exports (waiting for
//   a send in progress), ends the requests still waiting for a reply with cancelled, then the
//   imports (waiting for a delivery in progress), then closes the connections (a reply to an
//   imported request that comes later is not sent, and counted in replies_not_sent).
//   Call export_type / import_type / export_requests / import_requests from one thread at a
//   time (any thread).

#include "agentbus/transport/nats.hpp"
#include "agentbus/bridge/detail/envelope.hpp"
#include "agentbus/bridge/detail/requests.hpp"
#include "agentbus/bridge/detail/signing.hpp"
#include "agentbus/detail/chrono.hpp"

#if AGENTBUS_HAS_NATS

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "agentbus/bus/detail/bus_access.hpp"
#include "agentbus/bus/options.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/unpredictable.hpp"
#include "agentbus/reply/request.hpp"
#include "agentbus/reply/serve.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/codec.hpp"
#include "agentbus/storage/upcast.hpp"

namespace agentbus {

/// @brief The bridge's counters (a snapshot).
struct nats_bridge_stats {
  std::uint64_t sent = 0;               ///< local events sent to NATS
  std::uint64_t received = 0;           ///< NATS messages published on the local bus
  std::uint64_t dropped = 0;            ///< local events that could not be sent (buffer full, closed, or lost in the reconnect buffer)
  std::uint64_t buffered = 0;           ///< local events accepted while the connection was down, waiting in the client's reconnect buffer
  std::uint64_t dropped_incoming = 0;   ///< NATS messages the client dropped before delivery (slow consumer)
  std::uint64_t decode_errors = 0;      ///< NATS messages not delivered: bytes that do not decode, or a bad topic
  std::uint64_t schema_mismatches = 0;  ///< NATS messages not delivered: another schema name, version or fingerprint
  std::uint64_t upcast = 0;             ///< NATS messages of an older schema version converted by an upcaster
  std::uint64_t signature_failures = 0; ///< NATS messages rejected: missing or bad Agentbus-Signature (signing_key set)
  std::uint64_t expired = 0;            ///< NATS messages not delivered: their deadline had passed
  std::uint64_t delayed = 0;            ///< delayed events (agentbus-not-before still ahead) stored on the local bus to be handed out when due
  std::uint64_t not_stored = 0;         ///< delayed events not delivered: the local bus stores nothing that could hold them
  std::uint64_t not_sent_back = 0;      ///< local events that came in through a bridge, so not sent out again
  std::uint64_t own_ignored = 0;        ///< NATS messages sent by this bridge itself, ignored
  std::uint64_t reserved_skipped = 0;   ///< events on `$` topics that a wildcard matched, not bridged
  std::uint64_t requests_sent = 0;      ///< local requests sent to NATS (export_requests)
  std::uint64_t replies_received = 0;   ///< replies (or remote errors) from NATS handed to local requesters
  std::uint64_t late_replies = 0;       ///< replies from NATS for requests that had timed out or were answered already
  std::uint64_t requests_timed_out = 0; ///< requests sent that got no reply from NATS before their deadline
  std::size_t requests_waiting = 0;     ///< requests sent and waiting for their reply now
  std::uint64_t requests_received = 0;  ///< NATS requests handed to local servers (import_requests)
  std::uint64_t replies_sent = 0;       ///< replies (or errors) sent back for them (counted once the client took
                                        ///< one: the requester may see it a moment earlier)
  std::uint64_t replies_not_sent = 0;   ///< replies that could not be sent (connection lost, bridge destroyed)
  bool connected = false;               ///< the connection is up (false while reconnecting or once closed)
};

/// @brief How requests cross (nats_bridge::export_requests and import_requests).
struct nats_request_options {
  /// How long a request may wait for its reply through NATS when its event has no deadline
  /// (publish_options::ttl of request_options::publish): export_requests sends it as the
  /// request's deadline, and fails the local request with timeout when no reply came by then;
  /// import_requests uses it for the local request when a message carries no deadline. Keep it
  /// at least as long as the timeouts requesters pass to request(). (A request on a clock of
  /// its own, request_options::clock, is timed out by the bridge at its next send, reply or
  /// stats() after that deadline, not at once.)
  std::chrono::milliseconds timeout{30000};
  /// import_requests: the NATS queue group; servers in several processes that import the same
  /// pattern with the same group share the requests (each request goes to one of them). Empty:
  /// every importing process gets every request (the first reply wins).
  std::string queue_group{};
};

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
  const std::uint64_t v = unpredictable_u64();
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
  /// reserved (`$`) pattern in the options or an incoming pending limit of 0, topic_error for an
  /// invalid pattern.
  nats_bridge(Bus& target, nats_options options, nats_problem_handler on_problem = {})
      : bus_(target),
        options_(std::move(options)),
        id_(detail::random_bridge_id()),
        on_problem_(on_problem ? std::move(on_problem) : options_.on_problem),
        allowed_(check_options(options_)),
        signer_(options_.signing_key),
        compression_(detail::payload_compression::from(options_.compress_above, options_.compress_level)),
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
    // Requests still waiting for a reply from NATS end now (the inbox goes with the connection).
    outstanding_.fail_all(request_errc::cancelled, "the NATS bridge that sent it was destroyed");
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
    if (link_) link_->cut();  // replies of imported requests still running publish nothing
    request_conn_.reset();
    // Exports still in the client's reconnect buffer go with the connection: counted as
    // dropped and reported, as when the client gives up reconnecting.
    settle_buffered(natsConnection_Status(conn_->get()), "when the bridge was destroyed (the server was unreachable)");
    conn_.reset();
  }

  /// @brief Local events of type T published on topics matching `pattern` go out to NATS.
  /// Throws std::invalid_argument for a reserved (`$`) pattern or one outside the options'
  /// `outgoing` list, topic_error for an invalid one.
  template <class T>
  void export_type(std::string_view pattern) {
    if constexpr (detail::require_codec<T>()) {
      check_pattern(pattern, allowed_.outgoing, "export_type");
      // Delayed events too, at once, with their agentbus-not-before header: an importing bus
      // that stores events holds them until due (see the top of this file).
      subscription sub = bus_.template subscribe<T>(pattern, [this](const event<T>& e) { send(e); },
                                                     subscribe_options{.delayed = true});
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
      subscribe_importer(std::move(imp), *conn_, pattern, {});
    }
  }

  /// @brief Requests of type Req made on this bus (agentbus::request / request_all) on topics
  /// matching `pattern` go out to NATS, and their replies of type Rep come back to the local
  /// requester: a process that imports them (import_requests) answers through its own servers.
  /// The local request API is unchanged: its timeout, cancel and callback form work as in
  /// process; no_responders (nothing in any process serves the subject), timeout and the remote
  /// server's errors (server_failed, abandoned, ...) come back as the same request_errc values,
  /// and a reply of another schema as wrong_type. The requests travel on a second connection
  /// that sends each message at once (send-asap; see NATS_NOTES), the replies on its inbox.
  /// A local server on the same pattern still answers locally (the first reply wins), and a
  /// request that came in through a bridge is not sent back out. Throws like export_type.
  template <class Req, class Rep>
  void export_requests(std::string_view pattern, nats_request_options request_options = {}) {
    if constexpr (detail::require_codec<Req>() && detail::require_codec<Rep>()) {
      check_pattern(pattern, allowed_.outgoing, "export_requests");
      open_request_channel();
      subscription sub = bus_.template subscribe<Req>(
          pattern, [this, timeout = request_options.timeout](const event<Req>& e) { forward_request<Req, Rep>(e, timeout); });
      std::lock_guard lock(mutex_);
      exports_.push_back(std::move(sub));
    }
  }

  /// @brief NATS requests on subjects matching `pattern` (with a reply subject) are answered by
  /// this bus's servers (agentbus::serve<Req, Rep>): each comes in as a local request of type
  /// Req (checked like import_type), on the client's delivery thread, with the time left to its
  /// deadline as its timeout, and its reply (or why there is none, as a request_errc name) goes
  /// back to the requester's reply subject. A NATS message without a reply subject is delivered
  /// as an ordinary event. A request whose schema is not Req's is answered with wrong_type.
  /// Throws like import_type.
  template <class Req, class Rep>
  void import_requests(std::string_view pattern, nats_request_options request_options = {}) {
    if constexpr (detail::require_codec<Req>() && detail::require_codec<Rep>()) {
      check_pattern(pattern, allowed_.incoming, "import_requests");
      open_request_channel();
      auto imp = std::make_unique<importer>();
      imp->bridge = this;
      imp->handle = &nats_bridge::receive_request<Req, Rep>;
      imp->timeout = request_options.timeout;
      subscribe_importer(std::move(imp), *request_conn_, pattern, request_options.queue_group);
    }
  }

  /// @brief Registers `convert`, which turns the codec bytes of T's schema version
  /// `from_version` into a T (`T convert(byte_reader&)`), for imports of T (import_type,
  /// import_requests) from processes that still send that version — as the journal's upcasters
  /// do for old records. Without one, another version is a schema mismatch. Any thread, any time.
  template <class T, class F>
  void upcast(std::uint32_t from_version, F convert) {
    upcasters_.add<T>(from_version, std::move(convert));
  }

  /// @brief A snapshot of the counters.
  nats_bridge_stats stats() const {
    nats_bridge_stats s;
    settle_buffered(natsConnection_Status(conn_->get()));
    s.sent = counters_.sent.load(std::memory_order_relaxed);
    s.buffered = counters_.buffered.load(std::memory_order_relaxed);
    s.received = counters_.received.load(std::memory_order_relaxed);
    s.dropped = counters_.dropped.load(std::memory_order_relaxed);
    s.decode_errors = counters_.decode_errors.load(std::memory_order_relaxed);
    s.schema_mismatches = counters_.schema_mismatches.load(std::memory_order_relaxed);
    s.expired = counters_.expired.load(std::memory_order_relaxed);
    s.delayed = counters_.delayed.load(std::memory_order_relaxed);
    s.not_stored = counters_.not_stored.load(std::memory_order_relaxed);
    s.not_sent_back = counters_.not_sent_back.load(std::memory_order_relaxed);
    s.own_ignored = counters_.own_ignored.load(std::memory_order_relaxed);
    s.reserved_skipped = counters_.reserved_skipped.load(std::memory_order_relaxed);
    s.upcast = counters_.upcast.load(std::memory_order_relaxed);
    s.signature_failures = counters_.signature_failures.load(std::memory_order_relaxed);
    s.requests_sent = counters_.requests_sent.load(std::memory_order_relaxed);
    s.replies_received = counters_.replies_received.load(std::memory_order_relaxed);
    s.late_replies = counters_.late_replies.load(std::memory_order_relaxed);
    try {
      outstanding_.expire_due();  // so that the counts below are those of now
    } catch (...) {
    }
    s.requests_timed_out = outstanding_.timed_out();
    s.requests_waiting = outstanding_.size();
    s.requests_received = counters_.requests_received.load(std::memory_order_relaxed);
    s.replies_sent = link_ ? link_->sent.load(std::memory_order_relaxed) : 0;
    s.replies_not_sent = link_ ? link_->not_sent.load(std::memory_order_relaxed) : 0;
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
    void (*handle)(nats_bridge&, const importer&, natsMsg*) = nullptr;
    natsSubscription* sub = nullptr;
    std::chrono::milliseconds timeout{0};  // import_requests: the local request's timeout without a deadline
    std::mutex mutex;
    std::condition_variable cv;
    bool complete = false;
  };

  struct counters {
    std::atomic<std::uint64_t> sent{0}, received{0}, dropped{0}, decode_errors{0}, schema_mismatches{0}, expired{0},
        not_sent_back{0}, own_ignored{0}, reserved_skipped{0}, requests_sent{0}, replies_received{0}, late_replies{0},
        requests_received{0}, upcast{0}, buffered{0}, signature_failures{0}, delayed{0}, not_stored{0};
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
    if (is_reserved_topic(pattern))
      refuse(call, pattern,
             "topics starting with '$' are reserved (NATS system subjects such as $SYS and $JS, agentbus's own "
             "reserved topics) and are never bridged");
    (void)topic_pattern(pattern);  // topic_error when invalid
  }

  // Before connecting: what the options say that cannot work.
  static allowed_patterns check_options(const nats_options& options) {
    if (options.incoming_pending_messages == 0 || options.incoming_pending_bytes == 0)
      throw std::invalid_argument(
          "agentbus: nats bridge: nats_options::incoming_pending_messages and incoming_pending_bytes cannot be 0 "
          "(every import would drop everything): give a limit, or -1 for none");
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

  void report(nats_problem_kind kind, std::string_view topic, std::string_view what) const noexcept {
    if (!on_problem_) return;
    try {
      on_problem_(nats_bridge_problem{kind, topic, what});
    } catch (...) {  // a problem handler must not throw: ignored
    }
  }

  // Publishes accepted while the connection was down wait in the client's reconnect buffer:
  // they count as sent once the client reconnected after they were buffered (it sends that
  // buffer first on reconnecting: seen as a connected status, or as a reconnect count past
  // the one when they were buffered, should the connection be down again by now), as dropped
  // (and reported) once the client gave up and closed it without reconnecting. `losing`: the
  // buffer is lost whatever the status but connected (the bridge is going), and the report
  // says when.
  void settle_buffered(natsConnStatus status, const char* losing = nullptr) const noexcept {
    if (counters_.buffered.load(std::memory_order_relaxed) == 0) return;
    std::lock_guard lock(buffer_mutex_);
    if (status == NATS_CONN_STATUS_CONNECTED || reconnects() != buffered_since_reconnects_) {
      counters_.sent.fetch_add(counters_.buffered.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    } else if (status == NATS_CONN_STATUS_CLOSED || losing != nullptr) {
      const auto lost = counters_.buffered.exchange(0, std::memory_order_relaxed);
      if (lost == 0) return;
      counters_.dropped.fetch_add(lost, std::memory_order_relaxed);
      try {
        report(nats_problem_kind::send_failed, "",
               std::to_string(lost) + " event(s) sent while the connection was down were in the client's reconnect "
                                      "buffer " + (losing != nullptr ? losing : "when it gave up reconnecting") +
                   ": not delivered to the server");
      } catch (...) {  // the text could not be allocated: counted all the same
      }
    }
  }

  // How many times the client has reconnected (0 when it cannot say).
  std::uint64_t reconnects() const noexcept {
    natsStatistics* st = nullptr;
    if (natsStatistics_Create(&st) != NATS_OK) return 0;
    std::uint64_t in_msgs = 0, in_bytes = 0, out_msgs = 0, out_bytes = 0, count = 0;
    if (natsConnection_GetStats(conn_->get(), st) == NATS_OK)
      (void)natsStatistics_GetCounts(st, &in_msgs, &in_bytes, &out_msgs, &out_bytes, &count);
    natsStatistics_Destroy(st);
    return count;
  }

  // Export: runs inside the local publish (a synchronous subscription's handler).
  template <class T>
  void send(const event<T>& e) noexcept {
    const std::string_view topic = e.topic();
    if (is_reserved_topic(topic)) {
      counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (e.header_value(nats_header::origin)) {
      counters_.not_sent_back.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    try {
      thread_local byte_writer writer;
      auto msg = detail::encode_payload(e.payload(), std::string(topic), writer, nullptr, compression_);
      // Signing reads the headers back from the message: one header per add (the packed
      // block, faster, is one entry there).
      natsStatus s = signer_.enabled() ? detail::add_envelope_headers_one_by_one(msg, e, id_)
                                       : detail::add_envelope_headers(msg, e, id_);
      if (s == NATS_OK) s = signer_.sign(msg);
      const natsConnStatus status = natsConnection_Status(conn_->get());
      settle_buffered(status);
      // Down: the reconnects so far, read before the publish (a reconnect after it sends it).
      const std::uint64_t before = status == NATS_CONN_STATUS_CONNECTED ? 0 : reconnects();
      if (s == NATS_OK) s = natsConnection_PublishMsg(conn_->get(), msg.get());
      if (s != NATS_OK) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        report(nats_problem_kind::send_failed, topic, "not sent: " + detail::nats_status_text(s));
        return;
      }
      if (status == NATS_CONN_STATUS_CONNECTED) {
        counters_.sent.fetch_add(1, std::memory_order_relaxed);
      } else {
        std::lock_guard lock(buffer_mutex_);
        if (counters_.buffered.load(std::memory_order_relaxed) == 0) buffered_since_reconnects_ = before;
        counters_.buffered.fetch_add(1, std::memory_order_relaxed);
      }
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
      imp->handle(*imp->bridge, *imp, msg);
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
  static void receive(nats_bridge& self, const importer&, natsMsg* msg) {
    const char* subject_c = natsMsg_GetSubject(msg);
    const std::string_view subject = subject_c != nullptr ? subject_c : "";
    const char* origin = detail::nats_header_value(msg, nats_header::origin);
    if (origin != nullptr && self.id_ == origin) {
      self.counters_.own_ignored.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (is_reserved_topic(subject)) {
      self.counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!self.signature_ok(msg, subject)) return;

    // Deadline: the time left becomes the local TTL.
    const auto left = detail::time_left(msg);
    if (left && left->count() <= 0) {
      self.counters_.expired.fetch_add(1, std::memory_order_relaxed);
      const std::int64_t late_ms = -(left->count() / 1000000);  // divided first: -INT64_MIN overflows
      self.report(nats_problem_kind::expired, subject,
                  "not delivered: its deadline passed " + std::to_string(late_ms) + " ms before it arrived");
      return;
    }

    std::string refusal;
    std::optional<T> value = self.take_payload<T>(msg, subject, "not delivered", refusal);
    if (!value) return;

    std::vector<header> headers;
    publish_options options = detail::incoming_options(msg, left, headers);
    // A delayed event is stored here with the time it still has to wait, for this bus's
    // durable consumers to take when due, as in the bus it came from.
    if (const auto wait = detail::time_to_due(msg); wait > std::chrono::nanoseconds::zero()) {
      if constexpr (detail::bus_stores_events<Bus>) {  // it can wait in storage
        options.delay = std::chrono::duration_cast<deadline_clock::duration>(wait);
        self.counters_.delayed.fetch_add(1, std::memory_order_relaxed);
      } else {
        self.counters_.not_stored.fetch_add(1, std::memory_order_relaxed);
        self.report(nats_problem_kind::not_stored, subject,
                    "not delivered: a delayed event (agentbus-not-before) needs a bus that stores events to wait "
                    "on (storage::memory_ring<N> or storage::journal), and this one stores nothing");
        return;
      }
    }

    try {
      (void)self.bus_.publish(subject, std::move(*value), options);
    } catch (const std::exception& ex) {  // topic_error: a subject that is not a valid topic
      self.counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::decode_error, subject, std::string("not delivered: ") + ex.what());
      return;
    }
    self.counters_.received.fetch_add(1, std::memory_order_relaxed);
  }

  // True when `msg` carries a valid signature or signing is off; else counted and reported.
  bool signature_ok(natsMsg* msg, std::string_view subject) const {
    if (signer_.verify(msg)) return true;
    counters_.signature_failures.fetch_add(1, std::memory_order_relaxed);
    report(nats_problem_kind::bad_signature, subject,
           detail::nats_header_value(msg, nats_header::signature) == nullptr
               ? "not delivered: no Agentbus-Signature, and this bridge requires one (nats_options::signing_key)"
               : "not delivered: its Agentbus-Signature does not match its bytes under this bridge's key");
    return false;
  }

  // The payload of an incoming message as T, checked: T's schema name and, at T's version, its
  // codec fingerprint; another version is converted by its upcaster (upcast<T>) or refused.
  // Nothing when refused: counted, reported (`what` starts the report) and explained in
  // `refusal`.
  template <class T>
  std::optional<T> take_payload(natsMsg* msg, std::string_view subject, std::string_view what, std::string& refusal) {
    std::shared_ptr<const upcaster_registry::converter<T>> convert;
    if (!detail::schema_matches<T>(msg)) {
      const char* name = detail::nats_header_value(msg, nats_header::schema);
      std::uint32_t version = 0;
      const bool other_version = name != nullptr && event_traits<T>::name() == name &&
                                 detail::parse_number(detail::nats_header_value(msg, nats_header::schema_version),
                                                      version) &&
                                 version != event_traits<T>::version();
      if (other_version) convert = upcasters_.find<T>(version);
      if (!convert) {
        counters_.schema_mismatches.fetch_add(1, std::memory_order_relaxed);
        refusal = detail::schema_mismatch_text<T>(msg);
        if (const std::string_view lead = "not delivered: "; refusal.starts_with(lead)) refusal.erase(0, lead.size());
        if (other_version)
          refusal += " (no upcaster for version " + std::to_string(version) + ": nats_bridge::upcast<T>)";
        report(nats_problem_kind::schema_mismatch, subject, std::string(what) + ": " + refusal);
        return std::nullopt;
      }
    }
    try {
      if (!convert) return detail::decode_payload<T>(msg);
      thread_local std::vector<std::byte> scratch;
      byte_reader in(detail::codec_bytes(msg, scratch));
      std::optional<T> out((*convert)(in));
      counters_.upcast.fetch_add(1, std::memory_order_relaxed);
      return out;
    } catch (const std::exception& ex) {
      counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      refusal = std::string("the bytes do not decode: ") + ex.what();
      report(nats_problem_kind::decode_error, subject, std::string(what) + ": " + refusal);
      return std::nullopt;
    }
  }

  // Subscribes `imp` to `pattern` on `conn` (in `queue_group` when not empty); live on the
  // server when this returns; nats_error (and nothing kept) when it cannot.
  void subscribe_importer(std::unique_ptr<importer> imp, nats_connection& conn, std::string_view pattern,
                          const std::string& queue_group) {
    const std::string subject(pattern);
    natsStatus s = queue_group.empty()
                       ? natsConnection_Subscribe(&imp->sub, conn.get(), subject.c_str(), &on_message, imp.get())
                       : natsConnection_QueueSubscribe(&imp->sub, conn.get(), subject.c_str(), queue_group.c_str(),
                                                       &on_message, imp.get());
    if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(imp->sub, &on_complete, imp.get());
    if (s == NATS_OK)
      s = natsSubscription_SetPendingLimits(imp->sub, options_.incoming_pending_messages,
                                            options_.incoming_pending_bytes);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(conn.get(), options_.connect_timeout.count());
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
      detail::throw_nats("cannot subscribe to " + subject, conn.url(), s);
    }
    std::lock_guard lock(mutex_);
    importers_.push_back(std::move(imp));
  }

  // The request channel, on first use: a second connection that sends at once (requests and
  // replies are latency traffic; the first connection keeps batching bulk publishes), its
  // inbox subscription for the replies to exported requests, and the link imported requests
  // reply through.
  void open_request_channel() {
    if (request_conn_) return;
    nats_options request_options = options_;
    request_options.send_asap = true;
    if (!request_options.name.empty()) request_options.name += "/requests";
    auto conn = std::make_unique<nats_connection>(request_options, id_ + "/requests");
    auto link = std::make_shared<detail::reply_link>();
    link->connection = conn->get();
    link->origin = id_;
    link->signer = signer_;
    link->compression = compression_;
    inbox_prefix_ = "_INBOX." + id_ + ".";
    auto inbox = std::make_unique<importer>();
    inbox->bridge = this;
    inbox->handle = &nats_bridge::receive_reply;
    subscribe_importer(std::move(inbox), *conn, inbox_prefix_ + "*", {});
    link_ = std::move(link);
    request_conn_ = std::move(conn);
  }

  // export_requests: runs inside the local request's publish (a synchronous subscription).
  template <class Req, class Rep>
  void forward_request(const event<Req>& e, std::chrono::milliseconds timeout) noexcept {
    const std::string_view topic = e.topic();
    if (is_reserved_topic(topic)) {
      counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (e.header_value(nats_header::origin)) {  // it came in through a bridge: answered here or not at all
      counters_.not_sent_back.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    try {
      responder<Rep> answer(e.correlation_id());
      thread_local byte_writer writer;
      std::uint64_t token = 0;
      std::string reply;
      if (answer.pending()) {
        const auto deadline = e.deadline() ? *e.deadline() : deadline_clock::now() + timeout;
        // The request ends at the bridge's deadline if that comes first: a future (whose own
        // timeout only get() notices) goes on the steady clock's request timer, a request
        // already there (a callback's) has its deadline moved earlier. One on a clock of its
        // own (request_options::clock) keeps it: the bridge then times it out at the first
        // send, reply or stats() after its deadline.
        if (auto state = detail::reply_table::instance().find(e.correlation_id())) {
          auto& steady = detail::request_timer::of(nullptr);
          if (state->timer == nullptr) steady.arm(std::move(state), deadline);
          else if (state->timer == &steady) steady.advance(*state, deadline);
        }
        token = outstanding_.add(std::make_unique<detail::remote_waiter_of<Rep>>(std::move(answer)), deadline);
        reply = inbox_prefix_ + std::to_string(token);
      }
      // Not a request of this process (an event published on a request topic): it goes out
      // as an event, as serve() hands such events to its handler with a reply going nowhere.
      auto msg = detail::encode_payload(e.payload(), std::string(topic), writer, reply.empty() ? nullptr : reply.c_str(),
                                        compression_);
      natsStatus s = signer_.enabled() ? detail::add_envelope_headers_one_by_one(msg, e, id_)
                                       : detail::add_envelope_headers(msg, e, id_);
      if (s == NATS_OK && token != 0 && !e.deadline())
        s = msg.add_header(nats_header::deadline,
                           std::to_string(detail::unix_ns(std::chrono::system_clock::now()) +
                                          std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count())
                               .c_str());
      if (s == NATS_OK) s = signer_.sign(msg);
      if (s == NATS_OK) s = natsConnection_PublishMsg(request_conn_->get(), msg.get());
      if (s != NATS_OK) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        const std::string why = "not sent: " + detail::nats_status_text(s);
        if (token != 0)
          if (auto waiter = outstanding_.take(token)) waiter->fail(request_errc::no_responders, why);
        report(nats_problem_kind::send_failed, topic, why);
        return;
      }
      counters_.requests_sent.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& ex) {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
      report(nats_problem_kind::send_failed, topic, ex.what());
    } catch (...) {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
      report(nats_problem_kind::send_failed, topic, "not sent: unknown exception");
    }
  }

  // The inbox: a reply (or NATS's no-responders status) to an exported request.
  static void receive_reply(nats_bridge& self, const importer&, natsMsg* msg) {
    const char* subject_c = natsMsg_GetSubject(msg);
    const std::string_view subject = subject_c != nullptr ? subject_c : "";
    std::uint64_t token = 0;
    const std::string_view tail = subject.substr(std::min(subject.size(), self.inbox_prefix_.size()));
    const bool parsed =
        std::from_chars(tail.data(), tail.data() + tail.size(), token).ptr == tail.data() + tail.size() && token != 0;
    // A forged reply is ignored (the real one may still come), NATS's own no-responders
    // status is the server's and carries no signature.
    if (!natsMsg_IsNoResponders(msg) && !self.signature_ok(msg, subject)) return;
    auto waiter = parsed ? self.outstanding_.take(token) : nullptr;
    if (!waiter) {
      self.counters_.late_replies.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // A reply to a request that ended meanwhile (a server of this process answered first,
    // or it was cancelled) went nowhere: late too.
    (waiter->answer(msg) ? self.counters_.replies_received : self.counters_.late_replies)
        .fetch_add(1, std::memory_order_relaxed);
  }

  // import_requests: runs on the client's delivery thread for this import.
  template <class Req, class Rep>
  static void receive_request(nats_bridge& self, const importer& imp, natsMsg* msg) {
    const char* reply_c = natsMsg_GetReply(msg);
    if (reply_c == nullptr || *reply_c == '\0') {
      receive<Req>(self, imp, msg);  // not a request: an ordinary event
      return;
    }
    const char* subject_c = natsMsg_GetSubject(msg);
    const std::string_view subject = subject_c != nullptr ? subject_c : "";
    const std::string reply(reply_c);
    const char* origin = detail::nats_header_value(msg, nats_header::origin);
    if (origin != nullptr && self.id_ == origin) {
      self.counters_.own_ignored.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto answer_error = [&](request_errc code, const std::string& what) {
      (void)detail::send_error_reply(*self.link_, reply, code, what);
    };
    if (is_reserved_topic(subject)) {
      self.counters_.reserved_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!self.signature_ok(msg, subject)) return;  // no reply: the sender is not known to be a peer
    const auto left = detail::time_left(msg);
    if (left && left->count() <= 0) {
      self.counters_.expired.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::expired, subject, "request not served: its deadline passed before it arrived");
      answer_error(request_errc::timeout, "the request's deadline passed before it reached the server");
      return;
    }
    std::string refusal;
    std::optional<Req> value = self.take_payload<Req>(msg, subject, "request not served", refusal);
    if (!value) {
      answer_error(request_errc::wrong_type, "at the server: " + refusal);
      return;
    }
    std::vector<header> headers;
    request_options local;
    local.publish = detail::incoming_options(msg, std::nullopt, headers);
    const auto timeout = left ? std::chrono::duration_cast<deadline_clock::duration>(*left)
                              : std::chrono::duration_cast<deadline_clock::duration>(imp.timeout);
    self.counters_.requests_received.fetch_add(1, std::memory_order_relaxed);
    try {
      agentbus::request<Rep>(self.bus_, subject, std::move(*value), timeout, local,
                             [link = self.link_, reply](reply_result<Rep> r) {
                               if (r)
                                 (void)detail::send_value_reply(*link, reply, *r);
                               else
                                 (void)detail::send_error_reply(*link, reply, r.error().code(),
                                                                detail::request_error_detail(r.error()));
                             })
          .detach();
    } catch (const std::exception& ex) {  // topic_error: a subject that is not a valid topic
      self.counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      self.report(nats_problem_kind::decode_error, subject, std::string("request not served: ") + ex.what());
      answer_error(request_errc::no_responders, std::string("not a valid topic here: ") + ex.what());
    }
  }

  Bus& bus_;
  nats_options options_;
  std::string id_;
  nats_problem_handler on_problem_;
  allowed_patterns allowed_;
  detail::message_signer signer_;  // nats_options::signing_key
  detail::payload_compression compression_;  // nats_options::compress_above
  mutable counters counters_;  // stats() settles what the reconnect buffer held
  mutable std::mutex buffer_mutex_;                     // the buffered count's settling (the connection down)
  mutable std::uint64_t buffered_since_reconnects_ = 0;  // the client's reconnects when the first of them was buffered
  std::unique_ptr<nats_connection> conn_;
  std::unique_ptr<nats_connection> request_conn_;  // requests and replies (send-asap), opened on first use
  std::shared_ptr<detail::reply_link> link_;       // imported requests reply through it
  std::string inbox_prefix_;                       // "_INBOX.<id>." : replies to exported requests
  mutable detail::outstanding_requests outstanding_;  // exported requests waiting for their reply (stats() expires)
  upcaster_registry upcasters_;                    // for imports of older schema versions
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
