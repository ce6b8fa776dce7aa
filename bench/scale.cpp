// SPDX-License-Identifier: MIT
// bench/scale: how subscribing, memory and publishing grow with the number of subscriptions,
// topics and agents — the dimensions a system of many agents grows in.
//
// Sections (each agentbus row next to a single-threaded baseline where one exists):
//   one topic        subscribe N handlers to one topic, then unsubscribe them all (handles
//                    destroyed in subscription order, one grace period each; and all at once
//                    through a subscription_set); ns per subscribe / per unsubscribe
//   distinct topics  N subscriptions, each on its own topic
//   wildcards        W per-agent patterns "agents.<j>.*" on a bus with T cached topics
//                    "agents.<i>.status" (each pattern matches one of them); the bus's first
//                    wildcard subscription, which indexes the cached topics once, is its own row
//   memory           live heap bytes and allocations per subscription once built (counted by
//                    this program's operator new/delete; the caller's handle, 24 B, is not
//                    counted), and bytes allocated in total while building (churn)
//   million          1 000 000 subscriptions on distinct topics built and torn down
//   idle agents      A agents on one 2-thread executor, each subscribed to its own inbox:
//                    time to create and destroy, live bytes per agent, idle and once each
//                    has received one event (its mailbox then holds a queue)
//   publish          publish by topic text, rotating over 100 000 topics with one handler
//                    each (cache misses included), and on one hot topic
// The baseline is std::unordered_map<std::string, std::vector<std::function<void(const msg&)>>>,
// single-threaded: the floor a thread-safe router aims at. Its unsubscribe resets the slot
// (O(1)); it has no wildcards.
//
// Usage: bench_scale [--quick] [--json FILE]

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

// ---- counting operator new/delete ------------------------------------------------------------
// Every allocation carries a 16-byte (or `align`-byte) header holding its requested size, so
// that delete can subtract exactly what new added.

namespace {
std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::uint64_t> g_allocated_bytes{0};
std::atomic<std::uint64_t> g_allocations{0};

void* counted_alloc(std::size_t n, std::size_t align) {
  const std::size_t header = align < 16 ? 16 : align;
  void* raw = align <= 16 ? std::malloc(n + header) : std::aligned_alloc(align, (n + header + align - 1) / align * align);
  if (raw == nullptr) throw std::bad_alloc();
  auto* user = static_cast<char*>(raw) + header;
  std::memcpy(user - sizeof(std::size_t), &n, sizeof n);
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  g_allocated_bytes.fetch_add(n, std::memory_order_relaxed);
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return user;
}
void counted_free(void* p, std::size_t align) noexcept {
  if (p == nullptr) return;
  const std::size_t header = align < 16 ? 16 : align;
  std::size_t n;
  std::memcpy(&n, static_cast<char*>(p) - sizeof(std::size_t), sizeof n);
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  std::free(static_cast<char*>(p) - header);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, 16); }
void* operator new[](std::size_t n) { return counted_alloc(n, 16); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { counted_free(p, 16); }
void operator delete[](void* p) noexcept { counted_free(p, 16); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p, 16); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p, 16); }
void operator delete(void* p, std::align_val_t a) noexcept { counted_free(p, static_cast<std::size_t>(a)); }
void operator delete[](void* p, std::align_val_t a) noexcept { counted_free(p, static_cast<std::size_t>(a)); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { counted_free(p, static_cast<std::size_t>(a)); }
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept { counted_free(p, static_cast<std::size_t>(a)); }

namespace {

using clock_type = std::chrono::steady_clock;

struct msg {
  std::uint64_t value;
};

std::uint64_t g_sink = 0;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct heap_mark {
  std::int64_t live = g_live_bytes.load();
  std::uint64_t allocated = g_allocated_bytes.load();
  std::uint64_t allocations = g_allocations.load();
};

struct row {
  std::string section, name;
  std::size_t n = 0;
  double value = 0;  // in `unit`
  std::string unit;
  double baseline = -1;  // same unit; < 0: none
};
std::vector<row> g_rows;

void add(std::string section, std::string name, std::size_t n, double value, std::string unit, double baseline = -1) {
  g_rows.push_back({std::move(section), std::move(name), n, value, std::move(unit), baseline});
}

std::vector<std::string> names(const char* prefix, std::size_t n, const char* suffix) {
  std::vector<std::string> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(fmt::format("{}{}{}", prefix, i, suffix));
  return out;
}

using baseline_map = std::unordered_map<std::string, std::vector<std::function<void(const msg&)>>>;

// ---- one topic / distinct topics ------------------------------------------------------------

struct sub_unsub {
  double subscribe_ns, unsubscribe_ns;
};

sub_unsub agentbus_subscribe(const std::vector<std::string>& topics, std::size_t n) {
  agentbus::bus bus;
  std::vector<agentbus::subscription> subs;
  subs.reserve(n);
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i)
    subs.push_back(bus.subscribe(topics[i % topics.size()], [](const msg& m) { g_sink += m.value; }));
  const double sub = seconds_since(t0);
  t0 = clock_type::now();
  subs.clear();  // destroys in order: unsubscribes one by one, one grace period each
  const double unsub = seconds_since(t0);
  return {sub * 1e9 / double(n), unsub * 1e9 / double(n)};
}

// The same, ended at once through a subscription_set (one grace period for all).
double agentbus_set_unsubscribe(const std::vector<std::string>& topics, std::size_t n) {
  agentbus::bus bus;
  agentbus::subscription_set set;
  set.reserve(n);
  for (std::size_t i = 0; i < n; ++i) set += bus.subscribe(topics[i % topics.size()], [](const msg& m) { g_sink += m.value; });
  const auto t0 = clock_type::now();
  set.clear();
  return seconds_since(t0) * 1e9 / double(n);
}

sub_unsub baseline_subscribe(const std::vector<std::string>& topics, std::size_t n) {
  baseline_map map;
  struct handle {
    std::vector<std::function<void(const msg&)>>* list;
    std::size_t index;
  };
  std::vector<handle> subs;
  subs.reserve(n);
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto& list = map[topics[i % topics.size()]];
    list.push_back([](const msg& m) { g_sink += m.value; });
    subs.push_back({&list, list.size() - 1});
  }
  const double sub = seconds_since(t0);
  t0 = clock_type::now();
  if (topics.size() == 1) {
    for (auto& h : subs) (*h.list)[h.index] = nullptr;  // O(1): reset the slot
  } else {
    for (std::size_t i = 0; i < n; ++i) map.erase(topics[i]);
  }
  const double unsub = seconds_since(t0);
  return {sub * 1e9 / double(n), unsub * 1e9 / double(n)};
}

void subscribe_rows(bool quick) {
  const std::vector<std::size_t> sizes = quick ? std::vector<std::size_t>{1000, 10000}
                                               : std::vector<std::size_t>{1000, 10000, 100000};
  const std::vector<std::string> one{"bench.one.topic"};
  for (std::size_t n : sizes) {
    const auto a = agentbus_subscribe(one, n), b = baseline_subscribe(one, n);
    add("one topic", "subscribe", n, a.subscribe_ns, "ns/op", b.subscribe_ns);
    add("one topic", "unsubscribe", n, a.unsubscribe_ns, "ns/op", b.unsubscribe_ns);
    add("one topic", "unsubscribe, subscription_set", n, agentbus_set_unsubscribe(one, n), "ns/op", b.unsubscribe_ns);
  }
  for (std::size_t n : sizes) {
    const auto topics = names("agents.", n, ".inbox");
    const auto a = agentbus_subscribe(topics, n), b = baseline_subscribe(topics, n);
    add("distinct topics", "subscribe", n, a.subscribe_ns, "ns/op", b.subscribe_ns);
    add("distinct topics", "unsubscribe", n, a.unsubscribe_ns, "ns/op", b.unsubscribe_ns);
    add("distinct topics", "unsubscribe, subscription_set", n, agentbus_set_unsubscribe(topics, n), "ns/op",
        b.unsubscribe_ns);
  }
}

// ---- wildcards -------------------------------------------------------------------------------

void wildcard_rows(bool quick) {
  const std::vector<std::size_t> ts = quick ? std::vector<std::size_t>{10000} : std::vector<std::size_t>{10000, 100000};
  const std::vector<std::size_t> ws = quick ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000};
  for (std::size_t t : ts) {
    agentbus::bus bus(agentbus::bus_options{.max_cached_topics = t * 2});
    const auto topics = names("agents.", t, ".status");
    // Cached, no subscriber yet: channels keep them cached (a topic nothing anchors and no
    // publish uses is reclaimed by the router's sweeps).
    std::vector<agentbus::channel<msg>> cached;
    cached.reserve(t);
    for (const auto& name : topics) cached.push_back(bus.channel<msg>(name));
    // The bus's first wildcard subscription indexes the cached topics (once): its own row.
    auto t_first = clock_type::now();
    auto first = bus.subscribe("warmup.*", [](const msg& m) { g_sink += m.value; });
    add(fmt::format("wildcards, T={} cached", t), "first wildcard (indexes T)", 1, seconds_since(t_first) * 1e3, "ms");
    for (std::size_t w : ws) {
      const auto patterns = names("agents.", w, ".*");
      std::vector<agentbus::subscription> subs;
      subs.reserve(w);
      auto t0 = clock_type::now();
      for (const auto& p : patterns) subs.push_back(bus.subscribe(p, [](const msg& m) { g_sink += m.value; }));
      const double sub = seconds_since(t0) * 1e9 / double(w);
      t0 = clock_type::now();
      subs.clear();
      const double unsub = seconds_since(t0) * 1e9 / double(w);
      add(fmt::format("wildcards, T={} cached", t), "subscribe", w, sub, "ns/op");
      add(fmt::format("wildcards, T={} cached", t), "unsubscribe", w, unsub, "ns/op");
    }
  }
}

// ---- memory ----------------------------------------------------------------------------------

struct memory_figures {
  double live_per_sub, allocations_per_sub, allocated_per_sub;
};

memory_figures agentbus_memory(const std::vector<std::string>& topics, std::size_t n) {
  auto bus = std::make_unique<agentbus::bus>();
  std::vector<agentbus::subscription> subs;
  subs.reserve(n);
  const heap_mark before;
  for (std::size_t i = 0; i < n; ++i)
    subs.push_back(bus->subscribe(topics[i % topics.size()], [](const msg& m) { g_sink += m.value; }));
  const heap_mark after;
  const double d = double(n);
  return {double(after.live - before.live) / d, double(after.allocations - before.allocations) / d,
          double(after.allocated - before.allocated) / d};
}

memory_figures baseline_memory(const std::vector<std::string>& topics, std::size_t n) {
  baseline_map map;
  const heap_mark before;
  for (std::size_t i = 0; i < n; ++i) map[topics[i % topics.size()]].push_back([](const msg& m) { g_sink += m.value; });
  const heap_mark after;
  const double d = double(n);
  return {double(after.live - before.live) / d, double(after.allocations - before.allocations) / d,
          double(after.allocated - before.allocated) / d};
}

void memory_rows(bool quick) {
  const std::size_t n = quick ? 2000 : 10000;
  const auto distinct = names("agents.", n, ".inbox");
  const std::vector<std::string> one{"bench.one.topic"};
  for (const auto& [label, topics] : {std::pair{"distinct topics", &distinct}, std::pair{"one topic", &one}}) {
    const auto a = agentbus_memory(*topics, n), b = baseline_memory(*topics, n);
    add(fmt::format("memory, {}", label), "live bytes/sub", n, a.live_per_sub, "B", b.live_per_sub);
    add(fmt::format("memory, {}", label), "allocations/sub", n, a.allocations_per_sub, "", b.allocations_per_sub);
    add(fmt::format("memory, {}", label), "allocated bytes/sub (churn)", n, a.allocated_per_sub, "B",
        b.allocated_per_sub);
  }
  // Churn must not grow with the list: compare building 10x fewer on one topic.
  const auto small = agentbus_memory(one, n / 10);
  add("memory, one topic", "allocated bytes/sub (churn)", n / 10, small.allocated_per_sub, "B");
}

// ---- a million subscriptions -----------------------------------------------------------------

void million_rows(bool quick) {
  const std::size_t n = quick ? 100000 : 1000000;
  const auto topics = names("agents.", n, ".inbox");
  auto bus = std::make_unique<agentbus::bus>();
  std::vector<agentbus::subscription> subs;
  subs.reserve(n);
  const heap_mark before;
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) subs.push_back(bus->subscribe(topics[i], [](const msg& m) { g_sink += m.value; }));
  const double build = seconds_since(t0);
  const heap_mark built;
  t0 = clock_type::now();
  subs.clear();
  const double teardown = seconds_since(t0);
  const heap_mark torn;
  t0 = clock_type::now();
  bus.reset();
  const double destroy = seconds_since(t0);
  add("million", "build", n, build * 1e3, "ms");
  add("million", "tear down (unsubscribe all)", n, teardown * 1e3, "ms");
  add("million", "destroy the bus", n, destroy * 1e3, "ms");
  add("million", "live MB built", n, double(built.live - before.live) / 1e6, "MB");
  add("million", "live MB after tear down", n, double(torn.live - before.live) / 1e6, "MB");
}

// ---- idle agents -----------------------------------------------------------------------------

void agent_rows(bool quick) {
  const std::size_t n = quick ? 10000 : 100000;
  const auto topics = names("agents.", n, ".inbox");
  agentbus::bus bus;
  agentbus::executor pool(agentbus::executor_options{.threads = 2, .max_agents = n});
  std::vector<std::unique_ptr<agentbus::agent>> agents;
  std::vector<agentbus::subscription> subs;
  agents.reserve(n);
  subs.reserve(n);
  std::atomic<std::size_t> handled{0};  // the executor's two threads run the handlers
  const heap_mark before;
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    agents.push_back(std::make_unique<agentbus::agent>(topics[i], pool));
    subs.push_back(agents.back()->subscribe(bus, topics[i], [&handled](const msg&) {
      handled.fetch_add(1, std::memory_order_relaxed);
    }));
  }
  const double create = seconds_since(t0);
  const heap_mark built;
  // Then each receives one event (a request, say): its mailbox now holds a queue.
  for (std::size_t i = 0; i < n; ++i) bus.publish(topics[i], msg{1});
  while (handled.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const heap_mark used;
  t0 = clock_type::now();
  subs.clear();
  agents.clear();
  const double destroy = seconds_since(t0);
  add("idle agents", "create + subscribe", n, create * 1e3, "ms");
  add("idle agents", "unsubscribe + destroy", n, destroy * 1e3, "ms");
  add("idle agents", "live bytes/agent", n, double(built.live - before.live) / double(n), "B");
  add("idle agents", "live MB total", n, double(built.live - before.live) / 1e6, "MB");
  add("idle agents", "bytes/agent after 1 event", n, double(used.live - before.live) / double(n), "B");
  add("idle agents", "MB after 1 event", n, double(used.live - before.live) / 1e6, "MB");
}

// ---- publish among many topics ---------------------------------------------------------------

void publish_rows(bool quick) {
  const std::size_t n = quick ? 10000 : 100000;
  const std::size_t publishes = quick ? 200000 : 2000000;
  const auto topics = names("agents.", n, ".inbox");
  agentbus::bus bus(agentbus::bus_options{.max_cached_topics = n * 2});
  baseline_map map;
  std::vector<agentbus::subscription> subs;
  subs.reserve(n);
  for (const auto& t : topics) {
    subs.push_back(bus.subscribe(t, [](const msg& m) { g_sink += m.value; }));
    map[t].push_back([](const msg& m) { g_sink += m.value; });
  }
  // A fixed pseudo-random visiting order, so that consecutive publishes miss the cache.
  std::vector<std::uint32_t> order(publishes);
  std::uint64_t x = 88172645463325252ull;
  for (auto& o : order) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    o = static_cast<std::uint32_t>(x % n);
  }
  auto t0 = clock_type::now();
  for (std::uint32_t o : order) (void)bus.publish(topics[o], msg{1});
  const double a = seconds_since(t0) * 1e9 / double(publishes);
  t0 = clock_type::now();
  for (std::uint32_t o : order) {
    const auto it = map.find(topics[o]);
    if (it != map.end())
      for (auto& f : it->second) f(msg{1});
  }
  const double b = seconds_since(t0) * 1e9 / double(publishes);
  add("publish", fmt::format("rotating over {} topics", n), publishes, a, "ns/op", b);
  t0 = clock_type::now();
  for (std::size_t i = 0; i < publishes; ++i) (void)bus.publish(topics[7], msg{1});
  const double hot = seconds_since(t0) * 1e9 / double(publishes);
  t0 = clock_type::now();
  for (std::size_t i = 0; i < publishes; ++i) {
    const auto it = map.find(topics[7]);
    if (it != map.end())
      for (auto& f : it->second) f(msg{1});
  }
  const double hot_b = seconds_since(t0) * 1e9 / double(publishes);
  add("publish", "one hot topic (same bus)", publishes, hot, "ns/op", hot_b);
}

// ---- report ----------------------------------------------------------------------------------

const row* find(const std::string& section, const std::string& name, std::size_t n) {
  for (const auto& r : g_rows)
    if (r.section == section && r.name == name && r.n == n) return &r;
  return nullptr;
}

struct target_line {
  std::string what;
  double value, limit;
  bool met;
};

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
  subscribe_rows(quick);
  wildcard_rows(quick);
  memory_rows(quick);
  million_rows(quick);
  agent_rows(quick);
  publish_rows(quick);

  fmt::print("\nbench/scale{}: baseline = unordered_map<string, vector<function>> (single-threaded)\n",
             quick ? " (--quick: smaller sizes)" : "");
  fmt::print("{:<28} {:<30} {:>9} {:>12} {:>6} {:>12} {:>8}\n", "section", "row", "N", "agentbus", "unit", "baseline",
             "ratio");
  for (const auto& r : g_rows) {
    if (r.baseline >= 0)
      fmt::print("{:<28} {:<30} {:>9} {:>12.1f} {:>6} {:>12.1f} {:>7.2f}x\n", r.section, r.name, r.n, r.value, r.unit,
                 r.baseline, r.baseline > 0 ? r.value / r.baseline : 0.0);
    else
      fmt::print("{:<28} {:<30} {:>9} {:>12.1f} {:>6} {:>12} {:>8}\n", r.section, r.name, r.n, r.value, r.unit, "-",
                 "");
  }

  std::vector<target_line> targets;
  const std::size_t big = quick ? 10000 : 100000;
  auto at_most = [&](std::string what, const row* r, double limit, bool ratio = false) {
    if (r == nullptr) return;
    const double v = ratio ? r->value / r->baseline : r->value;
    targets.push_back({std::move(what), v, limit, v <= limit});
  };
  at_most(fmt::format("subscribe, one topic, N={} (ns)", big), find("one topic", "subscribe", big), 2000);
  at_most(fmt::format("unsubscribe, one topic, N={} (ns)", big), find("one topic", "unsubscribe", big), 2000);
  at_most(fmt::format("subscribe, one topic, N={} (x baseline)", big), find("one topic", "subscribe", big), 10, true);
  at_most(fmt::format("unsubscribe, one topic, N={} (x baseline)", big), find("one topic", "unsubscribe", big), 10,
          true);
  at_most(fmt::format("unsubscribe in a set, one topic, N={} (x baseline)", big),
          find("one topic", "unsubscribe, subscription_set", big), 10, true);
  const std::size_t t_big = quick ? 10000 : 100000;
  // Every W row (after the one-time index build, which has its own row).
  for (std::size_t w : quick ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000}) {
    at_most(fmt::format("wildcard subscribe, T={}, W={} (ns)", t_big, w),
            find(fmt::format("wildcards, T={} cached", t_big), "subscribe", w), 10000);
    at_most(fmt::format("wildcard unsubscribe, T={}, W={} (ns)", t_big, w),
            find(fmt::format("wildcards, T={} cached", t_big), "unsubscribe", w), 10000);
  }
  const std::size_t mem_n = quick ? 2000 : 10000;
  at_most("live bytes/sub, distinct topics", find("memory, distinct topics", "live bytes/sub", mem_n), 128);
  at_most("live bytes/sub, one topic", find("memory, one topic", "live bytes/sub", mem_n), 64);
  if (const row *big_churn = find("memory, one topic", "allocated bytes/sub (churn)", mem_n),
      *small_churn = find("memory, one topic", "allocated bytes/sub (churn)", mem_n / 10);
      big_churn && small_churn)
    targets.push_back({fmt::format("churn per sub at N={} / at N={}", mem_n, mem_n / 10),
                       big_churn->value / small_churn->value, 1.5, big_churn->value / small_churn->value <= 1.5});
  if (!quick) {
    at_most("1 000 000 subscriptions built (ms)", find("million", "build", 1000000), 2000);
    at_most("100 000 idle agents (MB)", find("idle agents", "live MB total", 100000), 1024);
    at_most("100 000 agents after one event each (MB)", find("idle agents", "MB after 1 event", 100000),
            1024);
  }
  fmt::print("\ntargets (same run):\n");
  for (const auto& t : targets)
    fmt::print("  {:<52} {:>10.2f} (target <= {:g}) {}\n", t.what, t.value, t.limit, t.met ? "met" : "NOT met");

  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      fmt::print(stderr, "cannot write {}\n", json_path);
      return 1;
    }
    fmt::print(f, "{{\n  \"benchmark\": \"scale\",\n  \"quick\": {},\n  \"rows\": [\n", quick);
    for (std::size_t i = 0; i < g_rows.size(); ++i) {
      const auto& r = g_rows[i];
      fmt::print(f, "    {{\"section\": \"{}\", \"name\": \"{}\", \"n\": {}, \"value\": {:.3f}, \"unit\": \"{}\"",
                 r.section, r.name, r.n, r.value, r.unit);
      if (r.baseline >= 0) fmt::print(f, ", \"baseline\": {:.3f}", r.baseline);
      fmt::print(f, "}}{}\n", i + 1 < g_rows.size() ? "," : "");
    }
    fmt::print(f, "  ],\n  \"targets\": [\n");
    for (std::size_t i = 0; i < targets.size(); ++i)
      fmt::print(f, "    {{\"what\": \"{}\", \"value\": {:.3f}, \"limit\": {:g}, \"met\": {}}}{}\n", targets[i].what,
                 targets[i].value, targets[i].limit, targets[i].met, i + 1 < targets.size() ? "," : "");
    fmt::print(f, "  ]\n}}\n");
    std::fclose(f);
  }
  return g_sink == 42 ? 3 : 0;  // keeps g_sink observable
}
