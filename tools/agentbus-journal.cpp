// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// agentbus-journal: look inside an agentbus journal directory without disturbing it.
//
//   agentbus-journal stats DIR          what is there: segments, records, bytes, time range, topics
//   agentbus-journal dump DIR ...       records, one per line (or one JSON object per line)
//   agentbus-journal tail [-f] DIR ...  the last records; with -f, then follows the writer
//   agentbus-journal verify DIR         checks every record of every segment; exit 1 if damaged
//
// The commands are agentbus::journal_inspector's (agentbus/journal/inspect.hpp): this is that
// library with no printers registered, so payloads show as text or hex. A program that
// registers printers for its own event types is the same tool, decoding them
// (examples/06_journal_inspector.cpp).
//
// Exit status: 0 success, 1 record damage found or an unreadable journal, 2 bad usage,
// 3 (verify) index damage alone: every record intact (`agentbus-journal --help`).

#include <agentbus/journal/inspect.hpp>

int main(int argc, char** argv) { return agentbus::journal_inspector("agentbus-journal").run(argc, argv); }
