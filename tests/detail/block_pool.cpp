// SPDX-License-Identifier: MIT
// The block pool behind shared event blocks (detail/memory/block_pool.hpp): which sizes are
// pooled, cache-line alignment, reuse of freed blocks by the same thread without touching the
// heap, blocks freed on another thread coming back through the central list, and large
// blocks going straight to operator new.
#include <agentbus/detail/memory/block_pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "support/allocation_counter.hpp"

using agentbus::detail::block_pool;
using agentbus::test::allocation_scope;

namespace {

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace

TEST_CASE("blocks up to granule * class_count bytes are pooled, larger and empty ones are not", "[detail][block_pool]") {
  CHECK_FALSE(block_pool::pooled(0));
  CHECK(block_pool::pooled(1));
  CHECK(block_pool::pooled(block_pool::granule));
  CHECK(block_pool::pooled(block_pool::granule * block_pool::class_count));
  CHECK_FALSE(block_pool::pooled(block_pool::granule * block_pool::class_count + 1));
}

TEST_CASE("pooled blocks start on a cache line and are usable to their full size", "[detail][block_pool]") {
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t size = 1; size <= block_pool::granule * block_pool::class_count; size += 37) {
    for (int i = 0; i < 3; ++i) {
      void* p = block_pool::allocate(size);
      REQUIRE(p != nullptr);
      CHECK(address(p) % block_pool::granule == 0);
      std::memset(p, 0xab, size);  // AddressSanitizer checks the extent
      blocks.emplace_back(p, size);
    }
  }
  // Fresh blocks first, then recycled ones: both aligned.
  for (auto [p, size] : blocks) block_pool::deallocate(p, size);
  for (auto& [p, size] : blocks) {
    p = block_pool::allocate(size);
    CHECK(address(p) % block_pool::granule == 0);
  }
  for (auto [p, size] : blocks) block_pool::deallocate(p, size);
}

TEST_CASE("a freed block is handed out again by the same thread, for any size of its class", "[detail][block_pool]") {
  constexpr std::size_t g = block_pool::granule;
  void* p = block_pool::allocate(2 * g + 1);  // the class of sizes (2g, 3g]
  block_pool::deallocate(p, 2 * g + 1);
  void* other = block_pool::allocate(g);  // another class: not this block
  CHECK(other != p);
  void* q = block_pool::allocate(3 * g);
  CHECK(q == p);
  block_pool::deallocate(other, g);
  block_pool::deallocate(q, 3 * g);
}

TEST_CASE("once warm, pooled allocations do not touch the heap, large ones always do", "[detail][block_pool]") {
  constexpr std::size_t small = 200, large = block_pool::granule * block_pool::class_count + 1;
  std::vector<void*> warm;
  for (int i = 0; i < 10; ++i) warm.push_back(block_pool::allocate(small));
  for (void* p : warm) block_pool::deallocate(p, small);
  {
    allocation_scope scope;
    for (int round = 0; round < 100; ++round) {
      void* p = block_pool::allocate(small);
      block_pool::deallocate(p, small);
    }
    CHECK(scope.count() == 0);
  }
  {
    allocation_scope scope;
    for (int round = 0; round < 10; ++round) {
      void* p = block_pool::allocate(large);
      std::memset(p, 0, large);
      block_pool::deallocate(p, large);
    }
    CHECK(scope.count() == 10);  // not cached: every one is a heap allocation
  }
}

TEST_CASE("blocks freed on another thread come back to the allocating side", "[detail][block_pool][concurrency]") {
  // Three fresh threads, so that no thread cache holds blocks of this class beforehand: one
  // allocates, one frees (its cache overflows into the central list, and its exit hands the
  // rest over), one allocates again and must get those very blocks, without the heap.
  constexpr std::size_t size = 14 * block_pool::granule + 8;
  constexpr std::size_t count = 4 * block_pool::batch;
  std::vector<void*> blocks;
  std::thread([&] {
    for (std::size_t i = 0; i < count; ++i) blocks.push_back(block_pool::allocate(size));
  }).join();
  const std::set<void*> freed(blocks.begin(), blocks.end());
  REQUIRE(freed.size() == count);
  std::thread([&] {
    for (void* p : blocks) block_pool::deallocate(p, size);
  }).join();

  std::vector<void*> again;
  again.reserve(count);  // not counted below
  std::size_t heap_allocations = 0;
  std::thread([&] {
    allocation_scope scope;
    for (std::size_t i = 0; i < count; ++i) again.push_back(block_pool::allocate(size));
    heap_allocations = scope.count();
    for (void* p : again) block_pool::deallocate(p, size);
  }).join();
  const auto recycled = std::count_if(again.begin(), again.end(), [&](void* p) { return freed.count(p) == 1; });
  CHECK(static_cast<std::size_t>(recycled) == count);
  CHECK(heap_allocations == 0);
}
