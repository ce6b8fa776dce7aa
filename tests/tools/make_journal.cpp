// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// make_journal: writes a journal whose content the tool tests know in advance.
//
// Record at offset o:
//   topic      by o % 10: 0-4 "tasks.planner.created", 5-7 "tasks.worker.done",
//              8 "agents.alpha.heartbeat", 9 "metrics.cpu"
//   time       --start-ns + o * --step-ns (default 2024-05-01T12:00:00Z, 1 ms apart)
//   schema     "demo.event" version 2; source "agent-<o % 3>"; event id o + 1
//   headers    every third record (o % 3 == 0): trace=t-<o>
//   payload    metrics.cpu: 16 binary bytes (o + k) % 251 (never 0xff);
//              o % 7 == 6 (other topics): a text that needs escaping, see special_text;
//              otherwise the text "event <o> on <topic>"
//
// Usage: make_journal DIR [--records N] [--append] [--segment-bytes B] [--start-ns N] [--step-ns N]
//                         [--file-mode OCTAL]
//   --append     continue an existing journal (offsets and times carry on)
//   --file-mode  journal_options::file_mode, in octal (default 0600: owner-only)

#include <agentbus/journal/journal.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view special_text = "say \"hi\"\n\ttab, back\\slash, caf\xc3\xa9, \xe2\x9c\x93 done";

std::string_view topic_for(std::uint64_t o) {
  switch (o % 10) {
    case 0: case 1: case 2: case 3: case 4: return "tasks.planner.created";
    case 5: case 6: case 7: return "tasks.worker.done";
    case 8: return "agents.alpha.heartbeat";
    default: return "metrics.cpu";
  }
}

int usage() {
  std::fputs("usage: make_journal DIR [--records N] [--append] [--segment-bytes B] [--start-ns N] [--step-ns N]"
             " [--file-mode OCTAL]\n",
             stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) return usage();
  std::filesystem::path dir = argv[1];
  std::uint64_t records = 1000, segment_bytes = 64 << 10;
  std::int64_t start_ns = 1714564800LL * 1'000'000'000;  // 2024-05-01T12:00:00Z
  std::int64_t step_ns = 1'000'000;
  bool append = false;
  std::uint32_t file_mode = 0600;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--append") append = true;
    else if (a == "--records" && (v = value())) records = std::strtoull(v, nullptr, 10);
    else if (a == "--segment-bytes" && (v = value())) segment_bytes = std::strtoull(v, nullptr, 10);
    else if (a == "--start-ns" && (v = value())) start_ns = std::strtoll(v, nullptr, 10);
    else if (a == "--step-ns" && (v = value())) step_ns = std::strtoll(v, nullptr, 10);
    else if (a == "--file-mode" && (v = value())) file_mode = static_cast<std::uint32_t>(std::strtoul(v, nullptr, 8));
    else return usage();
  }
  if (!append && std::filesystem::exists(dir)) {
    fmt::print(stderr, "make_journal: '{}' exists (use --append to add to it)\n", dir.string());
    return 1;
  }
  agentbus::journal_options opts;
  opts.directory = dir;
  opts.segment_bytes = segment_bytes;
  opts.index_interval_bytes = 1024;
  opts.file_mode = file_mode;
  agentbus::journal j(opts);
  std::vector<std::byte> binary(16);
  std::string text, trace;
  for (std::uint64_t n = 0; n < records; ++n) {
    const std::uint64_t o = j.next_offset();
    const std::string_view topic = topic_for(o);
    const std::string source = fmt::format("agent-{}", o % 3);
    agentbus::record_input in;
    in.topic = topic;
    in.schema = "demo.event";
    in.schema_version = 2;
    in.fingerprint = 0xfeedf00d;
    in.published_ns = start_ns + static_cast<std::int64_t>(o) * step_ns;
    in.event_id = o + 1;
    in.source = source;
    agentbus::header h{};
    if (o % 3 == 0) {
      trace = fmt::format("t-{}", o);
      h = {"trace", trace};
      in.headers = {&h, 1};
    }
    if (topic == "metrics.cpu") {
      for (std::size_t k = 0; k < binary.size(); ++k) binary[k] = static_cast<std::byte>((o + k) % 251);
      in.payload = binary;
    } else {
      text = o % 7 == 6 ? std::string(special_text) : fmt::format("event {} on {}", o, topic);
      in.payload = std::as_bytes(std::span(text.data(), text.size()));
    }
    const std::uint64_t got = j.append(in);
    if (got != o) {
      fmt::print(stderr, "make_journal: append returned offset {}, expected {}\n", got, o);
      return 1;
    }
  }
  j.sync();
  fmt::print("{} records, offsets {} .. {}\n", records, j.next_offset() - records, j.next_offset() - 1);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "make_journal: {}\n", e.what());
  return 1;
}
