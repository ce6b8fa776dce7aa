// SPDX-License-Identifier: MIT
// bench/reliability: the delivery-guarantee paths, agentbus and its peers side by side in one run,
// each peer measured the way it measures best (issue 13).
//
// Systems and rows:
//   agentbus (in process)      request/reply, same thread: a synchronous server, the reply is
//                              ready when request() returns; cross-thread: a server on an agent
//                              with its own thread, one request in flight; and 4 in flight
//   agentbus (journal,         a basic_bus<storage::journal> with durability::interval(50 ms); the
//     interval)                acked rows: a consumer_group (a durable consumer is a group of one
//                              member), each member polling batches of 1000 on its own thread,
//                              every event acked; the cursor stored beside the journal
//   Redis Streams              redis-server started by this program, AOF with appendfsync
//     (AOF everysec / no AOF)  everysec, and again without AOF. Acked rows (below): XREADGROUP
//                              COUNT 1000 with BLOCK, each batch's XACK pipelined with the next
//                              XREADGROUP (COUNT 100 measured the same here, within the noise;
//                              1000 matches JetStream's Fetch). Request/reply: RPUSH + BLPOP
//                              pipelined by the client, BLPOP + RPUSH by the server thread, one
//                              request in flight
//   NATS JetStream             nats-server -js started by this program; a stream with file
//                              storage and a durable pull consumer (js_AddConsumer, explicit
//                              acks, MaxAckPending raised), Fetch(1000) + natsMsg_Ack per message
//   NATS core                  request/reply, one in flight, send-asap on both connections
//
// The acked-throughput rows are the same workloads for every system (acked_workloads()):
//   64 B and 1 KB payloads; one consumer; a group of 4 consumers (4 threads, a connection each)
//   sharing the work of one stream; one consumer with a producer thread appending at the same
//   time (otherwise the stream is prefilled, pipelined XADD / async publishes, outside the clock).
//   The clock starts when every thread is connected and released together and stops at the last
//   acknowledgement (XACK's reply; natsMsg_Ack does not wait, so the batch that completes the work
//   is flushed, PING/PONG, before the time is taken). Idle consumers waiting for more work at the
//   end are not timed.
//   Each row then checks that every event was acked once (nothing pending, nothing delivered
//   twice); a row that fails is printed with its reason instead of a figure.
// Latency (request/reply rows) is request start to reply, steady_clock, percentiles.
//
// A peer whose client library was not found at build time (hiredis, libnats via pkg-config), or
// whose server is not installed or does not start within 5 s, gets rows that say so. Every wait
// is bounded (socket timeouts, fetch and request timeouts, a per-row limit). Servers listen on
// 127.0.0.1 on a free port, keep their files in a temporary directory, and are stopped by PID.
//
// Usage: bench_reliability [--quick] [--json FILE] [--rounds N] [--only TEXT]
//   --quick    fewer events and one round for the peers (the CI smoke run, a few seconds)
//   --json     also write every row to FILE
//   --rounds   runs per row, the best is kept (default 3; --quick: 3 in process, 1 for peers)
//   --only     run only the rows whose "system: name" contains TEXT (e.g. "JetStream (file): acked, 4")

#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/group.hpp>
#include <agentbus/storage/journal.hpp>

#include "support/command_line.hpp"
#include "support/server_process.hpp"

#include <fmt/core.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if AGENTBUS_BENCH_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#if AGENTBUS_BENCH_HAVE_NATS
#include <nats/nats.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Rows, the one table every system reports into

enum class metric { round_trips, acked };

struct measurement {
  double per_s = 0;
  double p50_ns = -1, p99_ns = -1;  // request/reply rows only
};

struct row {
  std::string system;
  std::string name;
  metric kind = metric::round_trips;
  measurement m;
  std::string skipped;  ///< why there is no figure (peer missing, run failed); empty when measured
};

/// One row to measure: `run` does one measurement and throws when it cannot.
struct job {
  std::string system;
  std::string name;
  metric kind;
  std::function<measurement()> run;
};

struct settings {
  bool quick = false;
  std::string json_path;
  std::string only;
  int rounds = 3;       // in-process rows
  int peer_rounds = 3;  // rows against a server
  std::size_t bus_round_trips = 300000;
  std::size_t peer_round_trips = 20000;
  std::size_t events = 200000;            // per acked-throughput row
  std::chrono::seconds row_limit = 120s;  // no row waits longer for its consumers
};

/// --only TEXT: a row runs when "system: name" contains TEXT.
bool selected(const settings& s, const std::string& system, const std::string& name) {
  return s.only.empty() || (system + ": " + name).find(s.only) != std::string::npos;
}

/// Runs the selected jobs `rounds` times, round after round (a slow spell of the machine then
/// hits every row alike), and keeps each row's best run. A job that throws is reported with its
/// reason and not run again.
void run_jobs(const settings& s, const std::vector<job>& jobs, int rounds, std::vector<row>& out) {
  std::vector<std::pair<const job*, row>> results;
  for (const auto& j : jobs)
    if (selected(s, j.system, j.name)) results.emplace_back(&j, row{j.system, j.name, j.kind, {}, {}});
  for (int round = 0; round < rounds; ++round) {
    for (auto& [j, r] : results) {
      if (!r.skipped.empty()) continue;
      try {
        const measurement m = j->run();
        if (m.per_s > r.m.per_s) r.m = m;
      } catch (const std::exception& e) {
        r.skipped = std::string("failed: ") + e.what();
      }
    }
  }
  for (auto& [j, r] : results) out.push_back(std::move(r));
}

/// The rows a system would have had, each with the reason it has none (a peer that is missing).
void skip_jobs(const settings& s, const std::vector<job>& jobs, const std::string& reason, std::vector<row>& out) {
  for (const auto& j : jobs)
    if (selected(s, j.system, j.name)) out.push_back(row{j.system, j.name, j.kind, {}, reason});
}

bool any_selected(const settings& s, const std::vector<job>& jobs) {
  return std::any_of(jobs.begin(), jobs.end(), [&](const job& j) { return selected(s, j.system, j.name); });
}

/// A peer's rows against a server of its own: `started` learns the server's port before the
/// jobs run; when the server cannot be started, every row says why.
[[maybe_unused]] void run_with_server(const settings& s, const std::vector<job>& jobs,
                                      agentbus::bench::server_command command,
                                      const std::function<void(int port)>& started, std::vector<row>& out) {
  try {
    agentbus::bench::server_process server(std::move(command));
    started(server.port());
    run_jobs(s, jobs, s.peer_rounds, out);  // a job that fails is reported by run_jobs, not here
  } catch (const std::exception& e) {
    skip_jobs(s, jobs, std::string("skipped: ") + e.what(), out);
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

measurement latency_measurement(std::size_t count, clock_type::duration elapsed, std::vector<double>& latencies) {
  return {static_cast<double>(count) / std::chrono::duration<double>(elapsed).count(), percentile(latencies, 0.5),
          percentile(latencies, 0.99)};
}

// ---------------------------------------------------------------------------------------------
// The acked-throughput workloads: every system that acknowledges events runs these same shapes.

struct acked_workload {
  std::size_t payload;  ///< bytes per event
  int consumers;        ///< 1, or a group sharing one stream's events
  bool live_producer;   ///< a producer thread appends while the consumers run (else: prefilled)
};

const std::vector<acked_workload>& acked_workloads() {
  static const std::vector<acked_workload> all = {
      {64, 1, false}, {64, 4, false}, {64, 1, true}, {1024, 1, false}, {1024, 4, false}, {1024, 1, true},
  };
  return all;
}

std::string row_name(const acked_workload& w) {
  const std::string size = w.payload >= 1024 ? fmt::format("{} KB", w.payload / 1024) : fmt::format("{} B", w.payload);
  if (w.live_producer) return fmt::format("acked, {} consumer + live producer, {}", w.consumers, size);
  if (w.consumers == 1) return fmt::format("acked, 1 consumer, {}", size);
  return fmt::format("acked, {}-consumer group, {}", w.consumers, size);
}

/// What one consumer thread reports: how many events it acked and when the last ack was confirmed.
struct consumer_result {
  std::size_t acked = 0;
  clock_type::time_point last_ack{};
};

/// Acked events per second from the start of a run to the last confirmed ack of any consumer.
[[maybe_unused]] measurement acked_measurement(std::size_t total, clock_type::time_point start,
                                               const std::vector<consumer_result>& results) {
  std::size_t acked = 0;
  clock_type::time_point end = start;
  for (const auto& r : results) {
    acked += r.acked;
    end = std::max(end, r.last_ack);
  }
  if (acked != total) throw std::runtime_error(fmt::format("{} of {} events acked", acked, total));
  return {static_cast<double>(total) / std::chrono::duration<double>(end - start).count()};
}

/// Runs `body(index, ready)` on `n` threads. Each thread sets up (connects, subscribes) and then
/// calls ready(), which returns when every thread is set up: the clock starts then, and that
/// time is returned. Throws the first exception a thread threw (the others see `abort` and stop).
/// Every wait is bounded.
template <class Body>
clock_type::time_point run_threads(int n, std::atomic<bool>& abort, Body body) {
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  bool open = false;
  clock_type::time_point start{};
  std::exception_ptr failure;
  auto ready = [&] {
    std::unique_lock lock(mutex);
    ++arrived;
    cv.notify_all();
    if (!cv.wait_for(lock, 30s, [&] { return open; })) throw std::runtime_error("threads not released within 30 s");
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      bool counted = false;
      try {
        body(i, [&] {
          counted = true;
          ready();
        });
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!failure) failure = std::current_exception();
        abort = true;
      }
      if (!counted) {  // failed during setup: still counts, so the others are released
        std::lock_guard lock(mutex);
        ++arrived;
        cv.notify_all();
      }
    });
  }
  bool all_set_up = false;
  {
    std::unique_lock lock(mutex);
    all_set_up = cv.wait_for(lock, 30s, [&] { return arrived == n; });
    if (!all_set_up) abort = true;
    start = clock_type::now();
    open = true;
    cv.notify_all();
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  if (!all_set_up) throw std::runtime_error("threads not set up within 30 s");
  return start;
}

// [[maybe_unused]]: the helpers of the acked rows are only used by the systems that were built.
[[maybe_unused]] std::uint64_t next_id() {
  static std::atomic<std::uint64_t> id{0};
  return ++id;
}

// ---------------------------------------------------------------------------------------------
// agentbus, in process: request/reply

const std::string bus_system = "agentbus (in process)";

struct ask {
  std::uint64_t n;
};
struct answer {
  std::uint64_t n;
};

measurement bus_round_trips(bool cross_thread, std::size_t in_flight, std::size_t count) {
  agentbus::bus bus;
  agentbus::agent server_agent("server");
  agentbus::subscription server =
      cross_thread ? agentbus::serve<ask, answer>(
                         bus, "svc.echo", [](const ask& a) { return answer{a.n}; }, agentbus::async(server_agent))
                   : agentbus::serve<ask, answer>(bus, "svc.echo", [](const ask& a) { return answer{a.n}; });
  if (cross_thread) server_agent.start();
  std::vector<double> latencies;
  latencies.reserve(count);
  std::deque<std::pair<agentbus::reply_future<answer>, clock_type::time_point>> outstanding;
  std::uint64_t wrong = 0;
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto start = clock_type::now();
    outstanding.emplace_back(agentbus::request<answer>(bus, "svc.echo", ask{i}, 5s), start);
    if (outstanding.size() >= in_flight || i + 1 == count) {
      while (!outstanding.empty()) {
        auto& [future, sent] = outstanding.front();
        const std::uint64_t expected = i + 1 - outstanding.size();  // replies come back in order
        if (future.get().n != expected) ++wrong;
        latencies.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - sent).count());
        outstanding.pop_front();
        if (outstanding.size() < in_flight && i + 1 != count) break;
      }
    }
  }
  const auto elapsed = clock_type::now() - t0;
  if (cross_thread) server_agent.stop();
  if (wrong != 0) throw std::runtime_error(fmt::format("{} replies did not match their request", wrong));
  return latency_measurement(count, elapsed, latencies);
}

void bus_rows(const settings& s, std::vector<row>& out) {
  const std::size_t n = s.bus_round_trips;
  run_jobs(
      s,
      {
          {bus_system, "request/reply, same thread", metric::round_trips, [n] { return bus_round_trips(false, 1, n); }},
          {bus_system, "request/reply, cross-thread", metric::round_trips,
           [n] { return bus_round_trips(true, 1, n / 3); }},
          {bus_system, "request/reply, cross-thread, 4 in flight", metric::round_trips,
           [n] { return bus_round_trips(true, 4, n / 3); }},
      },
      s.rounds, out);
}

// ---------------------------------------------------------------------------------------------
// agentbus, in process: acked throughput of durable consumers on a journal bus

const std::string journal_system = "agentbus (journal, interval)";

/// A payload of N bytes, stored by its bytes.
template <std::size_t N>
struct blob {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = N >= 1024 ? "bench.blob1k" : "bench.blob64";
  std::array<char, N> bytes{};
};

using journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

/// A fresh journal directory, removed afterwards; durability interval(50 ms), as the issue asks.
struct bench_journal {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              fmt::format("agentbus-bench-journal-{}-{}", ::getpid(), next_id());
  agentbus::journal_options options() const {
    agentbus::journal_options o;
    o.directory = dir;
    o.durability = agentbus::durability::interval(50ms);
    return o;
  }
  ~bench_journal() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

/// One acked workload: events are stored on a journal bus (before the clock starts, unless a
/// live producer publishes them while the consumers run), then consumed by a consumer group of
/// `consumers` members (a durable consumer is a group of one), each polling batches of 1000 on
/// its own thread and acking every event; the run ends at the last ack.
template <std::size_t N>
measurement journal_acked(const acked_workload& w, std::size_t events, std::chrono::seconds limit) {
  bench_journal journal;
  journal_bus bus(journal.options());
  blob<N> payload;
  payload.bytes.fill('x');
  if (!w.live_producer)
    for (std::size_t i = 0; i < events; ++i) bus.publish("bench.events", payload);
  agentbus::consumer_group<blob<N>> group(bus, "bench", "bench.>");
  std::atomic<std::size_t> acked{0};
  std::atomic<bool> abort{false};
  std::vector<consumer_result> results(static_cast<std::size_t>(w.consumers));
  std::thread producer;
  const auto give_up = clock_type::now() + limit;
  const auto start = run_threads(w.consumers + (w.live_producer ? 1 : 0), abort, [&](int i, auto ready) {
    if (i == w.consumers) {  // the live producer
      ready();
      for (std::size_t k = 0; k < events && !abort; ++k) bus.publish("bench.events", payload);
      return;
    }
    auto member = group.join(fmt::format("m{}", i));
    consumer_result& mine = results[static_cast<std::size_t>(i)];
    ready();
    while (acked.load(std::memory_order_relaxed) < events && !abort) {
      const std::size_t n = member.poll_for([](const agentbus::delivered<blob<N>>&) {}, 10ms, 1000);
      if (n != 0) {
        mine.acked += n;
        mine.last_ack = clock_type::now();
        acked.fetch_add(n, std::memory_order_relaxed);
      }
      if (clock_type::now() > give_up) throw std::runtime_error("not every event acked within the row's limit");
    }
  });
  const agentbus::consumer_info info = group.info();
  if (info.acked != events || info.redelivered != 0)
    throw std::runtime_error(fmt::format("{} of {} acked, {} redelivered", info.acked, events, info.redelivered));
  return acked_measurement(events, start, results);
}

void journal_rows(const settings& s, std::vector<row>& out) {
  std::vector<job> jobs;
  for (const acked_workload& w : acked_workloads())
    jobs.push_back({journal_system, row_name(w), metric::acked, [w, &s] {
                      return w.payload >= 1024 ? journal_acked<1024>(w, s.events, s.row_limit)
                                               : journal_acked<64>(w, s.events, s.row_limit);
                    }});
  run_jobs(s, jobs, s.rounds, out);
}

// ---------------------------------------------------------------------------------------------
// Redis Streams

#if AGENTBUS_BENCH_HAVE_HIREDIS
namespace redis {

struct reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply = std::unique_ptr<redisReply, reply_deleter>;

/// One hiredis connection. Commands are appended to its output buffer and sent when a reply
/// is first asked for, which is how hiredis pipelines. Every reply is waited for at most 10 s
/// (the socket timeout): a stuck server fails the row instead of hanging the benchmark.
class connection {
 public:
  explicit connection(int port) : c_(redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0})) {
    if (c_ == nullptr || c_->err != 0) {
      const std::string why = c_ != nullptr ? c_->errstr : "out of memory";
      if (c_ != nullptr) redisFree(c_);
      throw std::runtime_error("cannot connect to redis-server: " + why);
    }
    redisSetTimeout(c_, timeval{10, 0});
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() { redisFree(c_); }

  void append(std::span<const std::string_view> args) {
    argv_.clear();
    lengths_.clear();
    for (auto a : args) {
      argv_.push_back(a.data());
      lengths_.push_back(a.size());
    }
    // hiredis formats the command into its buffer here: the arguments may go away afterwards.
    if (redisAppendCommandArgv(c_, static_cast<int>(argv_.size()), argv_.data(), lengths_.data()) != REDIS_OK)
      throw std::runtime_error(std::string("redis: ") + c_->errstr);
  }
  void append(std::initializer_list<std::string_view> args) { append(std::span(args.begin(), args.size())); }

  /// The next reply; throws on a connection error, a timeout or an error reply.
  reply get() {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK || r == nullptr)
      throw std::runtime_error(std::string("redis: ") + c_->errstr);
    reply out(static_cast<redisReply*>(r));
    if (out->type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + std::string(out->str, out->len));
    return out;
  }
  reply command(std::initializer_list<std::string_view> args) {
    append(args);
    return get();
  }

 private:
  redisContext* c_;
  std::vector<const char*> argv_;
  std::vector<std::size_t> lengths_;
};

std::string_view text(const redisReply* r) { return {r->str, r->len}; }

/// Appends `count` events, pipelined 1000 XADDs at a time.
void append_events(connection& c, const std::string& key, std::size_t count, const std::string& payload,
                   const std::atomic<bool>& abort) {
  constexpr std::size_t batch = 1000;
  for (std::size_t done = 0; done < count && !abort;) {
    const std::size_t n = std::min(batch, count - done);
    for (std::size_t i = 0; i < n; ++i) c.append({"XADD", key, "*", "p", payload});
    for (std::size_t i = 0; i < n; ++i) c.get();
    done += n;
  }
}

/// One consumer of group "g": reads batches of up to 1000 new events (BLOCK 100 ms, so an idle
/// consumer waits in the server, not in a loop), sends each batch's XACK together with the next
/// XREADGROUP, and stops when the group has been delivered `total` events.
consumer_result consume(connection& c, const std::string& key, const std::string& name, std::size_t payload_size,
                        std::size_t total, std::atomic<std::size_t>& delivered, const std::atomic<bool>& abort,
                        clock_type::time_point deadline) {
  consumer_result result;
  const std::initializer_list<std::string_view> read = {"XREADGROUP", "GROUP", "g",       name, "COUNT", "1000",
                                                        "BLOCK",      "100",   "STREAMS", key,  ">"};
  std::vector<std::string_view> ack = {"XACK", key, "g"};
  c.append(read);
  for (;;) {
    const reply batch = c.get();
    std::size_t got = 0;
    ack.resize(3);
    if (batch->type == REDIS_REPLY_ARRAY && batch->elements == 1) {
      // [[key, [[id, [field, value]], ...]]]
      const redisReply* entries = batch->element[0]->element[1];
      for (std::size_t i = 0; i < entries->elements; ++i) {
        const redisReply* entry = entries->element[i];
        const redisReply* fields = entry->element[1];
        if (fields->type != REDIS_REPLY_ARRAY || fields->elements != 2 || fields->element[1]->len != payload_size)
          throw std::runtime_error("XREADGROUP returned an entry that is not the one written");
        ack.push_back(text(entry->element[0]));
      }
      got = entries->elements;
    }
    const bool all_delivered = delivered.fetch_add(got) + got >= total;
    if (got != 0) c.append(ack);
    const bool more = !all_delivered && !abort && clock_type::now() < deadline;
    if (more) c.append(read);
    if (got != 0) {
      result.acked += static_cast<std::size_t>(c.get()->integer);
      result.last_ack = clock_type::now();
    }
    if (!more) break;
  }
  if (!abort && delivered < total) throw std::runtime_error("timed out before every event was delivered");
  return result;
}

measurement acked_run(int port, const acked_workload& w, const settings& s) {
  const std::string key = fmt::format("bench.stream.{}", next_id());
  const std::string payload(w.payload, 'x');
  connection admin(port);
  admin.command({"XGROUP", "CREATE", key, "g", "0", "MKSTREAM"});
  std::atomic<bool> abort{false};
  if (!w.live_producer) append_events(admin, key, s.events, payload, abort);  // outside the clock

  std::atomic<std::size_t> delivered{0};
  std::vector<consumer_result> results(static_cast<std::size_t>(w.consumers));
  const int threads = w.consumers + (w.live_producer ? 1 : 0);
  const auto deadline = clock_type::now() + s.row_limit;
  const auto start = run_threads(threads, abort, [&](int i, auto ready) {
    connection c(port);
    ready();
    if (i == w.consumers)
      append_events(c, key, s.events, payload, abort);  // the live producer
    else
      results[static_cast<std::size_t>(i)] =
          consume(c, key, fmt::format("c{}", i), w.payload, s.events, delivered, abort, deadline);
  });
  const measurement m = acked_measurement(s.events, start, results);

  // Every event acked once: nothing left pending in the group.
  const reply pending = admin.command({"XPENDING", key, "g"});
  if (pending->type != REDIS_REPLY_ARRAY || pending->elements < 1 || pending->element[0]->integer != 0)
    throw std::runtime_error("events still pending after the run");
  admin.command({"DEL", key});  // the next row starts from an empty server
  return m;
}

/// Request/reply through two lists, one request in flight: the client sends RPUSH and BLPOP
/// together, the server thread answers with RPUSH and its next BLPOP together.
measurement round_trips(int port, std::size_t count) {
  const std::string id = std::to_string(next_id());
  const std::string requests = "bench.req." + id, replies = "bench.rep." + id;
  connection client(port);
  std::atomic<bool> stop{false}, server_failed{false};
  std::exception_ptr server_failure;  // read after the join only
  std::thread server([&] {
    try {
      connection c(port);
      c.append({"BLPOP", requests, "1"});
      while (!stop) {
        const reply r = c.get();
        if (r->type == REDIS_REPLY_NIL) {  // a 1 s timeout: look at `stop`, wait again
          c.append({"BLPOP", requests, "1"});
          continue;
        }
        const std::string_view value = text(r->element[1]);
        if (value == "stop") break;
        c.append({"RPUSH", replies, value});
        c.append({"BLPOP", requests, "1"});
        c.get();  // RPUSH's reply
      }
    } catch (...) {
      server_failure = std::current_exception();
      server_failed = true;
    }
  });
  struct server_stopper {  // the server thread ends however the client loop ends
    std::atomic<bool>& stop;
    std::thread& server;
    void join() {
      stop = true;
      if (server.joinable()) server.join();  // bounded: its BLPOP times out after 1 s
    }
    ~server_stopper() { join(); }
  } stopper{stop, server};

  std::vector<double> latencies;
  latencies.reserve(count);
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < count && !server_failed; ++i) {
    const std::string value = std::to_string(i);
    const auto sent = clock_type::now();
    client.append({"RPUSH", requests, value});
    client.append({"BLPOP", replies, "5"});
    client.get();
    const reply r = client.get();
    if (r->type != REDIS_REPLY_ARRAY || text(r->element[1]) != value)
      throw std::runtime_error("no reply, or not the one asked for, within 5 s");
    latencies.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - sent).count());
  }
  const auto elapsed = clock_type::now() - t0;
  client.command({"RPUSH", requests, "stop"});
  stopper.join();
  if (server_failure) std::rethrow_exception(server_failure);
  return latency_measurement(count, elapsed, latencies);
}

}  // namespace redis
#else
namespace redis {  // built without hiredis: the rows are listed, reported as skipped, never run
measurement acked_run(int, const acked_workload&, const settings&) { throw std::logic_error("built without hiredis"); }
measurement round_trips(int, std::size_t) { throw std::logic_error("built without hiredis"); }
}  // namespace redis
#endif  // AGENTBUS_BENCH_HAVE_HIREDIS

void redis_rows(const settings& s, std::vector<row>& out) {
  struct configuration {
    const char* system;
    bool aof;
  };
  for (const configuration cfg :
       {configuration{"Redis Streams (AOF everysec)", true}, configuration{"Redis Streams (no AOF)", false}}) {
    int port = 0;  // the server's, set before any job runs
    std::vector<job> jobs;
    for (const auto& w : acked_workloads())
      jobs.push_back({cfg.system, row_name(w), metric::acked, [&port, w, &s] { return redis::acked_run(port, w, s); }});
    jobs.push_back({cfg.system, "request/reply, RPUSH/BLPOP, 1 in flight", metric::round_trips,
                    [&port, &s] { return redis::round_trips(port, s.peer_round_trips); }});
    if (!any_selected(s, jobs)) continue;
#if AGENTBUS_BENCH_HAVE_HIREDIS
    const bool aof = cfg.aof;
    auto arguments = [aof](int p, const std::string& dir) {
      std::vector<std::string> args = {"--bind",       "127.0.0.1",
                                       "--port",       std::to_string(p),
                                       "--save",       "",
                                       "--dir",        dir,
                                       "--logfile",    dir + "/server.log",
                                       "--daemonize",  "no",
                                       "--appendonly", aof ? "yes" : "no"};
      if (aof) args.insert(args.end(), {"--appendfsync", "everysec"});
      return args;
    };
    run_with_server(
        s, jobs, {"redis-server", arguments, SIGTERM}, [&port](int p) { port = p; }, out);
#else
    skip_jobs(s, jobs, "skipped: built without hiredis (libhiredis-dev, pkg-config hiredis)", out);
#endif
  }
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream and core NATS

#if AGENTBUS_BENCH_HAVE_NATS
namespace nats {

template <class T, void (*Destroy)(T*)>
struct destroyer {
  void operator()(T* p) const noexcept { Destroy(p); }
};
using connection_ptr = std::unique_ptr<natsConnection, destroyer<natsConnection, natsConnection_Destroy>>;
using context_ptr = std::unique_ptr<jsCtx, destroyer<jsCtx, jsCtx_Destroy>>;
using subscription_ptr = std::unique_ptr<natsSubscription, destroyer<natsSubscription, natsSubscription_Destroy>>;
using message_ptr = std::unique_ptr<natsMsg, destroyer<natsMsg, natsMsg_Destroy>>;
using options_ptr = std::unique_ptr<natsOptions, destroyer<natsOptions, natsOptions_Destroy>>;

void check(natsStatus status, const char* what, jsErrCode js_error = static_cast<jsErrCode>(0)) {
  if (status == NATS_OK) return;
  std::string why = fmt::format("{}: {}", what, natsStatus_GetText(status));
  if (js_error != 0) why += fmt::format(" (JetStream error {})", static_cast<int>(js_error));
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0')
    why += fmt::format(" ({})", last);
  throw std::runtime_error(why);
}

/// A connection that fails instead of reconnecting (a dead server ends the row). send_asap
/// writes every message at once instead of batching writes: what request/reply wants.
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

void count_publish_error(jsCtx*, jsPubAckErr*, void* closure) {
  static_cast<std::atomic<std::size_t>*>(closure)->fetch_add(1);
}

/// A JetStream context whose API calls wait at most 10 s; async publishes that fail are
/// counted in `publish_errors`.
context_ptr jetstream(natsConnection* nc, std::atomic<std::size_t>* publish_errors = nullptr) {
  jsOptions options;
  check(jsOptions_Init(&options), "jsOptions_Init");
  options.Wait = 10000;
  // At most 4096 publishes awaiting their ack; a publisher that gets that far ahead waits up
  // to 10 s for acks rather than failing after the default 200 ms.
  options.PublishAsync.MaxPending = 4096;
  options.PublishAsync.StallWait = 10000;
  if (publish_errors != nullptr) {
    options.PublishAsync.ErrHandler = count_publish_error;
    options.PublishAsync.ErrHandlerClosure = publish_errors;
  }
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, nc, &options), "natsConnection_JetStream");
  return context_ptr(js);
}

/// Publishes `count` events asynchronously and waits (at most 60 s) until all are stored.
void publish_events(natsConnection* nc, const std::string& subject, std::size_t count, const std::string& payload,
                    const std::atomic<bool>& abort) {
  std::atomic<std::size_t> errors{0};
  const context_ptr js = jetstream(nc, &errors);
  for (std::size_t i = 0; i < count && !abort; ++i)
    check(js_PublishAsync(js.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size()), nullptr),
          "js_PublishAsync");
  jsPubOptions wait;
  check(jsPubOptions_Init(&wait), "jsPubOptions_Init");
  wait.MaxWait = 60000;
  check(js_PublishAsyncComplete(js.get(), &wait), "js_PublishAsyncComplete");
  if (errors != 0) throw std::runtime_error(fmt::format("{} JetStream publishes failed", errors.load()));
}

/// One member of the durable pull consumer `durable`: Fetch(1000) and ack every message, until the
/// consumer has delivered `total` events. The acks are not waited for one by one; a flush at
/// the end confirms the server has them all.
consumer_result fetch_and_ack(const std::string& url, const std::string& stream, const std::string& durable,
                              const std::string& subject, std::size_t payload_size, std::size_t total,
                              std::atomic<std::size_t>& delivered, const std::atomic<bool>& abort,
                              clock_type::time_point deadline, const std::function<void()>& ready) {
  const connection_ptr nc = connect(url, false);
  const context_ptr js = jetstream(nc.get());
  jsSubOptions bind;
  check(jsSubOptions_Init(&bind), "jsSubOptions_Init");
  bind.Stream = stream.c_str();
  bind.Consumer = durable.c_str();  // bind to the durable made by js_AddConsumer, do not create one
  natsSubscription* raw = nullptr;
  jsErrCode js_error{};
  check(js_PullSubscribe(&raw, js.get(), subject.c_str(), durable.c_str(), nullptr, &bind, &js_error),
        "js_PullSubscribe", js_error);
  const subscription_ptr sub(raw);
  ready();

  consumer_result result;
  while (delivered < total && !abort) {
    if (clock_type::now() >= deadline) throw std::runtime_error("timed out before every event was delivered");
    // libnats 3.4.1's Fetch writes past its array when it starts with more than half a batch
    // already queued on the subscription (messages of an earlier pull request that arrived after
    // that Fetch had returned): it asks the server for (batch - queued) and then waits for count
    // == batch - queued, which it has already passed. Queued messages are therefore taken one at
    // a time: a Fetch(1) that finds one returns it without asking the server for more.
    int queued = 0, queued_bytes = 0;
    check(natsSubscription_GetPending(sub.get(), &queued, &queued_bytes), "natsSubscription_GetPending");
    // Never more than the events left: the last Fetch then returns as soon as they are in
    // rather than waiting out its timeout for a full batch.
    const std::size_t left = total - std::min(total, delivered.load());
    const int batch = queued > 0 ? 1 : static_cast<int>(std::clamp<std::size_t>(left, 1, 1000));
    natsMsgList list{};
    // 1 s: long enough that a batch is delivered before the Fetch gives up (one that gives up
    // mid-batch leaves the rest queued), short enough for a member with nothing left to notice
    // that the work is done.
    const natsStatus status = natsSubscription_Fetch(&list, sub.get(), batch, 1000, &js_error);
    if (status == NATS_TIMEOUT) continue;  // nothing to fetch right now
    check(status, "natsSubscription_Fetch", js_error);
    for (int i = 0; i < list.Count; ++i) {
      if (static_cast<std::size_t>(natsMsg_GetDataLength(list.Msgs[i])) != payload_size) {
        natsMsgList_Destroy(&list);
        throw std::runtime_error("fetched a message that is not the one published");
      }
      check(natsMsg_Ack(list.Msgs[i], nullptr), "natsMsg_Ack");
    }
    result.acked += static_cast<std::size_t>(list.Count);
    const bool finished = (delivered += static_cast<std::size_t>(list.Count)) >= total;
    natsMsgList_Destroy(&list);
    // natsMsg_Ack does not wait for the server. The batch that completes the work is flushed
    // (a PING/PONG after the acks) before its time is taken: the run ends when the server has
    // every ack. Earlier batches' acks go out with the client's buffered writes.
    if (finished) check(natsConnection_FlushTimeout(nc.get(), 10000), "natsConnection_FlushTimeout");
    result.last_ack = clock_type::now();
  }
  // Not timed: a member's last acks are at the server before the row checks the consumer.
  if (result.acked != 0) check(natsConnection_FlushTimeout(nc.get(), 10000), "natsConnection_FlushTimeout");
  return result;
}

measurement acked_run(const std::string& url, const acked_workload& w, const settings& s) {
  const std::string id = std::to_string(next_id());
  const std::string stream = "BENCH" + id, subject = "bench.events." + id, durable = "workers";
  const std::string payload(w.payload, 'x');
  const connection_ptr admin = connect(url, false);
  const context_ptr js = jetstream(admin.get());

  jsStreamConfig stream_config;
  check(jsStreamConfig_Init(&stream_config), "jsStreamConfig_Init");
  const char* subjects[] = {subject.c_str()};
  stream_config.Name = stream.c_str();
  stream_config.Subjects = subjects;
  stream_config.SubjectsLen = 1;
  stream_config.Storage = js_FileStorage;
  jsStreamInfo* stream_info = nullptr;
  jsErrCode js_error{};
  check(js_AddStream(&stream_info, js.get(), &stream_config, nullptr, &js_error), "js_AddStream", js_error);
  jsStreamInfo_Destroy(stream_info);
  struct stream_remover {  // the next row starts from an empty store, however this one ends
    jsCtx* js;
    const std::string& name;
    ~stream_remover() { js_DeleteStream(js, name.c_str(), nullptr, nullptr); }
  } remove_stream{js.get(), stream};

  jsConsumerConfig consumer_config;
  check(jsConsumerConfig_Init(&consumer_config), "jsConsumerConfig_Init");
  consumer_config.Durable = durable.c_str();
  consumer_config.AckPolicy = js_AckExplicit;
  // The default (1000 unacked messages per consumer) would let one Fetch(1000) at a time be
  // outstanding: the 4 members of a group would take turns instead of working together.
  consumer_config.MaxAckPending = 20000;
  jsConsumerInfo* consumer_info = nullptr;
  check(js_AddConsumer(&consumer_info, js.get(), stream.c_str(), &consumer_config, nullptr, &js_error),
        "js_AddConsumer", js_error);
  jsConsumerInfo_Destroy(consumer_info);

  std::atomic<bool> abort{false};
  if (!w.live_producer) publish_events(admin.get(), subject, s.events, payload, abort);  // outside the clock

  std::atomic<std::size_t> delivered{0};
  std::vector<consumer_result> results(static_cast<std::size_t>(w.consumers));
  const int threads = w.consumers + (w.live_producer ? 1 : 0);
  const auto deadline = clock_type::now() + s.row_limit;
  const auto start = run_threads(threads, abort, [&](int i, auto ready) {
    if (i == w.consumers) {  // the live producer
      const connection_ptr nc = connect(url, false);
      ready();
      publish_events(nc.get(), subject, s.events, payload, abort);
    } else {
      results[static_cast<std::size_t>(i)] =
          fetch_and_ack(url, stream, durable, subject, w.payload, s.events, delivered, abort, deadline, ready);
    }
  });
  const measurement m = acked_measurement(s.events, start, results);

  // Every event acked once: the server may apply the last acks a moment after the flush.
  bool settled = false;
  std::string state;
  for (const auto until = clock_type::now() + 2s; !settled && clock_type::now() < until;) {
    check(js_GetConsumerInfo(&consumer_info, js.get(), stream.c_str(), durable.c_str(), nullptr, &js_error),
          "js_GetConsumerInfo", js_error);
    settled = consumer_info->NumAckPending == 0 && consumer_info->NumPending == 0 && consumer_info->NumRedelivered == 0;
    state = fmt::format("{} unacked, {} undelivered, {} redelivered", consumer_info->NumAckPending,
                        consumer_info->NumPending, consumer_info->NumRedelivered);
    jsConsumerInfo_Destroy(consumer_info);
    if (!settled) std::this_thread::sleep_for(10ms);
  }
  if (!settled) throw std::runtime_error("consumer not settled after the run: " + state);
  return m;
}

void echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  const message_ptr owned(msg);
  if (const char* reply = natsMsg_GetReply(msg); reply != nullptr)
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
}

/// Core NATS request/reply, one in flight, send-asap on the requester's and the responder's
/// connection (otherwise each side batches writes and a round trip costs ~1 ms).
measurement round_trips(const std::string& url, std::size_t count) {
  const std::string subject = "bench.rr." + std::to_string(next_id());
  const connection_ptr responder = connect(url, true);
  natsSubscription* raw = nullptr;
  check(natsConnection_Subscribe(&raw, responder.get(), subject.c_str(), echo, nullptr), "natsConnection_Subscribe");
  const subscription_ptr sub(raw);
  check(natsConnection_FlushTimeout(responder.get(), 5000), "natsConnection_FlushTimeout");  // subscribed at the server
  const connection_ptr client = connect(url, true);

  std::vector<double> latencies;
  latencies.reserve(count);
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) {
    const std::string value = std::to_string(i);
    const auto sent = clock_type::now();
    natsMsg* reply_raw = nullptr;
    check(natsConnection_Request(&reply_raw, client.get(), subject.c_str(), value.data(),
                                 static_cast<int>(value.size()), 5000),
          "natsConnection_Request");
    const message_ptr reply(reply_raw);
    if (std::string_view(natsMsg_GetData(reply_raw), static_cast<std::size_t>(natsMsg_GetDataLength(reply_raw))) !=
        value)
      throw std::runtime_error("a reply that is not the one asked for");
    latencies.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - sent).count());
  }
  return latency_measurement(count, clock_type::now() - t0, latencies);
}

}  // namespace nats
#else
namespace nats {  // built without libnats: the rows are listed, reported as skipped, never run
measurement acked_run(const std::string&, const acked_workload&, const settings&) {
  throw std::logic_error("built without libnats");
}
measurement round_trips(const std::string&, std::size_t) { throw std::logic_error("built without libnats"); }
}  // namespace nats
#endif  // AGENTBUS_BENCH_HAVE_NATS

void nats_rows(const settings& s, std::vector<row>& out) {
  const std::string jetstream = "NATS JetStream (file)", core = "NATS core";
  std::string url;  // the server's, set before any job runs
  std::vector<job> jobs;
  for (const auto& w : acked_workloads())
    jobs.push_back({jetstream, row_name(w), metric::acked, [&url, w, &s] { return nats::acked_run(url, w, s); }});
  jobs.push_back({core, "request/reply, send-asap, 1 in flight", metric::round_trips,
                  [&url, &s] { return nats::round_trips(url, s.peer_round_trips); }});
  if (!any_selected(s, jobs)) return;
#if AGENTBUS_BENCH_HAVE_NATS
  const auto program = agentbus::test::find_nats_server();
  if (!program) {
    skip_jobs(s, jobs,
              "skipped: nats-server not found (/usr/sbin, /usr/bin, /usr/local/bin, PATH, $AGENTBUS_NATS_SERVER)", out);
    return;
  }
  auto arguments = [](int p, const std::string& dir) {
    return std::vector<std::string>{"-js",          "-a", "127.0.0.1",        "-p", std::to_string(p), "-sd",
                                    dir + "/store", "-l", dir + "/server.log"};
  };
  // SIGINT: nats-server's clean shutdown (it exits 1 on SIGTERM).
  run_with_server(
      s, jobs, {*program, arguments, SIGINT}, [&url](int p) { url = fmt::format("nats://127.0.0.1:{}", p); }, out);
#else
  skip_jobs(s, jobs, "skipped: built without the NATS C client (libnats-dev, pkg-config libnats)", out);
#endif
}

// ---------------------------------------------------------------------------------------------
// Output

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

void print_table(const settings& s, const std::vector<row>& rows) {
  fmt::print("\nbench/reliability{}: delivery guarantees, side by side\n", s.quick ? " (--quick)" : "");
  fmt::print("best of {} runs per row in process, of {} per row against a server\n", s.rounds, s.peer_rounds);
  fmt::print("acked rows: {} events each; peer request/reply rows: {} round trips\n", s.events, s.peer_round_trips);
  fmt::print("{:<30} {:<44} {:>12} {:<14} {:>9} {:>9}\n", "system", "row", "rate", "unit", "p50 us", "p99 us");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    if (!r.skipped.empty()) {
      // A system whose rows are all skipped for one reason (a peer missing) gets one line.
      std::size_t same = 1;
      while (i + same < rows.size() && rows[i + same].system == r.system && rows[i + same].skipped == r.skipped) ++same;
      if (same > 1) {
        fmt::print("{:<30} {:<44} {}\n", r.system, fmt::format("({} rows)", same), r.skipped);
        i += same - 1;
      } else {
        fmt::print("{:<30} {:<44} {}\n", r.system, r.name, r.skipped);
      }
      continue;
    }
    const bool latency = r.m.p50_ns >= 0;
    fmt::print("{:<30} {:<44} {:>12.0f} {:<14} {:>9} {:>9}\n", r.system, r.name, r.m.per_s,
               r.kind == metric::acked ? "acked/s" : "round trips/s",
               latency ? fmt::format("{:.2f}", r.m.p50_ns / 1000) : "-",
               latency ? fmt::format("{:.2f}", r.m.p99_ns / 1000) : "-");
  }
  fmt::print(
      "\nissue 13 quotes, measured on a quiet machine (64 B): Redis Streams AOF everysec 309 k acked/s (1 consumer),\n"
      "490 k (4-consumer group); no AOF 436 k / 844 k; JetStream Fetch(1000) + ack 365 k / 254 k; Redis RPUSH/BLPOP\n"
      "9.7 k round trips/s (p50 110 us); NATS core request/reply, send-asap, 6.9 k/s (p50 135 us).\n");

  const auto cross = std::find_if(rows.begin(), rows.end(), [](const row& r) {
    return r.system == bus_system && r.name == "request/reply, cross-thread" && r.skipped.empty();
  });
  fmt::print("\ntargets (same run, issue 13):\n");
  if (cross != rows.end()) {
    const auto& x = cross->m;
    fmt::print("  cross-thread p50 <= 5 us: {:.2f} us {}\n", x.p50_ns / 1000, x.p50_ns <= 5000 ? "met" : "NOT met");
    fmt::print("  cross-thread >= 200 k round trips/s: {:.0f} k {}\n", x.per_s / 1000,
               x.per_s >= 200000 ? "met" : "NOT met");
  }
  // Acked throughput at 64 B: at least 10x the faster durable peer (Redis with AOF everysec, or
  // JetStream), for one consumer and for the 4-member group.
  const auto rate = [&](const std::string& system, const std::string& name) {
    const auto it = std::find_if(rows.begin(), rows.end(),
                                 [&](const row& r) { return r.system == system && r.name == name && r.skipped.empty(); });
    return it == rows.end() ? -1.0 : it->m.per_s;
  };
  for (const char* name : {"acked, 1 consumer, 64 B", "acked, 4-consumer group, 64 B"}) {
    const double ours = rate(journal_system, name);
    const double peer = std::max(rate("Redis Streams (AOF everysec)", name), rate("NATS JetStream (file)", name));
    if (ours < 0 || peer <= 0) continue;
    fmt::print("  {}: {:.1f}x the faster durable peer (>= 10x): {}\n", name, ours / peer,
               ours >= 10 * peer ? "met" : "NOT met");
  }
}

bool write_json(const std::string& path, const settings& s, const std::vector<row>& rows) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  fmt::print(f, "{{\n  \"benchmark\": \"reliability\",\n  \"quick\": {},\n  \"rows\": [\n", s.quick);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    std::string fields =
        fmt::format("\"system\": \"{}\", \"name\": \"{}\"", json_escape(r.system), json_escape(r.name));
    if (!r.skipped.empty())
      fields += fmt::format(", \"skipped\": \"{}\"", json_escape(r.skipped));
    else if (r.kind == metric::acked)
      fields += fmt::format(", \"acked_per_s\": {:.1f}", r.m.per_s);
    else
      fields += fmt::format(", \"round_trips_per_s\": {:.1f}, \"p50_ns\": {:.1f}, \"p99_ns\": {:.1f}", r.m.per_s,
                            r.m.p50_ns, r.m.p99_ns);
    fmt::print(f, "    {{{}}}{}\n", fields, i + 1 < rows.size() ? "," : "");
  }
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
    s.bus_round_trips = 20000;
    s.peer_round_trips = 2000;
    s.events = 20000;
    s.peer_rounds = 1;
    s.row_limit = 30s;
  }
  if (rounds > 0) s.rounds = s.peer_rounds = rounds;
#if AGENTBUS_BENCH_HAVE_NATS
  struct nats_library {  // cnats runs threads of its own: end them before exit (bounded)
    ~nats_library() { nats_CloseAndWait(5000); }
  } nats_library_guard;
#endif

  // One function per system, each appending its rows to the one table. A system with acked rows
  // builds one job per acked_workloads() entry, named row_name(w), so that its rows line up with
  // the peers' (see redis_rows and nats_rows).
  std::vector<row> rows;
  bus_rows(s, rows);
  journal_rows(s, rows);
  redis_rows(s, rows);
  nats_rows(s, rows);

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
