// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP
#define AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP

// A durable consumer's cursor on disk: `<directory>/<name>.cursor`, one small file rewritten
// whole. Crash safety comes from never changing the file in place: a new state is written to
// `<name>.cursor.tmp` and renamed over the old one, which POSIX makes atomic, so a SIGKILL at
// any point leaves either the old state or the new one, never a mix. A checksum over the whole
// file catches damage from outside; a damaged file is reported and the consumer starts again
// from its start position (duplicates, never loss). With sync the file and its directory
// entry are also fdatasync'd, so the state survives a power loss too.
//
// What is stored is what a restart needs so that nothing acknowledged is delivered again and
// nothing unacknowledged is skipped:
//   floor          every matching offset below it is settled (acked or dead-lettered)
//   delivered_end  every matching offset below it was handed out at least once (written before
//                  the batch is handed out, so a crash inside a handler still counts the
//                  attempt: an event that kills the process on every delivery reaches
//                  max_deliver and is dead-lettered instead of looping across restarts)
//   settled        offsets at or above floor already settled (acks out of order)
//   attempts       unsettled offsets delivered more than once, and how often (once is implied
//                  by delivered_end)
// plus the consumer's pattern and event type, which a reopen must match.
//
// Layout (little-endian): "AGBCURS1" | u32 format version (1) | u32 body bytes | body | u32
// crc32c of everything before it. Body: u64 floor, u64 delivered_end, u64 writes, u32 + bytes
// pattern, u32 + bytes schema, u32 n + u64[n] settled, u32 n + (u64 offset, u32 attempts)[n].

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
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

/// A consumer's cursor as stored.
struct cursor_state {
  std::uint64_t floor = 0;
  std::uint64_t delivered_end = 0;
  std::uint64_t writes = 0;  // how many times this cursor was written (for tools)
  std::string pattern;
  std::string schema;
  std::vector<std::uint64_t> settled;                             // ascending, each >= floor
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
inline constexpr std::uint32_t cursor_format_version = 1;

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
      : path_(directory / (std::string(name) + ".cursor")),
        temp_(directory / (std::string(name) + ".cursor.tmp")),
        directory_(std::move(directory)),
        sync_(sync) {}

  const std::filesystem::path& path() const noexcept { return path_; }

  /// Reads the stored cursor (a leftover temporary file from a crash is ignored).
  cursor_load load() const {
    cursor_load out;
    unique_fd fd = open_file(path_, O_RDONLY, /*missing_ok=*/true);
    if (!fd) return out;
    const std::uint64_t size = file_size(fd.get(), path_);
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    std::size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = ::pread(fd.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_io("read", path_, errno);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
    out.result = cursor_load::status::damaged;
    if (!decode(bytes, out.state, out.problem)) return out;
    out.result = cursor_load::status::ok;
    return out;
  }

  /// Replaces the stored cursor with `state`, atomically (see the top of this file).
  void store(const cursor_state& state) {
    encode(state, buffer_);
    {
      std::error_code ec;
      std::filesystem::create_directories(directory_, ec);  // an error shows at the open below
      unique_fd fd = open_file(temp_, O_WRONLY | O_CREAT | O_TRUNC, false, 0600);
      write_at(fd.get(), buffer_, 0, temp_);
      if (sync_) datasync(fd.get(), temp_);
    }
    if (::rename(temp_.c_str(), path_.c_str()) != 0) throw_io("rename the cursor file to", path_, errno);
    if (sync_) sync_directory(directory_);
  }

  /// Deletes the stored cursor (and a leftover temporary file). True if there was one.
  bool remove() {
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
    return std::filesystem::remove(path_, ec);
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
    for (std::uint64_t o : s.settled) put(o);
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
    if (version != cursor_format_version) {
      problem = "cursor format version " + std::to_string(version) + " is not one this program reads (1)";
      return false;
    }
    const auto body = load_le<std::uint32_t>(in.data() + 12);
    if (head + std::size_t{body} + 4 != in.size()) {
      problem = "the file's length does not match its header (cut short or extended)";
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
    for (std::uint32_t i = 0; ok && i < n; ++i) {
      std::uint64_t o = 0;
      get(o);
      s.settled.push_back(o);
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
  std::filesystem::path path_;
  std::filesystem::path temp_;
  std::filesystem::path directory_;
  bool sync_;
  std::vector<std::byte> buffer_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_CONSUMER_DETAIL_CURSOR_FILE_HPP
