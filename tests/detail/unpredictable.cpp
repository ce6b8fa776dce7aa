// SPDX-License-Identifier: MIT
// detail/unpredictable.hpp: ids that must not repeat across calls, threads and processes.
#include <agentbus/detail/unpredictable.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <thread>
#include <vector>

TEST_CASE("unpredictable_u64 never repeats within a process and every bit varies", "[detail][unpredictable]") {
  std::set<std::uint64_t> seen;
  std::uint64_t ones = 0, zeros = 0;  // bits seen set, and seen clear, in some value
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t v = agentbus::detail::unpredictable_u64();
    CHECK(seen.insert(v).second);
    ones |= v;
    zeros |= ~v;
  }
  CHECK(ones == ~std::uint64_t{0});
  CHECK(zeros == ~std::uint64_t{0});
}

TEST_CASE("unpredictable_u64 differs between threads started at once", "[detail][unpredictable][concurrency]") {
  std::vector<std::uint64_t> got(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i) threads.emplace_back([&got, i] { got[i] = agentbus::detail::unpredictable_u64(); });
  for (auto& t : threads) t.join();
  CHECK(std::set<std::uint64_t>(got.begin(), got.end()).size() == got.size());
}
