// SPDX-License-Identifier: MIT
// The command line the benchmarks against servers share: --quick (the CI smoke run), --json
// FILE (the rows as JSON as well as the table), --only TEXT (rows whose name contains TEXT),
// --rounds N (repetitions; the best is reported).
#ifndef AGENTBUS_BENCH_SUPPORT_COMMAND_LINE_HPP
#define AGENTBUS_BENCH_SUPPORT_COMMAND_LINE_HPP

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

namespace agentbus::bench {

struct command_line {
  bool quick = false;
  std::string json_path;
  std::string only;
  int rounds = 0;  // 0: the benchmark's own default
};

/// The options in argv, or nothing (after printing the usage to stderr) for anything else.
inline std::optional<command_line> parse_command_line(int argc, char** argv) {
  command_line c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      c.quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      c.json_path = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      c.only = argv[++i];
    } else if (a == "--rounds" && i + 1 < argc) {
      c.rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: {} [--quick] [--json FILE] [--rounds N] [--only TEXT]\n", argv[0]);
      return std::nullopt;
    }
  }
  return c;
}

}  // namespace agentbus::bench

#endif  // AGENTBUS_BENCH_SUPPORT_COMMAND_LINE_HPP
