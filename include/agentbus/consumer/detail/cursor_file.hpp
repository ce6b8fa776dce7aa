// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP
#define AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP

// A durable consumer's cursor on disk: two files, `<directory>/<name>.cursor` and
// `<name>.cursor.b`, written in turn, each overwritten in place with the whole state and a
// sequence number. Crash safety comes from never writing the copy that is the newest valid
// one: a SIGKILL (or a torn write) at any point damages at most the copy being written, and a
// checksum over each tells a damaged copy from a good one, so the other one, the previous
// state, is read back. Never a mix, never a state that was not written whole. (One small
// pwrite on an open file costs microseconds; the rename-a-new-file idiom cost an inode, a
// rename and, on ext4, a forced writeback of the new file every time: half the time of
// consumption went there.) Damage to both copies from outside is reported and the consumer
// starts again from its start position (duplicates, never loss). With sync each write is also
// fdatasync'd, so the state survives a power loss too.
//
// What is stored is what a restart needs so that nothing acknowledged is delivered again and
// nothing unacknowledged is skipped:
//   floor          every matching offset below it is settled (acked or dead-lettered)
//   delivered_end  every matching offset below it was handed out at least once (written before
//                  the batch is handed out, so a crash inside a handler still counts the
//                  attempt: an event that kills the process on every delivery reaches
//                  max_deliver and is dead-lettered instead of looping across restarts)
//   settled        offsets at or above floor already settled (acks out of order), as runs of
//                  consecutive offsets: the members of a group settle whole batches out of
//                  order, so thousands of settled offsets are a few runs (stored one offset
//                  each, the cursor of a 4-member group was 24 KB written twice per batch, and
//                  writing it was most of what the group spent)
//   attempts       unsettled offsets delivered more than once, and how often (once is implied
//                  by delivered_end; 0 for a delayed event below it that was not due yet)
// plus the consumer's pattern and event type, which a reopen must match.
//
// Layout of a copy (little-endian): "AGBCURS1" | u32 format version (2) | u32 body bytes | body
// | u32 crc32c of everything before it | whatever an older, longer state left behind. Body: u64
// floor, u64 delivered_end, u64 writes, u32 + bytes pattern, u32 + bytes schema, u32 n + (u64
// first, u64 count)[n] settled runs, u32 n + (u64 offset, u32 attempts)[n]. Version 1 (written
// before the runs) is read too: its settled list is u32 n + u64[n] single offsets. There is no
// way back: a build from before version 2 refuses a version-2 copy as damaged (and may read
// the other copy, an older state, if that one is still version 1): the consumer then starts
// over or redelivers, never skips.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentbus/journal/detail/crc32c.hpp"
#include "agentbus/journal/detail/little_endian.hpp"
#include "agentbus/journal/detail/posix_file.hpp"

namespace agentbus::detail {

/// Consecutive offsets [first, first + count).
struct offset_run {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  std::uint64_t end() const noexcept { return first + count; }
  friend bool operator==(const offset_run&, const offset_run&) = default;
};

/// Adds `offset` to ascending `runs`: extends the last run when it is the next offset.
/// `offset` must be at or above the last run's end.
inline void append_offset(std::vector<offset_run>& runs, std::uint64_t offset) {
  if (!runs.empty() && runs.back().end() == offset)
    ++runs.back().count;
  else
    runs.push_back({offset, 1});
}

/// Adds a run to ascending `runs`, joining it to the last one when they touch.
inline void append_run(std::vector<offset_run>& runs, offset_run run) {
  if (run.count == 0) return;
  if (!runs.empty() && runs.back().end() >= run.first) {
    runs.back().count = std::max(runs.back().end(), run.end()) - runs.back().first;
    return;
  }
  runs.push_back(run);
}

/// True when `offset` is in one of ascending, disjoint `runs`.
inline bool contains_offset(const std::vector<offset_run>& runs, std::uint64_t offset) noexcept {
  auto it = std::upper_bound(runs.begin(), runs.end(), offset,
                             [](std::uint64_t o, const offset_run& r) { return o < r.first; });
  return it != runs.begin() && std::prev(it)->end() > offset;
}

/// Drops the offsets below `end` from ascending, disjoint `runs`.
inline void drop_offsets_below(std::vector<offset_run>& runs, std::uint64_t end) {
  auto it = std::find_if(runs.begin(), runs.end(), [end](const offset_run& r) { return r.end() > end; });
  runs.erase(runs.begin(), it);
  if (!runs.empty() && runs.front().first < end) runs.front() = {end, runs.front().end() - end};
}

/// How many offsets `runs` hold.
inline std::uint64_t offset_count(const std::vector<offset_run>& runs) noexcept {
  std::uint64_t n = 0;
  for (const offset_run& r : runs) n += r.count;
  return n;
}

/// A consumer's cursor as stored.
struct cursor_state {
  std::uint64_t floor = 0;
  std::uint64_t delivered_end = 0;
  std::uint64_t writes = 0;  // how many times this cursor was written (for tools)
  std::string pattern;
  std::string schema;
  std::vector<offset_run> settled;                                // ascending, disjoint, each >= floor
  std::vector<std::pair<std::uint64_t, std::uint32_t>> attempts;  // ascending offsets
};

/// What reading a cursor file found.
struct cursor_load {
  enum class status : std::uint8_t { missing, ok, damaged };
  status result = status::missing;
  cursor_state state;
  std::string problem;  // damaged: what was wrong
};

inline constexpr char cursor_magic[8] = {'A', 'G', 'B', 'C', 'U', 'R', 'S', '1'};
inline constexpr std::uint32_t cursor_format_version = 2;  // 1: settled offsets one by one

/// True for a name that can be a cursor file's stem everywhere: [A-Za-z0-9_.-], 1-128
/// characters, not starting with '.'.
inline bool valid_consumer_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

class cursor_file {
 public:
  cursor_file(std::filesystem::path directory, std::string_view name, bool sync)
      : paths_{directory / (std::string(name) + ".cursor"), directory / (std::string(name) + ".cursor.b")},
        directory_(std::move(directory)),
        sync_(sync) {}

  /// The first copy's path (the one tools list).
  const std::filesystem::path& path() const noexcept { return paths_[0]; }

  /// Reads the stored cursor: the valid copy with the most writes.
  cursor_load load() {
    cursor_load out;
    std::string problems;
    bool any_file = false;
    for (int i = 0; i < 2; ++i) {
      std::vector<std::byte> bytes;
      if (!read_whole(paths_[i], bytes)) continue;
      any_file = true;
      cursor_state state;
      std::string problem;
      if (!decode(bytes, state, problem)) {
        problems += (problems.empty() ? "" : "; ") + paths_[i].filename().string() + ": " + problem;
        continue;
      }
      if (out.result != cursor_load::status::ok || state.writes > out.state.writes) {
        out.state = std::move(state);
        out.result = cursor_load::status::ok;
        next_ = 1 - i;  // the next write goes to the other copy
      }
    }
    if (out.result != cursor_load::status::ok && any_file) {
      out.result = cursor_load::status::damaged;
      out.problem = problems;
    }
    return out;
  }

  /// Stores `state` (its `writes` must grow with every call) in the copy that is not the
  /// newest valid one (see the top of this file).
  void store(const cursor_state& state) {
    encode(state, buffer_);
    unique_fd& fd = fds_[next_];
    if (!fd) {
      std::error_code ec;
      std::filesystem::create_directories(directory_, ec);  // an error shows at the open below
      fd = open_file(paths_[next_], O_WRONLY | O_CREAT, false, 0600);
      if (sync_) sync_directory(directory_);  // the new name
    }
    write_at(fd.get(), buffer_, 0, paths_[next_]);
    if (sync_) datasync(fd.get(), paths_[next_]);
    next_ = 1 - next_;
  }

  /// Deletes the stored cursor. True if there was one.
  bool remove() {
    fds_[0].reset();
    fds_[1].reset();
    std::error_code ec;
    const bool first = std::filesystem::remove(paths_[0], ec);
    const bool second = std::filesystem::remove(paths_[1], ec);
    return first || second;
  }

  static void encode(const cursor_state& s, std::vector<std::byte>& out) {
    out.clear();
    auto put = [&](auto v) {
      std::byte b[sizeof(v)];
      store_le(b, v);
      out.insert(out.end(), b, b + sizeof(v));
    };
    auto put_text = [&](std::string_view t) {
      put(static_cast<std::uint32_t>(t.size()));
      const auto* p = reinterpret_cast<const std::byte*>(t.data());
      out.insert(out.end(), p, p + t.size());
    };
    out.insert(out.end(), reinterpret_cast<const std::byte*>(cursor_magic),
               reinterpret_cast<const std::byte*>(cursor_magic) + sizeof(cursor_magic));
    put(cursor_format_version);
    put(std::uint32_t{0});  // body bytes, patched below
    const std::size_t body = out.size();
    put(s.floor);
    put(s.delivered_end);
    put(s.writes);
    put_text(s.pattern);
    put_text(s.schema);
    put(static_cast<std::uint32_t>(s.settled.size()));
    for (const offset_run& r : s.settled) {
      put(r.first);
      put(r.count);
    }
    put(static_cast<std::uint32_t>(s.attempts.size()));
    for (const auto& [o, n] : s.attempts) {
      put(o);
      put(n);
    }
    store_le(out.data() + body - 4, static_cast<std::uint32_t>(out.size() - body));
    put(crc32c(std::span<const std::byte>(out.data(), out.size())));
  }

  static bool decode(std::span<const std::byte> in, cursor_state& s, std::string& problem) {
    constexpr std::size_t head = sizeof(cursor_magic) + 8;
    if (in.size() < head + 4) {
      problem = "the file is " + std::to_string(in.size()) + " bytes, shorter than any cursor";
      return false;
    }
    if (std::memcmp(in.data(), cursor_magic, sizeof(cursor_magic)) != 0) {
      problem = "not a cursor file (bad magic)";
      return false;
    }
    const auto version = load_le<std::uint32_t>(in.data() + 8);
    if (version != 1 && version != cursor_format_version) {
      problem = "cursor format version " + std::to_string(version) + " is not one this program reads (1, 2)";
      return false;
    }
    const auto body = load_le<std::uint32_t>(in.data() + 12);
    if (head + std::size_t{body} + 4 > in.size()) {
      problem = "the file is shorter than its header says (cut short)";
      return false;
    }
    const auto stored_crc = load_le<std::uint32_t>(in.data() + head + body);
    if (crc32c(in.first(head + body)) != stored_crc) {
      problem = "checksum mismatch (the file was damaged)";
      return false;
    }
    std::size_t at = head;
    const std::size_t end = head + body;
    bool ok = true;
    auto get = [&]<class V>(V& v) {
      if (at + sizeof(V) > end) {
        ok = false;
        return;
      }
      v = load_le<V>(in.data() + at);
      at += sizeof(V);
    };
    auto get_text = [&](std::string& t) {
      std::uint32_t n = 0;
      get(n);
      if (!ok || at + n > end) {
        ok = false;
        return;
      }
      t.assign(reinterpret_cast<const char*>(in.data() + at), n);
      at += n;
    };
    get(s.floor);
    get(s.delivered_end);
    get(s.writes);
    get_text(s.pattern);
    get_text(s.schema);
    std::uint32_t n = 0;
    get(n);
    std::uint64_t previous_end = 0;
    for (std::uint32_t i = 0; ok && i < n; ++i) {
      offset_run r{0, 1};
      get(r.first);
      if (version >= 2) get(r.count);
      if (ok && (r.count == 0 || r.first < previous_end || r.end() < r.first)) {
        problem = "the settled offsets are not ascending runs";
        return false;
      }
      previous_end = r.end();
      if (ok) append_run(s.settled, r);
    }
    get(n);
    for (std::uint32_t i = 0; ok && i < n; ++i) {
      std::uint64_t o = 0;
      std::uint32_t a = 0;
      get(o);
      get(a);
      s.attempts.emplace_back(o, a);
    }
    if (!ok || at != end) {
      problem = "the body does not parse (inconsistent lengths)";
      return false;
    }
    return true;
  }

 private:
  static bool read_whole(const std::filesystem::path& path, std::vector<std::byte>& bytes) {
    unique_fd fd = open_file(path, O_RDONLY, /*missing_ok=*/true);
    if (!fd) return false;
    bytes.resize(static_cast<std::size_t>(file_size(fd.get(), path)));
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = ::pread(fd.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_io("read", path, errno);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
    return true;
  }

  std::filesystem::path paths_[2];
  std::filesystem::path directory_;
  bool sync_;
  unique_fd fds_[2];
  int next_ = 0;
  std::vector<std::byte> buffer_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP
