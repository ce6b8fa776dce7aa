// SPDX-License-Identifier: MIT
// A topic's receiver list (router/detail/receiver.hpp) finds entries by key: interpolation
// probes, then binary search. Checked against a set of keys for the shapes a router's ids take
// (consecutive, spread out, clustered, growing geometrically) and every list length around the
// switch between the two searches, killing in random order, absent keys included.
#include <agentbus/router/detail/receiver.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace {

using agentbus::detail::receiver_entry;
using agentbus::detail::receiver_list;

const char some_type = 0;  // a non-null type: the entry is live

// Compact entries: the list never looks behind `target`.
receiver_entry entry_with(std::uint64_t id) {
  return {{&some_type}, nullptr, nullptr, receiver_entry::key_of(id, true)};
}

std::vector<std::uint64_t> ids_shaped(int shape, std::size_t n, std::mt19937_64& rng) {
  std::vector<std::uint64_t> ids;
  std::uint64_t next = 1 + rng() % 1000;
  for (std::size_t i = 0; i < n; ++i) {
    ids.push_back(next);
    switch (shape) {
      case 0: next += 1; break;                                        // one topic's ids
      case 1: next += 1 + rng() % 50; break;                           // interleaved with other topics
      case 2: next += (rng() % 16 == 0) ? 1'000'000 + rng() % 1000 : 1; break;  // bursts far apart
      default: next += next / 2 + 1; break;                            // geometric: interpolation's worst
    }
  }
  return ids;
}

}  // namespace

TEST_CASE("receiver list: kill finds every key and no other, for any spread of ids", "[router][receiver_list]") {
  std::mt19937_64 rng(11);
  for (int shape = 0; shape < 4; ++shape) {
    for (std::size_t n : {1u, 2u, 7u, 8u, 9u, 10u, 17u, 100u, 1000u, 5000u}) {
      if (shape == 3 && n > 60) continue;  // geometric ids overflow 62 bits beyond ~80 entries
      const auto ids = ids_shaped(shape, n, rng);
      receiver_list* list = receiver_list::make(n);
      for (std::uint64_t id : ids) REQUIRE(list->try_append(entry_with(id), false));
      REQUIRE(list->size() == n);

      const std::set<std::uint64_t> present(ids.begin(), ids.end());
      std::vector<std::uint64_t> probes = ids;
      // Absent keys: below, above, and between neighbours.
      probes.push_back(0);
      probes.push_back(ids.back() + 1);
      probes.push_back(ids.back() + 1'000'000'000);
      for (std::size_t i = 0; i + 1 < n; ++i)
        if (ids[i] + 1 < ids[i + 1]) probes.push_back(ids[i] + 1 + rng() % (ids[i + 1] - ids[i] - 1));
      std::shuffle(probes.begin(), probes.end(), rng);

      std::size_t killed = 0;
      for (std::uint64_t id : probes) {
        const bool expected = present.count(id) != 0;
        INFO("shape " << shape << ", n " << n << ", id " << id);
        CHECK(list->kill(receiver_entry::key_of(id, true)) == expected);
        CHECK_FALSE(list->kill(receiver_entry::key_of(id, true)));  // a tombstone is not found again
        CHECK_FALSE(list->kill(receiver_entry::key_of(id, false)));  // nor the same id as a receiver's
        if (expected) ++killed;
        CHECK(list->live() == n - killed);
      }
      CHECK(list->live() == 0);
      receiver_list::delete_erased(list);
    }
  }
}
