// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_MEMORY_BLOCK_POOL_HPP
#define AGENTBUS_DETAIL_MEMORY_BLOCK_POOL_HPP

// Recycles the memory of shared event blocks.
//
// An event retained by a mailbox is allocated on the publishing thread and freed on the
// consumer's: with the C library's allocator both threads then fight over one arena lock on
// every event. Here each thread keeps a small cache per size class; a thread whose cache
// overflows hands a batch of blocks to a central list, and a thread whose cache is empty takes
// a batch from it. The central lock is taken once per `batch` events, not per event.
// Memory is kept for reuse (bounded by the peak number of live blocks), never returned early.
//
// The caches are arrays of pointers, not lists threaded through the free blocks: freeing
// writes nothing into the block, and allocating reads nothing from it. With a list, every
// allocation on the publishing thread read the link that the consumer's thread had written
// into the block it freed, a cache miss on another core's line that the next allocation
// depended on (measured: most of the publisher's time in a cross-thread benchmark). With
// arrays the blocks a thread will hand out next are known in advance, so allocate() also
// prefetches, for writing, the lines of a block a few allocations ahead: by the time the
// publisher builds an event in it, the lines have moved over from the consumer's core.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "agentbus/detail/config.hpp"
#include "agentbus/detail/memory/prefetch.hpp"
#include "agentbus/detail/tuning.hpp"

namespace agentbus::detail {

class block_pool {
 public:
  static constexpr std::size_t granule = 64;      // size classes are multiples of this
  static constexpr std::size_t class_count = 16;  // blocks up to 1 KiB are pooled
  static constexpr std::uint32_t batch = tuning::pool_batch;  // blocks moved to/from the central list at once
  /// Allocations between prefetching a block and handing it out: enough publishes to cover a
  /// cache line's trip from another core.
  static constexpr std::uint32_t prefetch_distance = tuning::pool_prefetch_distance;
  // Up to four lines of a block are prefetched (its front: header, envelope, small payloads).

  /// True when blocks of `size` bytes (and default alignment) come from the pool.
  static constexpr bool pooled(std::size_t size) noexcept { return size != 0 && size <= granule * class_count; }

  static void* allocate(std::size_t size) {
    if (!pooled(size)) return ::operator new(size);
    if (exited) return new_block(size);
    const std::size_t c = (size - 1) / granule;
    cache& local = thread_cache();
    std::uint32_t n = local.count[c];
    if (n == 0) {
      n = refill(local, c, size);
      if (n == 0) return new_block(size);
    }
    void** items = local.items[c];
    local.count[c] = --n;
    if (n >= prefetch_distance) prefetch_block(items[n - prefetch_distance], size);
    return items[n];
  }

  static void deallocate(void* p, std::size_t size) noexcept {
    if (!pooled(size)) {
      ::operator delete(p);
      return;
    }
    if (exited) {
      delete_block(p);
      return;
    }
    const std::size_t c = (size - 1) / granule;
    cache& local = thread_cache();
    std::uint32_t n = local.count[c];
    local.items[c][n++] = p;
    local.count[c] = n;
    if (n == 2 * batch) spill(local, c);
  }

 private:
  static constexpr std::size_t class_size(std::size_t size) noexcept { return ((size - 1) / granule + 1) * granule; }

  // Pooled blocks start on a cache line: a block then spans as few lines as its size allows
  // and never shares one with its neighbours (which live on other threads: with the default
  // 16-byte alignment, building one block took a line from the thread releasing the next).
  static void* new_block(std::size_t size) { return ::operator new(class_size(size), std::align_val_t{granule}); }
  static void delete_block(void* p) noexcept { ::operator delete(p, std::align_val_t{granule}); }

  using batch_type = std::array<void*, batch>;

  struct cache {
    void* items[class_count][2 * batch];  // free blocks, the next to hand out last
    std::uint32_t count[class_count] = {};
  };
  struct central {
    std::mutex mutex;
    std::vector<batch_type> batches[class_count];
  };

  static central& shared() noexcept {
    static central* c = new central;  // immortal: threads may exit after static destruction
    return *c;
  }

  static void prefetch_block(const void* p, std::size_t size) noexcept {
    const auto* bytes = static_cast<const char*>(p);
    prefetch_for_write(bytes);
    if (size > granule) prefetch_for_write(bytes + granule);
    if (size > 2 * granule) prefetch_for_write(bytes + 2 * granule);
    if (size > 3 * granule) prefetch_for_write(bytes + 3 * granule);
  }

  // The thread's cache: a constinit pointer (one TLS load, no guard) plus an owner whose
  // destructor hands the cache back when the thread exits.
  struct cache_owner {
    cache storage;
    ~cache_owner();
  };
  static cache& thread_cache() noexcept {
    cache* c = current;
    if (c == nullptr) c = attach();
    return *c;
  }
  static cache* attach() noexcept {
    thread_local cache_owner owner;
    current = &owner.storage;
    return current;
  }

  // Takes a batch from the central list into the (empty) cache; returns the new count.
  AGENTBUS_NOINLINE static std::uint32_t refill(cache& local, std::size_t c, std::size_t size) {
    central& s = shared();
    {
      std::lock_guard lock(s.mutex);
      if (s.batches[c].empty()) return 0;
      std::memcpy(local.items[c], s.batches[c].back().data(), sizeof(batch_type));
      s.batches[c].pop_back();
    }
    local.count[c] = batch;
    // The next allocations come from the top; allocate() prefetches further ones as it goes.
    for (std::uint32_t i = 1; i <= prefetch_distance && i <= batch; ++i) prefetch_block(local.items[c][batch - i], size);
    return batch;
  }

  // Moves the top `batch` blocks of the (full) cache to the central list.
  AGENTBUS_NOINLINE static void spill(cache& local, std::size_t c) noexcept {
    void** top = local.items[c] + local.count[c] - batch;
    local.count[c] -= batch;
    central& s = shared();
    std::lock_guard lock(s.mutex);
    try {
      batch_type b;
      std::memcpy(b.data(), top, sizeof(batch_type));
      s.batches[c].push_back(b);
    } catch (...) {
      // Could not record the batch: free it instead.
      for (std::uint32_t i = 0; i < batch; ++i) delete_block(top[i]);
    }
  }

  static inline thread_local constinit cache* current = nullptr;
  // Set once the thread's cache is gone (blocks released by later thread-exit destructors).
  static inline thread_local constinit bool exited = false;
};

inline block_pool::cache_owner::~cache_owner() {
  block_pool::current = nullptr;
  block_pool::exited = true;
  for (std::size_t c = 0; c < class_count; ++c) {
    while (storage.count[c] >= batch) spill(storage, c);
    for (std::uint32_t i = 0; i < storage.count[c]; ++i) delete_block(storage.items[c][i]);
    storage.count[c] = 0;
  }
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_MEMORY_BLOCK_POOL_HPP
