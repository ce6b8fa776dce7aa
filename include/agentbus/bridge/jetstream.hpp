// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_BRIDGE_JETSTREAM_HPP
#define AGENTBUS_BRIDGE_JETSTREAM_HPP

/// @file
/// @brief The durable path through NATS JetStream: streams, durable publishing with server
/// acknowledgements and deduplication, durable consumers and consumer groups (link agentbus::nats).

// The durable path through NATS JetStream: events stored by a nats-server (file storage), and
// durable consumers and groups that survive a restart of the process and of the server. Not in
// the umbrella header: it needs the NATS C client (link agentbus::nats), like bridge/nats.hpp.
//
//   agentbus::jetstream_client js({.url = "nats://127.0.0.1:4222"});
//   js.ensure_stream({.name = "ORDERS", .subjects = {"orders.>"}});
//   js.ensure_stream({.name = "DEAD_LETTERS", .subjects = {"$dlq.>"}});      // where dead letters go
//
//   agentbus::jetstream_publisher out(bus, js);
//   out.export_type<order>("orders.>");          // local publishes of `order` on orders.> are stored
//   ...
//   out.wait_acknowledged(std::chrono::seconds(5));   // everything sent is acknowledged (or counted failed)
//
//   agentbus::jetstream_consumer<order> billing(js, "ORDERS", "billing", "orders.>", {.max_deliver = 5});
//   billing.poll_for([](const agentbus::delivered<order>& d) -> agentbus::outcome {
//     if (!charge(d.payload())) return agentbus::outcome::nack("card declined");   // redelivered later
//     return agentbus::outcome::ack();
//   }, std::chrono::seconds(1));
//
// Streams (jetstream_client::ensure_stream): a stream of file storage on a set of topic patterns
// (NATS subjects), with a duplicate window and an optional maximum age. Idempotent: a stream that
// exists with the same subjects, storage, window and age is left as it is; one that exists
// otherwise, or whose subjects overlap another stream's, is a jetstream_error saying what differs.
//
// Publishing (jetstream_publisher): export_type<T>(pattern) is an ordinary synchronous
// subscription on the bus (a bus without it is unchanged), like nats_bridge::export_type; the
// explicit form publish(event) stores an event you hold. Each event goes out asynchronously
// (js_PublishMsgAsync) on the publishing thread, inside bus.publish(), with the envelope of
// bridge/detail/envelope.hpp as NATS headers and `Nats-Msg-Id` (nats_header::msg_id) so that the
// server stores it once inside the stream's duplicate window: the event's idempotency key (the
// header agentbus-msg-id, storage/dedup.hpp) when it has one, else `<origin>:<event id>` (the
// publisher's origin id, unique per publisher, and the bus's event id). What happens to each
// publish is counted (stats()) and reported (jetstream_publisher_options::on_result), never lost
// silently: acknowledged (stored, or a duplicate the stream already had), or failed — refused at
// once (not connected and the reconnect buffer full, too many unacknowledged: stall_wait), an
// error from the server (no stream on that subject, a wrong expected stream), no acknowledgement
// within ack_timeout (a server lost mid-publish), or still unacknowledged when the publisher is
// destroyed. stats().sent == acknowledged + failed + pending at every moment. A failed publish
// may still have been stored (its acknowledgement was what got lost): publishing it again with
// the same msg id is safe inside the window. wait_acknowledged(timeout) waits until nothing is
// pending (js_PublishAsyncComplete). Events that came in from NATS (they carry Agentbus-Origin:
// imported by a nats_bridge) are not stored again (counted in not_sent_back), and topics starting
// with `$` are never exported (reserved_skipped), as in the core bridge.
//
// Consuming (jetstream_consumer<T>, jetstream_group<T> and its jetstream_member<T>): a durable
// JetStream pull consumer with explicit acks, created with js_AddConsumer (a durable that
// js_PullSubscribe creates itself is deleted when the subscription ends); each member sends its
// own pull requests for it, answered to the member's own inbox (the pull protocol is spoken here,
// not through natsSubscription_Fetch, which overruns its message array in cnats 3.4.1 when late
// deliveries are queued); a jetstream_consumer is a group of one member. The handler
// contract is the in-process module's (consumer/durable.hpp, consumer/group.hpp): a handler takes
// `const delivered<T>&` and returns agentbus::outcome (ack, nack, nack_after, term) or void (ack;
// a throw is a nack with the exception's text as the reason); delivered::defer() gives an
// ack_token that settles later from any thread. poll(handler, max) and poll_for(handler, timeout,
// max) run the handler on the caller's thread. delivered::offset() is the stream sequence;
// attempt() is JetStream's delivery count (across restarts of everything).
//   consumer_options map to the consumer's configuration:
//   - ack_wait → AckWait: a delivery not settled by then is redelivered by the server (at once:
//     JetStream's BackOff list would need a finite MaxDeliver, see below, so an ack timeout gets
//     no backoff here, unlike the in-process consumer);
//   - backoff → a nack (or throw) without its own delay is a NAK with the backoff's delay for that
//     attempt (jitter included); nack_after(d) is a NAK with delay d;
//   - max_deliver → enforced by this consumer, not by the server (MaxDeliver stays unlimited):
//     JetStream stops delivering an event at MaxDeliver and keeps it, so a last attempt lost to
//     ack_wait could never be dead-lettered. The failed attempt number max_deliver, or a delivery
//     numbered above it (the last attempt was not settled in time), is dead-lettered instead;
//   - max_ack_pending → MaxAckPending (0: 2^30, as good as none; the server would take 0 as 1000);
//   - start → DeliverPolicy (all, new only, by start sequence, by start time), fixed when the
//     durable is created, as the in-process cursor's start;
//   - dead_letter_prefix → the dead-letter subject; directory, sync and clock do not apply (the
//     server keeps the cursor; timeouts are the server's and the steady clock's).
//   A durable that exists is resumed (info().resumed): one with another pattern or event type is a
//   std::invalid_argument, as in process; ack_wait and max_ack_pending are updated to the options'.
//
// Dead letters go to the JetStream subject `<dead_letter_prefix>.<original topic>` (default
// `$dlq.<topic>`), not to the local bus. Why: a durable consumer here survives restarts of the
// process and of the server, so its dead letters must too; a local `$dlq.<topic>` publish would
// last only as long as this process's bus, and a consumer needs no bus at all. On JetStream the
// dead letter is stored next to the events, visible to every process, and replayable by a
// jetstream_consumer of `$dlq.<pattern>`; and the event is terminated only after the server
// acknowledged its dead letter, so a crash in between dead-letters it twice (deduplicated by its
// Nats-Msg-Id `agentbus-dlq:<stream>:<consumer>:<sequence>` inside the window), never loses it.
// A stream must capture those subjects (ensure_stream with `$dlq.>`): when none does, the dead
// letter fails, is counted (dead_letter_failures) and reported, and the event is retried after
// the backoff. A consumer whose own pattern matches its dead-letter subject (one reading `$dlq.>`
// itself) terminates such an event without a dead letter, counted in dead_letter_failures and
// reported: its dead letter would come back to it. A dead letter carries the original payload
// bytes and headers plus the headers of consumer/dead_letters.hpp: agentbus-dlq-reason
// ("max_deliver: <n> attempts, the last: <why>", "term: <why>", "schema_mismatch: <what>",
// "decode_error: <what>"), agentbus-dlq-attempts, agentbus-dlq-consumer, agentbus-dlq-offset (the
// stream sequence) and agentbus-dlq-topic.
//
// Schema checks, as in the bridge: a message whose schema name, version or codec fingerprint is
// not T's, or whose bytes do not decode, is never handed to the handler: it is counted
// (schema_mismatches, decode_errors), reported (on_problem) and dead-lettered at once (not
// terminated: the bytes stay readable, a consumer of the right type can replay them). An event
// whose deadline has passed is acked without delivery and counted (expired). A message on a `$`
// subject that the pattern reaches only through a wildcard is acked and skipped
// (reserved_skipped), as the in-process consumer never delivers `$` topics to a `>` pattern.
//
// What survives what:
//   - the process: streams, stored events and durables live in the server. A new consumer object
//     with the same stream and name resumes at the first unacknowledged event; deliveries the old
//     process had not settled come again after ack_wait with their delivery count. What lives
//     in the process is lost: unsettled ack tokens, the memory of recent settles (below);
//   - the server (file storage): an event the server acknowledged was written by it before the
//     acknowledgement and survives a kill of the server (not a power loss: nats-server syncs to
//     disk every two minutes by default, its sync_interval). The consumer's cursor survives too;
//     acks of the last moments before a SIGKILL may be lost, so those events come again
//     (duplicates, never loss). The client reconnects (nats_options::max_reconnect, reconnect_wait),
//     members' polls carry on (none sends a pull request while the connection is down; they count
//     fetch_errors and try again), publishes made meanwhile wait in the reconnect buffer
//     and are acknowledged or time out (ack_timeout) and counted;
//   - neither survives without file storage on the server (nats-server -js -sd DIR).
//
// Settling: a handler's returned ack is sent without waiting (at least once: a lost ack is a
// redelivery) unless jetstream_consumer_options::confirm_acks; an ack_token's ack waits until the
// server confirms it (retried while the connection comes back, up to confirm_timeout), so
// ack_status::accepted from a token means the server has the ack. Within one process a group
// settles each event once, as in process: the first settle of a delivery wins, a later one of the
// same event returns already; an ack of an older attempt is accepted while the event is unsettled
// (the work was done), a nack or term of it is stale; a redelivery of an event this process
// already acked or dead-lettered (an ack lost on the way) is settled again without a handler
// call (counted in repeated_settles). This memory holds the last remember_settled settles.
//
// Delayed events (publish_options::delay on the exporting bus, which must store events): the
// publisher sends them at once (its subscription asks for delayed events) with their due time in
// the header agentbus-not-before; JetStream stores them then. A consumer that reads one before it
// is due NAKs it with the time left, without a handler call, so it comes back when due; that
// wait is a delivery to the server but not an attempt: attempt() and max_deliver leave out the
// waits this process saw, and at least one for an event stored before it was due (the early
// read may have been another member's, in another process). An event stored early but first
// read after it was due (a consumer created later) may so get one attempt more than
// max_deliver across processes; within a process attempts never go back. Due order holds per
// consumer only as far as the server's redelivery timing.
//
// Not the same as in process: info().waiting and delayed are always 0 (the server does not say);
// first_delivery() is the first delivery this process saw; a member that
// leaves returns its deferred deliveries at once (a NAK), but messages its last fetch had not
// handed out yet come back only after ack_wait.
//
// Measured with nats-server 2.9.10 (Debian 12): when a redelivery falls due just as a waiting
// pull request expires, the server can hold that redelivery until ack_wait and deliver another
// unsettled event again with a delivery count of 1 (fixed in nats-server 2.10:
// nats-io/nats-server#5305 and #5338). Nothing is lost; within a process attempts never go back
// (a count that did counts as the next attempt); longer poll_for waits make expiries rarer.
//
// Thread safety: jetstream_client, its streams calls and info() from any thread. A publisher's
// export_type and publish from any thread (sends happen on the publishing thread; results are
// counted and reported on the client's threads). Each member (and a jetstream_consumer) polls
// from one thread at a time, members concurrently with each other; join and info from any
// thread; ack tokens from any thread. Handlers and callbacks must not throw into the client
// (callbacks' exceptions are swallowed) and should be short.
// Lifetime: the jetstream_client outlives its publishers, consumers, groups and members; the bus
// outlives its publishers. A publisher's destructor waits up to close_timeout for outstanding
// acknowledgements, then counts the rest as failed.

#include "agentbus/transport/nats.hpp"
#include "agentbus/bridge/detail/envelope.hpp"
#include "agentbus/bridge/detail/jetstream_wire.hpp"
#include "agentbus/bridge/nats.hpp"
#include "agentbus/detail/chrono.hpp"

#if AGENTBUS_HAS_NATS

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/bus/options.hpp"
#include "agentbus/bus/subscription.hpp"
#include "agentbus/consumer/delivered.hpp"
#include "agentbus/consumer/group.hpp"
#include "agentbus/consumer/options.hpp"
#include "agentbus/core/clock.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/router/topic.hpp"
#include "agentbus/storage/codec.hpp"
#include "agentbus/storage/dedup.hpp"

namespace agentbus {

/// @brief A JetStream call failed: the server refused it (code() is its JetStream error code,
/// such as 10058 "stream name already in use with a different configuration") or did not answer.
class jetstream_error : public nats_error {
 public:
  /// @brief An error with `what`, the client's status and the server's JetStream error code.
  jetstream_error(const std::string& what, int status, int code) : nats_error(what, status), code_(code) {}
  /// @brief The JetStream error code (0 when the server gave none).
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// @brief Settings of a jetstream_client beyond the connection's (nats_options).
struct jetstream_options {
  /// How long a JetStream API request (streams, consumers, info, dead letters) waits for the server.
  std::chrono::milliseconds api_timeout{5000};
};

/// @brief A stream to make sure of (jetstream_client::ensure_stream). File storage, limits retention.
struct jetstream_stream_options {
  std::string name{};                   ///< the stream's name: 1-128 characters of [A-Za-z0-9_-]
  std::vector<std::string> subjects{};  ///< the topic patterns it stores (NATS subjects; `$dlq.>` for dead letters)
  /// The server drops a publish whose Nats-Msg-Id it stored within this window (must be > 0).
  std::chrono::milliseconds duplicate_window = std::chrono::minutes(2);
  /// Events older than this are deleted; zero keeps them (until deleted otherwise).
  std::chrono::milliseconds max_age{0};
};

/// @brief What a stream holds (ensure_stream, stream_info).
struct jetstream_stream_info {
  std::string name;                             ///< the stream's name
  std::vector<std::string> subjects;            ///< its subjects, as the server has them
  std::chrono::milliseconds duplicate_window{};  ///< its duplicate window
  std::chrono::milliseconds max_age{};          ///< its maximum age (zero: none)
  std::uint64_t messages = 0;                   ///< events stored now
  std::uint64_t bytes = 0;                      ///< bytes stored now
  std::uint64_t first_sequence = 0;             ///< the oldest stored event's sequence
  std::uint64_t last_sequence = 0;              ///< the newest stored event's sequence
  std::uint64_t consumers = 0;                  ///< consumers the stream has
  bool file_storage = true;                     ///< stored in files (ensure_stream makes only such streams)
  bool created = false;                         ///< ensure_stream: true when this call created it
};

namespace detail {

inline std::chrono::milliseconds ns_to_ms(std::int64_t ns) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(ns));
}

inline jetstream_stream_info stream_info_of(const jsStreamInfo& si, bool created) {
  jetstream_stream_info out;
  if (si.Config != nullptr) {
    if (si.Config->Name != nullptr) out.name = si.Config->Name;
    for (int i = 0; i < si.Config->SubjectsLen; ++i) out.subjects.emplace_back(si.Config->Subjects[i]);
    out.duplicate_window = ns_to_ms(si.Config->Duplicates);
    out.max_age = ns_to_ms(si.Config->MaxAge);
    out.file_storage = si.Config->Storage == js_FileStorage;
  }
  out.messages = si.State.Msgs;
  out.bytes = si.State.Bytes;
  out.first_sequence = si.State.FirstSeq;
  out.last_sequence = si.State.LastSeq;
  out.consumers = si.State.Consumers > 0 ? static_cast<std::uint64_t>(si.State.Consumers) : 0;
  out.created = created;
  return out;
}

[[noreturn]] inline void throw_jetstream(std::string what, natsStatus s, int code) {
  what = "agentbus: jetstream: " + what + ": " + jetstream_status_text(s, code);
  throw jetstream_error(what, static_cast<int>(s), code);
}

inline std::string join_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& i : items) out += (out.size() > 1 ? ", " : "") + i;
  return out + "]";
}

}  // namespace detail

/// @brief A connection to a JetStream-enabled nats-server and its JetStream context: makes sure
/// of streams, and is what publishers and consumers use. Connects in the constructor. Not
/// copyable, not movable; thread safe. Destroy it after its publishers and consumers.
class jetstream_client {
 public:
  /// @brief Connects to `options.url` and checks that JetStream is enabled there. Throws
  /// nats_error when no server answers (see agentbus/transport/nats.hpp), jetstream_error when
  /// the server has no JetStream (start it with -js).
  explicit jetstream_client(nats_options options, jetstream_options js = {})
      : options_(std::move(options)), js_options_(js), id_(detail::random_bridge_id()) {
    conn_ = std::make_unique<nats_connection>(options_, id_);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::max<std::int64_t>(1, js_options_.api_timeout.count());
    natsStatus s = natsConnection_JetStream(&js_, conn_->get(), &jo);
    if (s != NATS_OK) detail::throw_nats("cannot make a JetStream context", conn_->url(), s);
    jsAccountInfo* ai = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    s = js_GetAccountInfo(&ai, js_, nullptr, &code);
    jsAccountInfo_Destroy(ai);
    if (s != NATS_OK) {
      const int c = static_cast<int>(code);
      jsCtx_Destroy(js_);
      js_ = nullptr;
      detail::throw_jetstream("JetStream is not available at " + conn_->url() +
                                  " (is the server started with -js and a store directory, -sd?)",
                              s, c);
    }
  }
  jetstream_client(const jetstream_client&) = delete;
  jetstream_client& operator=(const jetstream_client&) = delete;
  /// @brief Frees the JetStream context and closes the connection.
  ~jetstream_client() {
    jsCtx_Destroy(js_);
    conn_.reset();
  }

  /// @brief Makes sure the stream `options.name` exists with these subjects (file storage, the
  /// duplicate window, the maximum age): creates it when it does not exist; returns its state.
  /// Throws std::invalid_argument for a bad name, no subjects or a bad window, topic_error for
  /// an invalid subject pattern, jetstream_error when it exists with another configuration
  /// (what differs is in what()), when its subjects overlap another stream's, or when the server
  /// does not answer.
  jetstream_stream_info ensure_stream(const jetstream_stream_options& options) {
    check_stream_options(options);
    if (auto existing = lookup(options.name)) {
      check_same(options, *existing);
      return *existing;
    }
    std::vector<const char*> subjects;
    for (const auto& s : options.subjects) subjects.push_back(s.c_str());
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = options.name.c_str();
    cfg.Subjects = subjects.data();
    cfg.SubjectsLen = static_cast<int>(subjects.size());
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Replicas = 1;
    cfg.Duplicates = detail::to_ns(options.duplicate_window);
    cfg.MaxAge = detail::to_ns(options.max_age);
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &code);
    if (s == NATS_OK) {
      jetstream_stream_info info = detail::stream_info_of(*si, true);
      jsStreamInfo_Destroy(si);
      return info;
    }
    jsStreamInfo_Destroy(si);
    if (code == JSStreamNameExistErr) {  // created meanwhile by someone else: compare with theirs
      if (auto existing = lookup(options.name)) {
        check_same(options, *existing);
        return *existing;
      }
    }
    if (code == JSStreamSubjectOverlapErr)
      detail::throw_jetstream("cannot create stream " + options.name + " on " + detail::join_list(options.subjects) +
                                  ": its subjects overlap those of another stream (a subject is stored by one "
                                  "stream only)",
                              s, static_cast<int>(code));
    detail::throw_jetstream("cannot create stream " + options.name, s, static_cast<int>(code));
  }

  /// @brief The stream `name`'s state; nothing when it does not exist. jetstream_error when the
  /// server does not answer.
  std::optional<jetstream_stream_info> stream_info(const std::string& name) const { return lookup(name); }

  /// @brief Deletes the stream `name` with its events and consumers; false when there was none.
  bool delete_stream(const std::string& name) {
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_DeleteStream(js_, name.c_str(), nullptr, &code);
    if (s == NATS_OK) return true;
    if (code == JSStreamNotFoundErr) return false;
    detail::throw_jetstream("cannot delete stream " + name, s, static_cast<int>(code));
  }

  /// @brief Deletes the durable consumer `name` of `stream` (no member may be polling it): the
  /// next consumer of that name starts afresh. False when there was none.
  bool delete_consumer(const std::string& stream, const std::string& name) {
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_DeleteConsumer(js_, stream.c_str(), name.c_str(), nullptr, &code);
    if (s == NATS_OK) return true;
    if (code == JSConsumerNotFoundErr || code == JSStreamNotFoundErr) return false;
    detail::throw_jetstream("cannot delete consumer " + name + " of stream " + stream, s, static_cast<int>(code));
  }

  /// @brief The connection (connected(), flush(), the client's own handle).
  nats_connection& connection() noexcept { return *conn_; }
  /// @brief The connection (connected(), flush(), the client's own handle).
  const nats_connection& connection() const noexcept { return *conn_; }
  /// @brief The client's JetStream context (for calls this wrapper does not offer).
  jsCtx* context() const noexcept { return js_; }
  /// @brief The settings it was made with.
  const jetstream_options& options() const noexcept { return js_options_; }
  /// @brief A unique id of this client (its connection's name unless nats_options::name is set).
  const std::string& id() const noexcept { return id_; }

 private:
  static void check_stream_options(const jetstream_stream_options& o) {
    if (!detail::valid_jetstream_name(o.name))
      throw std::invalid_argument("agentbus: jetstream: stream name '" + o.name +
                                  "' is not valid: use 1-128 characters of [A-Za-z0-9_-]");
    if (o.subjects.empty())
      throw std::invalid_argument("agentbus: jetstream: stream " + o.name + ": no subjects (topic patterns) given");
    for (const auto& s : o.subjects) (void)topic_pattern(s);  // topic_error when invalid
    if (o.duplicate_window.count() <= 0)
      throw std::invalid_argument("agentbus: jetstream: stream " + o.name +
                                  ": duplicate_window must be positive (the server would pick its own)");
    if (o.max_age.count() < 0)
      throw std::invalid_argument("agentbus: jetstream: stream " + o.name + ": max_age must not be negative");
    if (o.max_age.count() > 0 && o.duplicate_window > o.max_age)
      throw std::invalid_argument("agentbus: jetstream: stream " + o.name +
                                  ": duplicate_window must not be longer than max_age");
  }

  std::optional<jetstream_stream_info> lookup(const std::string& name) const {
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &code);
    if (s == NATS_OK) {
      jetstream_stream_info info = detail::stream_info_of(*si, false);
      jsStreamInfo_Destroy(si);
      return info;
    }
    jsStreamInfo_Destroy(si);
    if (code == JSStreamNotFoundErr) return std::nullopt;
    detail::throw_jetstream("cannot read stream " + name, s, static_cast<int>(code));
  }

  static void check_same(const jetstream_stream_options& want, const jetstream_stream_info& have) {
    std::string diff;
    auto a = want.subjects, b = have.subjects;
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) diff += "subjects " + detail::join_list(have.subjects) + " (wanted " + detail::join_list(a) + ")";
    auto add = [&diff](const std::string& part) { diff += (diff.empty() ? "" : ", ") + part; };
    if (!have.file_storage) add("memory storage (wanted file storage)");
    if (have.max_age != want.max_age) {
      add("max_age " + std::to_string(have.max_age.count()) + " ms (wanted " + std::to_string(want.max_age.count()) +
          " ms)");
    }
    if (have.duplicate_window != want.duplicate_window)
      add("duplicate_window " + std::to_string(have.duplicate_window.count()) + " ms (wanted " +
          std::to_string(want.duplicate_window.count()) + " ms)");
    if (!diff.empty())
      throw jetstream_error("agentbus: jetstream: stream " + want.name + " exists with another configuration: " + diff +
                                "; use another name, or delete_stream() it first",
                            0, JSStreamNameExistErr);
  }

  nats_options options_;
  jetstream_options js_options_;
  std::string id_;
  std::unique_ptr<nats_connection> conn_;
  jsCtx* js_ = nullptr;
};

// ------------------------------------------------------------------------------------------
// Publishing

/// @brief What became of one publish (jetstream_publisher_options::on_result). The views live
/// for the call only.
struct jetstream_publish_result {
  std::string_view topic;     ///< the event's topic (the subject)
  std::string_view msg_id;    ///< its Nats-Msg-Id
  bool acknowledged = false;  ///< the server has it (stored now, or a duplicate it had stored)
  bool duplicate = false;     ///< acknowledged as a duplicate: its msg id was in the stream's window
  std::uint64_t sequence = 0;  ///< acknowledged: its stream sequence (the first one's, for a duplicate)
  std::string_view stream;     ///< acknowledged: the stream that stored it
  std::string_view error;      ///< not acknowledged: why (the client's or the server's reason)
};

/// @brief Receives each publish's result, on the thread that learned it (the publishing thread
/// for a publish refused at once, else one of the client's): keep it short; exceptions are ignored.
using jetstream_result_handler = std::function<void(const jetstream_publish_result&)>;

/// @brief Settings of a jetstream_publisher.
struct jetstream_publisher_options {
  /// The id in the msg ids of events without an idempotency key (`<origin>:<event id>`); empty:
  /// a random one per publisher. Give a stable one only if event ids cannot repeat under it.
  std::string origin{};
  /// When set, only this stream may acknowledge (Nats-Expected-Stream): a publish that another
  /// stream would store fails instead.
  std::string stream{};
  /// A publish not acknowledged within this time counts as failed (its message may still have
  /// been stored; see the top of this header).
  std::chrono::milliseconds ack_timeout{5000};
  /// Unacknowledged publishes at most; a publish beyond waits up to stall_wait, then fails.
  std::int64_t max_pending = 10000;
  /// How long a publish (inside bus.publish) waits for room below max_pending.
  std::chrono::milliseconds stall_wait{50};
  /// How long the destructor waits for outstanding acknowledgements before counting them failed.
  std::chrono::milliseconds close_timeout{2000};
  /// Every publish's result (acknowledged or not), counted or not; empty: none.
  jetstream_result_handler on_result{};
};

/// @brief A publisher's counters (a snapshot): sent == acknowledged + failed + pending.
struct jetstream_publisher_stats {
  std::uint64_t sent = 0;              ///< publishes handed to the client (export_type and publish)
  std::uint64_t acknowledged = 0;      ///< of those, acknowledged by the server
  std::uint64_t duplicates = 0;        ///< of the acknowledged, duplicates (stored once, earlier)
  std::uint64_t failed = 0;            ///< of those, not acknowledged: refused, an error, no ack in time, closed
  std::uint64_t pending = 0;           ///< of those, waiting for their acknowledgement
  std::uint64_t not_sent_back = 0;     ///< events that came in from NATS (Agentbus-Origin): not stored again
  std::uint64_t reserved_skipped = 0;  ///< events on `$` topics a wildcard matched: never exported
  bool connected = false;              ///< the connection is up now
};

namespace detail {

/// What a publisher's async-ack callback reaches (through callback_registry): counters and the
/// result handler, alive while a callback may still come.
struct jetstream_publish_state {
  std::mutex mutex;  // held while a result is counted and reported; `open` false: reported no more
  bool open = true;
  std::atomic<std::uint64_t> sent{0}, acknowledged{0}, duplicates{0}, failed{0};
  jetstream_result_handler on_result;

  void report(const jetstream_publish_result& r) noexcept {
    if (!on_result) return;
    try {
      on_result(r);
    } catch (...) {  // a result handler must not throw: ignored
    }
  }
  void record_failure(std::string_view topic, std::string_view msg_id, std::string_view why) {
    std::lock_guard lock(mutex);
    failed.fetch_add(1, std::memory_order_relaxed);
    if (!open) return;
    jetstream_publish_result r;
    r.topic = topic;
    r.msg_id = msg_id;
    r.error = why;
    report(r);
  }
};

using publish_registry = callback_registry<jetstream_publish_state>;

// The client calls this for each async publish: acknowledged, refused by the server, or timed out.
inline void on_publish_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept {
  try {
    if (auto state = publish_registry::instance().find(reinterpret_cast<std::uintptr_t>(closure))) {
      const char* subject = msg != nullptr ? natsMsg_GetSubject(msg) : nullptr;
      const char* id = msg != nullptr ? nats_header_value(msg, nats_header::msg_id) : nullptr;
      jetstream_publish_result r;
      r.topic = subject != nullptr ? subject : "";
      r.msg_id = id != nullptr ? id : "";
      std::string why;
      std::lock_guard lock(state->mutex);
      if (pa != nullptr) {
        state->acknowledged.fetch_add(1, std::memory_order_relaxed);
        if (pa->Duplicate) state->duplicates.fetch_add(1, std::memory_order_relaxed);
        r.acknowledged = true;
        r.duplicate = pa->Duplicate;
        r.sequence = pa->Sequence;
        r.stream = pa->Stream != nullptr ? pa->Stream : "";
      } else {
        state->failed.fetch_add(1, std::memory_order_relaxed);
        if (pae != nullptr) {
          why = pae->Err == NATS_TIMEOUT ? std::string("no acknowledgement within ack_timeout")
                                         : jetstream_status_text(pae->Err, static_cast<int>(pae->ErrCode));
          if (pae->ErrText != nullptr && *pae->ErrText != '\0' && why.find(pae->ErrText) == std::string::npos)
            why += std::string(": ") + pae->ErrText;
        } else {
          why = "not acknowledged";
        }
        r.error = why;
      }
      if (state->open) state->report(r);
    }
  } catch (...) {  // nothing may escape into the C client
  }
  natsMsg_Destroy(msg);
}

}  // namespace detail

/// @brief Stores chosen local events in JetStream with server acknowledgements and
/// deduplication (see the top of agentbus/bridge/jetstream.hpp). Not copyable, not movable.
template <class Bus>
class jetstream_publisher {
 public:
  /// @brief A publisher of `target`'s events through `client` (both must outlive it). Throws
  /// nats_error when the client cannot make its JetStream context.
  jetstream_publisher(Bus& target, jetstream_client& client, jetstream_publisher_options options = {})
      : bus_(target),
        client_(client),
        options_(std::move(options)),
        origin_(options_.origin.empty() ? detail::random_bridge_id() : options_.origin),
        state_(std::make_shared<detail::jetstream_publish_state>()) {
    state_->on_result = options_.on_result;
    registration_ = detail::publish_registry::instance().add(state_);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::max<std::int64_t>(1, client_.options().api_timeout.count());
    jo.PublishAsync.AckHandler = &detail::on_publish_ack;
    jo.PublishAsync.AckHandlerClosure = reinterpret_cast<void*>(registration_);
    jo.PublishAsync.MaxPending = std::max<std::int64_t>(1, options_.max_pending);
    jo.PublishAsync.StallWait = std::max<std::int64_t>(1, options_.stall_wait.count());
    const natsStatus s = natsConnection_JetStream(&js_, client_.connection().get(), &jo);
    if (s != NATS_OK) {
      detail::publish_registry::instance().remove(registration_);
      detail::throw_nats("cannot make a JetStream context", client_.connection().url(), s);
    }
  }
  jetstream_publisher(const jetstream_publisher&) = delete;
  jetstream_publisher& operator=(const jetstream_publisher&) = delete;
  /// @brief Ends the exports, waits up to close_timeout for outstanding acknowledgements,
  /// counts (and reports) what is still unacknowledged as failed, then frees its context.
  ~jetstream_publisher() {
    std::vector<subscription> exports;
    {
      std::lock_guard lock(mutex_);
      exports.swap(exports_);
    }
    exports.clear();  // waits for a send in progress
    (void)wait_acknowledged(options_.close_timeout);
    natsMsgList left{};
    if (js_PublishAsyncGetPendingList(&left, js_) == NATS_OK) {
      for (int i = 0; i < left.Count; ++i) {
        natsMsg* m = left.Msgs[i];
        const char* subject = m != nullptr ? natsMsg_GetSubject(m) : nullptr;
        const char* id = m != nullptr ? detail::nats_header_value(m, nats_header::msg_id) : nullptr;
        state_->record_failure(subject != nullptr ? subject : "", id != nullptr ? id : "",
                               "not acknowledged before the publisher was destroyed");
      }
      natsMsgList_Destroy(&left);
    }
    {
      std::lock_guard lock(state_->mutex);  // waits for a result being reported
      state_->open = false;
    }
    detail::publish_registry::instance().remove(registration_);
    jsCtx_Destroy(js_);
  }

  /// @brief Local events of type T published on topics matching `pattern` are stored (a
  /// synchronous subscription: each is sent inside bus.publish()). Throws std::invalid_argument
  /// for a reserved (`$`) pattern, topic_error for an invalid one.
  template <class T>
  void export_type(std::string_view pattern) {
    if constexpr (detail::require_codec<T>()) {
      if (is_reserved_topic(pattern))
        throw std::invalid_argument("agentbus: jetstream publisher: export_type(\"" + std::string(pattern) +
                                    "\"): topics starting with '$' are reserved and never exported");
      (void)topic_pattern(pattern);
      // Delayed events too, at once: JetStream stores them now and the consumers hold each
      // until its agentbus-not-before time (see the top of this file).
      subscription sub = bus_.template subscribe<T>(pattern, [this](const event<T>& e) { (void)send(e); },
                                                     subscribe_options{.delayed = true});
      std::lock_guard lock(mutex_);
      exports_.push_back(std::move(sub));
    }
  }

  /// @brief Stores `e` (an event you hold, e.g. in a handler): sent at once, acknowledged later.
  /// Returns false when it was not sent: refused at once (counted failed and reported), a `$`
  /// topic, or an event that came in from NATS (see stats()).
  template <class T>
  bool publish(const event<T>& e) {
    if constexpr (detail::require_codec<T>()) {
      return send(e);
    } else {
      return false;
    }
  }

  /// @brief Waits until no publish is pending (each acknowledged or counted failed), up to
  /// `timeout`; true when none is. Publishes made meanwhile are waited for too.
  bool wait_acknowledged(std::chrono::milliseconds timeout) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = std::max<std::int64_t>(1, timeout.count());
    return js_PublishAsyncComplete(js_, &po) == NATS_OK;
  }

  /// @brief A snapshot of the counters.
  jetstream_publisher_stats stats() const {
    jetstream_publisher_stats s;
    // Read the outcomes before `sent`: a publish counted as sent after them cannot make
    // pending negative.
    s.failed = state_->failed.load(std::memory_order_acquire);
    s.acknowledged = state_->acknowledged.load(std::memory_order_acquire);
    s.duplicates = state_->duplicates.load(std::memory_order_relaxed);
    s.sent = state_->sent.load(std::memory_order_acquire);
    s.pending = s.sent > s.acknowledged + s.failed ? s.sent - s.acknowledged - s.failed : 0;
    s.not_sent_back = not_sent_back_.load(std::memory_order_relaxed);
    s.reserved_skipped = reserved_skipped_.load(std::memory_order_relaxed);
    s.connected = client_.connection().connected();
    return s;
  }

  /// @brief The origin id in this publisher's msg ids.
  const std::string& origin() const noexcept { return origin_; }

 private:
  template <class T>
  bool send(const event<T>& e) noexcept {
    const std::string_view topic = e.topic();
    if (is_reserved_topic(topic)) {
      reserved_skipped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (e.header_value(nats_header::origin)) {
      not_sent_back_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::string id;
    try {
      id = detail::jetstream_msg_id(e, origin_);
      thread_local byte_writer writer;
      auto msg = detail::encode_payload(e.payload(), std::string(topic), writer);
      natsStatus s = detail::add_envelope_headers(msg, e, origin_);
      // Set, not added: an event header of that name must not make a second one.
      if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), nats_header::msg_id, id.c_str());
      if (s != NATS_OK) {
        state_->sent.fetch_add(1, std::memory_order_acq_rel);
        state_->record_failure(topic, id, "not sent: " + detail::nats_status_text(s));
        return false;
      }
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = std::max<std::int64_t>(1, options_.ack_timeout.count());
      if (!options_.stream.empty()) po.ExpectStream = options_.stream.c_str();
      state_->sent.fetch_add(1, std::memory_order_acq_rel);
      natsMsg* raw = msg.release();
      s = js_PublishMsgAsync(js_, &raw, &po);
      natsMsg_Destroy(raw);  // null when the client took it
      if (s != NATS_OK) {
        state_->record_failure(topic, id, "not sent: " + detail::nats_status_text(s));
        return false;
      }
      return true;
    } catch (const std::exception& ex) {
      state_->sent.fetch_add(1, std::memory_order_acq_rel);
      state_->record_failure(topic, id, std::string("not sent: ") + ex.what());
    } catch (...) {
      state_->sent.fetch_add(1, std::memory_order_acq_rel);
      state_->record_failure(topic, id, "not sent: unknown exception");
    }
    return false;
  }

  Bus& bus_;
  jetstream_client& client_;
  jetstream_publisher_options options_;
  std::string origin_;
  std::shared_ptr<detail::jetstream_publish_state> state_;
  std::uintptr_t registration_ = 0;
  jsCtx* js_ = nullptr;
  std::atomic<std::uint64_t> not_sent_back_{0}, reserved_skipped_{0};
  std::mutex mutex_;  // exports_
  std::vector<subscription> exports_;
};

// ------------------------------------------------------------------------------------------
// Consuming

/// @brief What went wrong in a JetStream consumer (jetstream_problem::kind).
enum class jetstream_problem_kind : std::uint8_t {
  schema_mismatch,     ///< a message of another schema name, version or fingerprint: dead-lettered
  decode_error,        ///< a message whose bytes do not decode as T: dead-lettered
  dead_letter_failed,  ///< a dead letter was not stored (no stream on its subject?): retried after the backoff
  settle_failed,       ///< an ack, nack or term could not be sent or confirmed: the event comes again
  fetch_failed,        ///< a member could not fetch (server away, consumer deleted): polls retry
};

/// @brief One problem, as handed to jetstream_consumer_options::on_problem. Views live for the call.
struct jetstream_problem {
  jetstream_problem_kind kind;  ///< what went wrong
  std::string_view consumer;    ///< the consumer's (group's) name
  std::string_view topic;       ///< the event's topic (empty when none)
  std::uint64_t sequence;       ///< the event's stream sequence (0 when none)
  std::string_view what;        ///< a readable explanation
};

/// @brief Receives a consumer's problems on the thread that met them: keep it short; exceptions are ignored.
using jetstream_problem_handler = std::function<void(const jetstream_problem&)>;

/// @brief Settings of a JetStream consumer or group beyond consumer_options.
struct jetstream_consumer_options {
  /// Also wait for the server's confirmation of acks a handler returns (an ack_token's ack
  /// always waits): slower, but an accepted ack is then known to be on the server.
  bool confirm_acks = false;
  /// How long a confirmed ack, a term and a dead letter wait for the server (retried meanwhile).
  std::chrono::milliseconds confirm_timeout{5000};
  /// How long poll() waits for the server's answer to its fetch (the server answers at once
  /// unless deliveries are in flight).
  std::chrono::milliseconds poll_wait{20};
  /// Settled events remembered (see the top of this header: a redelivery of one is settled again
  /// without a handler call; a token for one returns already). Unsettled deliveries this process
  /// has not seen again for max(10 × ack_wait, 10 minutes) are forgotten (a token then returns stale).
  std::size_t remember_settled = 65536;
  /// The consumer's problems (each also counted in info()); empty: only counted.
  jetstream_problem_handler on_problem{};
};

/// @brief A JetStream consumer's counters and position (info()): consumer_info's fields, filled
/// from the server (floor, position, lag, pending) and from this process (the counters), plus
/// JetStream's own.
struct jetstream_consumer_info : consumer_info {
  std::string stream;                  ///< the stream it reads
  bool server_state = false;           ///< floor, position, lag and pending came from the server now
  std::uint64_t server_redelivered = 0;  ///< events the server has redelivered at least once (all processes)
  std::uint64_t schema_mismatches = 0;  ///< messages of another schema: not delivered, dead-lettered
  std::uint64_t decode_errors = 0;      ///< messages that did not decode: not delivered, dead-lettered
  std::uint64_t reserved_skipped = 0;   ///< messages on `$` subjects a wildcard reached: acked, not delivered
  std::uint64_t settle_failures = 0;    ///< acks, nacks, terms not sent or not confirmed (the event comes again)
  std::uint64_t fetch_errors = 0;       ///< fetches that failed (server away, consumer deleted)
};

namespace detail {

/// The one engine behind jetstream_consumer and jetstream_group (a consumer is a group of one
/// member): the durable's creation, each member's inbox and pull requests, the memory of deliveries
/// in this process, the acknowledgement protocol and dead letters. State under one mutex;
/// handlers and network calls never run under it.
template <class T>
class jetstream_engine final : public settle_sink, public std::enable_shared_from_this<jetstream_engine<T>> {
  using time_point = clock_source::time_point;

 public:
  jetstream_engine(jetstream_client& client, std::string stream, std::string name, std::string_view pattern,
                   const consumer_options& options, jetstream_consumer_options js)
      : client_(client),
        stream_(std::move(stream)),
        name_(std::move(name)),
        pattern_(pattern),
        filter_(pattern),  // topic_error when invalid
        options_(options),
        js_(std::move(js)) {
    if (!valid_jetstream_name(stream_))
      throw std::invalid_argument("agentbus: jetstream consumer: stream name '" + stream_ +
                                  "' is not valid: use 1-128 characters of [A-Za-z0-9_-]");
    if (!valid_jetstream_name(name_))
      throw std::invalid_argument("agentbus: jetstream consumer: name '" + name_ +
                                  "' is not valid: use 1-128 characters of [A-Za-z0-9_-] (JetStream durable "
                                  "names cannot hold '.')");
    rng_ = options_.jitter_seed != 0
               ? options_.jitter_seed
               : reinterpret_cast<std::uintptr_t>(this) ^
                     static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    if (rng_ == 0) rng_ = 1;
    counters_.name = name_;
    counters_.pattern = pattern_;
    counters_.stream = stream_;
    next_subject_ = "$JS.API.CONSUMER.MSG.NEXT." + stream_ + "." + name_;
    create_or_resume();
  }
  jetstream_engine(const jetstream_engine&) = delete;
  jetstream_engine& operator=(const jetstream_engine&) = delete;

  ~jetstream_engine() {
    for (member& m : members_)
      if (m.sub != nullptr) {
        (void)natsSubscription_Unsubscribe(m.sub);
        natsSubscription_Destroy(m.sub);
        m.sub = nullptr;
      }
  }

  /// Called once a shared_ptr owns the engine: tokens reach it through this.
  void start() { self_ = this->weak_from_this(); }

  const std::string& name() const noexcept { return name_; }
  const std::string& stream() const noexcept { return stream_; }

  member_id join(std::string member_name) {
    std::unique_lock lock(mutex_);
    members_.push_back(member{});
    members_.back().name = std::move(member_name);
    const auto id = static_cast<member_id>(members_.size() - 1);
    member& m = members_.back();  // a deque: the reference stays valid while others join
    ++live_members_;
    lock.unlock();
    (void)subscribe(m);  // when the server is away, the first poll tries again
    return id;
  }

  /// The member's deferred deliveries go back to the others at once (NAK without delay).
  void leave(member_id id) noexcept {
    std::vector<std::string> returned;
    natsSubscription* sub = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (id >= members_.size() || !members_[id].live) return;
      members_[id].live = false;
      --live_members_;
      sub = std::exchange(members_[id].sub, nullptr);
      for (auto& [seq, e] : live_)
        if (e.state == entry_state::out && e.member == id && !e.returned) {
          e.returned = true;
          e.state = entry_state::waiting;
          e.nacked_attempt = e.attempt;
          e.msg.reset();
          returned.push_back(e.reply);
        }
    }
    for (const std::string& reply : returned) (void)send(reply, js_ack::nak, false, nullptr);
    if (sub != nullptr) {
      (void)natsSubscription_Unsubscribe(sub);  // its inbox: the durable stays
      natsSubscription_Destroy(sub);
    }
  }

  std::size_t poll(member_id id, handler_ref<T> handler, std::size_t max) {
    member& m = member_of(id);
    if (max == 0) return 0;
    std::size_t handed = 0;
    // A batch of messages that were all settled without a handler call: fetch again (a few times).
    for (int round = 0; round < 4 && handed == 0; ++round) {
      bool failed = false;
      auto batch = fetch(m, max, std::chrono::nanoseconds::zero(), failed);
      if (batch.empty()) break;
      handed += handle(id, m, handler, batch);
    }
    return handed;
  }

  std::size_t poll_for(member_id id, handler_ref<T> handler, std::size_t max, clock_source::duration timeout) {
    member& m = member_of(id);
    if (max == 0) return 0;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const std::size_t n = poll(id, handler, max); n != 0) return n;
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return 0;
      bool failed = false;
      // One message, waiting for it: a fetch of a whole batch would wait until the batch is full.
      auto batch = fetch(m, 1, std::chrono::duration_cast<std::chrono::nanoseconds>(left), failed);
      if (failed) {
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(20)));
        continue;
      }
      std::size_t n = batch.empty() ? 0 : handle(id, m, handler, batch);
      if (n != 0) {
        if (max > 1) n += poll(id, handler, max - 1);
        return n;
      }
    }
  }

  ack_status settle(std::uint64_t offset, std::uint32_t attempt, outcome decision) override {
    return settle_delivery(offset, attempt, std::move(decision), true);
  }

  ack_status extend(std::uint64_t offset, std::uint32_t attempt) override {
    std::string reply;
    {
      std::lock_guard lock(mutex_);
      const auto it = live_.find(offset);
      if (it == live_.end()) return ack_status::stale;
      const entry& e = it->second;
      if (e.state == entry_state::acked || e.state == entry_state::dead || e.state == entry_state::dying)
        return ack_status::already;
      if (e.state != entry_state::out || e.attempt != attempt || e.returned) return ack_status::stale;
      reply = e.reply;
    }
    if (send(reply, js_ack::progress, false, nullptr) != NATS_OK) return ack_status::stale;
    return ack_status::accepted;
  }

  jetstream_consumer_info info() const {
    jetstream_consumer_info out;
    {
      std::lock_guard lock(mutex_);
      out = counters_;
      out.members = live_members_;
    }
    jsConsumerInfo* ci = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&ci, client_context(), stream_.c_str(), name_.c_str(), nullptr, &code) == NATS_OK) {
      out.server_state = true;
      out.floor = ci->AckFloor.Stream + 1;
      out.position = ci->Delivered.Stream + 1;
      out.lag = ci->NumPending;
      out.pending = ci->NumAckPending > 0 ? static_cast<std::size_t>(ci->NumAckPending) : 0;
      out.server_redelivered = ci->NumRedelivered > 0 ? static_cast<std::uint64_t>(ci->NumRedelivered) : 0;
    }
    jsConsumerInfo_Destroy(ci);
    return out;
  }

 private:
  enum class entry_state : std::uint8_t {
    out,      // handed to a handler (or deferred), not settled
    waiting,  // failed (nack, left), waiting for the server's redelivery
    dying,    // being dead-lettered now
    acked,    // acknowledged by this process
    dead,     // dead-lettered and terminated by this process
  };
  struct entry {
    std::uint64_t attempt = 0;         // the newest delivery's count
    std::uint64_t nacked_attempt = 0;  // the attempt this process failed (its redelivery is expected)
    entry_state state = entry_state::out;
    bool returned = false;  // its member left: that attempt is over
    member_id member = 0;
    time_point first{};   // the first delivery this process saw
    time_point handed{};  // the newest delivery's time
    std::string reply;    // the newest delivery's ack subject (acks any attempt of the event)
    std::shared_ptr<natsMsg> msg;  // while out: for a dead letter
    std::string dead_retry;        // a dead letter that was not stored: its reason, tried again
    std::uint32_t waits = 0;  // deliveries before its agentbus-not-before time (NAKed, not attempts)
    time_point due{};         // a delayed event: when it is due (on the steady clock)
  };
  struct member {
    std::string name;
    bool live = true;
    natsSubscription* sub = nullptr;  // the inbox
    bool failing = false;             // the last fetch failed (reported once per run of failures)
    std::string inbox{};              // the inbox's prefix (requests reply to <inbox>.<n>)
    std::uint64_t requests = 0;       // pull requests sent
  };
  using message = std::shared_ptr<natsMsg>;

  jsCtx* client_context() const noexcept;
  natsConnection* client_connection() const noexcept;

  void create_or_resume();

  member& member_of(member_id id) {
    std::lock_guard lock(mutex_);
    if (id >= members_.size() || !members_[id].live)
      throw std::logic_error("agentbus: jetstream consumer '" + name_ + "': poll by a member that left");
    return members_[id];  // a deque: stable; only its own thread polls it
  }

  // A member's inbox: a plain core subscription on `_INBOX.<unique>.*`, where the pull requests'
  // deliveries and status messages arrive (no server round trip: works while the server is away,
  // and the client subscribes it again after a reconnect).
  bool subscribe(member& m) {
    if (m.sub != nullptr) return true;
    natsInbox* inbox = nullptr;
    natsStatus s = natsInbox_Create(&inbox);
    natsSubscription* sub = nullptr;
    std::string prefix;
    if (s == NATS_OK) {
      prefix = inbox;
      natsInbox_Destroy(inbox);
      s = natsConnection_SubscribeSync(&sub, client_connection(), (prefix + ".*").c_str());
    }
    if (s != NATS_OK) {
      natsSubscription_Destroy(sub);
      fetch_failed(m, "cannot subscribe to the member's inbox: " + nats_status_text(s));
      return false;
    }
    (void)natsSubscription_SetPendingLimits(sub, -1, -1);  // what arrives is in flight: never dropped here
    m.inbox = std::move(prefix);
    m.sub = sub;
    return true;
  }

  void fetch_failed(member& m, const std::string& why) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      ++counters_.fetch_errors;
      first = !m.failing;
      m.failing = true;
    }
    if (first) report(jetstream_problem_kind::fetch_failed, {}, 0, why + " (polls keep trying)");
  }

  static bool is_delivery(natsMsg* msg) noexcept {
    const char* reply = natsMsg_GetReply(msg);
    return reply != nullptr && std::string_view(reply).rfind("$JS.ACK.", 0) == 0;
  }

  // Up to `max` deliveries: first those already in the inbox (late deliveries of an earlier
  // request), then from a pull request to the server (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<name>`),
  // without waiting (wait zero: the server answers at once) or waiting up to `wait` for the first.
  // The pull protocol is done here rather than with natsSubscription_Fetch: cnats 3.4.1's fetch
  // overruns its array of `batch` messages when more than half a batch of late deliveries is
  // queued when it starts (it then waits out its whole timeout and stores whatever arrives).
  std::vector<message> fetch(member& m, std::size_t max, std::chrono::nanoseconds wait, bool& failed) {
    std::vector<message> out;
    if (!subscribe(m)) {
      failed = true;
      return out;
    }
    std::size_t batch = std::min<std::size_t>(max, 100000);
    if (options_.max_ack_pending != 0) batch = std::min<std::size_t>(batch, options_.max_ack_pending);
    batch = std::max<std::size_t>(batch, 1);
    while (out.size() < batch) {  // what is queued already
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, m.sub, 0) != NATS_OK) break;
      if (is_delivery(msg))
        out.emplace_back(msg, &natsMsg_Destroy);
      else
        natsMsg_Destroy(msg);  // the end of an earlier request
    }
    if (out.size() >= batch) return out;
    if (natsConnection_Status(client_connection()) != NATS_CONN_STATUS_CONNECTED) {
      // A request now would wait in the reconnect buffer and be answered (to an inbox that has
      // moved on) when the server is back: none is sent while the connection is down.
      failed = out.empty();
      if (failed) fetch_failed(m, "not connected to the server");
      return out;
    }
    const std::size_t want = batch - out.size();
    const bool no_wait = wait <= std::chrono::nanoseconds::zero();
    const std::int64_t expires = no_wait ? to_ns(std::max(js_.poll_wait, std::chrono::milliseconds(1)))
                                         : std::max<std::int64_t>(wait.count(), 1000000);
    const std::string reply = m.inbox + "." + std::to_string(++m.requests);
    const std::string body = "{\"batch\":" + std::to_string(want) + ",\"expires\":" + std::to_string(expires) +
                             (no_wait ? ",\"no_wait\":true}" : "}");
    natsStatus s = natsConnection_PublishRequest(client_connection(), next_subject_.c_str(), reply.c_str(), body.data(),
                                                 static_cast<int>(body.size()));
    if (s != NATS_OK) {
      failed = out.empty();
      if (failed) fetch_failed(m, "pull request not sent: " + nats_status_text(s));
      return out;
    }
    // Until this request ends (the server's status message for it: no messages, timeout, ...),
    // its batch is full, or its time is up (with a margin for the server's own expiry).
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(expires) + std::chrono::milliseconds(200);
    std::size_t got = 0;
    std::string problem;
    while (got < want) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      natsMsg* msg = nullptr;
      s = natsSubscription_NextMsg(&msg, m.sub, left);
      if (s == NATS_TIMEOUT) break;
      if (s != NATS_OK) {
        problem = "fetch failed: " + nats_status_text(s);
        break;
      }
      if (is_delivery(msg)) {
        out.emplace_back(msg, &natsMsg_Destroy);
        ++got;
        continue;
      }
      const char* subject = natsMsg_GetSubject(msg);
      const bool ours = subject != nullptr && reply == subject;
      const char* code = nullptr;
      const char* description = nullptr;
      (void)natsMsgHeader_Get(msg, "Status", &code);
      (void)natsMsgHeader_Get(msg, "Description", &description);
      const std::string status = code != nullptr ? code : "";  // a copy: the message is destroyed below
      if (ours && status != "404" && status != "408" && status != "100")
        problem = "the server ended the pull request: " + status + " " +
                  (description != nullptr ? description : "");
      natsMsg_Destroy(msg);
      if (ours && status != "100") break;  // this request is over (100: a heartbeat)
    }
    if (!problem.empty() && out.empty()) {
      failed = true;
      fetch_failed(m, problem);
      return out;
    }
    std::lock_guard lock(mutex_);
    m.failing = false;
    return out;
  }

  void report(jetstream_problem_kind kind, std::string_view topic, std::uint64_t seq, std::string_view what) noexcept {
    if (!js_.on_problem) return;
    try {
      js_.on_problem(jetstream_problem{kind, name_, topic, seq, what});
    } catch (...) {  // a problem handler must not throw: ignored
    }
  }

  natsStatus send(const std::string& reply, std::string_view payload, bool confirm, const char* topic,
                  std::uint64_t seq = 0) {
    const natsStatus s = send_ack(client_connection(), reply, payload, confirm, js_.confirm_timeout);
    if (s != NATS_OK) {
      {
        std::lock_guard lock(mutex_);
        ++counters_.settle_failures;
      }
      report(jetstream_problem_kind::settle_failed, topic != nullptr ? topic : "", seq,
             std::string(payload.substr(0, 5)) + " not " + (confirm ? "confirmed" : "sent") + ": " +
                 nats_status_text(s) + " (the event comes again)");
    }
    return s;
  }

  // Remembers that `seq` is settled; forgets the oldest settled ones beyond remember_settled.
  void remember_locked(std::uint64_t seq) {
    settled_order_.push_back(seq);
    while (settled_order_.size() > std::max<std::size_t>(js_.remember_settled, 1)) {
      const std::uint64_t old = settled_order_.front();
      settled_order_.pop_front();
      const auto it = live_.find(old);
      if (it != live_.end() && (it->second.state == entry_state::acked || it->second.state == entry_state::dead))
        live_.erase(it);
    }
  }

  // Unsettled entries this process will not hear of again (the event went to another process,
  // or a deferred token was dropped and the redelivery went elsewhere): forgotten after a while.
  void prune_locked(time_point now) {
    if (++since_prune_ < 4096) return;
    since_prune_ = 0;
    const auto horizon = std::max<clock_source::duration>(options_.ack_wait * 10, std::chrono::minutes(10));
    for (auto it = live_.begin(); it != live_.end();) {
      const entry& e = it->second;
      const bool unsettled = e.state == entry_state::out || e.state == entry_state::waiting;
      if (unsettled && now - std::max(e.handed, e.due) > horizon)
        it = live_.erase(it);
      else
        ++it;
    }
  }

  std::size_t handle(member_id id, member& m, handler_ref<T> handler, std::vector<message>& batch) {
    std::size_t handed = 0;
    for (message& msg : batch) handed += handle_one(id, m, handler, std::move(msg)) ? 1 : 0;
    batch.clear();
    return handed;
  }

  // One fetched message: settled without a handler call (a repeat, a dead letter, a schema or
  // decode problem, expired, reserved), or handed to the handler and settled by its outcome.
  bool handle_one(member_id id, const member& m, handler_ref<T> handler, message msg) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg.get()) != NATS_OK) {
      jsMsgMetaData_Destroy(meta);
      return false;  // not a JetStream delivery (fetch hands out only those)
    }
    const std::uint64_t seq = meta->Sequence.Stream;
    std::uint64_t attempt = meta->NumDelivered;
    const std::int64_t stored_ns = meta->Timestamp;  // when the server stored it (Unix ns)
    jsMsgMetaData_Destroy(meta);
    const char* subject_c = natsMsg_GetSubject(msg.get());
    const std::string_view topic = subject_c != nullptr ? subject_c : "";
    const char* reply_c = natsMsg_GetReply(msg.get());
    const std::string reply = reply_c != nullptr ? reply_c : "";
    const time_point now = std::chrono::steady_clock::now();

    // A delayed event (publish_options::delay) read before its agentbus-not-before time goes
    // back with a NAK for the time left: no handler call, and not an attempt (the server counts
    // the delivery; this process subtracts it from the events it saw wait).
    const std::optional<std::int64_t> not_before = detail::not_before_ns(msg.get());
    // Stored before it was due: some consumer read it early and NAKed it at least once, maybe
    // in another process (whose waits this one cannot see).
    const bool stored_early = not_before && *not_before > stored_ns;
    if (const auto wait = not_before ? detail::time_until_unix_ns(*not_before) : std::chrono::nanoseconds::zero();
        wait > std::chrono::nanoseconds::zero()) {
      bool settled_here = false;
      {
        std::lock_guard lock(mutex_);
        auto [it, fresh] = live_.try_emplace(seq);
        entry& e = it->second;
        if (fresh) e.state = entry_state::waiting;  // never handed out yet
        settled_here = e.state == entry_state::acked || e.state == entry_state::dead;
        if (!settled_here) {
          ++e.waits;
          e.due = now + std::chrono::duration_cast<clock_source::duration>(wait);
        }
      }
      if (!settled_here) {
        (void)send(reply, js_ack::nak_after(wait), false, subject_c, seq);
        return false;
      }  // else settled already (the sender's clock is ahead of ours): acked again below
    }

    enum class step { deliver, reack, reterm, skip, dead_letter };
    step what = step::deliver;
    std::string dead_reason;
    std::uint64_t dead_attempts = attempt;
    time_point first = now;
    {
      std::lock_guard lock(mutex_);
      prune_locked(now);
      auto [it, fresh] = live_.try_emplace(seq);
      entry& e = it->second;
      if (!fresh && e.state == entry_state::acked) {
        what = step::reack;
        ++counters_.repeated_settles;
      } else if (!fresh && e.state == entry_state::dead) {
        what = step::reterm;
        ++counters_.repeated_settles;
      } else if (!fresh && e.state == entry_state::dying) {
        what = step::skip;  // being dead-lettered by another member now: its term ends this delivery too
      } else {
        if (fresh || e.attempt == 0) e.first = now;
        // Its waits for its due time were no attempts: the ones seen here, and at least one
        // when it was stored early (the wait may have been another process's).
        const std::uint64_t waits = std::max<std::uint64_t>(e.waits, stored_early ? 1 : 0);
        attempt = attempt > waits ? attempt - waits : 1;
        // nats-server 2.9 can deliver an event again with a delivery count that went back (to
        // 1) after a delivery of another one failed: attempts never go back in this process.
        if (!fresh && attempt <= e.attempt) attempt = e.attempt + 1;
        if (attempt > 1) {
          ++counters_.redelivered;
          if (!fresh && e.nacked_attempt + 1 != attempt) ++counters_.ack_timeouts;  // our attempt ran out
        }
        e.attempt = attempt;
        e.state = entry_state::out;
        e.returned = false;
        e.member = id;
        e.handed = now;
        e.reply = reply;
        e.msg = msg;
        first = e.first;
        if (!e.dead_retry.empty()) {
          what = step::dead_letter;
          dead_reason = e.dead_retry;
          dead_attempts = attempt - 1;
        } else if (options_.max_deliver != 0 && attempt > options_.max_deliver) {
          what = step::dead_letter;
          dead_attempts = attempt - 1;
          dead_reason = "max_deliver: " + std::to_string(dead_attempts) +
                        " attempts, the last one not settled within ack_wait";
        }
        if (what == step::dead_letter) e.state = entry_state::dying;
      }
    }
    switch (what) {
      case step::reack: (void)send(reply, js_ack::ack, false, subject_c, seq); return false;
      case step::reterm: (void)send(reply, js_ack::term, false, subject_c, seq); return false;
      case step::skip: return false;
      case step::dead_letter: dead_letter(seq, attempt, msg, reply, std::move(dead_reason), dead_attempts); return false;
      case step::deliver: break;
    }

    if (!reaches(pattern_, topic)) {
      if (claim_ack(seq)) {
        {
          std::lock_guard lock(mutex_);
          ++counters_.reserved_skipped;
        }
        (void)send(reply, js_ack::ack, false, subject_c, seq);
      }
      return false;
    }
    if (!schema_matches<T>(msg.get())) {
      std::string text = schema_mismatch_text<T>(msg.get());
      if (text.rfind("not delivered: ", 0) == 0) text.erase(0, 15);
      {
        std::lock_guard lock(mutex_);
        ++counters_.schema_mismatches;
      }
      report(jetstream_problem_kind::schema_mismatch, topic, seq, text + "; dead-lettered");
      if (claim_dying(seq)) dead_letter(seq, attempt, msg, reply, "schema_mismatch: " + text, attempt);
      return false;
    }
    const auto left = time_left(msg.get());
    if (left && left->count() <= 0) {
      if (claim_ack(seq)) {
        {
          std::lock_guard lock(mutex_);
          ++counters_.expired;
        }
        (void)send(reply, js_ack::ack, false, subject_c, seq);
      }
      return false;
    }
    std::optional<T> value;
    try {
      value.emplace(decode_payload<T>(msg.get()));
    } catch (const std::exception& ex) {
      const std::string text = std::string("the bytes do not decode as ") + std::string(event_traits<T>::name()) +
                               ": " + ex.what();
      {
        std::lock_guard lock(mutex_);
        ++counters_.decode_errors;
      }
      report(jetstream_problem_kind::decode_error, topic, seq, text + "; dead-lettered");
      if (claim_dying(seq)) dead_letter(seq, attempt, msg, reply, "decode_error: " + text, attempt);
      return false;
    }

    std::vector<header> headers;
    const publish_options opts = incoming_options(msg.get(), left, headers, header_scope::stored);
    const auto deadline = left ? deadline_clock::now() + std::chrono::duration_cast<deadline_clock::duration>(*left)
                               : no_deadline;
    agentbus::event<T> ev(*value, topic, opts, seq, deadline, nullptr, seq);
    if (const std::int64_t ns = published_ns(msg.get()); ns != 0) offset_setter::set_published(ev, ns);
    {
      std::lock_guard lock(mutex_);
      ++counters_.delivered;
    }
    const auto att = static_cast<std::uint32_t>(std::min<std::uint64_t>(attempt, std::numeric_limits<std::uint32_t>::max()));
    delivered<T> d(ev, seq, att, first, name_, m.name, self_);
    std::optional<outcome> decision;
    bool threw = false;
    try {
      decision.emplace(handler(d));
    } catch (const std::exception& ex) {
      decision.emplace(outcome::nack(ex.what()));
      threw = true;
    } catch (...) {
      decision.emplace(outcome::nack("a non-standard exception"));
      threw = true;
    }
    if (d.deferred()) return true;  // the token decides (the entry keeps the message for a dead letter)
    if (threw) {  // counted whatever becomes of the settle (stale or already: the attempt was over)
      std::lock_guard lock(mutex_);
      ++counters_.handler_failures;
    }
    (void)settle_delivery(seq, att, std::move(*decision), false);
    return true;
  }

  bool claim_ack(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    const auto it = live_.find(seq);
    if (it == live_.end() || it->second.state != entry_state::out) return false;
    it->second.state = entry_state::acked;
    it->second.msg.reset();
    remember_locked(seq);
    return true;
  }
  bool claim_dying(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    const auto it = live_.find(seq);
    if (it == live_.end() || it->second.state != entry_state::out) return false;
    it->second.state = entry_state::dying;
    return true;
  }

  // Settles a delivery by a decision (the handler's, or a token's): the first settle wins.
  ack_status settle_delivery(std::uint64_t seq, std::uint32_t attempt, outcome decision, bool token) {
    std::string reply, topic, dead_reason;
    message msg;
    enum class act { ack, nak, dead_letter } what = act::ack;
    std::chrono::nanoseconds delay{0};
    bool confirm = token || js_.confirm_acks;
    {
      std::lock_guard lock(mutex_);
      const auto it = live_.find(seq);
      if (it == live_.end()) return ack_status::stale;  // forgotten: long gone
      entry& e = it->second;
      if (e.state == entry_state::acked || e.state == entry_state::dead || e.state == entry_state::dying) {
        ++counters_.repeated_settles;
        return ack_status::already;
      }
      reply = e.reply;
      if (e.msg) {
        const char* s = natsMsg_GetSubject(e.msg.get());
        if (s != nullptr) topic = s;
      }
      switch (decision.decision()) {
        case outcome::kind::ack:  // an ack of any attempt: the work was done
          e.state = entry_state::acked;
          e.msg.reset();
          remember_locked(seq);
          what = act::ack;
          break;
        case outcome::kind::nack:
          if (e.state != entry_state::out || e.attempt != attempt || e.returned) return ack_status::stale;
          ++counters_.nacked;
          if (options_.max_deliver != 0 && attempt >= options_.max_deliver) {
            dead_reason = "max_deliver: " + std::to_string(attempt) +
                          " attempts, the last: " + (decision.reason().empty() ? std::string("nack") : decision.reason());
            e.state = entry_state::dying;
            msg = e.msg;
            what = act::dead_letter;
          } else {
            e.state = entry_state::waiting;
            e.nacked_attempt = attempt;
            e.msg.reset();
            delay = decision.has_delay()
                        ? std::chrono::duration_cast<std::chrono::nanoseconds>(decision.delay())
                        : backoff_delay(options_.backoff, attempt, rng_);
            what = act::nak;
          }
          break;
        case outcome::kind::term:
          if (e.state != entry_state::out || e.attempt != attempt || e.returned) return ack_status::stale;
          ++counters_.terminated;
          dead_reason = "term: " + (decision.reason().empty() ? std::string("given up by the handler") : decision.reason());
          e.state = entry_state::dying;
          msg = e.msg;
          what = act::dead_letter;
          break;
      }
    }
    switch (what) {
      case act::ack: {
        const natsStatus s = send(reply, js_ack::ack, confirm, topic.c_str(), seq);
        std::lock_guard lock(mutex_);
        if (s == NATS_OK) {
          ++counters_.acked;
          return ack_status::accepted;
        }
        // Not sent or not confirmed: not settled here either; a redelivery is handled again.
        const auto it = live_.find(seq);
        if (it != live_.end() && it->second.state == entry_state::acked) {
          it->second.state = entry_state::waiting;
          // No longer settled, so out of the memory of settles too: settled again, it would be
          // there twice, and trimming the older copy would forget the newer settle early.
          const auto pos = std::find(settled_order_.rbegin(), settled_order_.rend(), seq);
          if (pos != settled_order_.rend()) settled_order_.erase(std::next(pos).base());
        }
        return ack_status::stale;
      }
      case act::nak: (void)send(reply, js_ack::nak_after(delay), false, topic.c_str(), seq); return ack_status::accepted;
      case act::dead_letter:
        if (!msg) {  // cannot happen: an entry that is out holds its message
          std::lock_guard lock(mutex_);
          const auto it = live_.find(seq);
          if (it != live_.end()) it->second.state = entry_state::waiting;
          return ack_status::stale;
        }
        dead_letter(seq, attempt, msg, reply, std::move(dead_reason), attempt);
        return ack_status::accepted;
    }
    return ack_status::stale;
  }

  // The entry is dying: stores the dead letter, then terminates the event; when the dead letter
  // is not stored, counts and reports it and has the event redelivered after the backoff.
  void dead_letter(std::uint64_t seq, std::uint64_t attempt, const message& msg, const std::string& reply,
                   std::string reason, std::uint64_t attempts) {
    const char* subject_c = natsMsg_GetSubject(msg.get());
    const std::string topic = subject_c != nullptr ? subject_c : "";
    const std::string subject = options_.dead_letter_prefix + "." + topic;
    if (filter_.matches(subject)) {
      // Its dead letter would come back to this consumer (a consumer of `$dlq.>` whose own dead
      // letters go to `$dlq.$dlq....`): terminated without one, counted and reported.
      (void)send(reply, js_ack::term, true, subject_c, seq);
      {
        std::lock_guard lock(mutex_);
        ++counters_.dead_letter_failures;
        const auto it = live_.find(seq);
        if (it != live_.end()) {
          it->second.state = entry_state::dead;
          it->second.msg.reset();
          remember_locked(seq);
        }
      }
      report(jetstream_problem_kind::dead_letter_failed, topic, seq,
             "terminated without a dead letter: " + subject + " matches this consumer's own pattern " + pattern_ +
                 " (" + reason + ")");
      return;
    }
    natsStatus s = NATS_OK;
    int code = 0;
    try {
      const dead_letter_fields f{reason, attempts, name_, seq, topic, stream_};
      nats_message letter = copy_payload(msg.get(), subject);
      s = add_dead_letter_headers(letter, msg.get(), f);
      if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = std::max<std::int64_t>(1, js_.confirm_timeout.count());
        jsPubAck* pa = nullptr;
        jsErrCode ec = static_cast<jsErrCode>(0);
        s = js_PublishMsg(&pa, client_context(), letter.get(), &po, &ec);
        code = static_cast<int>(ec);
        jsPubAck_Destroy(pa);
      }
    } catch (...) {
      s = NATS_ERR;
    }
    if (s == NATS_OK) {
      // A term that gets lost: the redelivery finds the event dead here and terminates it again,
      // or (another process) dead-letters it again under the same msg id.
      (void)send(reply, js_ack::term, true, subject_c, seq);
      std::lock_guard lock(mutex_);
      ++counters_.dead_lettered;
      ++counters_.dead_letters_by_topic[topic];
      const auto it = live_.find(seq);
      if (it != live_.end()) {
        it->second.state = entry_state::dead;
        it->second.dead_retry.clear();
        it->second.msg.reset();
        remember_locked(seq);
      }
      return;
    }
    const std::string why = "dead letter for " + topic + " #" + std::to_string(seq) + " not stored on " + subject +
                            ": " + jetstream_status_text(s, code) +
                            (s == NATS_NO_RESPONDERS ? " (no stream captures that subject: ensure_stream one)" : "") +
                            "; retried after the backoff";
    std::chrono::nanoseconds delay;
    {
      std::lock_guard lock(mutex_);
      ++counters_.dead_letter_failures;
      const auto it = live_.find(seq);
      if (it != live_.end() && it->second.state == entry_state::dying) {
        it->second.state = entry_state::waiting;
        it->second.dead_retry = std::move(reason);
        it->second.nacked_attempt = attempt;
        it->second.msg.reset();
      }
      delay = backoff_delay(options_.backoff, attempt, rng_);
    }
    report(jetstream_problem_kind::dead_letter_failed, topic, seq, why);
    (void)send(reply, js_ack::nak_after(delay), false, subject_c, seq);
  }

  jetstream_client& client_;
  std::string stream_;
  std::string name_;
  std::string pattern_;
  std::string next_subject_;  // where pull requests go
  topic_pattern filter_;
  consumer_options options_;
  jetstream_consumer_options js_;

  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, entry> live_;
  std::deque<std::uint64_t> settled_order_;
  std::deque<member> members_;  // stable addresses
  std::size_t live_members_ = 0;
  std::size_t since_prune_ = 0;
  std::uint64_t rng_ = 1;
  jetstream_consumer_info counters_;
  std::weak_ptr<settle_sink> self_;
};

}  // namespace detail

template <class T>
class jetstream_group;
template <class T>
class jetstream_consumer;

/// @brief One member of a jetstream_group, with its own inbox and pull requests on the group's
/// durable (see the top of agentbus/bridge/jetstream.hpp). Leaves when destroyed. Movable; a
/// moved-from member polls nothing (returns 0).
template <class T>
class jetstream_member {
 public:
  /// @brief A member of no group: polls nothing.
  jetstream_member() = default;
  /// @brief Takes over `other`'s membership (`other` then polls nothing).
  jetstream_member(jetstream_member&& other) noexcept : engine_(std::move(other.engine_)), id_(other.id_) {}
  /// @brief Leaves this member's group, then takes over `other`'s membership.
  jetstream_member& operator=(jetstream_member&& other) noexcept {
    if (this != &other) {
      leave();
      engine_ = std::move(other.engine_);
      id_ = other.id_;
    }
    return *this;
  }
  jetstream_member(const jetstream_member&) = delete;
  jetstream_member& operator=(const jetstream_member&) = delete;
  /// @brief Leaves the group.
  ~jetstream_member() { leave(); }

  /// @brief Fetches up to `max` events (what the server has now; redeliveries come when the
  /// server makes them), hands each to `handler` on this thread and settles it by its outcome;
  /// returns how many were handed to the handler. Waits only for the server's answer (poll_wait).
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = detail::default_poll_batch) {
    if constexpr (detail::check_durable_handler<T, F>()) {
      if (!engine_) return 0;
      return engine_->poll(id_, detail::handler_ref<T>(handler), max);
    } else {
      return 0;
    }
  }
  /// @brief As poll, but when nothing is there waits up to `timeout` for the first event (a
  /// publish or a redelivery), then takes what else is there up to `max`.
  template <class F>
  std::size_t poll_for(F&& handler, clock_source::duration timeout, std::size_t max = detail::default_poll_batch) {
    if constexpr (detail::check_durable_handler<T, F>()) {
      if (!engine_) return 0;
      return engine_->poll_for(id_, detail::handler_ref<T>(handler), max, timeout);
    } else {
      return 0;
    }
  }
  /// @brief Leaves the group: its deferred deliveries go back to the others at once; its inbox
  /// ends (the durable stays). Not while this member polls on another thread. Idempotent.
  void leave() noexcept {
    if (engine_) engine_->leave(id_);
    engine_.reset();
  }
  /// @brief False once left (or moved from).
  bool joined() const noexcept { return engine_ != nullptr; }

 private:
  friend class jetstream_group<T>;
  friend class jetstream_consumer<T>;
  jetstream_member(std::shared_ptr<detail::jetstream_engine<T>> engine, detail::member_id id)
      : engine_(std::move(engine)), id_(id) {}
  std::shared_ptr<detail::jetstream_engine<T>> engine_;
  detail::member_id id_ = 0;
};

/// @brief A consumer group on a JetStream durable pull consumer: members share its events,
/// each event to one member at a time (see the top of agentbus/bridge/jetstream.hpp).
template <class T>
class jetstream_group {
 public:
  /// @brief Opens the durable `name` on `stream` for events of type T on subjects matching
  /// `pattern`: creates it (at options.start) or resumes it. Throws std::invalid_argument for a
  /// bad name or when `name` exists with another pattern or event type (or is not an explicit-ack
  /// pull consumer), topic_error for a bad pattern, jetstream_error when the stream does not
  /// exist or the server refuses or does not answer.
  jetstream_group(jetstream_client& client, std::string stream, std::string name, std::string_view pattern,
                  const consumer_options& options = {}, jetstream_consumer_options js = {}) {
    if constexpr (detail::require_codec<T>()) {
      engine_ = std::make_shared<detail::jetstream_engine<T>>(client, std::move(stream), std::move(name), pattern,
                                                              options, std::move(js));
      engine_->start();
    }
  }

  /// @brief A new member named `member_name` (shown on its deliveries: delivered::member()),
  /// with its own inbox (a core subscription: made now, also while the server is away).
  jetstream_member<T> join(std::string member_name) {
    const detail::member_id id = engine_->join(std::move(member_name));
    return jetstream_member<T>(engine_, id);
  }
  /// @brief Counters and position (a request to the server for the position; the counters
  /// alone, server_state false, when it does not answer).
  jetstream_consumer_info info() const { return engine_->info(); }
  /// @brief The durable's name.
  const std::string& name() const noexcept { return engine_->name(); }
  /// @brief The stream it reads.
  const std::string& stream() const noexcept { return engine_->stream(); }

 private:
  std::shared_ptr<detail::jetstream_engine<T>> engine_;
};

/// @brief A durable JetStream consumer of events of type T: a jetstream_group of one member
/// (see the top of agentbus/bridge/jetstream.hpp). Movable; poll from one thread at a time.
template <class T>
class jetstream_consumer {
 public:
  /// @brief Opens (creating it, or resuming it) the durable `name` on `stream` for events of
  /// type T on subjects matching `pattern`; throws as jetstream_group's constructor.
  jetstream_consumer(jetstream_client& client, std::string stream, std::string name, std::string_view pattern,
                     const consumer_options& options = {}, jetstream_consumer_options js = {})
      : group_(client, std::move(stream), std::move(name), pattern, options, std::move(js)),
        self_(group_.join(std::string())) {}

  /// @brief As jetstream_member::poll.
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = detail::default_poll_batch) {
    return self_.poll(std::forward<F>(handler), max);
  }
  /// @brief As jetstream_member::poll_for.
  template <class F>
  std::size_t poll_for(F&& handler, clock_source::duration timeout, std::size_t max = detail::default_poll_batch) {
    return self_.poll_for(std::forward<F>(handler), timeout, max);
  }
  /// @brief Counters and position (see jetstream_group::info).
  jetstream_consumer_info info() const { return group_.info(); }
  /// @brief The durable's name.
  const std::string& name() const noexcept { return group_.name(); }
  /// @brief The stream it reads.
  const std::string& stream() const noexcept { return group_.stream(); }

 private:
  jetstream_group<T> group_;
  jetstream_member<T> self_;
};

namespace detail {

template <class T>
jsCtx* jetstream_engine<T>::client_context() const noexcept {
  return client_.context();
}
template <class T>
natsConnection* jetstream_engine<T>::client_connection() const noexcept {
  return client_.connection().get();
}

// Creates the durable, or resumes it after checking that it is this consumer's (pattern, type,
// a pull consumer with explicit acks) and updating what may change (ack_wait, max_ack_pending).
template <class T>
void jetstream_engine<T>::create_or_resume() {
  const std::string description = "agentbus consumer of " + std::string(event_traits<T>::name());
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = name_.c_str();
  cc.Description = description.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = std::max<std::int64_t>(to_ns(options_.ack_wait), 1000000);
  cc.MaxDeliver = -1;  // max_deliver is this consumer's: see the top of jetstream.hpp
  cc.MaxAckPending = options_.max_ack_pending == 0 ? (std::int64_t{1} << 30) : std::int64_t{options_.max_ack_pending};
  cc.FilterSubject = pattern_.c_str();
  cc.ReplayPolicy = js_ReplayInstant;

  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, client_context(), stream_.c_str(), name_.c_str(), nullptr, &code);
  if (s == NATS_OK) {
    const jsConsumerConfig* have = ci->Config;
    const std::string filter = have != nullptr && have->FilterSubject != nullptr ? have->FilterSubject : "";
    const std::string desc = have != nullptr && have->Description != nullptr ? have->Description : "";
    const bool pull = have != nullptr && (have->DeliverSubject == nullptr || *have->DeliverSubject == '\0');
    const bool explicit_acks = have != nullptr && have->AckPolicy == js_AckExplicit;
    if (filter != pattern_ || desc != description || !pull || !explicit_acks) {
      jsConsumerInfo_Destroy(ci);
      throw std::invalid_argument("agentbus: jetstream consumer '" + name_ + "' of stream " + stream_ +
                                  " exists for pattern '" + filter + "' (" + (desc.empty() ? "no description" : desc) +
                                  (pull ? "" : ", a push consumer") + (explicit_acks ? "" : ", not explicit acks") +
                                  "), not for '" + pattern_ + "' and " + description +
                                  ": use another name, or delete_consumer() it first");
    }
    // Where it starts stays the durable's own.
    cc.DeliverPolicy = have->DeliverPolicy;
    cc.OptStartSeq = have->OptStartSeq;
    cc.OptStartTime = have->OptStartTime;
    counters_.resumed = true;
    jsConsumerInfo* updated = nullptr;
    s = js_UpdateConsumer(&updated, client_context(), stream_.c_str(), &cc, nullptr, &code);
    jsConsumerInfo_Destroy(updated);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK)
      throw_jetstream("cannot update consumer " + name_ + " of stream " + stream_, s, static_cast<int>(code));
    return;
  }
  jsConsumerInfo_Destroy(ci);
  if (code == JSStreamNotFoundErr)
    throw_jetstream("consumer " + name_ + ": stream " + stream_ + " does not exist (ensure_stream it first)", s,
                    static_cast<int>(code));
  if (code != JSConsumerNotFoundErr)
    throw_jetstream("cannot read consumer " + name_ + " of stream " + stream_, s, static_cast<int>(code));

  const history& from = options_.start.from;
  if (options_.start.new_only) {
    cc.DeliverPolicy = js_DeliverNew;
  } else if (from.from == history::start::offset && from.offset > 1) {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = from.offset;
  } else if (from.from == history::start::time) {
    cc.DeliverPolicy = js_DeliverByStartTime;
    cc.OptStartTime = unix_ns(from.time);
  } else {
    cc.DeliverPolicy = js_DeliverAll;
  }
  ci = nullptr;
  s = js_AddConsumer(&ci, client_context(), stream_.c_str(), &cc, nullptr, &code);
  jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) {
    if (code == JSStreamNotFoundErr)
      throw_jetstream("consumer " + name_ + ": stream " + stream_ + " does not exist (ensure_stream it first)", s,
                      static_cast<int>(code));
    throw_jetstream("cannot create consumer " + name_ + " of stream " + stream_, s, static_cast<int>(code));
  }
}

}  // namespace detail

}  // namespace agentbus

#else  // no NATS client

namespace agentbus {

namespace detail {
template <class...>
inline constexpr bool jetstream_needs_nats = false;
}  // namespace detail

/// @brief Stands in for the JetStream client when the NATS C client is missing: using it explains.
class jetstream_client {
 public:
  /// @brief Never usable (see the static_assert).
  template <class... Args>
  explicit jetstream_client(Args&&...) {
    static_assert(detail::jetstream_needs_nats<Args...>,
                  "agentbus: jetstream_client needs the NATS C client: install it (Debian: libnats-dev) and link the "
                  "CMake target agentbus::nats, which CMake offers when pkg-config finds libnats");
  }
};

/// @brief Stands in for the JetStream publisher when the NATS C client is missing: using it explains.
template <class Bus>
class jetstream_publisher {
  static_assert(sizeof(Bus) == 0,
                "agentbus: jetstream_publisher needs the NATS C client: install it (Debian: libnats-dev) and link "
                "the CMake target agentbus::nats, which CMake offers when pkg-config finds libnats");

 public:
  /// @brief Never usable (see the static_assert).
  template <class... Args>
  explicit jetstream_publisher(Bus&, Args&&...) {}
};

/// @brief Stands in for the JetStream consumer when the NATS C client is missing: using it explains.
template <class T>
class jetstream_consumer {
  static_assert(sizeof(T) == 0,
                "agentbus: jetstream_consumer needs the NATS C client: install it (Debian: libnats-dev) and link "
                "the CMake target agentbus::nats, which CMake offers when pkg-config finds libnats");

 public:
  /// @brief Never usable (see the static_assert).
  template <class... Args>
  explicit jetstream_consumer(Args&&...) {}
};

/// @brief Stands in for the JetStream group when the NATS C client is missing: using it explains.
template <class T>
class jetstream_group {
  static_assert(sizeof(T) == 0,
                "agentbus: jetstream_group needs the NATS C client: install it (Debian: libnats-dev) and link "
                "the CMake target agentbus::nats, which CMake offers when pkg-config finds libnats");

 public:
  /// @brief Never usable (see the static_assert).
  template <class... Args>
  explicit jetstream_group(Args&&...) {}
};

}  // namespace agentbus

#endif  // AGENTBUS_HAS_NATS

#endif  // AGENTBUS_BRIDGE_JETSTREAM_HPP
