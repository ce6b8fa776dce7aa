// SPDX-License-Identifier: MIT
#include <agentbus/bus/channel.hpp>
#include <agentbus/bus/basic_bus.hpp>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace {
struct tick {
  int n = 0;
};
}  // namespace

TEST_CASE("a channel publishes to its topic's exact and wildcard subscribers", "[channel]") {
  agentbus::bus bus;
  auto ch = bus.channel<tick>("clock.tick");
  CHECK(ch.topic() == "clock.tick");
  CHECK_FALSE(ch.has_subscribers());
  CHECK(ch.publish(tick{1}).delivered == 0);

  int exact = 0, wild = 0;
  auto s1 = bus.subscribe("clock.tick", [&](const tick& t) { exact += t.n; });
  auto s2 = bus.subscribe("clock.*", [&](const tick& t) { wild += t.n; });
  CHECK(ch.has_subscribers());
  CHECK(ch.publish(tick{2}).delivered == 2);
  s1.unsubscribe();
  CHECK(ch.publish(tick{3}).delivered == 1);
  CHECK(exact == 2);
  CHECK(wild == 5);
}

TEST_CASE("channels are cheap to copy and usable from several threads", "[channel][concurrency]") {
  agentbus::bus bus;
  std::atomic<int> total{0};
  auto s = bus.subscribe("work", [&](const tick& t) { total += t.n; });
  auto ch = bus.channel<tick>("work");
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([copy = ch] {
      for (int k = 0; k < 1000; ++k) copy.publish(tick{1});
    });
  for (auto& t : threads) t.join();
  CHECK(total == 4000);
}

TEST_CASE("a channel's sequence increases per publishing thread", "[channel]") {
  agentbus::bus bus;
  std::vector<std::uint64_t> seqs;
  auto s = bus.subscribe("seq", [&](const agentbus::event<tick>& e) { seqs.push_back(e.sequence()); });
  auto ch = bus.channel<tick>("seq");
  for (int i = 0; i < 5; ++i) ch.publish(tick{});
  REQUIRE(seqs.size() == 5);
  for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] == seqs[i - 1] + 1);
}
