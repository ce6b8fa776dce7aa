// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// agentbus-journal: look inside an agentbus journal directory without disturbing it.
//
//   agentbus-journal stats DIR          what is there: segments, records, bytes, time range, topics
//   agentbus-journal dump DIR ...       records, one per line (or one JSON object per line)
//   agentbus-journal tail [-f] DIR ...  the last records; with -f, then follows the writer
//   agentbus-journal verify DIR         checks every record of every segment; exit 1 if damaged
//   agentbus-journal consumers DIR      the durable consumers and groups whose cursors are stored
//                                       beside the journal (DIR/consumers): pattern, type, floor,
//                                       unsettled retries; exit 1 if a cursor is damaged
//
// The record commands are agentbus::journal_inspector's (agentbus/journal/inspect.hpp): this is
// that library with no printers registered, so payloads show as text or hex. A program that
// registers printers for its own event types is the same tool, decoding them
// (examples/06_journal_inspector.cpp). `consumers` reads the cursor files of
// agentbus/consumer/ (list_consumers).
//
// Exit status: 0 success, 1 record damage found or an unreadable journal, 2 bad usage,
// 3 (verify) index damage alone: every record intact (`agentbus-journal --help`).

#include <agentbus/consumer/durable.hpp>
#include <agentbus/journal/inspect.hpp>

#include <cstdio>
#include <filesystem>
#include <string_view>

namespace {

int list_consumers_command(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s consumers DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[2]) / "consumers";
  std::error_code ec;
  if (!std::filesystem::is_directory(argv[2], ec)) {
    std::fprintf(stderr, "%s: %s is not a directory\n", argv[0], argv[2]);
    return 1;
  }
  const auto consumers = agentbus::list_consumers(dir);
  if (consumers.empty()) std::printf("no durable consumers (no cursors in %s)\n", dir.string().c_str());
  int status = 0;
  for (const agentbus::stored_consumer& c : consumers) {
    if (!c.problem.empty()) {
      std::printf("%s  DAMAGED: %s\n", c.name.c_str(), c.problem.c_str());
      status = 1;
      continue;
    }
    std::printf("%s  pattern=%s  type=%s  floor=%llu  delivered_end=%llu  settled_above_floor=%zu  retrying=%zu  "
                "writes=%llu\n",
                c.name.c_str(), c.pattern.c_str(), c.schema.c_str(), static_cast<unsigned long long>(c.floor),
                static_cast<unsigned long long>(c.delivered_end), c.settled_above, c.retrying,
                static_cast<unsigned long long>(c.writes));
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "consumers") return list_consumers_command(argc, argv);
  const int status = agentbus::journal_inspector("agentbus-journal").run(argc, argv);
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "help"))
    std::printf("\n  consumers DIR   the durable consumers' stored cursors (DIR/consumers); exit 1 if one is damaged\n");
  return status;
}
