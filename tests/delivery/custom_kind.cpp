// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// The module seam, proven from outside: a delivery kind written here, in the test, with only
// what delivery/delivery.hpp and bus/detail/bus_access.hpp document (no friend of the bus,
// nothing added to basic_bus), then used through the ordinary subscribe(), with history,
// and through bus_access directly.

#include <agentbus/agentbus.hpp>
#include <agentbus/bus/detail/bus_access.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// A "deferred" delivery: publishing keeps the event (zero copy: a share of its block) in a
// queue the test runs later, like a minimal mailbox of the test's own.
struct deferred_queue {
  std::mutex mutex;
  std::vector<std::function<void()>> jobs;
  int subscribed_calls = 0;
  bool refuse_subscription = false;
  bool refuse_events = false;

  std::size_t run() {
    std::vector<std::function<void()>> now;
    {
      std::lock_guard lock(mutex);
      now.swap(jobs);
    }
    for (auto& job : now) job();
    return now.size();
  }
};

template <class T, class F>
struct deferred_receiver : agentbus::detail::receiver {
  template <class G, class Kind>
  deferred_receiver(G&& g, agentbus::topic_pattern pat, const Kind& kind)
      : receiver(agentbus::type_id_of<T>(), &invoke_it, &destroy_it, std::move(pat), /*keeps_events=*/true),
        fn(std::make_shared<F>(std::forward<G>(g))),
        queue(kind.queue) {}

  static bool invoke_it(receiver* r, const agentbus::detail::event_core& e) {
    auto* self = static_cast<deferred_receiver*>(r);
    if (self->queue->refuse_events) return false;
    // retains: the event lives in a shared block, so retain() shares it (no copy).
    agentbus::shared_event<T> kept = static_cast<const agentbus::event<T>&>(e).retain();
    std::lock_guard lock(self->queue->mutex);
    self->queue->jobs.push_back([fn = self->fn, kept = std::move(kept)] { agentbus::detail::call_handler<T>(*fn, *kept); });
    return true;
  }
  static void destroy_it(receiver* r) noexcept { delete static_cast<deferred_receiver*>(r); }

  std::shared_ptr<F> fn;  // shared with queued jobs: they may outlive the receiver
  deferred_queue* queue;
};

struct deferred {
  using delivery_tag = void;
  template <class T, class F>
  using receiver = deferred_receiver<T, F>;

  deferred_queue* queue;

  void subscribed(const std::shared_ptr<agentbus::detail::router>&, std::uint64_t) const {
    ++queue->subscribed_calls;
    if (queue->refuse_subscription) throw std::runtime_error("no room for another subscription");
  }
};

static_assert(agentbus::delivery_kind<deferred>);
static_assert(!agentbus::delivery_kind<int>);
static_assert(!agentbus::delivery_kind<deferred_queue>);

struct reading {
  int value;
  std::string unit;
};

}  // namespace

TEST_CASE("a kind defined outside the bus receives through the ordinary subscribe", "[delivery][seam]") {
  agentbus::bus bus;
  deferred_queue queue;
  std::vector<int> got;
  const reading* first_seen = nullptr;
  const reading* second_seen = nullptr;
  auto a = bus.subscribe("sensors.*", [&](const agentbus::event<reading>& ev) {
    got.push_back(ev->value);
    first_seen = &ev.payload();
  }, deferred{&queue});
  auto b = bus.subscribe<reading>("sensors.>", [&](const reading& r) {
    got.push_back(r.value * 10);
    second_seen = &r;
  }, deferred{&queue});
  CHECK(queue.subscribed_calls == 2);

  const auto r = bus.publish("sensors.t1", reading{4, "C"});
  CHECK(r.delivered == 2);
  CHECK(got.empty());  // deferred: nothing ran inside publish
  CHECK(queue.run() == 2);
  CHECK(got == std::vector<int>{4, 40});
  CHECK(first_seen == second_seen);  // both receivers shared one block: one payload, no copy per receiver

  a.unsubscribe();
  CHECK(bus.publish("sensors.t1", reading{5, "C"}).delivered == 1);
  CHECK(queue.run() == 1);
  CHECK(got.back() == 50);
}

TEST_CASE("a refusal by a custom kind is counted as rejected", "[delivery][seam]") {
  agentbus::bus bus;
  deferred_queue queue;
  auto s = bus.subscribe("x.y", [](const int&) {}, deferred{&queue});
  queue.refuse_events = true;
  const auto r = bus.publish("x.y", 1);
  CHECK(r.delivered == 0);
  CHECK(r.rejected == 1);
}

TEST_CASE("a kind whose subscribed hook throws leaves no subscription behind", "[delivery][seam]") {
  agentbus::bus bus;
  deferred_queue queue;
  queue.refuse_subscription = true;
  CHECK_THROWS_WITH((void)bus.subscribe("x.y", [](const int&) {}, deferred{&queue}), "no room for another subscription");
  CHECK(bus.stats().subscriptions == 0);
  CHECK(bus.publish("x.y", 1).delivered == 0);
}

TEST_CASE("history decorates a custom kind too (replay, then live, no duplicate)", "[delivery][seam][history]") {
  agentbus::basic_bus<agentbus::storage::memory_ring<64>> bus;
  for (int i = 0; i < 3; ++i) (void)bus.publish("log.a", i);
  deferred_queue queue;
  std::vector<int> got;
  agentbus::replay_stats report;
  auto s = bus.subscribe<int>("log.*", [&](int v) { got.push_back(v); }, deferred{&queue},
                              agentbus::subscribe_options{.history = agentbus::history::all(), .report = &report});
  CHECK(report.delivered == 3);
  (void)bus.publish("log.b", 3);
  CHECK(queue.run() == 4);
  CHECK(got == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("bus_access adopts a receiver built by hand", "[delivery][seam]") {
  agentbus::bus bus;
  deferred_queue queue;
  std::vector<std::string> got;
  auto handler = [&](const agentbus::event<std::string>& ev) { got.push_back(std::string(ev.topic()) + "=" + *ev); };
  using receiver_type = deferred::receiver<std::string, decltype(handler)>;
  auto* r = new receiver_type(std::move(handler), agentbus::topic_pattern("cfg.>"), deferred{&queue});
  agentbus::subscription sub = agentbus::detail::bus_access::adopt(agentbus::detail::bus_access::router_of(bus), r);
  CHECK(sub.active());
  CHECK(bus.stats().subscriptions == 1);
  (void)bus.publish("cfg.mode", std::string("fast"));
  queue.run();
  CHECK(got == std::vector<std::string>{"cfg.mode=fast"});
  sub.unsubscribe();
  CHECK(bus.stats().subscriptions == 0);
  CHECK(bus.publish("cfg.mode", std::string("slow")).delivered == 0);
}
