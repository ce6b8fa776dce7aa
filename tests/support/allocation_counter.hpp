// SPDX-License-Identifier: MIT
// Counts heap allocations made by the current thread while a scope is active. The global
// operator new/delete replacements live in allocation_counter.cpp (one per test program).
#ifndef AGENTBUS_TESTS_SUPPORT_ALLOCATION_COUNTER_HPP
#define AGENTBUS_TESTS_SUPPORT_ALLOCATION_COUNTER_HPP

#include <cstddef>

namespace agentbus::test {

struct allocation_stats {
  bool counting = false;
  std::size_t allocations = 0;
  /// When not 0: the allocation with this number (counted as above) throws std::bad_alloc.
  std::size_t fail_at = 0;
};
allocation_stats& thread_allocation_stats() noexcept;

/// Counts this thread's allocations between construction and count().
class allocation_scope {
 public:
  allocation_scope() noexcept {
    auto& s = thread_allocation_stats();
    s.allocations = 0;
    s.counting = true;
  }
  ~allocation_scope() { thread_allocation_stats().counting = false; }
  std::size_t count() const noexcept { return thread_allocation_stats().allocations; }
};

/// Counts this thread's allocations from construction on and makes number `n` fail.
class allocation_failure {
 public:
  explicit allocation_failure(std::size_t n) noexcept {
    auto& s = thread_allocation_stats();
    s.allocations = 0;
    s.fail_at = n;
    s.counting = true;
  }
  ~allocation_failure() {
    auto& s = thread_allocation_stats();
    s.counting = false;
    s.fail_at = 0;
  }
  allocation_failure(const allocation_failure&) = delete;
  allocation_failure& operator=(const allocation_failure&) = delete;
  /// True once the failing allocation was reached.
  bool reached() const noexcept { return thread_allocation_stats().allocations >= thread_allocation_stats().fail_at; }
};

}  // namespace agentbus::test

#endif
