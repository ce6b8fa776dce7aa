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
// Everything is read-only and takes no lock, so it works while a writer appends: records
// are read through agentbus::open_journal_reader. `verify` also walks the segment files
// itself with the record decoder, because a problem report is only useful if it names the
// file and the byte position, and because it looks where a reader never goes (the bytes
// after the last record, the index files).
//
// Exit status: 0 success, 1 record damage found or an unreadable journal, 2 bad usage,
// 3 (verify) index damage alone: every record intact. See usage_text.

#include <agentbus/router/topic.hpp>
#include <agentbus/journal/detail/file_header.hpp>
#include <agentbus/journal/detail/record_format.hpp>
#include <agentbus/journal/detail/segment.hpp>
#include <agentbus/journal/detail/segment_index.hpp>
#include <agentbus/journal/detail/segment_scan.hpp>
#include <agentbus/journal/journal.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

constexpr std::string_view usage_text = R"(agentbus-journal: inspect an agentbus journal (read-only; safe while a writer runs)

usage:
  agentbus-journal stats DIR [--json]
  agentbus-journal dump DIR [--from OFFSET] [--since TIME | --since-ns N] [--topic PATTERN]
                            [--limit N] [--payload auto|hex|text|none] [--preview BYTES] [--json]
  agentbus-journal tail DIR [-f] [-n N] [--from OFFSET] [--topic PATTERN]
                            [--payload auto|hex|text|none] [--preview BYTES] [--json] [--poll-ms MS]
  agentbus-journal verify DIR
  agentbus-journal --help | help

commands:
  stats    segments, records, bytes, first/last offset, time range (UTC), records per topic
           (most first), damaged records found
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
  --payload MODE     auto (text when it is printable UTF-8, else hex; default), hex, text, none
  --preview BYTES    payload bytes shown (default 48 per line; the whole payload with --json);
                     0 = all
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
constexpr int exit_ok = 0;             ///< success, nothing damaged
constexpr int exit_damaged = 1;        ///< damaged or missing records, or an unreadable journal
constexpr int exit_usage = 2;          ///< bad usage
constexpr int exit_index_damaged = 3;  ///< verify: index files damaged, every record intact

/// Bad usage: main prints the message and a hint, and exits with status 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A failure that is not the user's syntax (no journal there, I/O): status 1.
struct run_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------ stop on a signal

volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) { stop_requested = 1; }

void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a sleep is cut short and the loop sees the flag
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// ------------------------------------------------------------------ time

/// ISO 8601 in UTC with nanoseconds: 2024-05-01T12:00:00.123456789Z.
std::string format_time(std::int64_t ns) {
  using namespace std::chrono;
  const sys_time<nanoseconds> tp{nanoseconds{ns}};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> hms{tp - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count(), hms.subseconds().count());
}

/// Parses ISO 8601 (date, optional time with optional fraction, optional zone) into ns since
/// the epoch; nullopt when it is not one.
std::optional<std::int64_t> parse_time(std::string_view s) {
  using namespace std::chrono;
  std::size_t i = 0;
  auto digits = [&](std::size_t n, int& out) {
    if (i + n > s.size()) return false;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const char c = s[i + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    i += n;
    out = v;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(4, y) || !expect('-') || !digits(2, mo) || !expect('-') || !digits(2, d)) return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t frac_ns = 0;
  std::int64_t zone_s = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    if (!digits(2, h) || !expect(':') || !digits(2, mi)) return std::nullopt;
    if (expect(':')) {
      if (!digits(2, sec)) return std::nullopt;
      if (expect('.') || expect(',')) {
        std::int64_t scale = 100'000'000;
        std::size_t n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
          frac_ns += (s[i] - '0') * scale;
          scale /= 10;
          ++i;
          ++n;
        }
        if (n == 0) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        const int sign = s[i] == '-' ? -1 : 1;
        ++i;
        int zh = 0, zm = 0;
        if (!digits(2, zh)) return std::nullopt;
        expect(':');
        if (i < s.size() && !digits(2, zm)) return std::nullopt;
        if (zh > 23 || zm > 59) return std::nullopt;
        zone_s = sign * (zh * 3600 + zm * 60);
      } else {
        return std::nullopt;
      }
    }
    if (i != s.size()) return std::nullopt;
  }
  const std::int64_t day_s = static_cast<std::int64_t>(sys_days{ymd}.time_since_epoch().count()) * 86400;
  const std::int64_t secs = day_s + h * 3600 + mi * 60 + sec - zone_s;
  return secs * 1'000'000'000 + frac_ns;
}

// ------------------------------------------------------------------ text

/// Characters safe to print as they are: printable ASCII and well-formed UTF-8 beyond it.
/// Returns the length of the UTF-8 sequence at s[i], or 0 when it is not well formed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

/// True when `s` is UTF-8 without control characters other than tab, newline and return.
bool is_printable_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return false;
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// For one-line output: control characters, backslash and invalid UTF-8 as \n, \xNN, ...;
/// with `quoted`, also '"' (the text goes between quotes).
void append_escaped(std::string& out, std::string_view s, bool quoted = false) {
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool special = c < 0x20 || c == 0x7F || c == '\\' || (quoted && c == '"');
    const std::size_t n = special ? 0 : utf8_sequence(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    ++i;
  }
}

std::string escaped(std::string_view s) {
  std::string out;
  append_escaped(out, s);
  return out;
}

/// A JSON string literal. Invalid UTF-8 becomes U+FFFD (JSON text must be Unicode); use
/// --payload hex for binary payloads.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
      }
      ++i;
    } else if (const std::size_t n = utf8_sequence(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

std::string as_text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string to_hex(std::span<const std::byte> b) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (const std::byte x : b) {
    out += hex[std::to_integer<unsigned>(x) >> 4];
    out += hex[std::to_integer<unsigned>(x) & 15];
  }
  return out;
}

std::string human_bytes(std::uint64_t n) {
  if (n >= (1ull << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(n) / (1ull << 30));
  if (n >= (1ull << 20)) return fmt::format("{:.2f} MiB", static_cast<double>(n) / (1ull << 20));
  if (n >= (1ull << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(n) / (1ull << 10));
  return fmt::format("{} B", n);
}

std::string human_duration(std::int64_t ns) {
  const double s = static_cast<double>(ns) / 1e9;
  if (s < 1) return fmt::format("{:.3f} ms", s * 1e3);
  if (s < 120) return fmt::format("{:.3f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  if (s < 172800) return fmt::format("{:.1f} h", s / 3600);
  return fmt::format("{:.1f} days", s / 86400);
}

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

std::uint64_t parse_unsigned(std::string_view flag, std::string_view v) {
  std::uint64_t n = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || p != v.data() + v.size())
    throw usage_error(fmt::format("{} expects a non-negative integer, got '{}'", flag, escaped(v)));
  return n;
}

std::int64_t parse_signed(std::string_view flag, std::string_view v) {
  std::int64_t n = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || p != v.data() + v.size())
    throw usage_error(fmt::format("{} expects an integer, got '{}'", flag, escaped(v)));
  return n;
}

options parse_args(int argc, char** argv) {
  options o;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) throw usage_error("no command given");
  o.command = args[0];
  if (o.command != "stats" && o.command != "dump" && o.command != "tail" && o.command != "verify")
    throw usage_error(fmt::format("unknown command '{}' (commands: stats, dump, tail, verify)", escaped(o.command)));
  // Which options each command takes: anything else is an error, not silently ignored.
  const bool reads = o.command == "dump" || o.command == "tail";
  std::vector<std::string_view> positional;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= args.size()) throw usage_error(fmt::format("{} needs a value", a));
      return args[++i];
    };
    auto only = [&](bool allowed) {
      if (!allowed) throw usage_error(fmt::format("'{}' is not an option of '{}'", a, o.command));
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
      if (!t)
        throw usage_error(fmt::format("--since expects an ISO 8601 time such as 2024-05-01T12:00:00Z, got '{}'",
                                      escaped(v)));
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
        throw usage_error(fmt::format("--topic '{}': {} at position {}", escaped(v), agentbus::describe(check.code),
                                      check.position));
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
      else throw usage_error(fmt::format("--payload expects auto, hex, text or none, got '{}'", escaped(v)));
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
      throw usage_error(fmt::format("unknown option '{}' for '{}'", escaped(a), o.command));
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty()) throw usage_error(fmt::format("'{}' needs the journal directory", o.command));
  if (positional.size() > 1)
    throw usage_error(fmt::format("'{}' takes one directory, got '{}' too", o.command, escaped(positional[1])));
  o.dir = fs::path(std::string(positional[0]));
  return o;
}

// ------------------------------------------------------------------ the journal's files

/// One segment file: `<base offset, 20 digits>.log`.
struct segment_file {
  fs::path path;
  std::uint64_t base = 0;
  std::uint64_t size = 0;
};

/// The segment files of `dir`, oldest first. Throws run_error when `dir` is not a journal.
std::vector<segment_file> list_segments(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw run_error(fmt::format("'{}' is not a directory (give the journal's directory)", dir.string()));
  std::vector<segment_file> out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& p = entry.path();
    const auto base = agentbus::detail::parse_segment_file_name(p.filename().string(),
                                                                agentbus::detail::segment_extension);
    if (!base) continue;  // the index files, prepared (not yet used) segments, anything else
    std::error_code size_ec;
    const auto size = entry.file_size(size_ec);
    out.push_back({p, *base, size_ec ? 0 : size});
  }
  if (ec) throw run_error(fmt::format("cannot list '{}': {}", dir.string(), ec.message()));
  std::sort(out.begin(), out.end(), [](const segment_file& a, const segment_file& b) { return a.base < b.base; });
  return out;
}

void require_journal(const fs::path& dir) {
  if (list_segments(dir).empty())
    throw run_error(fmt::format("no journal in '{}': it has no segment files (<offset>.log)", dir.string()));
}

agentbus::journal_reader open_reader(const fs::path& dir, std::uint64_t from) {
  require_journal(dir);
  return agentbus::open_journal_reader(dir, from);
}

agentbus::journal_reader open_reader_since(const fs::path& dir, std::int64_t since_ns) {
  require_journal(dir);
  const std::chrono::system_clock::time_point t{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(since_ns))};
  return agentbus::open_journal_reader_since(dir, t);
}

/// Bytes a record takes in its segment: frame prefix, body, padding.
std::uint64_t frame_size(const agentbus::record& r) {
  std::uint64_t body = agentbus::detail::record_fixed_bytes + r.payload.size() + r.topic.size() + r.schema.size() +
                       r.source.size();
  for (const auto& h : r.headers) body += 8 + h.key.size() + h.value.size();
  return agentbus::detail::frame_bytes(body);
}

// ------------------------------------------------------------------ printing records

/// A record with its own storage (tail keeps some while reading on).
struct owned_record {
  agentbus::record rec;
  std::string storage;
  std::vector<agentbus::header> headers;
};

class record_printer {
 public:
  explicit record_printer(const options& o) : o_(o) {}

  void print(const agentbus::record& r) {
    line_.clear();
    if (o_.json) json(r);
    else text(r);
    line_ += '\n';
    std::fwrite(line_.data(), 1, line_.size(), stdout);
  }

 private:
  /// The payload bytes shown and whether they were cut.
  std::pair<std::span<const std::byte>, bool> shown(const agentbus::record& r) const {
    const std::size_t limit = o_.preview ? *o_.preview : (o_.json ? 0 : 48);
    if (limit == 0 || r.payload.size() <= limit) return {r.payload, false};
    return {r.payload.first(limit), true};
  }

  payload_mode mode_for(const agentbus::record& r) const {
    if (o_.payload != payload_mode::automatic) return o_.payload;
    return is_printable_text(as_text(r.payload)) ? payload_mode::text : payload_mode::hex;
  }

  void text(const agentbus::record& r) {
    line_ += fmt::format("{:>8}  {}  ", r.offset, format_time(r.published_ns));
    append_escaped(line_, r.topic);
    line_ += "  ";
    append_escaped(line_, r.schema.empty() ? std::string_view("-") : r.schema);
    line_ += fmt::format("@{}  {} B  ", r.schema_version, r.payload.size());
    append_escaped(line_, r.source.empty() ? std::string_view("-") : r.source);
    if (r.priority != 1) line_ += fmt::format("  prio={}", r.priority);
    if (r.correlation_id != 0) line_ += fmt::format("  corr={}", r.correlation_id);
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
    const payload_mode m = mode_for(r);
    if (m == payload_mode::none || r.payload.empty()) return;
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

  void json(const agentbus::record& r) {
    line_ += fmt::format("{{\"offset\":{},\"time\":\"{}\",\"published_ns\":{},\"topic\":", r.offset,
                         format_time(r.published_ns), r.published_ns);
    append_json_string(line_, r.topic);
    line_ += ",\"schema\":";
    append_json_string(line_, r.schema);
    line_ += fmt::format(",\"schema_version\":{},\"fingerprint\":\"{:016x}\",\"event_id\":{},\"correlation_id\":{},"
                         "\"source\":",
                         r.schema_version, r.fingerprint, r.event_id, r.correlation_id);
    append_json_string(line_, r.source);
    line_ += fmt::format(",\"priority\":{},\"headers\":[", r.priority);
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
      if (i != 0) line_ += ',';
      line_ += "{\"key\":";
      append_json_string(line_, r.headers[i].key);
      line_ += ",\"value\":";
      append_json_string(line_, r.headers[i].value);
      line_ += '}';
    }
    line_ += fmt::format("],\"size\":{}", r.payload.size());
    const payload_mode m = mode_for(r);
    if (m == payload_mode::none) {
      line_ += '}';
      return;
    }
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
    line_ += '}';
  }

  const options& o_;
  std::string line_;
};

bool selected(const options& o, const agentbus::record& r) {
  if (o.topic && !o.topic->matches(r.topic)) return false;
  if (o.since_ns && r.published_ns < *o.since_ns) return false;
  return true;
}

/// What a reader said that is not a record, on stderr. Returns true for damage.
bool report_status(agentbus::read_status st, const agentbus::journal_reader& reader) {
  if (st == agentbus::read_status::corrupt) {
    fmt::print(stderr, "agentbus-journal: damaged record skipped: {}\n", reader.error());
    return true;
  }
  if (st == agentbus::read_status::truncated_by_retention)
    fmt::print(stderr, "agentbus-journal: records were deleted by retention; continuing at offset {}\n",
               reader.position());
  return false;
}

// ------------------------------------------------------------------ stats

int cmd_stats(const options& o) {
  const auto segments = list_segments(o.dir);
  if (segments.empty())
    throw run_error(fmt::format("no journal in '{}': it has no segment files (<offset>.log)", o.dir.string()));
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
  std::uint64_t file_bytes = 0;
  for (const auto& s : segments) file_bytes += s.size;
  std::vector<std::pair<std::string, std::uint64_t>> by_count(topics.begin(), topics.end());
  std::sort(by_count.begin(), by_count.end(),
            [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });

  if (o.json) {
    std::string j = "{\"directory\":";
    append_json_string(j, o.dir.string());
    j += fmt::format(",\"segments\":{},\"records\":{},\"record_bytes\":{},\"payload_bytes\":{},\"file_bytes\":{}",
                     segments.size(), records, record_bytes, payload_bytes, file_bytes);
    if (records > 0)
      j += fmt::format(",\"first_offset\":{},\"last_offset\":{},\"first_time\":\"{}\",\"last_time\":\"{}\","
                       "\"first_time_ns\":{},\"last_time_ns\":{}",
                       first, last, format_time(min_t), format_time(max_t), min_t, max_t);
    j += fmt::format(",\"corrupt_records\":{},\"topics\":[", corrupt);
    for (std::size_t i = 0; i < by_count.size(); ++i) {
      if (i != 0) j += ',';
      j += "{\"topic\":";
      append_json_string(j, by_count[i].first);
      j += fmt::format(",\"records\":{}}}", by_count[i].second);
    }
    j += "],\"problems\":[";
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i != 0) j += ',';
      append_json_string(j, problems[i]);
    }
    j += "]}\n";
    std::fwrite(j.data(), 1, j.size(), stdout);
    return corrupt == 0 ? exit_ok : exit_damaged;
  }

  fmt::print("journal      {}\n", o.dir.string());
  fmt::print("segments     {} ({} on disk, pre-allocated space included)\n", segments.size(), human_bytes(file_bytes));
  fmt::print("records      {}\n", records);
  fmt::print("bytes        {} in records ({}), {} of payload\n", record_bytes, human_bytes(record_bytes),
             human_bytes(payload_bytes));
  if (records > 0) {
    fmt::print("offsets      {} .. {}\n", first, last);
    fmt::print("time range   {} .. {} ({})\n", format_time(min_t), format_time(max_t), human_duration(max_t - min_t));
  } else {
    fmt::print("offsets      -\ntime range   -\n");
  }
  fmt::print("corrupt      {}{}\n", corrupt, corrupt ? " (run 'agentbus-journal verify' for details)" : "");
  for (const auto& p : problems) fmt::print("  {}\n", p);
  fmt::print("topics       {}\n", by_count.size());
  const int width = by_count.empty() ? 1 : static_cast<int>(fmt::formatted_size("{}", by_count.front().second));
  for (const auto& [name, n] : by_count) fmt::print("  {:>{}}  {}\n", n, width, escaped(name));
  return corrupt == 0 ? exit_ok : exit_damaged;
}

// ------------------------------------------------------------------ dump

int cmd_dump(const options& o) {
  // --since without --from: skip whole segments older than TIME and seek with the index
  // (the filter below still applies: later records published before TIME are not shown).
  auto reader = o.since_ns && !o.from
                    ? open_reader_since(o.dir, *o.since_ns)
                    : open_reader(o.dir, o.from.value_or(0));
  record_printer printer(o);
  agentbus::record r;
  std::uint64_t printed = 0;
  bool damaged = false;
  while (!o.limit || printed < *o.limit) {
    const auto st = reader.next(r);
    if (st == agentbus::read_status::end) break;
    if (st != agentbus::read_status::ok) {
      damaged = report_status(st, reader) || damaged;
      continue;
    }
    if (o.from && r.offset < *o.from) continue;
    if (!selected(o, r)) continue;
    printer.print(r);
    ++printed;
  }
  std::fflush(stdout);
  if (damaged) {
    fmt::print(stderr, "agentbus-journal: the journal has damaged records; run 'verify' for details\n");
    return exit_damaged;
  }
  return exit_ok;
}

// ------------------------------------------------------------------ tail

int cmd_tail(const options& o) {
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
  record_printer printer(o);
  agentbus::record r;
  bool damaged = false;
  if (o.follow) install_stop_handlers();
  while (stop_requested == 0) {
    const auto st = reader.next(r);
    if (st == agentbus::read_status::ok) {
      if (r.offset >= start && selected(o, r)) printer.print(r);
      continue;
    }
    if (st != agentbus::read_status::end) {
      damaged = report_status(st, reader) || damaged;
      continue;
    }
    std::fflush(stdout);
    if (!o.follow) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  std::fflush(stdout);
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

 private:
  int fd_ = -1;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
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

  void problem(const fs::path& file, std::uint64_t pos, std::string_view what) {
    problems.push_back(fmt::format("{} @ byte {}: {}", file.filename().string(), pos, what));
  }
};

/// What verify_index found wrong with one index file (empty: nothing).
std::vector<std::string> check_index(const segment_file& seg, std::span<const std::byte> log, bool is_last,
                                     const verify_state& v) {
  using namespace agentbus::detail;
  std::vector<std::string> out;
  fs::path idx_path = seg.path;
  idx_path.replace_extension(".idx");
  const std::string name = idx_path.filename().string();
  auto warn = [&](std::uint64_t pos, std::string_view what) {
    out.push_back(fmt::format("{} @ byte {}: {}", name, pos, what));
  };
  mapped_file idx(idx_path);
  if (idx.missing()) {
    warn(0, "index file missing (readers seek without it; the next writer rebuilds it)");
    return out;
  }
  if (!idx.ok()) {
    warn(0, fmt::format("cannot read: {}", idx.error()));
    return out;
  }
  const auto bytes = idx.bytes();
  file_header h;
  const auto hs = read_file_header(bytes, h);
  if (hs != header_status::ok || h.kind != file_kind::index || h.base_offset != seg.base || h.parameter == 0) {
    warn(0, bytes.size() < file_header_bytes             ? fmt::format("file of {} bytes, shorter than its header", bytes.size())
            : hs == header_status::newer_version          ? std::string("index of a newer format than this tool reads")
            : hs == header_status::zero                   ? std::string("file header is all zero")
                                                          : std::string("damaged or foreign file header"));
    return out;
  }
  // Index files are created and grown in whole 4 KiB pages.
  if (bytes.size() % 4096 != 0)
    warn(bytes.size(), fmt::format("file of {} bytes, not a whole number of 4 KiB pages: shortened", bytes.size()));
  const std::size_t capacity = (bytes.size() - file_header_bytes) / index_entry_bytes;
  const std::byte* entries = bytes.data() + file_header_bytes;
  const std::size_t n = count_valid_index_entries(entries, capacity);
  const index_view view{entries, n};
  // After the valid entries, only zeros: anything else is a damaged (or out-of-order) entry,
  // and the entries after it are lost to readers. In the active segment, the slot right after
  // the valid entries may be one a crashed writer was writing: harmless, the next writer clears it.
  auto nonzero_slot = [&](std::size_t from) {
    for (std::size_t k = from; k < capacity; ++k)
      if (std::any_of(entries + k * index_entry_bytes, entries + (k + 1) * index_entry_bytes,
                      [](std::byte b) { return b != std::byte{0}; }))
        return k;
    return capacity;
  };
  const std::size_t junk = nonzero_slot(n);
  if (junk < capacity && !(is_last && junk == n && nonzero_slot(junk + 1) == capacity))
    warn(file_header_bytes + junk * index_entry_bytes,
         fmt::format("index entry {} is damaged (bad checksum, or out of order); the entries after it are unusable",
                     junk));
  for (std::size_t i = 0; i < n; ++i) {
    const index_entry e = view.at(i);
    // An entry pointing at a damaged record is right; the record is already reported.
    if (std::find(v.damaged_at.begin(), v.damaged_at.end(), e.position) != v.damaged_at.end()) continue;
    const auto res = e.position < log.size() && e.position % frame_alignment == 0
                         ? decode_record(log.subspan(static_cast<std::size_t>(e.position)))
                         : decode_result{};
    if (res.status != decode_status::ok || res.rec.offset != e.offset)
      warn(file_header_bytes + i * index_entry_bytes,
           fmt::format("index entry {} says offset {} is at byte {} of the segment, but {}", i, e.offset, e.position,
                       res.status == decode_status::ok ? fmt::format("offset {} is there", res.rec.offset)
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
           fmt::format("{} index entr{} missing (interval {} bytes; the first for offset {}): readers seek "
                       "through more records than they should",
                       missing, missing == 1 ? "y is" : "ies are", interval, first_missing));
  }
  return out;
}

/// Checks the index file of `seg` (check_index) and records what it found as index warnings:
/// a class of its own, apart from record damage, since the index is an accelerator (readers
/// check every position it gives them, and the next writer's recovery rebuilds it).
void verify_index(const segment_file& seg, std::span<const std::byte> log, bool is_last, verify_state& v) {
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

void verify_segment(const segment_file& seg, bool is_last, verify_state& v) {
  using namespace agentbus::detail;
  mapped_file f(seg.path);
  if (f.missing()) return;  // deleted by retention since the listing: nothing to check
  if (!f.ok()) {
    v.problem(seg.path, 0, fmt::format("cannot read: {}", f.error()));
    return;
  }
  ++v.segments;
  const auto bytes = f.bytes();
  file_header h;
  const auto hs = read_file_header(bytes, h);
  if (hs == header_status::zero) {
    // A segment being created: header not written yet. Fine for the newest only.
    if (!is_last) v.problem(seg.path, 0, "file header is all zero (a segment that was never written)");
    return;
  }
  if (hs == header_status::newer_version) {
    v.problem(seg.path, 0, fmt::format("segment format version {} is newer than this tool reads", h.version));
    return;
  }
  if (hs == header_status::bad || h.kind != file_kind::segment) {
    v.problem(seg.path, 0, "damaged or foreign file header (bad magic or CRC)");
    return;
  }
  if (h.base_offset != seg.base)
    v.problem(seg.path, 16, fmt::format("header says base offset {} but the file is named for {}", h.base_offset,
                                        seg.base));
  if (v.last_offset && seg.base != *v.last_offset + 1) {
    if (seg.base > *v.last_offset + 1)
      v.problem(seg.path, 0, fmt::format("offsets {} .. {} are missing before this segment", *v.last_offset + 1,
                                         seg.base - 1));
    else
      v.problem(seg.path, 0, fmt::format("segment starts at offset {}, but offset {} is already in an older segment",
                                         seg.base, *v.last_offset));
  }
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
                  fmt::format("non-zero bytes after the seal marker at byte {}: damage", pos - seal_bytes));
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
                      ? fmt::format("offset {} follows offset {} (offsets {} .. {} missing)", res.rec.offset,
                                    expected - 1, expected, res.rec.offset - 1)
                      : fmt::format("offset {} where {} was expected (duplicate or out of order)", res.rec.offset,
                                    expected));
      }
      // The padding up to the next 8-byte boundary is not covered by the CRC: check it here.
      const std::size_t used = frame_prefix_bytes + load_le<std::uint32_t>(rest.data());
      for (std::size_t k = used; k < res.size; ++k)
        if (rest[k] != std::byte{0}) {
          v.problem(seg.path, pos + k, fmt::format("non-zero padding after the record with offset {}", res.rec.offset));
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
      // The end of the records. Everything after must be zero: the space is pre-allocated,
      // and bytes there are a torn write or damage (recovery zeroes them when a writer opens).
      const auto after = bytes.subspan(pos);
      const auto it = std::find_if(after.begin(), after.end(), [](std::byte b) { return b != std::byte{0}; });
      if (it != after.end()) {
        const std::size_t at = pos + static_cast<std::size_t>(it - after.begin());
        v.problem(seg.path, at,
                  fmt::format("non-zero bytes after the last record (which ends at byte {}): a torn write or damage",
                              pos));
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
    const std::string lost = !resumed                      ? fmt::format("offsets from {} on unreadable in this segment", expected)
                             : resume_offset == expected     ? std::string("no record lost")
                             : resume_offset == expected + 1 ? fmt::format("offset {} unreadable", expected)
                                                             : fmt::format("offsets {} .. {} unreadable", expected,
                                                                           resume_offset - 1);
    v.problem(seg.path, pos, fmt::format("{} (length word {}); {}", res.reason, length, lost));
    if (!resumed) break;
    v.unreadable += resume_offset - expected;
    pos = next;
    expected = resume_offset;
    if (resume_offset > 0) v.last_offset = resume_offset - 1;  // the loss is reported, not again as a gap
  }
  if (!sealed && !is_last)
    v.notes.push_back(fmt::format("{}: no seal marker after its last record (a writer that stopped while "
                                  "rolling to the next segment; the next writer's recovery adds it)",
                                  seg.path.filename().string()));
  verify_index(seg, bytes, is_last, v);
}

int cmd_verify(const options& o) {
  auto segments = list_segments(o.dir);
  if (segments.empty())
    throw run_error(fmt::format("no journal in '{}': it has no segment files (<offset>.log)", o.dir.string()));
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
      const fs::path next =
          o.dir / agentbus::detail::segment_file_name(*v.last_offset + 1, agentbus::detail::segment_extension);
      std::error_code ec;
      const auto size = fs::file_size(next, ec);
      if (!ec) segments.insert(segments.begin() + static_cast<std::ptrdiff_t>(i + 1), {next, *v.last_offset + 1, size});
    }
  }

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
  fmt::print("journal      {}\n", o.dir.string());
  fmt::print("segments     {}\n", v.segments);
  fmt::print("records      {} valid ({} in records)\n", v.records, human_bytes(v.record_bytes));
  if (v.last_offset) fmt::print("last offset  {}\n", *v.last_offset);
  fmt::print("damaged      {} region{} ({} record{} unreadable), {} place{} with stray bytes\n", v.damaged_regions,
             v.damaged_regions == 1 ? "" : "s", v.unreadable, v.unreadable == 1 ? "" : "s", v.stray,
             v.stray == 1 ? "" : "s");
  fmt::print("index        {} file{} damaged{}\n", v.damaged_indexes, v.damaged_indexes == 1 ? "" : "s",
             v.damaged_indexes == 0 ? "" : " (no record is lost with an index: the next writer rebuilds it)");
  fmt::print("reader       read {} records, reported {} damaged\n", read, read_corrupt);
  if (read < v.records)
    fmt::print("note         the reader returned fewer records than the files hold "
               "(records after damage it could not skip, or retention ran meanwhile)\n");
  for (const auto& n : v.notes) fmt::print("note         {}\n", n);
  for (const auto& p : v.problems) fmt::print("problem      {}\n", p);
  for (const auto& w : v.index_warnings) fmt::print("warning      {}\n", w);
  if (!clean) {
    fmt::print("result       DAMAGED\n");
    return exit_damaged;
  }
  if (!v.index_warnings.empty()) {
    fmt::print("result       INDEX DAMAGED (every record is intact)\n");
    return exit_index_damaged;
  }
  fmt::print("result       OK\n");
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h" || (i == 1 && a == "help")) {
      std::fwrite(usage_text.data(), 1, usage_text.size(), stdout);
      return 0;
    }
  }
  try {
    const options o = parse_args(argc, argv);
    if (o.command == "stats") return cmd_stats(o);
    if (o.command == "dump") return cmd_dump(o);
    if (o.command == "tail") return cmd_tail(o);
    return cmd_verify(o);
  } catch (const usage_error& e) {
    fmt::print(stderr, "agentbus-journal: {}\n(see 'agentbus-journal --help')\n", e.what());
    return exit_usage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "agentbus-journal: {}\n", e.what());
    return exit_damaged;
  }
}
