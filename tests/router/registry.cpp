// SPDX-License-Identifier: MIT
// The router's registry of subscriptions: an open-addressing table checked against std::map
// through random inserts and erases (backward-shift deletion must keep every entry findable).
#include <agentbus/router/detail/registry.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <random>
#include <vector>

namespace {
struct plain_receiver : agentbus::detail::receiver {
  explicit plain_receiver(std::uint64_t with_id)
      : receiver(nullptr, nullptr, nullptr, agentbus::topic_pattern("registry.test")) {
    id = with_id;
  }
};
}  // namespace

TEST_CASE("registry: random inserts and erases agree with std::map", "[router][registry]") {
  agentbus::detail::receiver_registry reg;
  std::map<std::uint64_t, plain_receiver*> model;
  std::vector<std::unique_ptr<plain_receiver>> owned;
  std::mt19937_64 rng(3);
  std::uint64_t next_id = 0;
  for (int step = 0; step < 20000; ++step) {
    if (model.empty() || rng() % 3 != 0) {  // insert (ids grow, as the router's do)
      owned.push_back(std::make_unique<plain_receiver>(++next_id));
      reg.insert(owned.back().get());
      model.emplace(next_id, owned.back().get());
    } else {  // erase a random live id, or one that is absent
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      const std::uint64_t id = rng() % 8 == 0 ? next_id + 1000 : it->first;
      agentbus::detail::receiver* got = reg.erase(id);
      if (id > next_id) {
        CHECK(got == nullptr);
      } else {
        CHECK(got == it->second);
        model.erase(it);
      }
    }
    if (step % 997 == 0) {
      REQUIRE(reg.size() == model.size());
      for (const auto& [id, r] : model) CHECK(reg.find(id) == r);
      std::size_t visited = 0;
      reg.for_each([&](agentbus::detail::receiver*) { ++visited; });
      CHECK(visited == model.size());
    }
  }
  for (const auto& [id, r] : model) CHECK(reg.find(id) == r);
  CHECK(reg.find(next_id + 1) == nullptr);
  reg.clear();
  CHECK(reg.size() == 0);
  CHECK(reg.find(1) == nullptr);
}
