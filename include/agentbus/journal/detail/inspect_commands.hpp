// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_JOURNAL_DETAIL_INSPECT_COMMANDS_HPP
#define AGENTBUS_JOURNAL_DETAIL_INSPECT_COMMANDS_HPP

// The journal inspector's commands (agentbus/journal/inspect.hpp; the agentbus-journal tool is
// a main over them): stats, dump, tail [-f] and verify on a journal directory, read-only and
// lock-free, so they work while a writer appends. Records are read through
// agentbus::open_journal_reader; `verify` also walks the segment files itself with the record
// decoder, because a problem report is only useful if it names the file and the byte
// position, and because it looks where a reader never goes (the bytes after the last record,
// the index files). Payloads whose schema has a registered printer are shown decoded.
//
// Exit status: 0 success, 1 record damage found or an unreadable journal, 2 bad usage,
// 3 (verify) index damage alone: every record intact. See usage_text.

#include <sys/mman.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentbus/detail/chrono.hpp"
#include "agentbus/journal/detail/file_header.hpp"
#include "agentbus/journal/detail/inspect_text.hpp"
#include "agentbus/journal/detail/posix_file.hpp"
#include "agentbus/journal/detail/record_format.hpp"
#include "agentbus/journal/detail/recovery.hpp"
#include "agentbus/journal/detail/segment.hpp"
#include "agentbus/journal/detail/segment_catalog.hpp"
#include "agentbus/journal/detail/segment_index.hpp"
#include "agentbus/journal/detail/segment_scan.hpp"
#include "agentbus/journal/journal.hpp"
#include "agentbus/router/topic.hpp"

namespace agentbus::detail::inspect {

namespace fs = std::filesystem;

/// The usage text; "agentbus-journal" is replaced by the inspector's program name.
inline constexpr std::string_view usage_text = R"(agentbus-journal: inspect an agentbus journal (read-only; safe while a writer runs)

usage:
  agentbus-journal stats DIR [--json]
  agentbus-journal dump DIR [--from OFFSET] [--since TIME | --since-ns N] [--topic PATTERN]
                            [--limit N] [--payload auto|hex|text|none] [--preview BYTES] [--json]
  agentbus-journal tail DIR [-f] [-n N] [--from OFFSET] [--topic PATTERN]
                            [--payload auto|hex|text|none] [--preview BYTES] [--json] [--poll-ms MS]
  agentbus-journal verify DIR
  agentbus-journal --help | help

commands:
  stats    segments, records, bytes (of files, and on disk), first/last offset, time range
           (UTC), records per topic (most first), damaged records found
  dump     one line per record: offset, publish time, topic, schema@version, payload size,
           source, headers, payload preview
  tail     the last N records (default 10); with -f, then every new record as a writer appends
           it, until interrupted (Ctrl-C, SIGTERM); with --from, starts at that offset instead
  verify   reads every record of every segment file and checks its CRC32C and structure,
           the offsets (no gaps, no duplicates), the bytes after the last record and the
           index files; prints each finding with its file and byte position, in two classes:
             problem  record damage: records damaged, missing or unreadable, stray bytes
             warning  index damage: an .idx file missing, shortened, with a damaged header
                      or entries, entries naming no record, entries missing. No record is
                      lost (the index is an accelerator; readers check what it says) and
                      the next writer's recovery rebuilds it.
           Exit status 0 when clean, 1 on any problem, 3 on warnings alone.

options:
  --from OFFSET      start at this offset (default: the oldest retained record)
  --since TIME       only records published at or after TIME, ISO 8601: 2024-05-01,
                     2024-05-01T12:00:00Z, 2024-05-01T12:00:00.250+02:00 (no zone means UTC)
  --since-ns N       the same, in nanoseconds since the Unix epoch
  --topic PATTERN    only topics matching PATTERN ('*' one segment, '>' the rest: tasks.>)
  --limit N          dump at most N records
  --payload MODE     auto (default): decoded by the printer registered for the record's schema
                     and version (inspectors built on agentbus/journal/inspect.hpp register
                     printers for their types; agentbus-journal has none), else text when it
                     is printable UTF-8, else hex; a payload a printer cannot decode is shown
                     as text or hex with the reason. hex, text: the bytes; none: no payload
  --preview BYTES    payload bytes shown (default 48 per line; the whole payload with --json);
                     0 = all. A printer's text is shown whole unless --preview is given
  --json             one JSON object per line (stats: one object)
  -n N               tail: how many records (default 10)
  -f, --follow       tail: keep following the writer
  --poll-ms MS       tail -f: how long to sleep when there is nothing new (default 50)

exit status:
  0  success: nothing damaged
  1  record damage found, or the journal cannot be read. stats, dump and tail read through
     the same reader and the same rule for finding the way past damage as verify: they
     show the same records, report each damaged place on stderr (stats: "corrupt"), and
     exit 1 when they met one; verify lists it as a problem
  2  bad usage
  3  verify only: index damage alone (warnings), every record intact
)";

/// Exit statuses (documented in usage_text and the README).
inline constexpr int exit_ok = 0;             ///< success, nothing damaged
inline constexpr int exit_damaged = 1;        ///< damaged or missing records, or an unreadable journal
inline constexpr int exit_usage = 2;          ///< bad usage
inline constexpr int exit_index_damaged = 3;  ///< verify: index files damaged, every record intact

/// Bad usage: run() prints the message and a hint, and returns status 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A failure that is not the user's syntax (no journal there, I/O): status 1.
struct run_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------ printers

/// A payload printer: the record's payload as text; throws (a std::exception) when it cannot.
using payload_printer = std::function<std::string(const record&)>;

/// The printers of an inspector, by schema name and version.
class printer_registry {
 public:
  /// What decode() made of a record's payload.
  struct result {
    enum class outcome { no_printer, decoded, failed } what = outcome::no_printer;
    std::string text;  ///< the printer's text, or why it could not decode
  };

  void add(std::string schema, std::uint32_t version, payload_printer print) {
    by_schema_[std::move(schema)][version] = std::move(print);
  }

  bool empty() const noexcept { return by_schema_.empty(); }

  bool has(std::string_view schema, std::uint32_t version) const {
    const auto it = by_schema_.find(schema);
    return it != by_schema_.end() && it->second.count(version) != 0;
  }

  /// The printer of `r`'s schema and version, run; failed when there are printers for the
  /// schema but not for this version, or when the printer threw.
  result decode(const record& r) const {
    const auto it = by_schema_.find(r.schema);
    if (it == by_schema_.end()) return {};
    const auto p = it->second.find(r.schema_version);
    if (p == it->second.end()) {
      std::string versions;
      for (const auto& [v, print] : it->second) versions += cat(versions.empty() ? "" : ", ", v);
      return {result::outcome::failed,
              cat("no printer for version ", r.schema_version, " of '", r.schema, "' (versions ", versions, ")")};
    }
    try {
      return {result::outcome::decoded, p->second(r)};
    } catch (const std::exception& e) {
      return {result::outcome::failed, e.what()};
    } catch (...) {  // a user's codec or printer may throw anything: still a payload shown as bytes
      return {result::outcome::failed, "the codec or the printer threw an exception that is not a std::exception"};
    }
  }

 private:
  std::map<std::string, std::map<std::uint32_t, payload_printer>, std::less<>> by_schema_;
};

/// Where the commands write, what they call themselves, and how they decode payloads.
struct context {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  std::string program = "agentbus-journal";
  const printer_registry* printers = nullptr;

  void print(std::string_view s) const { std::fwrite(s.data(), 1, s.size(), out); }
  void print_error(std::string_view s) const {
    const std::string line = cat(program, ": ", s, '\n');
    std::fwrite(line.data(), 1, line.size(), err);
  }
  /// usage_text with this program's name (the synopsis' continuation lines re-aligned).
  std::string usage() const {
    constexpr std::string_view stock = "agentbus-journal";
    if (program == stock) return std::string(usage_text);
    std::string text;
    for (std::size_t from = 0; from < usage_text.size();) {
      const std::size_t nl = usage_text.find('\n', from);
      const std::size_t end = nl == std::string_view::npos ? usage_text.size() : nl + 1;
      std::string_view line = usage_text.substr(from, end - from);
      from = end;
      const std::size_t indent = line.find_first_not_of(' ');
      if (indent > stock.size() && indent != std::string_view::npos && line[indent] == '[') {  // a continuation
        text.append(indent + program.size() - stock.size(), ' ');
        text.append(line.substr(indent));
        continue;
      }
      for (std::size_t at; (at = line.find(stock)) != std::string_view::npos; line = line.substr(at + stock.size()))
        text.append(line.substr(0, at)).append(program);
      text.append(line);
    }
    return text;
  }
};

// ------------------------------------------------------------------ stop on a signal

/// Set by a signal (SIGINT, SIGTERM during tail -f) or journal_inspector::request_stop(), from
/// any thread: lock-free, so a signal handler may set it.
inline std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

inline void on_stop_signal(int) { stop_requested.store(true, std::memory_order_relaxed); }

/// SIGINT and SIGTERM stop a tail -f for as long as this lives; the previous handlers are
/// put back afterwards.
class stop_on_signals {
 public:
  stop_on_signals() {
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a sleep is cut short and the loop sees the flag
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  stop_on_signals(const stop_on_signals&) = delete;
  stop_on_signals& operator=(const stop_on_signals&) = delete;
  ~stop_on_signals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_{};
  struct sigaction old_term_{};
};

// ------------------------------------------------------------------ options

enum class payload_mode { automatic, hex, text, none };

struct options {
  std::string command;
  fs::path dir;
  std::optional<std::uint64_t> from;
  std::optional<std::int64_t> since_ns;
  std::optional<agentbus::topic_pattern> topic;
  std::optional<std::uint64_t> limit;
  payload_mode payload = payload_mode::automatic;
  std::optional<std::size_t> preview;
  bool json = false;
  bool follow = false;
  std::uint64_t count = 10;
  unsigned poll_ms = 50;
};

/// `v` as an integer of type I; usage_error naming `flag` and `what` it expects otherwise.
template <class I>
I parse_integer(std::string_view flag, std::string_view v, std::string_view what) {
  I n = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || p != v.data() + v.size()) throw usage_error(cat(flag, " expects ", what, ", got '", escaped(v), "'"));
  return n;
}
inline std::uint64_t parse_unsigned(std::string_view flag, std::string_view v) {
  return parse_integer<std::uint64_t>(flag, v, "a non-negative integer");
}
inline std::int64_t parse_signed(std::string_view flag, std::string_view v) {
  return parse_integer<std::int64_t>(flag, v, "an integer");
}

/// The command line without the program name.
inline options parse_args(std::span<const std::string_view> args) {
  options o;
  if (args.empty()) throw usage_error("no command given");
  o.command = args[0];
  if (o.command != "stats" && o.command != "dump" && o.command != "tail" && o.command != "verify")
    throw usage_error(cat("unknown command '", escaped(o.command), "' (commands: stats, dump, tail, verify)"));
  // Which options each command takes: anything else is an error, not silently ignored.
  const bool reads = o.command == "dump" || o.command == "tail";
  std::vector<std::string_view> positional;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= args.size()) throw usage_error(cat(a, " needs a value"));
      return args[++i];
    };
    auto only = [&](bool allowed) {
      if (!allowed) throw usage_error(cat("'", a, "' is not an option of '", o.command, "'"));
    };
    if (a == "--json") {
      only(o.command != "verify");
      o.json = true;
    } else if (a == "--from") {
      only(reads);
      o.from = parse_unsigned(a, value());
    } else if (a == "--since") {
      only(o.command == "dump");
      const std::string_view v = value();
      const auto t = parse_time(v);
      if (!t) throw usage_error(cat("--since expects an ISO 8601 time such as 2024-05-01T12:00:00Z, got '", escaped(v), "'"));
      if (o.since_ns) throw usage_error("give --since or --since-ns, not both");
      o.since_ns = *t;
    } else if (a == "--since-ns") {
      only(o.command == "dump");
      if (o.since_ns) throw usage_error("give --since or --since-ns, not both");
      o.since_ns = parse_signed(a, value());
    } else if (a == "--topic") {
      only(reads);
      const std::string_view v = value();
      if (const auto check = agentbus::topic_pattern::validate(v); !check)
        throw usage_error(cat("--topic '", escaped(v), "': ", agentbus::describe(check.code), " at position ", check.position));
      o.topic.emplace(v);
    } else if (a == "--limit") {
      only(o.command == "dump");
      o.limit = parse_unsigned(a, value());
    } else if (a == "--payload") {
      only(reads);
      const std::string_view v = value();
      if (v == "auto") o.payload = payload_mode::automatic;
      else if (v == "hex") o.payload = payload_mode::hex;
      else if (v == "text") o.payload = payload_mode::text;
      else if (v == "none") o.payload = payload_mode::none;
      else throw usage_error(cat("--payload expects auto, hex, text or none, got '", escaped(v), "'"));
    } else if (a == "--preview") {
      only(reads);
      o.preview = static_cast<std::size_t>(parse_unsigned(a, value()));
    } else if (a == "-n" || a == "--lines") {
      only(o.command == "tail");
      o.count = parse_unsigned(a, value());
    } else if (a == "-f" || a == "--follow") {
      only(o.command == "tail");
      o.follow = true;
    } else if (a == "--poll-ms") {
      only(o.command == "tail");
      const std::uint64_t ms = parse_unsigned(a, value());
      if (ms == 0 || ms > 60'000) throw usage_error("--poll-ms expects 1 to 60000");
      o.poll_ms = static_cast<unsigned>(ms);
    } else if (a == "--") {
      for (++i; i < args.size(); ++i) positional.push_back(args[i]);
    } else if (a.size() > 1 && a[0] == '-') {
      throw usage_error(cat("unknown option '", escaped(a), "' for '", o.command, "'"));
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty()) throw usage_error(cat("'", o.command, "' needs the journal directory"));
  if (positional.size() > 1)
    throw usage_error(cat("'", o.command, "' takes one directory, got '", escaped(positional[1]), "' too"));
  o.dir = fs::path(std::string(positional[0]));
  return o;
}

// ------------------------------------------------------------------ the journal's files

/// One segment file: `<base offset, 20 digits>.log`.
struct segment_file {
  fs::path path;
  std::uint64_t base = 0;
  std::uint64_t size = 0;       ///< st_size: a segment's capacity
  std::uint64_t allocated = 0;  ///< st_blocks * 512: what it takes on disk (files are sparse)
};

/// The size and disk use of `path` (zeros when it cannot be read).
inline std::pair<std::uint64_t, std::uint64_t> file_size_and_allocated(const fs::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return {0, 0};
  return {static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_blocks) * 512};
}

/// The segment files of `dir`, oldest first. Throws run_error when `dir` is not a journal.
inline std::vector<segment_file> list_segments(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw run_error(cat("'", dir.string(), "' is not a directory (give the journal's directory)"));
  if (fs::directory_iterator probe(dir, ec); ec) throw run_error(cat("cannot list '", dir.string(), "': ", ec.message()));
  std::vector<segment_file> out;
  for (const std::uint64_t base : list_segment_bases(dir)) {
    segment_file f{dir / segment_file_name(base, segment_extension), base};
    std::tie(f.size, f.allocated) = file_size_and_allocated(f.path);
    out.push_back(std::move(f));
  }
  return out;
}

inline void require_journal(const fs::path& dir) {
  if (list_segments(dir).empty())
    throw run_error(cat("no journal in '", dir.string(), "': it has no segment files (<offset>.log)"));
}

inline agentbus::journal_reader open_reader(const fs::path& dir, std::uint64_t from) {
  require_journal(dir);
  return agentbus::open_journal_reader(dir, from);
}

inline agentbus::journal_reader open_reader_since(const fs::path& dir, std::int64_t since_ns) {
  require_journal(dir);
  const std::chrono::system_clock::time_point t{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(since_ns))};
  return agentbus::open_journal_reader_since(dir, t);
}

/// Bytes a record takes in its segment: frame prefix, body, padding.
inline std::uint64_t frame_size(const agentbus::record& r) {
  return frame_bytes(record_body_bytes(
      {.topic = r.topic, .schema = r.schema, .source = r.source, .headers = r.headers, .payload = r.payload}));
}

// ------------------------------------------------------------------ printing records

class record_printer {
 public:
  record_printer(const context& c, const options& o) : c_(c), o_(o) {}

  void print(const agentbus::record& r) {
    line_.clear();
    if (o_.json) json(r);
    else text(r);
    line_ += '\n';
    c_.print(line_);
  }

 private:
  /// The payload bytes shown and whether they were cut.
  std::pair<std::span<const std::byte>, bool> shown(const agentbus::record& r) const {
    const std::size_t limit = o_.preview ? *o_.preview : (o_.json ? 0 : 48);
    if (limit == 0 || r.payload.size() <= limit) return {r.payload, false};
    return {r.payload.first(limit), true};
  }

  payload_mode raw_mode(const agentbus::record& r) const {
    if (o_.payload != payload_mode::automatic) return o_.payload;
    return is_printable_text(as_text(r.payload)) ? payload_mode::text : payload_mode::hex;
  }

  /// With --payload auto and a printer for the record's schema: what it made of the payload.
  printer_registry::result decoded(const agentbus::record& r) const {
    if (o_.payload != payload_mode::automatic || c_.printers == nullptr || c_.printers->empty()) return {};
    return c_.printers->decode(r);
  }

  void text(const agentbus::record& r) {
    line_ += cat(pad_left(cat(r.offset), 8), "  ", format_time(r.published_ns), "  ");
    append_escaped(line_, r.topic);
    line_ += "  ";
    append_escaped(line_, r.schema.empty() ? std::string_view("-") : r.schema);
    line_ += cat('@', r.schema_version, "  ", r.payload.size(), " B  ");
    append_escaped(line_, r.source.empty() ? std::string_view("-") : r.source);
    if (r.priority != 1) line_ += cat("  prio=", r.priority);
    if (r.correlation_id != 0) line_ += cat("  corr=", r.correlation_id);
    if (!r.headers.empty()) {
      line_ += "  {";
      for (std::size_t i = 0; i < r.headers.size(); ++i) {
        if (i != 0) line_ += ", ";
        append_escaped(line_, r.headers[i].key);
        line_ += '=';
        append_escaped(line_, r.headers[i].value);
      }
      line_ += '}';
    }
    const auto d = decoded(r);
    if (d.what == printer_registry::result::outcome::decoded) {
      // The printer's text, whole unless --preview asks for less.
      line_ += "  ";
      const bool cut = o_.preview && *o_.preview != 0 && d.text.size() > *o_.preview;
      append_escaped(line_, cut ? std::string_view(d.text).substr(0, *o_.preview) : std::string_view(d.text));
      if (cut) line_ += "...";
      return;
    }
    const payload_mode m = raw_mode(r);
    if (m != payload_mode::none && !r.payload.empty()) {
      const auto [bytes, cut] = shown(r);
      line_ += "  ";
      if (m == payload_mode::hex) {
        line_ += to_hex(bytes);
      } else {
        line_ += '"';
        append_escaped(line_, as_text(bytes), true);
        line_ += '"';
      }
      if (cut) line_ += "...";
    }
    if (d.what == printer_registry::result::outcome::failed) {
      line_ += "  (not decoded: ";
      append_escaped(line_, d.text);
      line_ += ')';
    }
  }

  void json(const agentbus::record& r) {
    line_ += cat("{\"offset\":", r.offset, ",\"time\":\"", format_time(r.published_ns), "\",\"published_ns\":",
                 r.published_ns, ",\"topic\":");
    append_json_string(line_, r.topic);
    line_ += ",\"schema\":";
    append_json_string(line_, r.schema);
    line_ += cat(",\"schema_version\":", r.schema_version, ",\"fingerprint\":\"", hex64(r.fingerprint),
                 "\",\"event_id\":", r.event_id, ",\"correlation_id\":", r.correlation_id, ",\"source\":");
    append_json_string(line_, r.source);
    line_ += cat(",\"priority\":", r.priority, ",\"headers\":[");
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
      if (i != 0) line_ += ',';
      line_ += "{\"key\":";
      append_json_string(line_, r.headers[i].key);
      line_ += ",\"value\":";
      append_json_string(line_, r.headers[i].value);
      line_ += '}';
    }
    line_ += cat("],\"size\":", r.payload.size());
    const auto d = decoded(r);
    if (d.what == printer_registry::result::outcome::decoded) {
      line_ += ",\"payload_encoding\":\"decoded\",\"payload\":";
      append_json_string(line_, d.text);
      line_ += '}';
      return;
    }
    const payload_mode m = raw_mode(r);
    if (m != payload_mode::none) {
      const auto [bytes, cut] = shown(r);
      if (m == payload_mode::hex) {
        line_ += ",\"payload_encoding\":\"hex\",\"payload\":\"";
        line_ += to_hex(bytes);
        line_ += '"';
      } else {
        line_ += ",\"payload_encoding\":\"text\",\"payload\":";
        append_json_string(line_, as_text(bytes));
      }
      if (cut) line_ += ",\"payload_truncated\":true";
    }
    if (d.what == printer_registry::result::outcome::failed) {
      line_ += ",\"decode_error\":";
      append_json_string(line_, d.text);
    }
    line_ += '}';
  }

  const context& c_;
  const options& o_;
  std::string line_;
};

inline bool selected(const options& o, const agentbus::record& r) {
  if (o.topic && !o.topic->matches(r.topic)) return false;
  if (o.since_ns && r.published_ns < *o.since_ns) return false;
  return true;
}

/// What a reader said that is not a record, on stderr. Returns true for damage.
inline bool report_status(const context& c, agentbus::read_status st, const agentbus::journal_reader& reader) {
  if (st == agentbus::read_status::corrupt) {
    c.print_error(cat("damaged record skipped: ", reader.error()));
    return true;
  }
  if (st == agentbus::read_status::truncated_by_retention)
    c.print_error(cat("records were deleted by retention; continuing at offset ", reader.position()));
  return false;
}

// ------------------------------------------------------------------ stats

inline int cmd_stats(const context& c, const options& o) {
  const auto segments = list_segments(o.dir);
  if (segments.empty()) throw run_error(cat("no journal in '", o.dir.string(), "': it has no segment files (<offset>.log)"));
  auto reader = agentbus::open_journal_reader(o.dir, 0);
  std::uint64_t records = 0, record_bytes = 0, payload_bytes = 0, corrupt = 0;
  std::uint64_t first = 0, last = 0;
  std::int64_t min_t = std::numeric_limits<std::int64_t>::max(), max_t = std::numeric_limits<std::int64_t>::min();
  std::unordered_map<std::string, std::uint64_t> topics;
  std::vector<std::string> problems;
  agentbus::record r;
  while (true) {
    const auto st = reader.next(r);
    if (st == agentbus::read_status::end) break;
    if (st == agentbus::read_status::corrupt) {
      ++corrupt;
      problems.emplace_back(reader.error());
      continue;
    }
    if (st != agentbus::read_status::ok) continue;
    if (records == 0) first = r.offset;
    last = r.offset;
    ++records;
    record_bytes += frame_size(r);
    payload_bytes += r.payload.size();
    min_t = std::min(min_t, r.published_ns);
    max_t = std::max(max_t, r.published_ns);
    auto it = topics.find(std::string(r.topic));  // string_view lookup needs C++20 transparent hash
    if (it == topics.end()) topics.emplace(std::string(r.topic), 1);
    else ++it->second;
  }
  // Files: their sizes (a segment's is its capacity) and what they take on disk (they are
  // sparse beyond what the writer allocated), the index files included.
  std::uint64_t file_bytes = 0, disk_bytes = 0;
  for (const auto& s : segments) {
    fs::path idx = s.path;
    idx.replace_extension(index_extension);
    const auto [isize, iallocated] = file_size_and_allocated(idx);
    file_bytes += s.size + isize;
    disk_bytes += s.allocated + iallocated;
  }
  std::vector<std::pair<std::string, std::uint64_t>> by_count(topics.begin(), topics.end());
  std::sort(by_count.begin(), by_count.end(),
            [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });

  if (o.json) {
    std::string j = "{\"directory\":";
    append_json_string(j, o.dir.string());
    j += cat(",\"segments\":", segments.size(), ",\"records\":", records, ",\"record_bytes\":", record_bytes,
             ",\"payload_bytes\":", payload_bytes, ",\"file_bytes\":", file_bytes, ",\"disk_bytes\":", disk_bytes);
    if (records > 0)
      j += cat(",\"first_offset\":", first, ",\"last_offset\":", last, ",\"first_time\":\"", format_time(min_t),
               "\",\"last_time\":\"", format_time(max_t), "\",\"first_time_ns\":", min_t, ",\"last_time_ns\":", max_t);
    j += cat(",\"corrupt_records\":", corrupt, ",\"topics\":[");
    for (std::size_t i = 0; i < by_count.size(); ++i) {
      if (i != 0) j += ',';
      j += "{\"topic\":";
      append_json_string(j, by_count[i].first);
      j += cat(",\"records\":", by_count[i].second, '}');
    }
    j += "],\"problems\":[";
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i != 0) j += ',';
      append_json_string(j, problems[i]);
    }
    j += "]}\n";
    c.print(j);
    return corrupt == 0 ? exit_ok : exit_damaged;
  }

  std::string t = cat("journal      ", o.dir.string(), '\n');
  t += cat("segments     ", segments.size(), " (", human_bytes(file_bytes), " of files, ", human_bytes(disk_bytes),
           " on disk)\n");
  t += cat("records      ", records, '\n');
  t += cat("bytes        ", record_bytes, " in records (", human_bytes(record_bytes), "), ", human_bytes(payload_bytes),
           " of payload\n");
  if (records > 0) {
    t += cat("offsets      ", first, " .. ", last, '\n');
    t += cat("time range   ", format_time(min_t), " .. ", format_time(max_t), " (", human_duration(max_t - min_t), ")\n");
  } else {
    t += "offsets      -\ntime range   -\n";
  }
  t += cat("corrupt      ", corrupt, corrupt != 0 ? cat(" (run '", c.program, " verify' for details)") : std::string(), '\n');
  for (const auto& p : problems) t += cat("  ", p, '\n');
  t += cat("topics       ", by_count.size(), '\n');
  const std::size_t width = by_count.empty() ? 1 : cat(by_count.front().second).size();
  for (const auto& [name, n] : by_count) t += cat("  ", pad_left(cat(n), width), "  ", escaped(name), '\n');
  c.print(t);
  return corrupt == 0 ? exit_ok : exit_damaged;
}

// ------------------------------------------------------------------ dump

inline int cmd_dump(const context& c, const options& o) {
  // --since without --from: skip whole segments older than TIME and seek with the index
  // (the filter below still applies: later records published before TIME are not shown).
  auto reader = o.since_ns && !o.from ? open_reader_since(o.dir, *o.since_ns) : open_reader(o.dir, o.from.value_or(0));
  record_printer printer(c, o);
  agentbus::record r;
  std::uint64_t printed = 0;
  bool damaged = false;
  while (!o.limit || printed < *o.limit) {
    const auto st = reader.next(r);
    if (st == agentbus::read_status::end) break;
    if (st != agentbus::read_status::ok) {
      damaged = report_status(c, st, reader) || damaged;
      continue;
    }
    if (o.from && r.offset < *o.from) continue;
    if (!selected(o, r)) continue;
    printer.print(r);
    ++printed;
  }
  std::fflush(c.out);
  if (damaged) {
    c.print_error("the journal has damaged records; run 'verify' for details");
    return exit_damaged;
  }
  return exit_ok;
}

// ------------------------------------------------------------------ tail

inline int cmd_tail(const context& c, const options& o) {
  std::uint64_t start = o.from.value_or(0);
  if (!o.from) {
    // Where the last `count` selected records begin: one pass over offsets only (records are
    // views that die with the next call, so keeping them would mean copying every one).
    auto scan = open_reader(o.dir, 0);
    std::deque<std::uint64_t> last;
    agentbus::record r;
    std::uint64_t end = 0;
    bool any = false;
    while (true) {
      const auto st = scan.next(r);
      if (st == agentbus::read_status::end) break;
      if (st != agentbus::read_status::ok) continue;  // reported by the second pass if still there
      any = true;
      end = r.offset + 1;
      if (!selected(o, r) || o.count == 0) continue;
      last.push_back(r.offset);
      if (last.size() > o.count) last.pop_front();
    }
    start = !last.empty() ? last.front() : (any ? end : 0);
  }
  auto reader = open_reader(o.dir, start);
  record_printer printer(c, o);
  agentbus::record r;
  bool damaged = false;
  std::optional<stop_on_signals> signals;
  if (o.follow) {
    stop_requested.store(false, std::memory_order_relaxed);
    signals.emplace();
  }
  while (!stop_requested.load(std::memory_order_relaxed)) {
    const auto st = reader.next(r);
    if (st == agentbus::read_status::ok) {
      if (r.offset >= start && selected(o, r)) printer.print(r);
      continue;
    }
    if (st != agentbus::read_status::end) {
      damaged = report_status(c, st, reader) || damaged;
      continue;
    }
    std::fflush(c.out);
    if (!o.follow) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  std::fflush(c.out);
  return damaged ? exit_damaged : exit_ok;
}

// ------------------------------------------------------------------ verify

/// A read-only mapping of a whole file.
class mapped_file {
 public:
  explicit mapped_file(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      error_ = std::strerror(errno);
      missing_ = errno == ENOENT;
      return;
    }
    struct stat st{};
    if (::fstat(fd_, &st) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      error_ = std::strerror(errno);
      size_ = 0;
      return;
    }
    data_ = static_cast<const std::byte*>(p);
    extent_ = data_extent_end(fd_, size_);
  }
  ~mapped_file() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  bool ok() const noexcept { return error_.empty(); }
  bool missing() const noexcept { return missing_; }
  const std::string& error() const noexcept { return error_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  /// The bytes up to the end of the file's last data region (SEEK_DATA/SEEK_HOLE; the whole
  /// file where the file system cannot tell): beyond, a hole, zeros. Not read: the files are
  /// sparse, and on tmpfs reading a hole through a mapping allocates a page (SIGBUS when full).
  std::span<const std::byte> data_bytes() const noexcept { return {data_, static_cast<std::size_t>(extent_)}; }

 private:
  int fd_ = -1;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t extent_ = 0;
  std::string error_;
  bool missing_ = false;
};

struct verify_state {
  std::vector<std::string> problems;
  std::vector<std::string> notes;  ///< worth knowing, not damage
  std::uint64_t segments = 0, records = 0, record_bytes = 0;
  std::uint64_t damaged_regions = 0;  ///< runs of frames that fail their checks
  std::uint64_t unreadable = 0;       ///< offsets lost in them (known when a record follows)
  std::uint64_t stray = 0;            ///< non-zero bytes where there must be none
  std::optional<std::uint64_t> last_offset;  ///< of the previous good record, all segments
  std::vector<std::uint64_t> damaged_at;     ///< positions of damaged frames in the current segment
  std::vector<std::pair<std::uint64_t, std::uint64_t>> walked;  ///< (position, offset) of its good records
  std::vector<std::string> index_warnings;   ///< index damage: no record lost, a class of its own
  std::uint64_t damaged_indexes = 0;         ///< index files with warnings
  bool sealed = false;                       ///< the segment walked last ends in a seal

  void problem(const fs::path& file, std::uint64_t pos, std::string_view what) {
    problems.push_back(cat(file.filename().string(), " @ byte ", pos, ": ", what));
  }
};

/// What verify_index found wrong with one index file (empty: nothing).
inline std::vector<std::string> check_index(const segment_file& seg, std::span<const std::byte> log, bool is_last,
                                            const verify_state& v) {
  std::vector<std::string> out;
  fs::path idx_path = seg.path;
  idx_path.replace_extension(index_extension);
  const std::string name = idx_path.filename().string();
  auto warn = [&](std::uint64_t pos, std::string_view what) { out.push_back(cat(name, " @ byte ", pos, ": ", what)); };
  mapped_file idx(idx_path);
  if (idx.missing()) {
    warn(0, "index file missing (readers seek without it; the next writer rebuilds it)");
    return out;
  }
  if (!idx.ok()) {
    warn(0, cat("cannot read: ", idx.error()));
    return out;
  }
  const auto bytes = idx.bytes();
  file_header h;
  const auto hs = read_file_header(bytes, h);
  if (hs != header_status::ok || h.kind != file_kind::index || h.base_offset != seg.base || h.parameter == 0) {
    warn(0, bytes.size() < file_header_bytes       ? cat("file of ", bytes.size(), " bytes, shorter than its header")
            : hs == header_status::newer_version ? std::string("index of a newer format than this tool reads")
            : hs == header_status::zero          ? std::string("file header is all zero")
                                                 : std::string("damaged or foreign file header"));
    return out;
  }
  // Index files are created and grown in whole 4 KiB pages.
  if (bytes.size() % 4096 != 0)
    warn(bytes.size(), cat("file of ", bytes.size(), " bytes, not a whole number of 4 KiB pages: shortened"));
  // Slots beyond the file's data are a hole: zeros, not read (mapped_file::data_bytes).
  const std::size_t capacity = (bytes.size() - file_header_bytes) / index_entry_bytes;
  const std::size_t data_size = idx.data_bytes().size();
  const std::size_t with_data =
      data_size <= file_header_bytes ? 0 : std::min(capacity, (data_size - file_header_bytes + index_entry_bytes - 1) / index_entry_bytes);
  const std::byte* entries = bytes.data() + file_header_bytes;
  const std::size_t n = count_valid_index_entries(entries, with_data);
  const index_view view{entries, n};
  // After the valid entries, only zeros: anything else is a damaged (or out-of-order) entry,
  // and the entries after it are lost to readers. In the active segment, the slot right after
  // the valid entries may be one a crashed writer was writing: harmless, the next writer clears it.
  auto nonzero_slot = [&](std::size_t from) {
    for (std::size_t k = from; k < with_data; ++k)
      if (std::any_of(entries + k * index_entry_bytes, entries + (k + 1) * index_entry_bytes,
                      [](std::byte b) { return b != std::byte{0}; }))
        return k;
    return capacity;
  };
  const std::size_t junk = nonzero_slot(n);
  if (junk < capacity && !(is_last && junk == n && nonzero_slot(junk + 1) == capacity))
    warn(file_header_bytes + junk * index_entry_bytes,
         cat("index entry ", junk, " is damaged (bad checksum, or out of order); the entries after it are unusable"));
  for (std::size_t i = 0; i < n; ++i) {
    const index_entry e = view.at(i);
    // An entry pointing at a damaged record is right; the record is already reported.
    if (std::find(v.damaged_at.begin(), v.damaged_at.end(), e.position) != v.damaged_at.end()) continue;
    const auto res = e.position < log.size() && e.position % frame_alignment == 0
                         ? decode_record(log.subspan(static_cast<std::size_t>(e.position)))
                         : decode_result{};
    if (res.status != decode_status::ok || res.rec.offset != e.offset)
      warn(file_header_bytes + i * index_entry_bytes,
           cat("index entry ", i, " says offset ", e.offset, " is at byte ", e.position, " of the segment, but ",
               res.status == decode_status::ok ? cat("offset ", res.rec.offset, " is there")
                                               : std::string("no valid record is there")));
  }
  // Coverage: the writer adds an entry to the first record that starts `interval` bytes or more
  // after the previous entry (recovery adds more, after damage). Records that should have one
  // and do not: entries lost (a shortened file, a damaged entry, entries zeroed).
  {
    const std::uint64_t interval = h.parameter;
    std::uint64_t last_pos = file_header_bytes;
    std::size_t j = 0;
    std::uint64_t missing = 0, first_missing = 0;
    for (const auto& [pos, offset] : v.walked) {
      while (j < n && view.at(j).position < pos) last_pos = std::max(last_pos, view.at(j++).position);
      if (j < n && view.at(j).position == pos) {
        last_pos = pos;
        ++j;
        continue;
      }
      if (pos >= last_pos + interval) {
        if (missing++ == 0) first_missing = offset;
        last_pos = pos;
      }
    }
    if (missing > 0)
      warn(file_header_bytes + n * index_entry_bytes,
           cat(missing, " index entr", missing == 1 ? "y is" : "ies are", " missing (interval ", interval,
               " bytes; the first for offset ", first_missing, "): readers seek through more records than they should"));
  }
  return out;
}

/// Checks the index file of `seg` (check_index) and records what it found as index warnings:
/// a class of its own, apart from record damage, since the index is an accelerator (readers
/// check every position it gives them, and the next writer's recovery rebuilds it).
inline void verify_index(const segment_file& seg, std::span<const std::byte> log, bool is_last, verify_state& v) {
  auto found = check_index(seg, log, is_last, v);
  if (!found.empty() && is_last) {
    // A writer may be appending: its record becomes visible a moment before its index entry.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    found = check_index(seg, log, is_last, v);
  }
  if (found.empty()) return;
  ++v.damaged_indexes;
  for (auto& w : found) v.index_warnings.push_back(std::move(w));
}

inline void verify_segment(const segment_file& seg, bool is_last, verify_state& v) {
  mapped_file f(seg.path);
  if (f.missing()) return;  // deleted by retention since the listing: nothing to check
  if (!f.ok()) {
    v.problem(seg.path, 0, cat("cannot read: ", f.error()));
    return;
  }
  ++v.segments;
  file_header h;
  const auto hs = read_file_header(f.bytes(), h);
  if (hs == header_status::zero) {
    // A segment being created: header not written yet. Fine for the newest only.
    if (!is_last) v.problem(seg.path, 0, "file header is all zero (a segment that was never written)");
    return;
  }
  if (hs == header_status::newer_version) {
    v.problem(seg.path, 0, cat("segment format version ", h.version, " is newer than this tool reads"));
    return;
  }
  if (hs == header_status::bad || h.kind != file_kind::segment) {
    v.problem(seg.path, 0, "damaged or foreign file header (bad magic or CRC)");
    return;
  }
  if (h.base_offset != seg.base)
    v.problem(seg.path, 16, cat("header says base offset ", h.base_offset, " but the file is named for ", seg.base));
  if (v.last_offset && seg.base != *v.last_offset + 1) {
    if (seg.base > *v.last_offset + 1)
      v.problem(seg.path, 0, cat("offsets ", *v.last_offset + 1, " .. ", seg.base - 1, " are missing before this segment"));
    else
      v.problem(seg.path, 0, cat("segment starts at offset ", seg.base, ", but offset ", *v.last_offset,
                                 " is already in an older segment"));
  }
  // Up to the end of the file's data: beyond, a hole (zeros), not read (see data_bytes).
  const auto bytes = f.data_bytes();
  std::uint64_t expected = seg.base;
  std::size_t pos = file_header_bytes;
  v.damaged_at.clear();
  v.walked.clear();
  std::vector<agentbus::header> headers;
  bool sealed = false;
  while (pos < bytes.size()) {
    const auto rest = bytes.subspan(pos);
    if (peek_frame_length(rest) == seal_marker) {
      // The end of a sealed segment; the marker is the length word and four zero bytes.
      sealed = true;
      pos += seal_bytes;
      const auto after = bytes.subspan(std::min(pos - 4, bytes.size()));
      const auto it = std::find_if(after.begin(), after.end(), [](std::byte b) { return b != std::byte{0}; });
      if (it != after.end()) {
        v.problem(seg.path, pos - 4 + static_cast<std::size_t>(it - after.begin()),
                  cat("non-zero bytes after the seal marker at byte ", pos - seal_bytes, ": damage"));
        ++v.stray;
      }
      break;
    }
    auto res = decode_record(rest, &headers);
    if (res.status == decode_status::end && is_last) {
      // A writer may be appending right now: its record is visible once the length word is.
      // Give it a moment before calling non-zero bytes here damage.
      const bool stray = std::any_of(rest.begin(), rest.begin() + std::min<std::size_t>(rest.size(), 1 << 16),
                                     [](std::byte b) { return b != std::byte{0}; });
      if (stray) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        res = decode_record(rest, &headers);
      }
    }
    if (res.status == decode_status::ok) {
      if (res.rec.offset != expected) {
        v.problem(seg.path, pos,
                  res.rec.offset > expected
                      ? cat("offset ", res.rec.offset, " follows offset ", expected - 1, " (offsets ", expected, " .. ",
                            res.rec.offset - 1, " missing)")
                      : cat("offset ", res.rec.offset, " where ", expected, " was expected (duplicate or out of order)"));
      }
      // The padding up to the next 8-byte boundary is not covered by the CRC: check it here.
      const std::size_t used = frame_prefix_bytes + load_le<std::uint32_t>(rest.data());
      for (std::size_t k = used; k < res.size; ++k)
        if (rest[k] != std::byte{0}) {
          v.problem(seg.path, pos + k, cat("non-zero padding after the record with offset ", res.rec.offset));
          ++v.stray;
          break;
        }
      ++v.records;
      v.walked.emplace_back(pos, res.rec.offset);
      v.record_bytes += res.size;
      v.last_offset = res.rec.offset;
      expected = res.rec.offset + 1;
      pos += static_cast<std::size_t>(res.size);
      continue;
    }
    if (res.status == decode_status::end) {
      // A zero length word with valid records after it: damage in the middle (a reader finds
      // its way past it by the same rule, find_resume_point), not the end.
      const std::uint64_t nz = last_nonzero_end(bytes, pos, bytes.size());
      if (nz > pos && find_resume_point(bytes, pos, expected, nz).pos != 0) res.reason = "zero length word followed by data";
    }
    if (res.status == decode_status::end && res.reason[0] == '\0') {
      // The end of the records. Everything after must be zero (allocated space or a hole),
      // and bytes there are a torn write or damage (recovery zeroes them when a writer opens).
      const auto after = bytes.subspan(pos);
      const auto it = std::find_if(after.begin(), after.end(), [](std::byte b) { return b != std::byte{0}; });
      if (it != after.end()) {
        const std::size_t at = pos + static_cast<std::size_t>(it - after.begin());
        v.problem(seg.path, at, cat("non-zero bytes after the last record (which ends at byte ", pos,
                                    "): a torn write or damage"));
        ++v.stray;
      }
      break;
    }
    // Damaged (or torn) record: look for the next record that decodes, then report both.
    ++v.damaged_regions;
    v.damaged_at.push_back(pos);
    const std::uint32_t length = load_le<std::uint32_t>(rest.data());
    // The rule recovery and readers use (find_resume_point), so that all three agree on which
    // records are readable.
    const resume_point rp = find_resume_point(bytes, pos, expected, last_nonzero_end(bytes, pos, bytes.size()));
    const bool resumed = rp.pos != 0;
    const std::size_t next = static_cast<std::size_t>(rp.pos);
    const std::uint64_t resume_offset = rp.offset;
    const std::string lost = !resumed                      ? cat("offsets from ", expected, " on unreadable in this segment")
                             : resume_offset == expected     ? std::string("no record lost")
                             : resume_offset == expected + 1 ? cat("offset ", expected, " unreadable")
                                                             : cat("offsets ", expected, " .. ", resume_offset - 1, " unreadable");
    v.problem(seg.path, pos, cat(res.reason, " (length word ", length, "); ", lost));
    if (!resumed) break;
    v.unreadable += resume_offset - expected;
    pos = next;
    expected = resume_offset;
    if (resume_offset > 0) v.last_offset = resume_offset - 1;  // the loss is reported, not again as a gap
  }
  if (!sealed && !is_last)
    v.notes.push_back(cat(seg.path.filename().string(),
                          ": no seal marker after its last record (a writer that stopped while "
                          "rolling to the next segment; the next writer's recovery adds it)"));
  v.sealed = sealed;
  verify_index(seg, bytes, is_last, v);
}

/// An index newer than every segment, without its segment file: the segment was deleted from
/// outside, unless it is a roll in the middle of its renames (recovery.hpp says which; the next
/// writer's open skips past the offsets such an index vouches for).
inline void verify_orphan_index(const fs::path& dir, std::uint64_t newest_base, verify_state& v) {
  std::error_code ec;
  std::optional<orphan_index> newest;
  fs::path newest_path;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto base = parse_segment_file_name(it->path().filename().native(), index_extension);
    if (!base || *base <= newest_base || (newest && *base < newest->base)) continue;
    if (fs::exists(dir / segment_file_name(*base, segment_extension), ec)) continue;
    newest = read_orphan_index(it->path(), *base);
    newest_path = it->path();
  }
  if (!newest || is_interrupted_roll(*newest, v.last_offset ? *v.last_offset + 1 : newest_base, v.sealed)) return;
  v.problem(newest_path, 0,
            cat("its segment ", segment_file_name(newest->base, segment_extension),
                " is missing (deleted outside the journal?)",
                newest->last_entry ? cat(": the index names records up to offset ", newest->last_entry->offset)
                                   : std::string(),
                "; the next writer's open counts them lost and appends past them"));
}

inline int cmd_verify(const context& c, const options& o) {
  auto segments = list_segments(o.dir);
  if (segments.empty()) throw run_error(cat("no journal in '", o.dir.string(), "': it has no segment files (<offset>.log)"));
  verify_state v;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    verify_segment(segments[i], i + 1 == segments.size(), v);
    // A directory listing is no snapshot: while a writer renames new segments into place,
    // readdir may miss some and show later ones. The segment after one that ends at offset L
    // is named L + 1, so look for it by name before calling the offsets in between missing
    // (only inside the listing: a fast writer must not keep verify running forever). Only a
    // name beyond this segment's own: a segment whose header is damaged adds no offsets, and
    // looking up "last offset + 1" would find that same segment again, and again.
    if (i + 1 < segments.size() && v.last_offset && *v.last_offset + 1 > segments[i].base &&
        segments[i + 1].base > *v.last_offset + 1) {
      segment_file next{o.dir / segment_file_name(*v.last_offset + 1, segment_extension), *v.last_offset + 1};
      std::error_code ec;
      if (fs::exists(next.path, ec)) {
        std::tie(next.size, next.allocated) = file_size_and_allocated(next.path);
        segments.insert(segments.begin() + static_cast<std::ptrdiff_t>(i + 1), std::move(next));
      }
    }
  }

  verify_orphan_index(o.dir, segments.back().base, v);

  // And what a reader sees, which is what consumers get: it must agree.
  std::uint64_t read = 0, read_corrupt = 0;
  std::vector<std::string> reader_errors;
  {
    auto reader = agentbus::open_journal_reader(o.dir, 0);
    agentbus::record r;
    while (true) {
      const auto st = reader.next(r);
      if (st == agentbus::read_status::end) break;
      if (st == agentbus::read_status::ok) ++read;
      else if (st == agentbus::read_status::corrupt) {
        ++read_corrupt;
        reader_errors.emplace_back(reader.error());
      }
    }
  }
  const bool clean = v.problems.empty() && read_corrupt == 0;
  // The reader's messages repeat what the scan found, except when the scan found nothing.
  if (v.problems.empty())
    for (const auto& e : reader_errors) v.problems.push_back("reader: " + e);
  std::string t = cat("journal      ", o.dir.string(), '\n');
  t += cat("segments     ", v.segments, '\n');
  t += cat("records      ", v.records, " valid (", human_bytes(v.record_bytes), " in records)\n");
  if (v.last_offset) t += cat("last offset  ", *v.last_offset, '\n');
  t += cat("damaged      ", v.damaged_regions, " region", v.damaged_regions == 1 ? "" : "s", " (", v.unreadable,
           " record", v.unreadable == 1 ? "" : "s", " unreadable), ", v.stray, " place", v.stray == 1 ? "" : "s",
           " with stray bytes\n");
  t += cat("index        ", v.damaged_indexes, " file", v.damaged_indexes == 1 ? "" : "s", " damaged",
           v.damaged_indexes == 0 ? "" : " (no record is lost with an index: the next writer rebuilds it)", '\n');
  t += cat("reader       read ", read, " records, reported ", read_corrupt, " damaged\n");
  if (read < v.records)
    t += "note         the reader returned fewer records than the files hold "
         "(records after damage it could not skip, or retention ran meanwhile)\n";
  for (const auto& n : v.notes) t += cat("note         ", n, '\n');
  for (const auto& p : v.problems) t += cat("problem      ", p, '\n');
  for (const auto& w : v.index_warnings) t += cat("warning      ", w, '\n');
  int status = exit_ok;
  if (!clean) {
    t += "result       DAMAGED\n";
    status = exit_damaged;
  } else if (!v.index_warnings.empty()) {
    t += "result       INDEX DAMAGED (every record is intact)\n";
    status = exit_index_damaged;
  } else {
    t += "result       OK\n";
  }
  c.print(t);
  return status;
}

// ------------------------------------------------------------------ the command line

/// Runs the command line `args` (without the program name): --help, or one command.
inline int run(const context& c, std::span<const std::string_view> args) {
  for (std::size_t i = 0; i < args.size(); ++i)
    if (args[i] == "--help" || args[i] == "-h" || (i == 0 && args[i] == "help")) {
      c.print(c.usage());
      return exit_ok;
    }
  try {
    const options o = parse_args(args);
    if (o.command == "stats") return cmd_stats(c, o);
    if (o.command == "dump") return cmd_dump(c, o);
    if (o.command == "tail") return cmd_tail(c, o);
    return cmd_verify(c, o);
  } catch (const usage_error& e) {
    c.print_error(cat(e.what(), "\n(see '", c.program, " --help')"));
    return exit_usage;
  } catch (const std::exception& e) {
    c.print_error(e.what());
    return exit_damaged;
  }
}

}  // namespace agentbus::detail::inspect

#endif  // AGENTBUS_JOURNAL_DETAIL_INSPECT_COMMANDS_HPP
