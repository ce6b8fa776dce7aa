// SPDX-License-Identifier: MIT
// A fresh journal directory per test under the system's temporary directory, removed
// afterwards (also when the test fails), and journal options pointing at it.
#ifndef AGENTBUS_TESTS_SUPPORT_JOURNAL_DIR_HPP
#define AGENTBUS_TESTS_SUPPORT_JOURNAL_DIR_HPP

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <agentbus/journal/journal.hpp>

namespace agentbus::test {

struct journal_dir {
  std::filesystem::path path;

  /// `name` tells the tests' directories apart; the pid and a counter make each one new.
  explicit journal_dir(std::string_view name = "journal") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() / ("agentbus_" + std::string(name) + "_" +
                                                     std::to_string(::getpid()) + "_" +
                                                     std::to_string(counter.fetch_add(1)));
    std::filesystem::remove_all(path);
  }
  journal_dir(const journal_dir&) = delete;
  journal_dir& operator=(const journal_dir&) = delete;
  ~journal_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  /// Options for a journal in this directory (small segments: tests roll them).
  journal_options options(durability d = durability::never(), std::uint64_t segment_bytes = 1 << 20) const {
    journal_options o;
    o.directory = path;
    o.durability = d;
    o.segment_bytes = segment_bytes;
    return o;
  }
};

}  // namespace agentbus::test

#endif  // AGENTBUS_TESTS_SUPPORT_JOURNAL_DIR_HPP
