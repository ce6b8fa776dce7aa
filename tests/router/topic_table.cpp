// SPDX-License-Identifier: MIT
// The per-topic cache (router/detail/topic_table.hpp): insert and find, growth far past the
// initial capacity with every node kept where it was, colliding hashes (same hash, same slot,
// probing that wraps around the end), for_each, lock-free finds while the table grows, and
// reclamation: sweeps, pins and claims, and finds racing sweeps.
#include <agentbus/router/detail/topic_table.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using agentbus::detail::read_guard;
using agentbus::detail::receiver_list;
using agentbus::detail::topic_node;
using agentbus::detail::topic_table;

namespace {

std::uint64_t hash_of(std::string_view name) { return agentbus::detail::hash_topic_text(name); }

// The table owns its nodes (it deletes them); receiver_list::empty() is never freed.
topic_node* add(topic_table& table, const std::string& name, std::uint64_t hash) {
  auto* node = topic_node::make(name, hash, receiver_list::empty());
  table.insert(node);
  return node;
}

// A sweep, retiring what it dropped at once (the router does it after releasing its mutex).
template <class Reclaimable, class Dropped>
void sweep(topic_table& table, Reclaimable&& reclaimable, Dropped&& dropped) {
  std::vector<agentbus::detail::retired_record::object> retired;
  table.sweep(reclaimable, dropped, retired);
  agentbus::detail::quiescence_domain::instance().retire(std::move(retired));
}

topic_node* find(const topic_table& table, std::string_view name, std::uint64_t hash) {
  read_guard g;
  return table.find(name, hash);
}

}  // namespace

TEST_CASE("topic_table: find returns the inserted node, by name and hash", "[router][topic_table]") {
  topic_table table;
  CHECK(table.size() == 0);
  CHECK(find(table, "a.b", hash_of("a.b")) == nullptr);
  topic_node* ab = add(table, "a.b", hash_of("a.b"));
  topic_node* ac = add(table, "a.c", hash_of("a.c"));
  CHECK(table.size() == 2);
  CHECK(find(table, "a.b", hash_of("a.b")) == ab);
  CHECK(find(table, "a.c", hash_of("a.c")) == ac);
  CHECK(ab->name() == "a.b");
  CHECK(ab->hash == hash_of("a.b"));
  CHECK(ab->receivers.load() == receiver_list::empty());
  CHECK(find(table, "a.d", hash_of("a.d")) == nullptr);
  CHECK(find(table, "a.b", hash_of("a.b") + 1) == nullptr);  // the hash is part of the key
}

TEST_CASE("topic_table: grows far past its initial capacity and keeps every node in place", "[router][topic_table]") {
  topic_table table;
  std::vector<topic_node*> nodes;
  constexpr int count = 5000;  // the table starts at 64 slots and doubles when half full
  for (int i = 0; i < count; ++i) {
    const std::string name = "t." + std::to_string(i);
    nodes.push_back(add(table, name, hash_of(name)));
    if (i % 97 == 0) {  // earlier nodes survive every growth, at the same address
      const std::string early = "t." + std::to_string(i / 2);
      CHECK(find(table, early, hash_of(early)) == nodes[static_cast<std::size_t>(i / 2)]);
    }
  }
  CHECK(table.size() == count);
  int wrong = 0;
  for (int i = 0; i < count; ++i) {
    const std::string name = "t." + std::to_string(i);
    wrong += find(table, name, hash_of(name)) != nodes[static_cast<std::size_t>(i)];
  }
  CHECK(wrong == 0);
  CHECK(find(table, "t.5000", hash_of("t.5000")) == nullptr);
}

TEST_CASE("topic_table: colliding hashes are told apart by name", "[router][topic_table]") {
  topic_table table;
  SECTION("the same hash for every topic") {
    std::vector<topic_node*> nodes;
    for (int i = 0; i < 100; ++i) nodes.push_back(add(table, "same." + std::to_string(i), 42));
    for (int i = 0; i < 100; ++i) CHECK(find(table, "same." + std::to_string(i), 42) == nodes[static_cast<std::size_t>(i)]);
    CHECK(find(table, "same.100", 42) == nullptr);  // probing stops at an empty slot
  }
  SECTION("different hashes for the same slot, and probing that wraps past the last slot") {
    // 63 is the last slot of the initial 64; the low bits pick the slot, so 63 + 64k all start
    // there. Six nodes stay below half full: no growth, the probe really wraps to slot 0.
    std::vector<topic_node*> nodes;
    for (std::uint64_t k = 0; k < 6; ++k) nodes.push_back(add(table, "wrap." + std::to_string(k), 63 + 64 * k));
    topic_node* zero = add(table, "zero", 0);  // slot 0 is taken by a wrapped probe already
    for (std::uint64_t k = 0; k < 6; ++k) CHECK(find(table, "wrap." + std::to_string(k), 63 + 64 * k) == nodes[k]);
    CHECK(find(table, "zero", 0) == zero);
    CHECK(find(table, "wrap.6", 63 + 64 * 6) == nullptr);
    // Growth re-places the colliding nodes; all are still found.
    for (int i = 0; i < 200; ++i) add(table, "fill." + std::to_string(i), hash_of("fill." + std::to_string(i)));
    for (std::uint64_t k = 0; k < 6; ++k) CHECK(find(table, "wrap." + std::to_string(k), 63 + 64 * k) == nodes[k]);
    CHECK(find(table, "zero", 0) == zero);
  }
}

TEST_CASE("topic_table: for_each visits every node once", "[router][topic_table]") {
  topic_table table;
  std::map<std::string, int> visits;
  table.for_each([&](topic_node& n) { ++visits[std::string(n.name())]; });
  CHECK(visits.empty());
  for (int i = 0; i < 300; ++i) add(table, "v." + std::to_string(i), hash_of("v." + std::to_string(i)));
  add(table, "v.collides", hash_of("v.0"));
  table.for_each([&](topic_node& n) { ++visits[std::string(n.name())]; });
  CHECK(visits.size() == 301);
  int wrong = 0;
  for (const auto& [name, n] : visits) wrong += n != 1;
  CHECK(wrong == 0);
  CHECK(visits.count("v.collides") == 1);
}

TEST_CASE("topic_table: lock-free finds while the table grows see every published node", "[router][topic_table][concurrency]") {
  // One writer inserts (as the router does, under its mutex), growing the table many times;
  // readers look up, inside read sections, nodes already published: each must be found, and
  // the arrays the writer replaces must outlive the readers still using them.
  topic_table table;
  constexpr int count = 20000;
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back("live." + std::to_string(i));
  std::atomic<int> published{0};
  std::atomic<bool> stop{false};
  std::atomic<long> missing{0}, wrong_node{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      unsigned x = static_cast<unsigned>(r) * 7919u + 1u;
      while (!stop.load(std::memory_order_relaxed)) {
        const int n = published.load(std::memory_order_acquire);
        if (n == 0) continue;
        x = x * 1103515245u + 12345u;
        const auto i = static_cast<std::size_t>(x % static_cast<unsigned>(n));
        read_guard g;
        topic_node* node = table.find(names[i], hash_of(names[i]));
        if (node == nullptr)
          missing.fetch_add(1, std::memory_order_relaxed);
        else if (node->name() != names[i])
          wrong_node.fetch_add(1, std::memory_order_relaxed);
        lookups.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (int i = 0; i < count; ++i) {
    add(table, names[static_cast<std::size_t>(i)], hash_of(names[static_cast<std::size_t>(i)]));
    published.store(i + 1, std::memory_order_release);
  }
  // On a loaded machine the readers may not have been scheduled yet: let them look up a while.
  for (int spins = 0; lookups.load() < 1000 && spins < 200000; ++spins) std::this_thread::yield();
  stop.store(true);
  for (auto& t : readers) t.join();
  CHECK(missing.load() == 0);
  CHECK(wrong_node.load() == 0);
  CHECK(lookups.load() > 0);
  CHECK(table.size() == count);
}

TEST_CASE("topic_table: a sweep drops the nodes it claims, keeps the rest in place, and gives room back", "[router][topic_table]") {
  topic_table table;
  std::vector<topic_node*> nodes;
  for (int i = 0; i < 4000; ++i) {
    const std::string name = "s." + std::to_string(i);
    nodes.push_back(add(table, name, hash_of(name)));
  }
  REQUIRE(table.capacity() == 8192);  // doubled whenever half full
  std::vector<std::string> dropped;
  // Keep every 100th node; claim the others (as the router does for unanchored nodes).
  auto kept_one = [](std::string_view name) { return std::stoi(std::string(name.substr(2))) % 100 == 0; };
  sweep(table, [&](topic_node& n) { return !kept_one(n.name()) && n.try_claim(); },
        [&](topic_node& n) noexcept { dropped.emplace_back(n.name()); });
  std::size_t kept = 0;
  int wrong = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string name = "s." + std::to_string(i);
    topic_node* found = find(table, name, hash_of(name));
    if (kept_one(name)) {
      ++kept;
      wrong += found != nodes[static_cast<std::size_t>(i)];
    } else {
      wrong += found != nullptr;
    }
  }
  CHECK(wrong == 0);
  CHECK(kept == 40);
  CHECK(table.size() == kept);
  CHECK(dropped.size() == 4000 - kept);
  CHECK(table.capacity() == 256);  // a quarter full at most: 40 nodes need 160 slots
  // Inserting again works after the rebuild (the dropped names come back as new nodes).
  for (const std::string& name : dropped) add(table, name, hash_of(name));
  CHECK(table.size() == 4000);
  CHECK(find(table, "s.1", hash_of("s.1")) != nullptr);
  agentbus::detail::quiescence_domain::instance().reclaim();  // the dropped nodes are freed (ASan: no leak)
}

TEST_CASE("topic_table: a pinned node cannot be claimed; a claimed one cannot be pinned", "[router][topic_table]") {
  topic_table table;
  topic_node* a = add(table, "pin.a", hash_of("pin.a"));
  topic_node* b = add(table, "pin.b", hash_of("pin.b"));
  REQUIRE(a->try_pin());
  {
    const auto held = agentbus::detail::topic_pin::adopt(a);
    auto copy = held;  // a second pin
    CHECK(copy.get() == a);
    const auto moved = std::move(copy);  // the pin moves; `copy` holds none
    CHECK(moved.get() == a);
    CHECK(copy.get() == nullptr);  // NOLINT(bugprone-use-after-move): what a move leaves is the point
    CHECK_FALSE(a->try_claim());   // two pins
  }
  // Both pins dropped: claimable now, and from then on pins fail. The sweep runs inside a read
  // section, as a reader holding the nodes would be: they are retired, not freed, until it ends.
  read_guard g;
  int claimed = 0;
  sweep(table, [&](topic_node& n) { return n.try_claim() && ++claimed > 0; }, [](topic_node&) noexcept {});
  CHECK(claimed == 2);
  CHECK(table.size() == 0);
  CHECK_FALSE(a->try_pin());
  CHECK_FALSE(b->try_pin());
}

TEST_CASE("topic_table: lock-free finds and pins racing sweeps never see a freed or reclaimed node",
          "[router][topic_table][concurrency]") {
  // A writer keeps inserting and sweeping unpinned nodes (the router's mutex is the writer's
  // alone here); readers find names, pin what they find and check it, inside read sections.
  // A pin that fails means the node was claimed: the reader looks again later. A node a reader
  // pinned must never be dropped (the writer checks each drop against the pinned count).
  topic_table table;
  constexpr int names_count = 512;
  std::vector<std::string> names;
  for (int i = 0; i < names_count; ++i) names.push_back("race." + std::to_string(i));
  std::atomic<bool> stop{false};
  std::atomic<long> pinned_ok{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      unsigned x = static_cast<unsigned>(r) * 2654435761u + 7u;
      while (!stop.load(std::memory_order_relaxed)) {
        x = x * 1103515245u + 12345u;
        const std::string& name = names[x % names_count];
        agentbus::detail::topic_pin pin;
        {
          read_guard g;
          topic_node* n = table.find(name, hash_of(name));
          if (n == nullptr) continue;
          if (n->name() != name) wrong.fetch_add(1);
          if (!n->try_pin()) continue;  // claimed by a sweep meanwhile
          pin = agentbus::detail::topic_pin::adopt(n);
        }
        // Outside the read section: only the pin keeps the node alive now.
        if (pin->name() != name) wrong.fetch_add(1);
        pinned_ok.fetch_add(1, std::memory_order_relaxed);
      }
    });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  int rounds = 0;
  while (std::chrono::steady_clock::now() < deadline || rounds < 20) {
    for (const std::string& name : names)
      if (find(table, name, hash_of(name)) == nullptr) add(table, name, hash_of(name));
    sweep(table, [](topic_node& n) { return n.try_claim(); }, [](topic_node&) noexcept {});
    ++rounds;
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  CHECK(wrong.load() == 0);
  CHECK(rounds >= 20);
  agentbus::detail::quiescence_domain::instance().reclaim();
}

TEST_CASE("topic_table: a publish's find marks the node in use until the next sweep; a writer's does not", "[router][topic_table]") {
  topic_table table;
  topic_node* n = add(table, "use.me", hash_of("use.me"));
  CHECK_FALSE(n->take_used());  // a new node is not in use
  CHECK(table.find_unmarked("use.me", hash_of("use.me")) == n);
  CHECK_FALSE(n->take_used());  // a writer's lookup is not a use
  CHECK(find(table, "use.me", hash_of("use.me")) == n);
  CHECK(find(table, "use.me", hash_of("use.me")) == n);  // marked already: found the same way
  CHECK(n->take_used());
  CHECK_FALSE(n->take_used());  // taking clears it
  // A name of the same size and hash that is not this topic is not found (and at worst
  // marks the node: harmless).
  topic_node* twin = add(table, "use.mf", hash_of("use.me"));
  CHECK(find(table, "use.mf", hash_of("use.me")) == twin);
  CHECK(find(table, "use.mg", hash_of("use.me")) == nullptr);
}
