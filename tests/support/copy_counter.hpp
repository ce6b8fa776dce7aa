// SPDX-License-Identifier: MIT
// A payload type that counts its copies and moves (per thread-agnostic global counters).
#ifndef AGENTBUS_TESTS_SUPPORT_COPY_COUNTER_HPP
#define AGENTBUS_TESTS_SUPPORT_COPY_COUNTER_HPP

#include <atomic>

namespace agentbus::test {

struct copy_counter {
  static inline std::atomic<int> copies{0};
  static inline std::atomic<int> moves{0};
  static void reset() {
    copies = 0;
    moves = 0;
  }

  int value = 0;
  copy_counter() = default;
  explicit copy_counter(int v) : value(v) {}
  copy_counter(const copy_counter& o) : value(o.value) { ++copies; }
  copy_counter(copy_counter&& o) noexcept : value(o.value) { ++moves; }
  copy_counter& operator=(const copy_counter& o) {
    value = o.value;
    ++copies;
    return *this;
  }
  copy_counter& operator=(copy_counter&& o) noexcept {
    value = o.value;
    ++moves;
    return *this;
  }
};

}  // namespace agentbus::test

#endif
