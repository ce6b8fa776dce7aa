// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_BLOCK_POOL_HPP
#define AGENTBUS_DETAIL_BLOCK_POOL_HPP

// Recycles the memory of shared event blocks.
//
// An event retained by a mailbox is allocated on the publishing thread and freed on the
// consumer's: with the C library's allocator both threads then fight over one arena lock on
// every event. Here each thread keeps a small cache per size class; a thread whose cache
// overflows hands a batch of blocks to a central list, and a thread whose cache is empty takes
// a batch from it. The central lock is taken once per `batch` events, not per event.
// Memory is kept for reuse (bounded by the peak number of live blocks), never returned early.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

namespace agentbus::detail {

class block_pool {
 public:
  static constexpr std::size_t granule = 64;      // size classes are multiples of this
  static constexpr std::size_t class_count = 16;  // blocks up to 1 KiB are pooled
  static constexpr std::uint32_t batch = 32;      // blocks moved to/from the central list at once

  /// True when blocks of `size` bytes (and default alignment) come from the pool.
  static constexpr bool pooled(std::size_t size) noexcept { return size != 0 && size <= granule * class_count; }

  static void* allocate(std::size_t size) {
    if (!pooled(size) || exited) return ::operator new(pooled(size) ? class_size(size) : size);
    const std::size_t c = (size - 1) / granule;
    cache& local = thread_cache();
    if (local.head[c] == nullptr) refill(local, c);
    if (node* n = local.head[c]) {
      local.head[c] = n->next;
      --local.count[c];
      return n;
    }
    return ::operator new(class_size(size));
  }

  static void deallocate(void* p, std::size_t size) noexcept {
    if (!pooled(size) || exited) {
      ::operator delete(p);
      return;
    }
    const std::size_t c = (size - 1) / granule;
    cache& local = thread_cache();
    auto* n = static_cast<node*>(p);
    n->next = local.head[c];
    local.head[c] = n;
    if (++local.count[c] >= 2 * batch) spill(local, c);
  }

 private:
  static constexpr std::size_t class_size(std::size_t size) noexcept { return ((size - 1) / granule + 1) * granule; }

  struct node {
    node* next;
  };
  struct cache {
    node* head[class_count] = {};
    std::uint32_t count[class_count] = {};
  };
  struct central {
    std::mutex mutex;
    std::vector<node*> batches[class_count];  // each a list of `batch` nodes
  };

  static central& shared() noexcept {
    static central* c = new central;  // immortal: threads may exit after static destruction
    return *c;
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

  static void refill(cache& local, std::size_t c) {
    central& s = shared();
    std::lock_guard lock(s.mutex);
    if (s.batches[c].empty()) return;
    local.head[c] = s.batches[c].back();
    local.count[c] = batch;
    s.batches[c].pop_back();
  }

  // Moves `batch` nodes from the cache to the central list.
  static void spill(cache& local, std::size_t c) noexcept {
    node* first = local.head[c];
    node* last = first;
    for (std::uint32_t i = 1; i < batch; ++i) last = last->next;
    local.head[c] = last->next;
    last->next = nullptr;
    local.count[c] -= batch;
    central& s = shared();
    std::lock_guard lock(s.mutex);
    try {
      s.batches[c].push_back(first);
    } catch (...) {
      // Could not record the batch: free it instead.
      while (first) {
        node* next = first->next;
        ::operator delete(first);
        first = next;
      }
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
    for (node* n = storage.head[c]; n != nullptr;) {
      node* next = n->next;
      ::operator delete(n);
      n = next;
    }
    storage.head[c] = nullptr;
    storage.count[c] = 0;
  }
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_BLOCK_POOL_HPP
