// SPDX-License-Identifier: MIT
// bench/nats: what the NATS bridge costs next to the NATS C client doing the same work, against
// one nats-server this program starts, in one run (issue 11).
//
// Publish throughput, 64 B and 1 KB payloads (the same payload bytes in every row):
//   raw cnats                 natsConnection_Publish of the payload, one connection
//   raw cnats + one 4-byte    natsMsg_Create, natsMsgHeader_Add("K", "v"), natsConnection_-
//     header                  PublishMsg: what a message with any header at all costs this
//                             client (measured here: the publishing side's CPU per message
//                             is ~10x that of natsConnection_Publish), the ceiling of a bridge
//                             whose envelope travels as NATS headers
//   raw cnats + envelope      natsMsg_Create with the headers the bridge sends (the same
//     headers, a natsMsgHeader names and the same kind of values: schema, version, fingerprint,
//     _Add each               event id, publish time, origin; no priority, as the bridge
//                             writes none for normal), formatted the cheapest way, one
//                             natsMsgHeader_Add per header (the client's ordinary way), then
//                             natsConnection_PublishMsg
//   raw cnats + envelope      the same header bytes given to the client as one header (its key
//     headers, one header     holds all the lines but the last: how the bridge sends them, see
//     block                   bridge/detail/envelope.hpp): what the envelope's bytes cost the
//                             client, the server and the subscriber
//   bridged                   a bus whose nats_bridge export_type<T>s the subject, publishing
//                             (bus.publish: the bridge's synchronous export sends it)
//   bridged -> bridge import  the same, received by a second bus whose bridge import_type<T>s
//                             the subject (the arrivals counted by a synchronous subscriber on
//                             that bus): the receive path's cost too. Not part of the ratio.
//                             The publisher stays at most 50 000 messages ahead of the
//                             importer (the import's client drops beyond 65 536 pending).
// The rows but the last share the subscriber: a raw cnats connection of its own counting
// arrivals (no pending limit, so nothing is dropped). Every row publishes from this thread as
// fast as it can on a connection that batches writes (the client's default, the bridge's too);
// the clock runs from the first publish to the arrival of the last message at the subscriber
// (end to end). A row that does not see every message arrive within its time limit fails
// with the count instead of a figure.
// Each round runs every row once, in the order above; the best round of each row is kept
// (the machine is shared: see --rounds), and the ratio bridged / raw cnats per size is that
// of the two best rounds, with the range of the per-round ratios beside it.
//
// Request/reply latency, one request in flight, send-asap on every connection:
//   raw cnats                 natsConnection_Request to a responder that echoes the payload
//   bridged                   agentbus::request<Rep> on a bus whose bridge export_requests<Req,
//                             Rep>, served by agentbus::serve on a second bus whose bridge
//                             import_requests<Req, Rep> (when this build's bridge has them)
//
// nats-server (Debian: /usr/sbin/nats-server) listens on 127.0.0.1 on a free port, in a
// temporary directory, and is stopped by its PID (bench/support/server_process.hpp). Without
// it, every row says so.
//
// Usage: bench_nats [--quick] [--json FILE] [--rounds N] [--only TEXT]
//   --quick    fewer messages and one round (the CI smoke run, a few seconds)
//   --json     also write every row to FILE
//   --rounds   rounds of the throughput rows, the best kept (default 5; --quick: 1)
//   --only     run only the rows whose "section: name" contains TEXT

#include <agentbus/agentbus.hpp>
#include <agentbus/bridge/nats.hpp>

#include "support/command_line.hpp"
#include "support/server_process.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nats/nats.h>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Event types: bitwise payloads whose codec bytes are exactly 64 B and 1 KB, the raw rows' sizes.

struct payload_64 {
  static constexpr std::string_view event_name = "bench.payload64";
  static constexpr bool agentbus_bitwise_codec = true;
  std::array<char, 64> bytes{};
};
struct payload_1k {
  static constexpr std::string_view event_name = "bench.payload1k";
  static constexpr bool agentbus_bitwise_codec = true;
  std::array<char, 1024> bytes{};
};
static_assert(sizeof(payload_64) == 64 && sizeof(payload_1k) == 1024);

struct ask {
  static constexpr std::string_view event_name = "bench.ask";
  static constexpr bool agentbus_bitwise_codec = true;
  std::uint64_t n = 0;
};
struct answer {
  static constexpr std::string_view event_name = "bench.answer";
  static constexpr bool agentbus_bitwise_codec = true;
  std::uint64_t n = 0;
};

// ---------------------------------------------------------------------------------------------
// Settings and rows

struct settings {
  bool quick = false;
  std::string json_path;
  std::string only;
  int rounds = 5;
  std::size_t messages_64 = 400000;
  std::size_t messages_1k = 100000;
  std::size_t round_trips = 20000;
  std::chrono::seconds row_limit = 60s;
};

enum class section { publish, request_reply };

const char* section_name(section s) { return s == section::publish ? "publish" : "request/reply"; }

struct row {
  section sec = section::publish;
  std::string name;
  std::size_t payload = 0;
  double per_s = 0;                 // best round
  double p50_ns = -1, p99_ns = -1;  // request/reply rows
  std::vector<double> rounds;       // every round's figure (publish rows)
  std::string skipped;              // why there is no figure
};

bool selected(const settings& s, section sec, const std::string& name) {
  return s.only.empty() || (std::string(section_name(sec)) + ": " + name).find(s.only) != std::string::npos;
}

std::string size_text(std::size_t bytes) {
  return bytes >= 1024 ? fmt::format("{} KB", bytes / 1024) : fmt::format("{} B", bytes);
}

// ---------------------------------------------------------------------------------------------
// cnats helpers

template <class T, void (*Destroy)(T*)>
struct destroyer {
  void operator()(T* p) const noexcept { Destroy(p); }
};
using connection_ptr = std::unique_ptr<natsConnection, destroyer<natsConnection, natsConnection_Destroy>>;
using subscription_ptr = std::unique_ptr<natsSubscription, destroyer<natsSubscription, natsSubscription_Destroy>>;
using message_ptr = std::unique_ptr<natsMsg, destroyer<natsMsg, natsMsg_Destroy>>;
using options_ptr = std::unique_ptr<natsOptions, destroyer<natsOptions, natsOptions_Destroy>>;

void check(natsStatus status, const char* what) {
  if (status == NATS_OK) return;
  std::string why = fmt::format("{}: {}", what, natsStatus_GetText(status));
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') why += fmt::format(" ({})", last);
  throw std::runtime_error(why);
}

/// A connection that fails instead of reconnecting (a dead server ends the row). send_asap
/// writes each message at once instead of batching writes (request/reply).
connection_ptr connect(const std::string& url, bool send_asap) {
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "natsOptions_Create");
  const options_ptr options(raw);
  check(natsOptions_SetURL(raw, url.c_str()), "natsOptions_SetURL");
  check(natsOptions_SetTimeout(raw, 2000), "natsOptions_SetTimeout");
  check(natsOptions_SetAllowReconnect(raw, false), "natsOptions_SetAllowReconnect");
  check(natsOptions_SetSendAsap(raw, send_asap), "natsOptions_SetSendAsap");
  natsConnection* nc = nullptr;
  check(natsConnection_Connect(&nc, raw), "natsConnection_Connect");
  return connection_ptr(nc);
}

std::uint64_t next_id() {
  static std::atomic<std::uint64_t> id{0};
  return ++id;
}

/// Counts arrivals; remembers when the expected count was reached.
class arrivals {
 public:
  explicit arrivals(std::size_t expected) : expected_(expected) {}
  void arrived() noexcept {
    if (count_.fetch_add(1, std::memory_order_relaxed) + 1 == expected_) {
      std::lock_guard lock(mutex_);
      done_at_ = clock_type::now();
      cv_.notify_all();
    }
  }
  /// The time of the last arrival; throws when they did not all arrive by `limit`.
  clock_type::time_point wait(clock_type::duration limit, const std::function<std::string()>& why) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, limit, [&] { return done_at_.has_value(); }))
      throw std::runtime_error(fmt::format("{} of {} messages arrived within {} s{}", count_.load(), expected_,
                                           std::chrono::duration_cast<std::chrono::seconds>(limit).count(), why()));
    return *done_at_;
  }
  std::size_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  std::size_t expected_;
  std::atomic<std::size_t> count_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<clock_type::time_point> done_at_;
};

void count_arrival(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  natsMsg_Destroy(msg);
  static_cast<arrivals*>(closure)->arrived();
}

/// A raw cnats subscriber on `subject`, on a connection of its own, live at the server when made.
struct counting_subscriber {
  connection_ptr nc;
  subscription_ptr sub;
  arrivals seen;

  counting_subscriber(const std::string& url, const std::string& subject, std::size_t expected) : seen(expected) {
    nc = connect(url, false);
    natsSubscription* raw = nullptr;
    check(natsConnection_Subscribe(&raw, nc.get(), subject.c_str(), count_arrival, &seen), "natsConnection_Subscribe");
    sub.reset(raw);
    check(natsSubscription_SetPendingLimits(raw, -1, -1), "natsSubscription_SetPendingLimits");  // never drop
    check(natsConnection_FlushTimeout(nc.get(), 5000), "natsConnection_FlushTimeout");
  }
  ~counting_subscriber() {
    // Ends the delivery before `seen` goes: the client calls count_arrival until then.
    if (sub) {
      (void)natsSubscription_Unsubscribe(sub.get());
      sub.reset();
    }
    nc.reset();
  }
  std::string dropped() const {
    int64_t n = 0;
    if (natsSubscription_GetDropped(sub.get(), &n) == NATS_OK && n > 0) return fmt::format(" ({} dropped)", n);
    return {};
  }
};

double rate(std::size_t count, clock_type::time_point start, clock_type::time_point end) {
  return static_cast<double>(count) / std::chrono::duration<double>(end - start).count();
}

// ---------------------------------------------------------------------------------------------
// Publish throughput rows

template <class T>
T make_payload() {
  T value;
  for (std::size_t i = 0; i < value.bytes.size(); ++i) value.bytes[i] = static_cast<char>('a' + i % 26);
  return value;
}

/// The raw rows' frame: a subject of `kind`, the counting subscriber, one connection, the
/// clock from the first publish to the last arrival; `send(connection, subject, payload, i)`
/// publishes message i.
template <class T, class Send>
double raw_row(const std::string& url, std::size_t count, const settings& s, std::string_view kind, Send send) {
  const std::string subject = "bench.raw." + std::string(kind) + std::to_string(next_id());
  counting_subscriber subscriber(url, subject, count);
  const connection_ptr nc = connect(url, false);
  const T value = make_payload<T>();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) send(nc.get(), subject, value, i);
  return rate(count, start, subscriber.seen.wait(s.row_limit, [&] { return subscriber.dropped(); }));
}

/// natsMsg_Create of the payload, then `add(msg, i)` adds headers, then natsConnection_PublishMsg.
template <class T, class AddHeaders>
double raw_row_with_headers(const std::string& url, std::size_t count, const settings& s, std::string_view kind,
                            AddHeaders add) {
  return raw_row<T>(url, count, s, kind, [&](natsConnection* nc, const std::string& subject, const T& value, std::size_t i) {
    natsMsg* raw = nullptr;
    check(natsMsg_Create(&raw, subject.c_str(), nullptr, value.bytes.data(), static_cast<int>(value.bytes.size())),
          "natsMsg_Create");
    const message_ptr msg(raw);
    add(raw, i);
    check(natsConnection_PublishMsg(nc, raw), "natsConnection_PublishMsg");
  });
}

template <class T>
double raw_publish(const std::string& url, std::size_t count, const settings& s) {
  return raw_row<T>(url, count, s, "", [](natsConnection* nc, const std::string& subject, const T& value, std::size_t) {
    check(natsConnection_Publish(nc, subject.c_str(), value.bytes.data(), static_cast<int>(value.bytes.size())),
          "natsConnection_Publish");
  });
}

/// The payload with one 4-byte header ("K: v"): what any message with headers costs the client
/// (natsMsg_Create, natsMsgHeader_Add, natsConnection_PublishMsg), whatever its envelope. The
/// ceiling of a bridge that sends its envelope as NATS headers through this client.
template <class T>
double raw_publish_with_one_small_header(const std::string& url, std::size_t count, const settings& s) {
  return raw_row_with_headers<T>(url, count, s, "hdr.",
                                 [](natsMsg* msg, std::size_t) { check(natsMsgHeader_Add(msg, "K", "v"), "natsMsgHeader_Add"); });
}

/// The headers the bridge sends for T (transport/nats.hpp, bridge/detail/envelope.hpp), built by
/// hand the cheapest way: the constant ones formatted once, the event id and the publish time
/// per message into stack buffers. `one_block`: the lines go to the client as one header whose
/// key holds all but the last line, as the bridge sends them (bridge/detail/envelope.hpp says
/// why); otherwise one natsMsgHeader_Add per header, the client's ordinary way. The same bytes
/// reach the server either way.
template <class T>
double raw_publish_with_envelope(const std::string& url, std::size_t count, const settings& s, bool one_block) {
  const std::string schema(agentbus::event_traits<T>::name());
  const std::string version = std::to_string(agentbus::event_traits<T>::version());
  const std::string fingerprint = agentbus::detail::hex64(agentbus::codec_fingerprint<T>());
  const std::string origin = "agentbus-0123456789abcdef";  // a bridge id's length
  const std::string prefix = fmt::format("{}: {}\r\n{}: {}\r\n{}: {}\r\n{}: ", agentbus::nats_header::schema, schema,
                                         agentbus::nats_header::schema_version, version,
                                         agentbus::nats_header::fingerprint, fingerprint,
                                         agentbus::nats_header::event_id);
  const std::string published_key = fmt::format("\r\n{}: ", agentbus::nats_header::published);
  const std::string origin_key = fmt::format("\r\n{}", agentbus::nats_header::origin);
  const std::uint64_t first_id = std::uint64_t{1} << 40;
  return raw_row_with_headers<T>(url, count, s, "env.", [&](natsMsg* raw, std::size_t i) {
    const std::int64_t now_ns = agentbus::detail::unix_ns(std::chrono::system_clock::now());
    if (one_block) {
      char block[512];
      char* at = std::copy(prefix.begin(), prefix.end(), block);
      at = std::to_chars(at, block + 200, first_id + i).ptr;
      at = std::copy(published_key.begin(), published_key.end(), at);
      at = std::to_chars(at, block + 300, now_ns).ptr;
      at = std::copy(origin_key.begin(), origin_key.end(), at);
      *at = '\0';
      check(natsMsgHeader_Add(raw, block, origin.c_str()), "natsMsgHeader_Add");
    } else {
      char id[24], published[24];
      *std::to_chars(id, id + sizeof id - 1, first_id + i).ptr = '\0';
      *std::to_chars(published, published + sizeof published - 1, now_ns).ptr = '\0';
      check(natsMsgHeader_Add(raw, agentbus::nats_header::schema, schema.c_str()), "natsMsgHeader_Add");
      check(natsMsgHeader_Add(raw, agentbus::nats_header::schema_version, version.c_str()), "natsMsgHeader_Add");
      check(natsMsgHeader_Add(raw, agentbus::nats_header::fingerprint, fingerprint.c_str()), "natsMsgHeader_Add");
      check(natsMsgHeader_Add(raw, agentbus::nats_header::event_id, id), "natsMsgHeader_Add");
      check(natsMsgHeader_Add(raw, agentbus::nats_header::published, published), "natsMsgHeader_Add");
      check(natsMsgHeader_Add(raw, agentbus::nats_header::origin, origin.c_str()), "natsMsgHeader_Add");
    }
  });
}

template <class T>
double bridged_publish(const std::string& url, std::size_t count, const settings& s) {
  const std::string subject = "bench.bridged." + std::to_string(next_id());
  counting_subscriber subscriber(url, subject, count);
  agentbus::bus bus;
  agentbus::nats_bridge bridge(bus, {.url = url});
  bridge.template export_type<T>(subject);
  const agentbus::topic topic(subject);
  const T value = make_payload<T>();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) (void)bus.publish(topic, value);
  const auto end = subscriber.seen.wait(s.row_limit, [&] {
    const auto st = bridge.stats();
    return fmt::format("{} (bridge: {} sent, {} dropped)", subscriber.dropped(), st.sent, st.dropped);
  });
  return rate(count, start, end);
}

/// How far the publisher of the import row may run ahead of the importer (see bridged_to_import).
constexpr std::size_t import_window = 50000;

template <class T>
double bridged_to_import(const std::string& url, std::size_t count, const settings& s) {
  const std::string subject = "bench.imported." + std::to_string(next_id());
  agentbus::bus receiver;
  agentbus::nats_bridge importer(receiver, {.url = url});
  arrivals seen(count);
  const agentbus::subscription counted = receiver.subscribe<T>(subject, [&seen](const agentbus::event<T>&) { seen.arrived(); });
  importer.template import_type<T>(subject);  // live at the server when it returns
  agentbus::bus bus;
  agentbus::nats_bridge bridge(bus, {.url = url});
  bridge.template export_type<T>(subject);
  const agentbus::topic topic(subject);
  const T value = make_payload<T>();
  const auto start = clock_type::now();
  const auto give_up = start + s.row_limit;
  for (std::size_t i = 0; i < count; ++i) {
    // At most import_window messages ahead of the importer: the import's subscription keeps the
    // client's default pending limit (65536 messages), beyond which the client drops what comes
    // in (stats().dropped_incoming). This row measures what the receive path sustains.
    while (i - seen.count() >= import_window && clock_type::now() < give_up) std::this_thread::sleep_for(20us);
    (void)bus.publish(topic, value);
  }
  const auto end = seen.wait(s.row_limit, [&] {
    const auto st = importer.stats();
    return fmt::format(" (importer: {} received, {} dropped by the client, {} not decoded)", st.received,
                       st.dropped_incoming, st.decode_errors + st.schema_mismatches);
  });
  return rate(count, start, end);
}

struct publish_job {
  std::string name;
  std::size_t payload;
  std::function<double()> run;
};

const std::string raw_name = "raw cnats", small_header_name = "raw cnats + one 4-byte header (K: v)", envelope_name = "raw cnats + envelope headers, one header block",
                  envelope_each_name = "raw cnats + envelope headers, a natsMsgHeader_Add each", bridged_name = "bridged",
                  imported_name = "bridged -> bridge import";

std::string publish_row_name(const std::string& kind, std::size_t payload) {
  return fmt::format("{}, {}", kind, size_text(payload));
}

void publish_rows(const settings& s, const std::string& url, std::vector<row>& out) {
  std::vector<publish_job> jobs;
  auto add_size = [&]<class T>(std::size_t count) {
    constexpr std::size_t size = sizeof(T);
    jobs.push_back({publish_row_name(raw_name, size), size, [&url, count, &s] { return raw_publish<T>(url, count, s); }});
    jobs.push_back({publish_row_name(small_header_name, size), size,
                    [&url, count, &s] { return raw_publish_with_one_small_header<T>(url, count, s); }});
    jobs.push_back({publish_row_name(envelope_each_name, size), size,
                    [&url, count, &s] { return raw_publish_with_envelope<T>(url, count, s, false); }});
    jobs.push_back({publish_row_name(envelope_name, size), size,
                    [&url, count, &s] { return raw_publish_with_envelope<T>(url, count, s, true); }});
    jobs.push_back(
        {publish_row_name(bridged_name, size), size, [&url, count, &s] { return bridged_publish<T>(url, count, s); }});
    jobs.push_back(
        {publish_row_name(imported_name, size), size, [&url, count, &s] { return bridged_to_import<T>(url, count, s); }});
  };
  add_size.template operator()<payload_64>(s.messages_64);
  add_size.template operator()<payload_1k>(s.messages_1k);

  std::vector<std::pair<const publish_job*, row>> results;
  for (const auto& j : jobs)
    if (selected(s, section::publish, j.name))
      results.emplace_back(&j, row{section::publish, j.name, j.payload, 0, -1, -1, {}, {}});
  // Round after round, every row once per round: a slow spell of the machine hits them alike.
  for (int round = 0; round < s.rounds; ++round) {
    for (auto& [j, r] : results) {
      if (!r.skipped.empty()) continue;
      try {
        const double per_s = j->run();
        r.rounds.push_back(per_s);
        r.per_s = std::max(r.per_s, per_s);
      } catch (const std::exception& e) {
        r.skipped = std::string("failed: ") + e.what();
      }
    }
  }
  for (auto& [j, r] : results) out.push_back(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Request/reply rows

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void latency_row(row& r, std::size_t count, clock_type::duration elapsed, std::vector<double>& latencies) {
  r.per_s = static_cast<double>(count) / std::chrono::duration<double>(elapsed).count();
  r.p50_ns = percentile(latencies, 0.5);
  r.p99_ns = percentile(latencies, 0.99);
}

void echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  const message_ptr owned(msg);
  if (const char* reply = natsMsg_GetReply(msg); reply != nullptr)
    (void)natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
}

void raw_round_trips(const std::string& url, std::size_t count, row& r) {
  const std::string subject = "bench.rr.raw." + std::to_string(next_id());
  const connection_ptr responder = connect(url, true);
  natsSubscription* raw = nullptr;
  check(natsConnection_Subscribe(&raw, responder.get(), subject.c_str(), echo, nullptr), "natsConnection_Subscribe");
  const subscription_ptr sub(raw);
  check(natsConnection_FlushTimeout(responder.get(), 5000), "natsConnection_FlushTimeout");
  const connection_ptr client = connect(url, true);
  std::vector<double> latencies;
  latencies.reserve(count);
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) {
    const ask value{i};
    const auto sent = clock_type::now();
    natsMsg* reply_raw = nullptr;
    check(natsConnection_Request(&reply_raw, client.get(), subject.c_str(), &value, static_cast<int>(sizeof value), 5000),
          "natsConnection_Request");
    const message_ptr reply(reply_raw);
    ask back{};
    if (natsMsg_GetDataLength(reply_raw) != static_cast<int>(sizeof back) ||
        (std::memcpy(&back, natsMsg_GetData(reply_raw), sizeof back), back.n != value.n))
      throw std::runtime_error("a reply that is not the one asked for");
    latencies.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - sent).count());
  }
  latency_row(r, count, clock_type::now() - t0, latencies);
  (void)natsSubscription_Unsubscribe(sub.get());
}

/// The bridged request/reply row, when this build's bridge has export_requests / import_requests
/// (added alongside this benchmark); otherwise the row says it is not there.
template <class Bus>
void bridged_round_trips(const std::string& url, std::size_t count, row& r) {
  if constexpr (requires(agentbus::nats_bridge<Bus>& b) {
                  b.template export_requests<ask, answer>("a.b");
                  b.template import_requests<ask, answer>("a.b");
                }) {
    const std::string subject = "bench.rr.bridged." + std::to_string(next_id());
    Bus served;
    agentbus::nats_bridge server_bridge(served, {.url = url, .send_asap = true});
    const agentbus::subscription server =
        agentbus::serve<ask, answer>(served, subject, [](const ask& a) { return answer{a.n}; });
    server_bridge.template import_requests<ask, answer>(subject);
    Bus local;
    agentbus::nats_bridge client_bridge(local, {.url = url, .send_asap = true});
    client_bridge.template export_requests<ask, answer>(subject);
    std::vector<double> latencies;
    latencies.reserve(count);
    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto sent = clock_type::now();
      const answer a = agentbus::request<answer>(local, subject, ask{i}, 5s).get();
      if (a.n != i) throw std::runtime_error("a reply that is not the one asked for");
      latencies.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - sent).count());
    }
    latency_row(r, count, clock_type::now() - t0, latencies);
  } else {
    (void)url;
    (void)count;
    r.skipped = "not measured: this build's nats_bridge has no export_requests / import_requests";
  }
}

const std::string rr_raw_name = "raw cnats, send-asap, 1 in flight",
                  rr_bridged_name = "bridged (export_requests -> import_requests + serve), 1 in flight";

void request_rows(const settings& s, const std::string& url, std::vector<row>& out) {
  const std::size_t n = s.round_trips;
  struct rr_job {
    std::string name;
    std::function<void(row&)> run;
  };
  const std::vector<rr_job> jobs = {
      {rr_raw_name, [&](row& r) { raw_round_trips(url, n, r); }},
      {rr_bridged_name, [&](row& r) { bridged_round_trips<agentbus::bus>(url, n, r); }},
  };
  for (const auto& j : jobs) {
    if (!selected(s, section::request_reply, j.name)) continue;
    row r{section::request_reply, j.name, sizeof(ask), 0, -1, -1, {}, {}};
    try {
      j.run(r);
    } catch (const std::exception& e) {
      r.skipped = std::string("failed: ") + e.what();
    }
    out.push_back(std::move(r));
  }
}

/// Every row the run would have had, each with `reason` (no server).
void skip_all(const settings& s, const std::string& reason, std::vector<row>& out) {
  for (const std::size_t size : {std::size_t{64}, std::size_t{1024}})
    for (const auto& kind : {raw_name, envelope_each_name, envelope_name, bridged_name, imported_name})
      if (selected(s, section::publish, publish_row_name(kind, size)))
        out.push_back(row{section::publish, publish_row_name(kind, size), size, 0, -1, -1, {}, reason});
  for (const auto& name : {rr_raw_name, rr_bridged_name})
    if (selected(s, section::request_reply, name))
      out.push_back(row{section::request_reply, name, sizeof(ask), 0, -1, -1, {}, reason});
}

// ---------------------------------------------------------------------------------------------
// Output

const row* find_row(const std::vector<row>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name && r.skipped.empty()) return &r;
  return nullptr;
}

struct ratio {
  std::size_t payload;
  double best = 0;              // best bridged / best raw
  double low = 0, high = 0;     // range of the per-round ratios
  double median = 0;            // their median
  double envelope_best = -1;    // best raw+envelope / best raw
  double small_header_best = -1;  // best raw+one 4-byte header / best raw
};

std::vector<ratio> ratios(const std::vector<row>& rows) {
  std::vector<ratio> out;
  for (const std::size_t size : {std::size_t{64}, std::size_t{1024}}) {
    const row* raw = find_row(rows, publish_row_name(raw_name, size));
    const row* bridged = find_row(rows, publish_row_name(bridged_name, size));
    if (raw == nullptr || bridged == nullptr || raw->per_s <= 0) continue;
    ratio q{size, bridged->per_s / raw->per_s, 0, 0, 0, -1};
    std::vector<double> each;
    for (std::size_t i = 0; i < std::min(raw->rounds.size(), bridged->rounds.size()); ++i)
      each.push_back(bridged->rounds[i] / raw->rounds[i]);
    std::sort(each.begin(), each.end());
    if (!each.empty()) {
      q.low = each.front();
      q.high = each.back();
      q.median = each.size() % 2 == 1 ? each[each.size() / 2]
                                      : (each[each.size() / 2 - 1] + each[each.size() / 2]) / 2;
    }
    if (const row* env = find_row(rows, publish_row_name(envelope_name, size))) q.envelope_best = env->per_s / raw->per_s;
    if (const row* one = find_row(rows, publish_row_name(small_header_name, size))) q.small_header_best = one->per_s / raw->per_s;
    out.push_back(q);
  }
  return out;
}

double versus_raw(const std::vector<row>& rows, const row& r) {
  if (r.sec != section::publish || !r.skipped.empty()) return -1;
  const row* raw = find_row(rows, publish_row_name(raw_name, r.payload));
  return raw != nullptr && raw->per_s > 0 ? r.per_s / raw->per_s : -1;
}

void print_table(const settings& s, const std::vector<row>& rows) {
  fmt::print("\nbench/nats{}: the NATS bridge next to the NATS C client, one nats-server, one run\n",
             s.quick ? " (--quick)" : "");
  fmt::print("publish rows: {} messages of 64 B, {} of 1 KB, end to end (first publish to last arrival), best of {} "
             "round{}\n",
             s.messages_64, s.messages_1k, s.rounds, s.rounds == 1 ? "" : "s");
  fmt::print("request/reply rows: {} round trips, one in flight\n\n", s.round_trips);
  fmt::print("{:<15} {:<68} {:>12} {:>9} {:>8} {:>9} {:>9}\n", "section", "row", "msgs/s", "MB/s", "vs raw", "p50 us",
             "p99 us");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    if (!r.skipped.empty()) {
      // Rows skipped for one reason (no server) get one line.
      std::size_t same = 1;
      while (i + same < rows.size() && rows[i + same].skipped == r.skipped) ++same;
      fmt::print("{:<15} {:<68} {}\n", section_name(r.sec), same > 1 ? fmt::format("({} rows)", same) : r.name,
                 r.skipped);
      i += same - 1;
      continue;
    }
    const double vs = versus_raw(rows, r);
    const bool latency = r.p50_ns >= 0;
    fmt::print("{:<15} {:<68} {:>12.0f} {:>9} {:>8} {:>9} {:>9}\n", section_name(r.sec), r.name, r.per_s,
               latency ? std::string("-") : fmt::format("{:.1f}", r.per_s * static_cast<double>(r.payload) / 1e6),
               vs >= 0 ? fmt::format("{:.0f}%", vs * 100) : std::string("-"),
               latency ? fmt::format("{:.1f}", r.p50_ns / 1000) : std::string("-"),
               latency ? fmt::format("{:.1f}", r.p99_ns / 1000) : std::string("-"));
  }
  const auto q = ratios(rows);
  if (!q.empty()) fmt::print("\ntarget (issue 11): bridged publish >= 80% of raw cnats, same payload, same run\n");
  for (const auto& x : q) {
    fmt::print("  {:>5}: bridged / raw = {:.0f}% (per round {:.0f}%..{:.0f}%, median {:.0f}%): {}", size_text(x.payload),
               x.best * 100, x.low * 100, x.high * 100, x.median * 100, x.best >= 0.8 ? "met" : "NOT met");
    if (x.envelope_best > 0)
      fmt::print("; raw + envelope (one block) / raw = {:.0f}%, bridged / that = {:.0f}%", x.envelope_best * 100,
                 x.best / x.envelope_best * 100);
    if (x.small_header_best > 0)
      fmt::print("; raw + one 4-byte header / raw = {:.0f}% (the ceiling with headers through this client)",
                 x.small_header_best * 100);
    fmt::print("\n");
  }
}

std::string json_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\')
      out += {'\\', c};
    else if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    else
      out += c;
  }
  return out;
}

bool write_json(const std::string& path, const settings& s, const std::vector<row>& rows) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  fmt::print(f, "{{\n  \"benchmark\": \"nats\",\n  \"quick\": {},\n  \"rounds\": {},\n  \"rows\": [\n", s.quick,
             s.rounds);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    std::string fields = fmt::format("\"section\": \"{}\", \"name\": \"{}\", \"payload_bytes\": {}",
                                     section_name(r.sec), json_escape(r.name), r.payload);
    if (!r.skipped.empty()) {
      fields += fmt::format(", \"skipped\": \"{}\"", json_escape(r.skipped));
    } else if (r.sec == section::publish) {
      fields += fmt::format(", \"msgs_per_s\": {:.1f}", r.per_s);
      if (const double vs = versus_raw(rows, r); vs >= 0) fields += fmt::format(", \"ratio_to_raw\": {:.4f}", vs);
      std::string each;
      for (const double x : r.rounds) each += fmt::format("{}{:.1f}", each.empty() ? "" : ", ", x);
      fields += ", \"rounds_msgs_per_s\": [" + each + "]";
    } else {
      fields += fmt::format(", \"round_trips_per_s\": {:.1f}, \"p50_ns\": {:.1f}, \"p99_ns\": {:.1f}", r.per_s, r.p50_ns,
                            r.p99_ns);
    }
    fmt::print(f, "    {{{}}}{}\n", fields, i + 1 < rows.size() ? "," : "");
  }
  fmt::print(f, "  ],\n  \"bridged_over_raw\": [\n");
  const auto q = ratios(rows);
  for (std::size_t i = 0; i < q.size(); ++i)
    fmt::print(f,
               "    {{\"payload_bytes\": {}, \"best\": {:.4f}, \"round_low\": {:.4f}, \"round_high\": {:.4f}, "
               "\"round_median\": {:.4f}, \"envelope_over_raw\": {:.4f}, \"target\": 0.8, \"met\": {}}}{}\n",
               q[i].payload, q[i].best, q[i].low, q[i].high, q[i].median, q[i].envelope_best, q[i].best >= 0.8,
               i + 1 < q.size() ? "," : "");
  fmt::print(f, "  ]\n}}\n");
  return std::fclose(f) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = agentbus::bench::parse_command_line(argc, argv);
  if (!args) return 2;
  settings s;
  s.quick = args->quick;
  s.json_path = args->json_path;
  s.only = args->only;
  const int rounds = args->rounds;
  if (s.quick) {
    s.rounds = 1;
    s.messages_64 = 20000;
    s.messages_1k = 5000;
    s.round_trips = 1000;
    s.row_limit = 20s;
  }
  if (rounds > 0) s.rounds = rounds;

  std::vector<row> rows;
  {
    struct nats_library {  // cnats runs threads of its own: end them before exit (bounded)
      ~nats_library() { nats_CloseAndWait(5000); }
    } nats_library_guard;
    const auto program = agentbus::test::find_nats_server();
    if (!program) {
      skip_all(s,
               "skipped: nats-server not found (/usr/sbin, /usr/bin, /usr/local/bin, PATH, $AGENTBUS_NATS_SERVER; "
               "Debian: apt-get install nats-server)",
               rows);
    } else {
      try {
        auto arguments = [](int p, const std::string& dir) {
          return std::vector<std::string>{"-a", "127.0.0.1", "-p", std::to_string(p), "-l", dir + "/server.log"};
        };
        // SIGINT: nats-server's clean shutdown (it exits 1 on SIGTERM).
        agentbus::bench::server_process server({*program, arguments, SIGINT});
        const std::string url = fmt::format("nats://127.0.0.1:{}", server.port());
        publish_rows(s, url, rows);
        request_rows(s, url, rows);
      } catch (const std::exception& e) {
        rows.clear();
        skip_all(s, std::string("skipped: ") + e.what(), rows);
      }
    }
  }

  print_table(s, rows);
  if (!s.json_path.empty()) {
    if (!write_json(s.json_path, s, rows)) {
      fmt::print(stderr, "cannot write {}\n", s.json_path);
      return 1;
    }
    fmt::print("wrote {}\n", s.json_path);
  }
  return 0;
}
