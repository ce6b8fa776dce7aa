// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// bench_queue: agentbus::mpmc_queue side by side with the queues people
// would otherwise reach for. uint64_t items, capacity 1024.
//
//   throughput   1P1C and 2P2C, Mops/s (median of several runs)
//   ping-pong    round trip between two threads over two queues, p50/p99 ns,
//                against a raw cache-line round trip (the physical floor)
//                and a round trip over two lines (one per direction)
//   wake-up      push -> return of a pop() that was parked, p50/p99 us
//
// Peers, each optional (a missing one is named and skipped): boost::lockfree,
// moodycamel::ConcurrentQueue, atomic_queue (AtomicQueue and AtomicQueue2,
// each with try ops and in its "optimist" push/pop mode), std::mutex + deque.
// A closing line compares mpmc_queue's 1P1C with atomic_queue's best (issue 10).
//
// Contenders take turns round after round and figures are medians over the
// rounds, threads are pinned, and latency rounds vary heap and code
// placement: see the notes at cpu_plan, at "Code placement" and in main.
//
// Usage: bench_queue [--quick] [--json FILE]
//   --quick   tiny sizes for a CI smoke run (a few hundred ms)
//   --json    also write every figure to FILE

#include <agentbus/detail/config.hpp>
#include <agentbus/queue/mpmc_queue.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#define AGENTBUS_BENCH_HAVE_AFFINITY 1
#else
#define AGENTBUS_BENCH_HAVE_AFFINITY 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define AGENTBUS_BENCH_HAVE_TSC 1
#else
#define AGENTBUS_BENCH_HAVE_TSC 0
#endif

#if AGENTBUS_BENCH_HAVE_BOOST
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#endif
#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
#include <blockingconcurrentqueue.h>
#include <concurrentqueue.h>
#endif
#if AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
#include <atomic_queue/atomic_queue.h>
#endif

// Code placement. On the reference machine (a 2-vCPU VM on a Xeon) one and
// the same spin loop ran a round trip in ~330 ns or in ~405 ns from one
// build, or one process, to the next: it followed the loop's alignment and
// the address the process was loaded at, not what the loop waited on (the
// raw floor moved between ~190 and ~290 ns the same way). To damp that, the
// latency figures below are medians over several copies of each measuring
// function (see `copies`), which GCC must not fold back into one, and the
// loops are 64-byte aligned. This applies to the loops written in this file,
// for every contender and the raw floors alike; the library code stays as
// its users compile it. Run the program a few times before quoting a ratio.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("align-loops=64", "no-ipa-icf")
#endif

namespace {

using item = std::uint64_t;
constexpr std::size_t capacity = 1024;

// ------------------------------------------------------------------ settings

struct settings {
  bool quick = false;
  std::string json_path;
  std::uint64_t throughput_items = 2'000'000;
  int runs = 5;
  std::uint64_t pingpong_round_trips = 200'000;
  int wakeups = 200;
  std::chrono::microseconds park_delay{1000};
};

// ---------------------------------------------------------------- placement

// Threads are pinned. Left alone, the Linux scheduler was seen to keep both
// ends of a ping-pong on one CPU for a whole run (every round trip then
// costs two context switches), which measures the scheduler, not the queue.
// Thread k of a run goes to allowed CPU k mod n: producer i and consumer i
// land on different CPUs, and with two CPUs each runs one of each.
class cpu_plan {
 public:
  cpu_plan() {
#if AGENTBUS_BENCH_HAVE_AFFINITY
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) cpus_.push_back(cpu);
      }
      original_ = set;
    }
#endif
  }
  /// True when there are at least two CPUs to spread threads over.
  bool active() const noexcept { return cpus_.size() >= 2; }
  const std::vector<int>& cpus() const noexcept { return cpus_; }

  /// Pins the calling thread to the CPU for thread number `k`.
  void pin(unsigned k) const noexcept {
#if AGENTBUS_BENCH_HAVE_AFFINITY
    if (!active()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus_[k % cpus_.size()], &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
#else
    (void)k;
#endif
  }
  /// Lets the calling thread run anywhere it could at start-up again.
  void unpin() const noexcept {
#if AGENTBUS_BENCH_HAVE_AFFINITY
    if (!active()) return;
    pthread_setaffinity_np(pthread_self(), sizeof(original_), &original_);
#endif
  }

 private:
  std::vector<int> cpus_;
#if AGENTBUS_BENCH_HAVE_AFFINITY
  cpu_set_t original_{};
#endif
};

const cpu_plan& placement() {
  static const cpu_plan plan;
  return plan;
}

// Pins the calling (main) thread for the length of a measurement.
struct scoped_pin {
  explicit scoped_pin(unsigned k) { placement().pin(k); }
  ~scoped_pin() { placement().unpin(); }
  scoped_pin(const scoped_pin&) = delete;
  scoped_pin& operator=(const scoped_pin&) = delete;
};

// --------------------------------------------------------------------- clock

// Round trips take a few hundred ns, so timing each one needs a cheap clock: the TSC
// where there is one (calibrated against steady_clock), else steady_clock.
class tick_clock {
 public:
  explicit tick_clock(std::chrono::milliseconds calibration) {
#if AGENTBUS_BENCH_HAVE_TSC
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(calibration);
    const std::uint64_t c1 = __rdtsc();
    const auto t1 = std::chrono::steady_clock::now();
    ns_per_tick_ = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(c1 - c0);
#else
    (void)calibration;
#endif
  }
  static std::uint64_t now() noexcept {
#if AGENTBUS_BENCH_HAVE_TSC
    // RDTSCP waits for earlier instructions, LFENCE keeps later ones from
    // starting early: without both, a spin loop's exit and the timestamp can
    // overlap and a round trip reads shorter than any cache transfer.
    unsigned aux = 0;
    const std::uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
  }
  double to_ns(std::uint64_t ticks) const noexcept { return static_cast<double>(ticks) * ns_per_tick_; }

 private:
  double ns_per_tick_ = 1.0;
};

// ------------------------------------------------------------------ adapters
// Each adapter exposes try_push / try_pop; callers spin on failure.

struct agentbus_adapter {
  agentbus::mpmc_queue<item> q{capacity};
  bool try_push(item v) noexcept { return q.try_push(v); }
  bool try_pop(item& v) noexcept { return q.try_pop(v); }
};

#if AGENTBUS_BENCH_HAVE_BOOST
struct boost_queue_adapter {
  boost::lockfree::queue<item, boost::lockfree::fixed_sized<true>> q{capacity};
  bool try_push(item v) noexcept { return q.bounded_push(v); }
  bool try_pop(item& v) noexcept { return q.pop(v); }
};
struct boost_spsc_adapter {
  boost::lockfree::spsc_queue<item, boost::lockfree::capacity<capacity>> q;
  bool try_push(item v) noexcept { return q.push(v); }
  bool try_pop(item& v) noexcept { return q.pop(v); }
};
#endif

#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
struct moodycamel_adapter {
  moodycamel::ConcurrentQueue<item> q;  // unbounded, default traits, no tokens
  bool try_push(item v) { return q.enqueue(v); }
  bool try_pop(item& v) { return q.try_dequeue(v); }
};
#endif

#if AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
// atomic_queue (Maxim Egorushkin), as its README sets it up for its own
// benchmarks: fixed-size ring, the defaults (MINIMIZE_CONTENTION: consecutive
// positions remapped onto different cache lines; MAXIMIZE_THROUGHPUT: spin on
// plain loads), the same capacity as everyone else. AtomicQueue stores the
// element itself in an atomic slot and needs a value that marks an empty
// slot (NIL): ~0, which no run pushes. AtomicQueue2 keeps a state byte per
// slot beside a plain element, like mpmc_queue's sequence word.
constexpr item atomic_queue_nil = ~item{0};
using atomic_queue_type = atomic_queue::AtomicQueue<item, capacity, atomic_queue_nil>;
using atomic_queue2_type = atomic_queue::AtomicQueue2<item, capacity>;
template <class Queue>
struct atomic_queue_adapter {
  Queue q;
  bool try_push(item v) noexcept { return q.try_push(v); }
  bool try_pop(item& v) noexcept { return q.try_pop(v); }
};
#endif

// The baseline everyone writes first: a bounded deque behind one mutex, with
// a condition variable for the blocking (wake-up) measurement.
struct mutex_deque_adapter {
  std::mutex m;
  std::condition_variable not_empty;
  std::deque<item> d;
  bool try_push(item v) {
    std::lock_guard<std::mutex> lock(m);
    if (d.size() >= capacity) return false;
    d.push_back(v);
    return true;
  }
  bool try_pop(item& v) {
    std::lock_guard<std::mutex> lock(m);
    if (d.empty()) return false;
    v = d.front();
    d.pop_front();
    return true;
  }
  void push_notify(item v) {
    {
      std::lock_guard<std::mutex> lock(m);
      d.push_back(v);
    }
    not_empty.notify_one();
  }
  item wait_pop() {
    std::unique_lock<std::mutex> lock(m);
    not_empty.wait(lock, [&] { return !d.empty(); });
    const item v = d.front();
    d.pop_front();
    return v;
  }
};

// Caller-side wait used with every try-op queue alike: pause a while, then
// yield so that a descheduled peer can run when threads outnumber cores.
struct backoff {
  unsigned failures = 0;
  void pause() {
    if (++failures < 64) {
      agentbus::detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  void reset() { failures = 0; }
};

// ---------------------------------------------------------------- throughput

struct start_gate {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  void arrive_and_wait() {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  void open_when(unsigned n) {
    while (ready.load() != n) std::this_thread::yield();
    go.store(true, std::memory_order_release);
  }
};

struct run_result {
  double mops = 0;
  bool valid = true;  // checksum of popped values matched
};

// Try ops, spinning in the caller.
template <class Adapter>
run_result run_try(unsigned producers, unsigned consumers, std::uint64_t total) {
  auto q = std::make_unique<Adapter>();
  const std::uint64_t per_producer = total / producers;
  total = per_producer * producers;
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> checksum{0};
  start_gate gate;
  std::vector<std::thread> threads;
  for (unsigned p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      placement().pin(2 * p);
      gate.arrive_and_wait();
      backoff b;
      const item base = item{p} * per_producer;
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        while (!q->try_push(base + i)) b.pause();
        b.reset();
      }
    });
  }
  for (unsigned c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      placement().pin(2 * c + 1);
      gate.arrive_and_wait();
      backoff b;
      std::uint64_t pending = 0;
      std::uint64_t sum = 0;
      item v = 0;
      for (;;) {
        if (q->try_pop(v)) {
          sum += v;
          ++pending;
          b.reset();
          continue;
        }
        // Publish our count only when idle, so that the shared counter costs
        // nothing on the hot path.
        if (pending != 0) {
          consumed.fetch_add(pending);
          pending = 0;
        }
        if (consumed.load() >= total) break;
        b.pause();
      }
      checksum.fetch_add(sum);
    });
  }
  gate.open_when(producers + consumers);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& t : threads) t.join();
  const auto t1 = std::chrono::steady_clock::now();
  run_result r;
  r.mops = static_cast<double>(total) / std::chrono::duration<double, std::micro>(t1 - t0).count();
  r.valid = checksum.load() == total * (total - 1) / 2;
  return r;
}

// agentbus blocking ops: push() / pop(), ended by close().
run_result run_agentbus_blocking(unsigned producers, unsigned consumers, std::uint64_t total) {
  auto q = std::make_unique<agentbus::mpmc_queue<item>>(capacity);
  const std::uint64_t per_producer = total / producers;
  total = per_producer * producers;
  std::atomic<std::uint64_t> checksum{0};
  start_gate gate;
  std::vector<std::thread> producer_threads;
  std::vector<std::thread> consumer_threads;
  for (unsigned p = 0; p < producers; ++p) {
    producer_threads.emplace_back([&, p] {
      placement().pin(2 * p);
      gate.arrive_and_wait();
      const item base = item{p} * per_producer;
      for (std::uint64_t i = 0; i < per_producer; ++i) q->push(base + i);
    });
  }
  for (unsigned c = 0; c < consumers; ++c) {
    consumer_threads.emplace_back([&, c] {
      placement().pin(2 * c + 1);
      gate.arrive_and_wait();
      std::uint64_t sum = 0;
      item v = 0;
      while (q->pop(v)) sum += v;
      checksum.fetch_add(sum);
    });
  }
  gate.open_when(producers + consumers);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& t : producer_threads) t.join();
  q->close();
  for (auto& t : consumer_threads) t.join();
  const auto t1 = std::chrono::steady_clock::now();
  run_result r;
  r.mops = static_cast<double>(total) / std::chrono::duration<double, std::micro>(t1 - t0).count();
  r.valid = checksum.load() == total * (total - 1) / 2;
  return r;
}

#if AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
// atomic_queue's "optimist" use, the one its README benchmarks as
// OptimistAtomicQueue: push() and pop() claim a position with one fetch_add
// and then busy-wait on that slot until it is free (push) or full (pop); no
// try, no failure. Consumers stop at a sentinel, one per consumer, pushed
// after every producer is done. A thread that waits on a slot it claimed
// holds up everyone behind it: this is the mode that collapses when threads
// outnumber cores (2P2C here), by design of the API, not of the harness.
template <class Queue>
run_result run_atomic_queue_optimist(unsigned producers, unsigned consumers, std::uint64_t total) {
  auto q = std::make_unique<Queue>();
  constexpr item stop = atomic_queue_nil - 1;
  const std::uint64_t per_producer = total / producers;
  total = per_producer * producers;
  std::atomic<std::uint64_t> checksum{0};
  start_gate gate;
  std::vector<std::thread> producer_threads;
  std::vector<std::thread> consumer_threads;
  for (unsigned p = 0; p < producers; ++p) {
    producer_threads.emplace_back([&, p] {
      placement().pin(2 * p);
      gate.arrive_and_wait();
      const item base = item{p} * per_producer;
      for (std::uint64_t i = 0; i < per_producer; ++i) q->push(base + i);
    });
  }
  for (unsigned c = 0; c < consumers; ++c) {
    consumer_threads.emplace_back([&, c] {
      placement().pin(2 * c + 1);
      gate.arrive_and_wait();
      std::uint64_t sum = 0;
      for (;;) {
        const item v = q->pop();
        if (v == stop) break;
        sum += v;
      }
      checksum.fetch_add(sum);
    });
  }
  gate.open_when(producers + consumers);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& t : producer_threads) t.join();
  for (unsigned c = 0; c < consumers; ++c) q->push(stop);
  for (auto& t : consumer_threads) t.join();
  const auto t1 = std::chrono::steady_clock::now();
  run_result r;
  r.mops = static_cast<double>(total) / std::chrono::duration<double, std::micro>(t1 - t0).count();
  r.valid = checksum.load() == total * (total - 1) / 2;
  return r;
}
#endif

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

using throughput_fn = std::function<run_result(unsigned, unsigned, std::uint64_t)>;

// ----------------------------------------------------------------- latency

struct latency {
  double p50 = 0;
  double p99 = 0;
};

using latency_fn = std::function<latency(std::uint64_t round_trips)>;

// Distinct copies of every latency-measuring function (see "Code placement").
inline constexpr int copies = 3;

latency summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  latency l;
  l.p50 = samples[samples.size() / 2];
  l.p99 = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  return l;
}

// Every latency loop waits the same way. With the two threads pinned to two
// CPUs: a tight pause-spin, the fastest way to notice a line change (the
// raw floors use it too). Unpinned: pause-spin, then yield after a while, so
// that a round trip never costs a whole time slice when both threads share
// a core.
template <class Pred>
void spin_until(Pred pred) {
  if (placement().active()) {
    while (!pred()) agentbus::detail::cpu_relax();
    return;
  }
  unsigned spins = 0;
  while (!pred()) {
    if (++spins < 256) {
      agentbus::detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// The floor: two threads bouncing one counter on one cache line.
template <int Copy>
latency raw_round_trip(std::uint64_t n, const tick_clock& clock) {
  // A whole line to itself, on the heap like the queues' slots (see the
  // placement note in main): a neighbouring local written by this thread
  // would otherwise share it and slow the floor.
  struct alignas(agentbus::detail::cache_line_size) line_type {
    std::atomic<std::uint64_t> value{0};
  };
  const auto counter = std::make_unique<line_type>();
  std::atomic<std::uint64_t>& line = counter->value;
  const std::uint64_t warmup = n / 10;
  std::vector<double> samples;
  samples.reserve(n + Copy);  // Copy: a distinct function per copy
  const scoped_pin pin(0);
  std::thread echo([&] {
    placement().pin(1);
    for (std::uint64_t i = 0; i < n + warmup; ++i) {
      spin_until([&] { return line.load(std::memory_order_acquire) == 2 * i + 1; });
      line.store(2 * i + 2, std::memory_order_release);
    }
  });
  for (std::uint64_t i = 0; i < n + warmup; ++i) {
    const std::uint64_t t0 = tick_clock::now();
    line.store(2 * i + 1, std::memory_order_release);
    spin_until([&] { return line.load(std::memory_order_acquire) == 2 * i + 2; });
    const std::uint64_t t1 = tick_clock::now();
    if (i >= warmup) samples.push_back(clock.to_ns(t1 - t0));
  }
  echo.join();
  return summarize(std::move(samples));
}

// A second floor: a message each way on its own line, which is the least a
// ping-pong over two queues has to move.
template <int Copy>
latency raw_two_line_round_trip(std::uint64_t n, const tick_clock& clock) {
  struct alignas(agentbus::detail::cache_line_size) line_type {
    std::atomic<std::uint64_t> value{0};
  };
  const auto lines = std::make_unique<line_type[]>(2);
  line_type& there = lines[0];
  line_type& back = lines[1];
  const std::uint64_t warmup = n / 10;
  std::vector<double> samples;
  samples.reserve(n + Copy);  // Copy: a distinct function per copy
  const scoped_pin pin(0);
  std::thread echo([&] {
    placement().pin(1);
    for (std::uint64_t i = 1; i <= n + warmup; ++i) {
      spin_until([&] { return there.value.load(std::memory_order_acquire) == i; });
      back.value.store(i, std::memory_order_release);
    }
  });
  for (std::uint64_t i = 1; i <= n + warmup; ++i) {
    const std::uint64_t t0 = tick_clock::now();
    there.value.store(i, std::memory_order_release);
    spin_until([&] { return back.value.load(std::memory_order_acquire) == i; });
    const std::uint64_t t1 = tick_clock::now();
    if (i > warmup) samples.push_back(clock.to_ns(t1 - t0));
  }
  echo.join();
  return summarize(std::move(samples));
}

// Ping-pong over two queues with try ops, spinning with the same pause as the
// raw round trip.
template <class Adapter, int Copy>
latency pingpong_try(std::uint64_t n, const tick_clock& clock) {
  auto there = std::make_unique<Adapter>();
  auto back = std::make_unique<Adapter>();
  const std::uint64_t warmup = n / 10;
  std::vector<double> samples;
  samples.reserve(n + Copy);  // Copy: a distinct function per copy
  const scoped_pin pin(0);
  std::thread echo([&] {
    placement().pin(1);
    item v = 0;
    for (std::uint64_t i = 0; i < n + warmup; ++i) {
      spin_until([&] { return there->try_pop(v); });
      spin_until([&] { return back->try_push(v); });
    }
  });
  item v = 0;
  for (std::uint64_t i = 0; i < n + warmup; ++i) {
    const std::uint64_t t0 = tick_clock::now();
    spin_until([&] { return there->try_push(i); });
    spin_until([&] { return back->try_pop(v); });
    const std::uint64_t t1 = tick_clock::now();
    if (i >= warmup) samples.push_back(clock.to_ns(t1 - t0));
  }
  echo.join();
  return summarize(std::move(samples));
}

// Ping-pong with agentbus blocking push()/pop().
template <int Copy>
latency pingpong_agentbus_blocking(std::uint64_t n, const tick_clock& clock) {
  const auto there_queue = std::make_unique<agentbus::mpmc_queue<item>>(capacity);
  const auto back_queue = std::make_unique<agentbus::mpmc_queue<item>>(capacity);
  agentbus::mpmc_queue<item>& there = *there_queue;
  agentbus::mpmc_queue<item>& back = *back_queue;
  const std::uint64_t warmup = n / 10;
  std::vector<double> samples;
  samples.reserve(n + Copy);  // Copy: a distinct function per copy
  const scoped_pin pin(0);
  std::thread echo([&] {
    placement().pin(1);
    item v = 0;
    while (there.pop(v)) back.push(v);
  });
  item v = 0;
  for (std::uint64_t i = 0; i < n + warmup; ++i) {
    const std::uint64_t t0 = tick_clock::now();
    there.push(i);
    back.pop(v);
    const std::uint64_t t1 = tick_clock::now();
    if (i >= warmup) samples.push_back(clock.to_ns(t1 - t0));
  }
  there.close();
  echo.join();
  return summarize(std::move(samples));
}

// -------------------------------------------------------------- wake-up

// The consumer blocks in its pop; the producer waits long enough for it to
// have gone through its spin and yield phases and parked, then pushes its
// steady_clock timestamp. Latency = pop return - push call. Not pinned: a
// parked thread is woken wherever the scheduler sees fit, as in real use
// (pinned to an idle CPU of this VM, every row reads ~20 us instead).
// Appends `count` samples (us) to `samples`.
template <class Push, class Pop>
void wakeup(const settings& s, int count, std::vector<double>& samples, Push push, Pop pop) {
  std::atomic<int> round{-1};
  std::thread consumer([&] {
    for (int i = 0; i < count; ++i) {
      round.store(i, std::memory_order_release);
      const item sent = pop();
      const auto now = static_cast<item>(std::chrono::steady_clock::now().time_since_epoch().count());
      samples.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::duration(
                            static_cast<std::chrono::steady_clock::rep>(now - sent)))
                            .count());
    }
  });
  for (int i = 0; i < count; ++i) {
    while (round.load(std::memory_order_acquire) != i) std::this_thread::yield();
    std::this_thread::sleep_for(s.park_delay);
    push(static_cast<item>(std::chrono::steady_clock::now().time_since_epoch().count()));
  }
  consumer.join();
}

// One contender for the wake-up table: runs `count` wake-ups on a fresh queue.
using wakeup_fn = std::function<void(const settings&, int count, std::vector<double>& samples)>;

void wake_agentbus(const settings& s, int count, std::vector<double>& samples) {
  agentbus::mpmc_queue<item> q(capacity);
  wakeup(s, count, samples, [&](item v) { q.push(v); }, [&] {
    item v = 0;
    q.pop(v);
    return v;
  });
}

void wake_condition_variable(const settings& s, int count, std::vector<double>& samples) {
  mutex_deque_adapter q;
  wakeup(s, count, samples, [&](item v) { q.push_notify(v); }, [&] { return q.wait_pop(); });
}

#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
void wake_moodycamel(const settings& s, int count, std::vector<double>& samples) {
  moodycamel::BlockingConcurrentQueue<item> q;
  wakeup(s, count, samples, [&](item v) { q.enqueue(v); }, [&] {
    item v = 0;
    q.wait_dequeue(v);
    return v;
  });
}
#endif

// ------------------------------------------------------------------ report

struct throughput_row {
  std::string name;
  throughput_fn run;
  bool multi;                 // has a 2P2C figure
  std::optional<double> one;  // 1P1C
  std::optional<double> two;  // 2P2C
};

struct latency_row {
  std::string name;
  latency value;
  std::array<latency_fn, copies> run = {};
};

std::string fmt_opt(const std::optional<double>& v, int precision = 1) {
  return v ? fmt::format("{:.{}f}", *v, precision) : std::string("-");
}

std::string json_num(const std::optional<double>& v) { return v ? fmt::format("{:.3f}", *v) : "null"; }

std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      s.quick = true;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      s.json_path = argv[++i];
    } else {
      fmt::print(stderr, "usage: {} [--quick] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (s.quick) {
    s.throughput_items = 50'000;
    s.runs = 1;
    s.pingpong_round_trips = 5'000;
    s.wakeups = 5;
    s.park_delay = std::chrono::microseconds(500);
  }
  const tick_clock clock(std::chrono::milliseconds(s.quick ? 10 : 100));
  const auto started = std::chrono::steady_clock::now();

  fmt::print("agentbus bench_queue: uint64_t items, capacity {}, {} hardware threads, median of {} run(s){}\n",
             capacity, std::thread::hardware_concurrency(), s.runs, s.quick ? " [quick]" : "");
  if (placement().active()) {
    fmt::print("threads pinned round-robin over CPUs {}: producer i and consumer i on different CPUs\n",
               fmt::join(placement().cpus(), ","));
  } else {
    fmt::print("note: threads not pinned (fewer than two CPUs available, or no affinity API)\n");
  }
#if !AGENTBUS_BENCH_HAVE_BOOST
  fmt::print("note: Boost not found at build time; boost::lockfree rows skipped\n");
#endif
#if !AGENTBUS_BENCH_HAVE_MOODYCAMEL
  fmt::print("note: moodycamel concurrentqueue.h not found at build time; moodycamel rows skipped\n");
#endif
#if !AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
  fmt::print("note: atomic_queue/atomic_queue.h (libatomic-queue-dev) not found at build time; atomic_queue rows "
             "skipped\n");
#endif

  // ---- throughput
  // Contenders take turns, round after round, and each figure is the median
  // of its rounds: a slow spell of the machine (other tenants, frequency
  // changes) then hits every contender alike instead of one of them.
  bool valid = true;
  std::vector<throughput_row> rows;
  rows.push_back({"agentbus::mpmc_queue (try)", run_try<agentbus_adapter>, true, {}, {}});
  rows.push_back({"agentbus::mpmc_queue (blocking)", run_agentbus_blocking, true, {}, {}});
#if AGENTBUS_BENCH_HAVE_BOOST
  rows.push_back({"boost::lockfree::queue", run_try<boost_queue_adapter>, true, {}, {}});
  rows.push_back({"boost::lockfree::spsc_queue", run_try<boost_spsc_adapter>, false, {}, {}});
#endif
#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
  rows.push_back({"moodycamel::ConcurrentQueue", run_try<moodycamel_adapter>, true, {}, {}});
#endif
#if AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
  rows.push_back({"atomic_queue::AtomicQueue (try)", run_try<atomic_queue_adapter<atomic_queue_type>>, true, {}, {}});
  rows.push_back({"atomic_queue::AtomicQueue (optimist)", run_atomic_queue_optimist<atomic_queue_type>, true, {}, {}});
  rows.push_back(
      {"atomic_queue::AtomicQueue2 (try)", run_try<atomic_queue_adapter<atomic_queue2_type>>, true, {}, {}});
  rows.push_back(
      {"atomic_queue::AtomicQueue2 (optimist)", run_atomic_queue_optimist<atomic_queue2_type>, true, {}, {}});
#endif
  rows.push_back({"std::mutex + std::deque", run_try<mutex_deque_adapter>, true, {}, {}});
  {
    std::vector<std::vector<double>> one(rows.size());
    std::vector<std::vector<double>> two(rows.size());
    for (int round = 0; round < s.runs; ++round) {
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const run_result r1 = rows[i].run(1, 1, s.throughput_items);
        valid = valid && r1.valid;
        one[i].push_back(r1.mops);
        if (!rows[i].multi) continue;
        const run_result r2 = rows[i].run(2, 2, s.throughput_items);
        valid = valid && r2.valid;
        two[i].push_back(r2.mops);
      }
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      rows[i].one = median(one[i]);
      if (rows[i].multi) rows[i].two = median(two[i]);
    }
  }

  auto find = [&](const std::string& name) -> const throughput_row* {
    for (const auto& r : rows) {
      if (r.name == name) return &r;
    }
    return nullptr;
  };
  const throughput_row* ours = find("agentbus::mpmc_queue (try)");
  const throughput_row* ours_blocking = find("agentbus::mpmc_queue (blocking)");
  const throughput_row* boost_row = find("boost::lockfree::queue");
  const throughput_row* moody_row = find("moodycamel::ConcurrentQueue");
  const throughput_row* aq_row = find("atomic_queue::AtomicQueue (try)");
  const throughput_row* aq_optimist_row = find("atomic_queue::AtomicQueue (optimist)");

  auto ratio = [](const std::optional<double>& a, const std::optional<double>& b) -> std::optional<double> {
    if (!a || !b || *b <= 0) return std::nullopt;
    return *a / *b;
  };

  fmt::print("\nThroughput (Mops/s, higher is better; 2P2C runs 4 threads on {} cores)\n",
             std::thread::hardware_concurrency());
  fmt::print("{:<38} {:>8} {:>8} {:>11} {:>16} {:>16}\n", "queue", "1P1C", "2P2C", "2P2C/1P1C",
             "agentbus/this 1P", "agentbus/this 2P");
  for (const auto& r : rows) {
    const auto scaling = ratio(r.two, r.one);
    const auto vs1 = ratio(ours->one, r.one);
    const auto vs2 = ratio(ours->two, r.two);
    fmt::print("{:<38} {:>8} {:>8} {:>11} {:>16} {:>16}\n", r.name, fmt_opt(r.one), fmt_opt(r.two),
               scaling ? fmt::format("{:.0f}%", *scaling * 100) : "-",
               &r == ours ? "-" : (vs1 ? fmt::format("{:.2f}x", *vs1) : "-"),
               &r == ours ? "-" : (vs2 ? fmt::format("{:.2f}x", *vs2) : "-"));
  }
  if (!valid) fmt::print("WARNING: a throughput run popped a different set of items than it pushed\n");

  // ---- ping-pong
  std::vector<latency_row> pp;
  auto bind = [&](latency (*fn)(std::uint64_t, const tick_clock&)) -> latency_fn {
    return [fn, &clock](std::uint64_t n) { return fn(n, clock); };
  };
  // The `copies` instantiations of one measuring function; `pick(k)` names
  // the instantiation for copy k (an std::integral_constant).
  auto copies_of = [&](auto pick) {
    static_assert(copies == 3, "list one bind() per copy");
    return std::array<latency_fn, copies>{bind(pick(std::integral_constant<int, 0>{})),
                                          bind(pick(std::integral_constant<int, 1>{})),
                                          bind(pick(std::integral_constant<int, 2>{}))};
  };
  pp.push_back({"raw cache-line round trip", {},
                copies_of([](auto k) { return &raw_round_trip<decltype(k)::value>; })});
  pp.push_back({"raw round trip over two lines", {},
                copies_of([](auto k) { return &raw_two_line_round_trip<decltype(k)::value>; })});
  pp.push_back({"agentbus::mpmc_queue (try)", {},
                copies_of([](auto k) { return &pingpong_try<agentbus_adapter, decltype(k)::value>; })});
  pp.push_back({"agentbus::mpmc_queue (blocking)", {},
                copies_of([](auto k) { return &pingpong_agentbus_blocking<decltype(k)::value>; })});
#if AGENTBUS_BENCH_HAVE_BOOST
  pp.push_back({"boost::lockfree::queue", {},
                copies_of([](auto k) { return &pingpong_try<boost_queue_adapter, decltype(k)::value>; })});
  pp.push_back({"boost::lockfree::spsc_queue", {},
                copies_of([](auto k) { return &pingpong_try<boost_spsc_adapter, decltype(k)::value>; })});
#endif
#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
  pp.push_back({"moodycamel::ConcurrentQueue", {},
                copies_of([](auto k) { return &pingpong_try<moodycamel_adapter, decltype(k)::value>; })});
#endif
#if AGENTBUS_BENCH_HAVE_ATOMIC_QUEUE
  pp.push_back({"atomic_queue::AtomicQueue (try)", {}, copies_of([](auto k) {
                  return &pingpong_try<atomic_queue_adapter<atomic_queue_type>, decltype(k)::value>;
                })});
#endif
  pp.push_back({"std::mutex + std::deque", {},
                copies_of([](auto k) { return &pingpong_try<mutex_deque_adapter, decltype(k)::value>; })});
  {
    // Same turn-taking as above; each round measures a share of the round
    // trips. Placement matters here: on a mesh of cores (Xeon) the cost of
    // bouncing a line depends on which cache slice its physical address
    // belongs to, and one placement was seen to make the same queue 2x slower
    // than another. So every round shifts the heap (the spacer) before its
    // contenders allocate their lines and queues, and the figures are medians
    // over rounds, i.e. over placements, for the floor and the queues alike.
    const int rounds = s.quick ? 1 : 2 * s.runs + 1;
    const std::uint64_t per_round = std::max<std::uint64_t>(1000, s.pingpong_round_trips / rounds);
    std::vector<std::vector<double>> p50(pp.size());
    std::vector<std::vector<double>> p99(pp.size());
    for (int round = 0; round < rounds; ++round) {
      const std::vector<char> spacer(static_cast<std::size_t>(round) * 4160 + 64);
      for (std::size_t i = 0; i < pp.size(); ++i) {
        const latency l = pp[i].run[static_cast<std::size_t>(round % copies)](per_round);
        p50[i].push_back(l.p50);
        p99[i].push_back(l.p99);
      }
    }
    for (std::size_t i = 0; i < pp.size(); ++i) pp[i].value = {median(p50[i]), median(p99[i])};
  }
  const double raw_p50 = pp.front().value.p50;

  fmt::print("\nPing-pong round trip (ns, lower is better; {} round trips each, median of {} placements)\n",
             s.pingpong_round_trips, s.quick ? 1 : 2 * s.runs + 1);
  fmt::print("{:<38} {:>8} {:>8} {:>10}\n", "queue", "p50", "p99", "p50/raw");
  for (const auto& r : pp) {
    fmt::print("{:<38} {:>8.0f} {:>8.0f} {:>9.2f}x\n", r.name, r.value.p50, r.value.p99, r.value.p50 / raw_p50);
  }

  // ---- wake-up
  std::vector<latency_row> wake;
  {
    std::vector<std::pair<std::string, wakeup_fn>> contenders;
    contenders.emplace_back("agentbus::mpmc_queue pop()", wake_agentbus);
    contenders.emplace_back("std::mutex + condition_variable", wake_condition_variable);
#if AGENTBUS_BENCH_HAVE_MOODYCAMEL
    contenders.emplace_back("moodycamel::BlockingConcurrentQueue", wake_moodycamel);
#endif
    // Turn-taking again; samples are pooled (a p99 needs them all).
    std::vector<std::vector<double>> samples(contenders.size());
    const int per_round = std::max(1, s.wakeups / s.runs);
    for (int round = 0; round < s.runs; ++round) {
      for (std::size_t i = 0; i < contenders.size(); ++i) contenders[i].second(s, per_round, samples[i]);
    }
    for (std::size_t i = 0; i < contenders.size(); ++i) {
      wake.push_back({contenders[i].first, summarize(std::move(samples[i]))});
    }
  }
  fmt::print("\nWake-up latency of a parked consumer (us, push call -> pop return; {} samples, "
             "consumer idle {} us first)\n",
             s.wakeups, s.park_delay.count());
  fmt::print("{:<38} {:>8} {:>8}\n", "queue", "p50", "p99");
  for (const auto& r : wake) fmt::print("{:<38} {:>8.1f} {:>8.1f}\n", r.name, r.value.p50, r.value.p99);

  // ---- targets
  struct target {
    std::string what;
    std::optional<double> measured;
    double goal;
    bool higher_is_better;
  };
  std::vector<target> targets;
  targets.push_back({"1P1C try: agentbus / boost::lockfree::queue >= 4x",
                     boost_row ? ratio(ours->one, boost_row->one) : std::nullopt, 4.0, true});
  targets.push_back({"1P1C try: agentbus / moodycamel::ConcurrentQueue >= 1x",
                     moody_row ? ratio(ours->one, moody_row->one) : std::nullopt, 1.0, true});
  targets.push_back({"1P1C try: agentbus / atomic_queue::AtomicQueue (try) >= 1x",
                     aq_row ? ratio(ours->one, aq_row->one) : std::nullopt, 1.0, true});
  targets.push_back({"1P1C blocking: agentbus / atomic_queue::AtomicQueue (optimist) >= 1x",
                     aq_optimist_row ? ratio(ours_blocking->one, aq_optimist_row->one) : std::nullopt, 1.0, true});
  // Issue 10, item 7: against atomic_queue::AtomicQueue at its best, whichever of its two ways of use was
  // faster in this run (its optimist push/pop usually is).
  const throughput_row* aq_best = aq_row;
  if (aq_optimist_row && (!aq_best || *aq_optimist_row->one > *aq_best->one)) aq_best = aq_optimist_row;
  const std::optional<double> aq_ratio = aq_best ? ratio(ours->one, aq_best->one) : std::nullopt;
  targets.push_back({"mpmc_queue 1P1C (try) / best atomic_queue::AtomicQueue 1P1C >= 1x", aq_ratio, 1.0, true});
  targets.push_back({"2P2C / 1P1C, agentbus try >= 50%", ratio(ours->two, ours->one), 0.5, true});
  targets.push_back({"2P2C / 1P1C, agentbus blocking >= 50%", ratio(ours_blocking->two, ours_blocking->one), 0.5,
                     true});
  targets.push_back({"ping-pong p50: agentbus try / raw round trip <= 1.5x", pp[2].value.p50 / raw_p50, 1.5,
                     false});
  targets.push_back({"ping-pong p50: agentbus blocking / raw round trip <= 1.5x", pp[3].value.p50 / raw_p50, 1.5,
                     false});
  fmt::print("\nTargets\n");
  for (const auto& t : targets) {
    const char* verdict = !t.measured                                            ? "n/a (peer missing)"
                          : (t.higher_is_better ? *t.measured >= t.goal : *t.measured <= t.goal) ? "met"
                                                                                                 : "NOT met";
    fmt::print("  {:<68} {:>8} {}\n", t.what, t.measured ? fmt::format("{:.2f}", *t.measured) : "-", verdict);
  }
  if (aq_best) {
    fmt::print("\nmpmc_queue 1P1C >= atomic_queue 1P1C: ratio {:.2f} {} (mpmc_queue (try) {:.1f} vs {} {:.1f} Mops/s; "
               "2P2C/1P1C {:.0f}% vs {:.0f}%)\n",
               *aq_ratio, *aq_ratio >= 1.0 ? "met" : "NOT met", *ours->one, aq_best->name, *aq_best->one,
               *ratio(ours->two, ours->one) * 100, *ratio(aq_best->two, aq_best->one) * 100);
  } else {
    fmt::print("\nmpmc_queue 1P1C >= atomic_queue 1P1C: n/a (atomic_queue not found at build time)\n");
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("\ntotal time {:.1f} s\n", elapsed);

  // ---- json
  if (!s.json_path.empty()) {
    std::string j = "{\n";
    j += fmt::format("  \"benchmark\": \"queue\",\n  \"item\": \"uint64_t\",\n  \"capacity\": {},\n", capacity);
    j += fmt::format("  \"hardware_threads\": {},\n  \"runs\": {},\n  \"quick\": {},\n",
                     std::thread::hardware_concurrency(), s.runs, s.quick ? "true" : "false");
    j += "  \"throughput_mops\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      j += fmt::format("    {{\"queue\": \"{}\", \"1p1c\": {}, \"2p2c\": {}}}{}\n", json_escape(rows[i].name),
                       json_num(rows[i].one), json_num(rows[i].two), i + 1 < rows.size() ? "," : "");
    }
    j += "  ],\n  \"pingpong_round_trip_ns\": [\n";
    for (std::size_t i = 0; i < pp.size(); ++i) {
      j += fmt::format("    {{\"queue\": \"{}\", \"p50\": {:.1f}, \"p99\": {:.1f}}}{}\n", json_escape(pp[i].name),
                       pp[i].value.p50, pp[i].value.p99, i + 1 < pp.size() ? "," : "");
    }
    j += "  ],\n  \"wakeup_us\": [\n";
    for (std::size_t i = 0; i < wake.size(); ++i) {
      j += fmt::format("    {{\"queue\": \"{}\", \"p50\": {:.2f}, \"p99\": {:.2f}}}{}\n", json_escape(wake[i].name),
                       wake[i].value.p50, wake[i].value.p99, i + 1 < wake.size() ? "," : "");
    }
    j += "  ],\n  \"targets\": [\n";
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      const bool met = t.measured && (t.higher_is_better ? *t.measured >= t.goal : *t.measured <= t.goal);
      j += fmt::format("    {{\"target\": \"{}\", \"measured\": {}, \"goal\": {}, \"met\": {}}}{}\n",
                       json_escape(t.what), json_num(t.measured), t.goal, met ? "true" : "false",
                       i + 1 < targets.size() ? "," : "");
    }
    j += fmt::format("  ],\n  \"checksums_valid\": {},\n  \"total_seconds\": {:.2f}\n}}\n", valid ? "true" : "false",
                     elapsed);
    std::ofstream out(s.json_path);
    out << j;
    if (!out) {
      fmt::print(stderr, "error: could not write {}\n", s.json_path);
      return 1;
    }
    fmt::print("wrote {}\n", s.json_path);
  }
  return valid ? 0 : 1;
}
