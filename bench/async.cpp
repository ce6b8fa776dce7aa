// SPDX-License-Identifier: MIT
// bench/async: cross-thread publish -> agent handler.
//
// Rows:
//   throughput 1P1A   one publisher thread, one agent on its own thread (channel publish)
//   throughput 2P2A   two publishers, two agents, each publisher feeding its own agent
//   throughput 2P2A executor   the same with both agents on a 2-thread executor
//   latency hot       publish, wait until handled, repeat (the agent is spinning, not parked)
//   latency parked    one event every 200 us: the agent has parked and must be woken
// Latency is publish() start to handler start, measured with steady_clock, reported as
// percentiles. The payload is a 16-byte struct.
//
// Usage: bench_async [--quick] [--json FILE]

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct sample {
  std::uint64_t seq;
  std::int64_t sent_ns;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

struct result {
  std::string name;
  double mevents_per_s = 0;
  double p50 = 0, p99 = 0, p999 = 0;
  bool latency = false;
};

// `pairs` publisher threads, each feeding its own agent; events handled per second overall.
double throughput(int pairs, std::uint64_t per_publisher, bool pooled) {
  agentbus::bus bus;
  std::unique_ptr<agentbus::executor> pool;
  if (pooled) pool = std::make_unique<agentbus::executor>(agentbus::executor_options{.threads = 2, .batch = 256});
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  std::vector<agentbus::subscription> subs;
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>>> handled;
  const agentbus::mailbox_options opts{.capacity = 4096, .overflow = agentbus::overflow::block};
  for (int i = 0; i < pairs; ++i) {
    agents.push_back(pooled ? std::make_unique<agentbus::agent>("a" + std::to_string(i), *pool, opts)
                            : std::make_unique<agentbus::agent>("a" + std::to_string(i), opts));
    handled.push_back(std::make_unique<std::atomic<std::uint64_t>>(0));
    subs.push_back(agents.back()->subscribe(bus, "bench.p" + std::to_string(i),
                                            [h = handled.back().get()](const sample& s) {
                                              h->store(s.seq + 1, std::memory_order_relaxed);
                                            }));
    if (!pooled) agents.back()->start();
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> publishers;
  for (int i = 0; i < pairs; ++i)
    publishers.emplace_back([&, i] {
      auto ch = bus.channel<sample>("bench.p" + std::to_string(i));
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      for (std::uint64_t s = 0; s < per_publisher; ++s) ch.publish(sample{s, 0});
    });
  while (ready.load() < pairs) std::this_thread::yield();
  const auto t0 = clock_type::now();
  go = true;
  for (auto& t : publishers) t.join();
  for (auto& a : agents) a->stop(agentbus::stop_mode::drain);  // everything handled
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  for (auto& h : handled)
    if (h->load() != per_publisher) fmt::print(stderr, "lost events!\n");
  return static_cast<double>(per_publisher) * pairs / s / 1e6;
}

// Publish one event, wait until its handler ran, repeat; optionally pause between events so
// that the agent parks.
result latency(const char* name, std::uint64_t count, std::chrono::microseconds pause) {
  agentbus::bus bus;
  agentbus::agent a("lat");
  std::vector<std::int64_t> lat;
  lat.reserve(count);
  std::atomic<std::uint64_t> done{0};
  auto sub = a.subscribe(bus, "bench.lat", [&](const sample& s) {
    lat.push_back(now_ns() - s.sent_ns);
    done.store(s.seq + 1, std::memory_order_release);
  });
  a.start();
  auto ch = bus.channel<sample>("bench.lat");
  for (std::uint64_t i = 0; i < count; ++i) {
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    ch.publish(sample{i, now_ns()});
    while (done.load(std::memory_order_acquire) != i + 1) std::this_thread::yield();
  }
  a.stop();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return static_cast<double>(lat[static_cast<std::size_t>(p * static_cast<double>(lat.size() - 1))]); };
  result r;
  r.name = name;
  r.latency = true;
  r.p50 = pct(0.5);
  r.p99 = pct(0.99);
  r.p999 = pct(0.999);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else {
      fmt::print(stderr, "usage: {} [--quick] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  const std::uint64_t n = quick ? 200000 : 5000000;
  const int reps = quick ? 1 : 3;
  std::vector<result> results;
  auto best_of = [&](const char* name, int pairs, bool pooled) {
    double best = 0;
    for (int r = 0; r < reps; ++r) best = std::max(best, throughput(pairs, n / static_cast<std::uint64_t>(pairs), pooled));
    result res;
    res.name = name;
    res.mevents_per_s = best;
    results.push_back(res);
  };
  best_of("throughput 1P1A (own thread)", 1, false);
  best_of("throughput 2P2A (own threads)", 2, false);
  best_of("throughput 2P2A (2-thread executor)", 2, true);
  results.push_back(latency("latency hot (back to back)", quick ? 2000 : 50000, std::chrono::microseconds(0)));
  results.push_back(latency("latency parked (every 200 us)", quick ? 200 : 3000, std::chrono::microseconds(200)));

  fmt::print("\nbench/async: publish on one thread, handler on an agent's thread (best of {} runs)\n", reps);
  fmt::print("{:<40} {:>12} {:>10} {:>10} {:>10}\n", "row", "M events/s", "p50 ns", "p99 ns", "p99.9 ns");
  for (const auto& r : results) {
    if (r.latency)
      fmt::print("{:<40} {:>12} {:>10.0f} {:>10.0f} {:>10.0f}\n", r.name, "-", r.p50, r.p99, r.p999);
    else
      fmt::print("{:<40} {:>12.2f} {:>10} {:>10} {:>10}\n", r.name, r.mevents_per_s, "-", "-", "-");
  }
  const double one = results[0].mevents_per_s;
  fmt::print("\ntarget: 1P1A >= 10 M events/s: {:.2f} M events/s, {:.2f}x the target {}\n", one, one / 10.0,
             one >= 10.0 ? "ok" : "MISSED");

  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) return 1;
    fmt::print(f, "{{\n  \"benchmark\": \"async\",\n  \"rows\": [\n");
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      fmt::print(f, "    {{\"name\": \"{}\", \"mevents_per_s\": {:.3f}, \"p50_ns\": {:.0f}, \"p99_ns\": {:.0f}, \"p999_ns\": {:.0f}}}{}\n",
                 r.name, r.mevents_per_s, r.p50, r.p99, r.p999, i + 1 < results.size() ? "," : "");
    }
    fmt::print(f, "  ]\n}}\n");
    std::fclose(f);
  }
  return 0;
}
