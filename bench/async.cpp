// SPDX-License-Identifier: MIT
// bench/async: cross-thread publish -> agent handler.
//
// Rows:
//   throughput 1P1A   one publisher thread, one agent on its own thread (channel publish)
//   throughput 2P2A   two publishers, two agents, each publisher feeding its own agent
//   throughput 2P2A executor   the same with both agents on a 2-thread executor
//   by-value baseline one producer thread moving the 16-byte event by value through a
//                     hand-made bounded SPSC ring (below) to a consumer thread that calls a
//                     std::function: the floor 1P1A is compared with (target >= 0.6x)
//   by-value baseline + stamp   the same, the producer reading std::chrono::system_clock once
//                     per event into it: the clock read every event a mailbox keeps gets
//                     (envelope::published, core/event.hpp), which alone costs more than the
//                     baseline's whole event on some machines (24 ns measured on the 2-vCPU
//                     VM this was written on, against 8-10 ns per baseline event). For
//                     information: no target
//   latency hot       publish, wait (yielding) until handled, repeat; publish -> handler start
//   latency parked    one event every 200 us: the agent has parked and must be woken
//   ping-pong agent   request/response: publish, spin until the handler ran, publish the next
//                     at once; the round trip (publish start -> handler's effect seen), one
//                     event in flight. Next to it the raw queue ping-pong measured the way
//                     bench/queue does it (two agentbus::mpmc_queue, try ops, spinning), in
//                     the same binary and the same thread placement (target agent <= 2x raw)
//   idle agents       N agents on one executor, each subscribed to a topic of its own and
//                     never sent anything: heap bytes per agent (the executor and the
//                     subscriptions included), time to create and destroy them all (target:
//                     100 000 of them in <= 1 GiB)
// Latency is measured with steady_clock and reported as percentiles. The payload is a
// 16-byte struct. The ping-pong rows pin the two threads to CPUs 0 and 1 when it can.
//
// Usage: bench_async [--quick] [--json FILE] [--only throughput|latency|idle]
//   --only   run one group of rows (for before/after comparisons on a busy machine); the
//            targets whose rows did not run are not printed

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

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

template <class T>
double percentile(std::vector<T>& v, double p) {
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))]);
}

// Pins the calling thread to one CPU for a scope, then restores its mask (Linux; elsewhere,
// and when the CPU is not ours, nothing).
class scoped_pin {
 public:
  explicit scoped_pin(int cpu) {
#if defined(__linux__)
    if (pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) != 0) return;
    if (!CPU_ISSET(cpu, &saved_)) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    active_ = pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
#else
    (void)cpu;
#endif
  }
  scoped_pin(const scoped_pin&) = delete;
  scoped_pin& operator=(const scoped_pin&) = delete;
  ~scoped_pin() {
#if defined(__linux__)
    if (active_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
#endif
  }

 private:
#if defined(__linux__)
  cpu_set_t saved_{};
#endif
  bool active_ = false;
};

void pin_this_thread(int cpu) {
#if defined(__linux__)
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
#else
  (void)cpu;
#endif
}

template <class Pred>
void spin_until(Pred pred) {
  while (!pred()) agentbus::detail::cpu_relax();
}

// ---- the by-value baseline: a bounded single-producer single-consumer ring, written here.
// The textbook one (Lamport's, with each side caching the other's index so that it reads the
// other side's line only when its cached copy says full / empty), events stored by value.
template <class T>
class spsc_ring {
 public:
  explicit spsc_ring(std::size_t capacity) : mask_(capacity - 1), slots_(capacity) {}
  bool try_push(const T& v) noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = v;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  bool try_pop(T& out) noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return false;
    }
    out = slots_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

 private:
  const std::size_t mask_;
  std::vector<T> slots_;
  alignas(128) std::atomic<std::size_t> tail_{0};  // producer
  std::size_t head_cache_ = 0;                     // producer's copy of head_
  alignas(128) std::atomic<std::size_t> head_{0};  // consumer
  std::size_t tail_cache_ = 0;                     // consumer's copy of tail_
};

// Pause, and yield after a while: when the two threads share a core (the machine is busy),
// spinning alone would wait for a whole time slice.
inline void wait_a_little(unsigned spins) {
  if (spins < 64)
    agentbus::detail::cpu_relax();
  else
    std::this_thread::yield();
}

// One producer, one consumer thread calling a std::function per event; events per second.
// `stamped`: the producer reads the system clock into each event, as a retained publish does.
double by_value_baseline(std::uint64_t count, bool stamped = false) {
  spsc_ring<sample> ring(4096);  // the capacity the agent rows use
  std::atomic<std::uint64_t> handled{0};
  std::function<void(const sample&)> handler = [&handled](const sample& s) {
    handled.store(s.seq + 1, std::memory_order_relaxed);
  };
  std::atomic<bool> go{false};
  std::thread consumer([&] {
    while (!go.load()) std::this_thread::yield();
    sample s{};
    for (std::uint64_t i = 0; i < count; ++i) {
      for (unsigned spins = 0; !ring.try_pop(s); ++spins) wait_a_little(spins);
      handler(s);
    }
  });
  const auto t0 = clock_type::now();
  go = true;
  for (std::uint64_t s = 0; s < count; ++s) {
    const sample ev{s, stamped ? std::chrono::system_clock::now().time_since_epoch().count() : 0};
    for (unsigned spins = 0; !ring.try_push(ev); ++spins) wait_a_little(spins);
  }
  consumer.join();
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (handled.load() != count) fmt::print(stderr, "baseline lost events!\n");
  return static_cast<double>(count) / secs / 1e6;
}

// ---- ping-pong: one event in flight, the next published as soon as the handler ran.

struct round_trips {
  double p50 = 0, p99 = 0;
};

// Publisher on CPU 0 publishes, spins until the agent's handler (its thread on CPU 1) has
// stored the event's number, publishes the next at once. Round trip per event.
round_trips pingpong_agent(std::uint64_t count) {
  agentbus::bus bus;
  agentbus::agent a("pingpong");
  std::atomic<std::uint64_t> done{0};
  auto sub = a.subscribe(bus, "bench.pingpong", [&](const sample& s) {
    if (s.sent_ns < 0) pin_this_thread(1);  // the warm-up event pins the agent's thread
    done.store(s.seq + 1, std::memory_order_release);
  });
  a.start();
  auto ch = bus.channel<sample>("bench.pingpong");
  const scoped_pin pin(0);
  ch.publish(sample{0, -1});
  spin_until([&] { return done.load(std::memory_order_acquire) == 1; });
  const std::uint64_t warmup = count / 10;
  std::vector<std::int64_t> rt;
  rt.reserve(count);
  for (std::uint64_t i = 1; i <= count + warmup; ++i) {
    const std::int64_t t0 = now_ns();
    ch.publish(sample{i, 0});
    spin_until([&] { return done.load(std::memory_order_acquire) == i + 1; });
    if (i > warmup) rt.push_back(now_ns() - t0);
  }
  a.stop();
  return {percentile(rt, 0.5), percentile(rt, 0.99)};
}

// The raw queue ping-pong as bench/queue measures it: two mpmc_queue, try ops, spinning, the
// echo thread on CPU 1. Round trip per item.
round_trips pingpong_raw_queue(std::uint64_t count) {
  agentbus::mpmc_queue<std::uint64_t> there(1024), back(1024);
  const std::uint64_t warmup = count / 10;
  std::vector<std::int64_t> rt;
  rt.reserve(count);
  const scoped_pin pin(0);
  std::thread echo([&] {
    pin_this_thread(1);
    std::uint64_t v = 0;
    for (std::uint64_t i = 0; i < count + warmup; ++i) {
      spin_until([&] { return there.try_pop(v); });
      spin_until([&] { return back.try_push(v); });
    }
  });
  std::uint64_t v = 0;
  for (std::uint64_t i = 0; i < count + warmup; ++i) {
    const std::int64_t t0 = now_ns();
    spin_until([&] { return there.try_push(i); });
    spin_until([&] { return back.try_pop(v); });
    if (i >= warmup) rt.push_back(now_ns() - t0);
  }
  echo.join();
  return {percentile(rt, 0.5), percentile(rt, 0.99)};
}

// ---- idle agents

std::size_t heap_in_use() {
#if defined(__GLIBC__)
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#else
  return 0;
#endif
}

struct idle_result {
  std::size_t agents = 0;
  double bytes_per_agent = 0;
  double total_mib = 0;
  double create_ms = 0;
  double destroy_ms = 0;
};

// `count` agents on one 2-thread executor, each subscribed to "agents.<i>.inbox", idle.
idle_result idle_agents(std::size_t count) {
  agentbus::bus bus;
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  std::vector<agentbus::subscription> subs;
  agents.reserve(count);
  subs.reserve(count);
  // Counted from here: the executor too (its run queue has a slot per agent it may hold).
  const std::size_t before = heap_in_use();
  const auto t0 = clock_type::now();
  auto pool = std::make_unique<agentbus::executor>(agentbus::executor_options{.threads = 2, .max_agents = count});
  for (std::size_t i = 0; i < count; ++i) {
    const std::string name = std::to_string(i);
    agents.push_back(std::make_unique<agentbus::agent>(name, *pool));
    subs.push_back(agents.back()->subscribe(bus, "agents." + name + ".inbox", [](const sample&) {}));
  }
  const auto t1 = clock_type::now();
  const std::size_t after = heap_in_use();
  // Subscriptions first (as an agent's owner would), then the agents.
  subs.clear();
  agents.clear();
  pool.reset();
  const auto t2 = clock_type::now();
  idle_result r;
  r.agents = count;
  r.bytes_per_agent = static_cast<double>(after - before) / static_cast<double>(count);
  r.total_mib = static_cast<double>(after - before) / (1024.0 * 1024.0);
  r.create_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.destroy_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  return r;
}

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
  result r;
  r.name = name;
  r.latency = true;
  r.p50 = percentile(lat, 0.5);
  r.p99 = percentile(lat, 0.99);
  r.p999 = percentile(lat, 0.999);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else {
      fmt::print(stderr, "usage: {} [--quick] [--json FILE] [--only throughput|latency|idle]\n", argv[0]);
      return 2;
    }
  }
  const bool run_throughput = only.empty() || only == "throughput";
  const bool run_latency = only.empty() || only == "latency";
  const bool run_idle = only.empty() || only == "idle";
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
    return best;
  };
  double one = 0, baseline = 0, stamped_baseline = 0;
  if (run_throughput) {
    one = best_of("throughput 1P1A (own thread)", 1, false);
    best_of("throughput 2P2A (own threads)", 2, false);
    best_of("throughput 2P2A (2-thread executor)", 2, true);
    for (int r = 0; r < reps; ++r) baseline = std::max(baseline, by_value_baseline(n));
    results.push_back({"by-value baseline (SPSC ring, 1P1C)", baseline});
    for (int r = 0; r < reps; ++r) stamped_baseline = std::max(stamped_baseline, by_value_baseline(n, true));
    results.push_back({"by-value baseline + stamp (clock/event)", stamped_baseline});
  }
  // Ping-pong: agent and raw queue in turns, medians of the rounds' percentiles (placement
  // and neighbours on this shared machine move single runs by 2x).
  const int pp_rounds = quick ? 1 : 5;
  auto median = [](std::vector<double> v) { return percentile(v, 0.5); };
  double pp_ratio = 0;
  if (run_latency) {
    results.push_back(latency("latency hot (back to back)", quick ? 2000 : 50000, std::chrono::microseconds(0)));
    results.push_back(latency("latency parked (every 200 us)", quick ? 200 : 3000, std::chrono::microseconds(200)));
    const std::uint64_t pp_count = quick ? 5000 : 100000;
    std::vector<double> agent_p50, agent_p99, raw_p50, raw_p99;
    for (int r = 0; r < pp_rounds; ++r) {
      const round_trips raw = pingpong_raw_queue(pp_count);
      const round_trips ag = pingpong_agent(pp_count);
      raw_p50.push_back(raw.p50);
      raw_p99.push_back(raw.p99);
      agent_p50.push_back(ag.p50);
      agent_p99.push_back(ag.p99);
    }
    result ra;
    ra.name = "ping-pong agent (round trip)";
    ra.latency = true;
    ra.p50 = median(agent_p50);
    ra.p99 = median(agent_p99);
    ra.p999 = -1;
    result rr;
    rr.name = "ping-pong raw mpmc_queue (round trip)";
    rr.latency = true;
    rr.p50 = median(raw_p50);
    rr.p99 = median(raw_p99);
    rr.p999 = -1;
    results.push_back(ra);
    results.push_back(rr);
    pp_ratio = ra.p50 / rr.p50;
  }
  idle_result idle;
  if (run_idle) idle = idle_agents(quick ? 10000 : 100000);

  fmt::print("\nbench/async: publish on one thread, handler on an agent's thread (best of {} runs; ping-pong: median of {})\n",
             reps, pp_rounds);
  fmt::print("{:<40} {:>12} {:>10} {:>10} {:>10}\n", "row", "M events/s", "p50 ns", "p99 ns", "p99.9 ns");
  for (const auto& r : results) {
    if (r.latency)
      fmt::print("{:<40} {:>12} {:>10.0f} {:>10.0f} {:>10}\n", r.name, "-", r.p50, r.p99,
                 r.p999 < 0 ? std::string("-") : fmt::format("{:.0f}", r.p999));
    else
      fmt::print("{:<40} {:>12.2f} {:>10} {:>10} {:>10}\n", r.name, r.mevents_per_s, "-", "-", "-");
  }
  if (run_idle)
    fmt::print("\nidle agents on one executor, one subscription each: {} agents, {:.0f} heap bytes per agent ({:.1f} MiB), "
               "create {:.0f} ms, destroy {:.0f} ms\n",
               idle.agents, idle.bytes_per_agent, idle.total_mib, idle.create_ms, idle.destroy_ms);

  const double idle_gib_at_100k = idle.bytes_per_agent * 100000.0 / (1024.0 * 1024.0 * 1024.0);
  fmt::print("\ntargets\n");
  if (run_throughput) {
    fmt::print("  1P1A >= 10 M events/s: {:.2f} M events/s, {:.2f}x the target {}\n", one, one / 10.0,
               one >= 10.0 ? "met" : "NOT met");
    fmt::print("  1P1A / by-value baseline >= 0.6x: {:.2f}x {}\n", one / baseline, one / baseline >= 0.6 ? "met" : "NOT met");
    fmt::print("  (information) 1P1A / by-value baseline + stamp: {:.2f}x\n", one / stamped_baseline);
  }
  if (run_latency)
    fmt::print("  ping-pong p50: agent / raw mpmc_queue <= 2x: {:.2f}x {}\n", pp_ratio, pp_ratio <= 2.0 ? "met" : "NOT met");
  if (run_idle)
    fmt::print("  100 000 idle agents <= 1 GiB: {:.3f} GiB{} {}\n", idle_gib_at_100k,
               idle.agents == 100000 ? "" : " (extrapolated from this run)", idle_gib_at_100k <= 1.0 ? "met" : "NOT met");

  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) return 1;
    fmt::print(f, "{{\n  \"benchmark\": \"async\",\n  \"rows\": [\n");
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      fmt::print(f, "    {{\"name\": \"{}\", \"mevents_per_s\": {:.3f}, \"p50_ns\": {:.0f}, \"p99_ns\": {:.0f}, \"p999_ns\": {:.0f}}}{}\n",
                 r.name, r.mevents_per_s, r.p50, r.p99, r.p999 < 0 ? 0.0 : r.p999,
                 i + 1 < results.size() || run_idle ? "," : "");
    }
    if (run_idle)
      fmt::print(f, "    {{\"name\": \"idle agents\", \"agents\": {}, \"bytes_per_agent\": {:.0f}, \"total_mib\": {:.1f}, "
                    "\"create_ms\": {:.1f}, \"destroy_ms\": {:.1f}}}\n",
                 idle.agents, idle.bytes_per_agent, idle.total_mib, idle.create_ms, idle.destroy_ms);
    fmt::print(f, "  ],\n  \"ratios\": {{\"one_p1a_vs_by_value\": {:.3f}, \"one_p1a_vs_stamped_by_value\": {:.3f}, "
                  "\"pingpong_agent_vs_raw_p50\": {:.3f}, \"idle_gib_at_100k\": {:.3f}}}\n}}\n",
               baseline > 0 ? one / baseline : 0.0, stamped_baseline > 0 ? one / stamped_baseline : 0.0, pp_ratio,
               idle_gib_at_100k);
    std::fclose(f);
  }
  return 0;
}
