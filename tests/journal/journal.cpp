// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
// The journal writer and its readers: round trips, offsets across rolls and reopening,
// durability policies and group commit, locking, retention, time seeks, options, and
// concurrent appenders with a tailing reader.
#include <agentbus/journal/journal.hpp>

#include <catch2/catch.hpp>

#include "support/journal_dir.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using agentbus::durability;
using agentbus::journal;
using agentbus::journal_error;
using agentbus::journal_options;
using agentbus::read_status;
using agentbus::record;
using agentbus::record_input;

using temp_dir = agentbus::test::journal_dir;

// Payload bytes derived from the offset (or any key), so that what is read back can be checked.
std::vector<std::byte> payload_for(std::uint64_t key, std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>((key * 131 + i * 7 + (key >> 8)) & 0xFF);
  return p;
}

bool payload_matches(const record& r, std::uint64_t key) {
  const auto expect = payload_for(key, r.payload.size());
  return std::equal(r.payload.begin(), r.payload.end(), expect.begin());
}

std::size_t size_for(std::uint64_t i) { return 16 + (i * 37) % 300; }

// Appends record i (payload derived from i, time base + i ms).
std::uint64_t append_numbered(journal& j, std::uint64_t i, std::int64_t base_ns = 1'000'000'000) {
  const auto payload = payload_for(i, size_for(i));
  const std::string topic = "test.numbered." + std::to_string(i % 7);
  record_input in;
  in.topic = topic;
  in.schema = "test.numbered";
  in.published_ns = base_ns + static_cast<std::int64_t>(i) * 1'000'000;
  in.event_id = i;
  in.payload = payload;
  return j.append(in);
}

// Reads everything from `r` until end; fails on anything but ok.
std::vector<std::uint64_t> read_all(agentbus::journal_reader& r) {
  std::vector<std::uint64_t> offsets;
  record rec;
  for (;;) {
    const read_status s = r.next(rec);
    if (s == read_status::end) break;
    INFO(r.error());
    REQUIRE(s == read_status::ok);
    REQUIRE(rec.event_id == rec.offset);  // append_numbered's convention when offsets start at 0
    REQUIRE(payload_matches(rec, rec.offset));
    REQUIRE(rec.payload.size() == size_for(rec.offset));
    offsets.push_back(rec.offset);
  }
  return offsets;
}

std::vector<std::uint64_t> iota(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

// Segment (or index) files: 20 digits and the extension (not the prepared-N ones).
std::size_t count_files(const fs::path& dir, std::string_view ext) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext && agentbus::detail::parse_segment_file_name(e.path().filename().string(), ext))
      ++n;
  return n;
}


// A directory for the write-back test where files can be read with O_DIRECT, which tmpfs (a
// common /tmp) and ramfs do not support: the system's temporary directory, else the build
// tree (the test program's directory), the working directory, $HOME. Each candidate's file
// system is looked up with statfs (tmpfs and ramfs are passed over), and O_DIRECT is tried on a
// probe file. `path` is empty when no candidate works (`why` says what was tried).
struct direct_io_dir {
  fs::path path;
  std::string why;

  direct_io_dir() {
    static std::atomic<int> counter{0};
    std::vector<fs::path> candidates{fs::temp_directory_path()};
    std::error_code ec;
    if (const auto exe = fs::read_symlink("/proc/self/exe", ec); !ec) candidates.push_back(exe.parent_path());
    candidates.push_back(fs::current_path(ec));
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') candidates.emplace_back(home);
    for (const auto& base : candidates) {
      if (base.empty()) continue;
      struct statfs st{};
      if (::statfs(base.c_str(), &st) != 0) {
        why += base.string() + ": statfs: " + std::strerror(errno) + "; ";
        continue;
      }
      if (st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC) {
        why += base.string() + ": tmpfs or ramfs; ";
        continue;
      }
      const fs::path dir = base / ("agentbus_writeback_" + std::to_string(::getpid()) + "_" +
                                   std::to_string(counter.fetch_add(1)));
      fs::remove_all(dir, ec);
      if (!fs::create_directory(dir, ec) || ec) {
        why += base.string() + ": cannot create a directory; ";
        continue;
      }
      const fs::path probe = dir / "probe";
      std::ofstream(probe) << "probe";
      const int fd = ::open(probe.c_str(), O_RDONLY | O_DIRECT);
      if (fd >= 0) {
        ::close(fd);
        fs::remove(probe, ec);
        path = dir;
        return;
      }
      why += base.string() + ": O_DIRECT: " + std::strerror(errno) + "; ";
      fs::remove_all(dir, ec);
    }
  }
  direct_io_dir(const direct_io_dir&) = delete;
  direct_io_dir& operator=(const direct_io_dir&) = delete;
  ~direct_io_dir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("journal append and read round trip every field", "[journal]") {
  temp_dir dir;
  journal j(dir.options());
  CHECK(j.recovery().clean());
  CHECK(j.next_offset() == 0);
  CHECK(j.first_offset() == 0);

  const std::array<agentbus::header, 2> hs{{{"traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01"}, {"idem", "k1"}}};
  const auto payload = payload_for(99, 1000);
  record_input in;
  in.topic = "tasks.planner.created";
  in.schema = "test.task";
  in.schema_version = 3;
  in.fingerprint = 0xFEEDFACECAFEBEEFull;
  in.published_ns = 1'700'000'000'123'456'789;
  in.event_id = 77;
  in.correlation_id = 88;
  in.source = "planner";
  in.priority = 2;
  in.headers = hs;
  in.payload = payload;
  CHECK(j.append(in) == 0);
  record_input empty;  // every field empty or zero
  CHECK(j.append(empty) == 1);
  CHECK(j.next_offset() == 2);

  auto check_first = [&](const record& r) {
    CHECK(r.offset == 0);
    CHECK(r.topic == in.topic);
    CHECK(r.schema == in.schema);
    CHECK(r.schema_version == 3);
    CHECK(r.fingerprint == in.fingerprint);
    CHECK(r.published_ns == in.published_ns);
    CHECK(r.published() == std::chrono::system_clock::time_point(std::chrono::nanoseconds(in.published_ns)));
    CHECK(r.event_id == 77);
    CHECK(r.correlation_id == 88);
    CHECK(r.source == "planner");
    CHECK(r.priority == 2);
    REQUIRE(r.headers.size() == 2);
    CHECK(r.headers[0].key == "traceparent");
    CHECK(r.headers[0].value == hs[0].value);
    CHECK(r.headers[1].key == "idem");
    CHECK(r.headers[1].value == "k1");
    REQUIRE(r.payload.size() == payload.size());
    CHECK(std::equal(r.payload.begin(), r.payload.end(), payload.begin()));
  };
  auto check_second = [](const record& r) {
    CHECK(r.offset == 1);
    CHECK(r.topic.empty());
    CHECK(r.schema.empty());
    CHECK(r.source.empty());
    CHECK(r.headers.empty());
    CHECK(r.payload.empty());
    CHECK(r.priority == 1);
  };

  auto reader = j.read(0);
  record r;
  REQUIRE(reader.next(r) == read_status::ok);
  check_first(r);
  CHECK(reader.position() == 1);
  REQUIRE(reader.next(r) == read_status::ok);
  check_second(r);
  CHECK(reader.next(r) == read_status::end);
  CHECK(reader.position() == 2);

  // Tailing: the reader sees what is appended after it reached the end.
  CHECK(j.append(in) == 2);
  REQUIRE(reader.next(r) == read_status::ok);
  CHECK(r.offset == 2);

  // From the middle, from beyond the end (clamped), and from another process's point of view.
  auto mid = j.read(1);
  REQUIRE(mid.next(r) == read_status::ok);
  CHECK(r.offset == 1);
  auto beyond = j.read(1000);
  CHECK(beyond.position() == 3);
  CHECK(beyond.next(r) == read_status::end);
  auto outside = agentbus::open_journal_reader(dir.path);
  REQUIRE(outside.next(r) == read_status::ok);
  check_first(r);
  REQUIRE(outside.next(r) == read_status::ok);
  check_second(r);

  const auto st = j.stats();
  CHECK(st.records == 3);
  CHECK(st.segments == 1);
  CHECK(st.first_offset == 0);
  CHECK(st.next_offset == 3);
  CHECK(st.first_time_ns == in.published_ns);
  CHECK(st.last_time_ns == in.published_ns);
  CHECK(st.bytes > 2 * 1000);
}

TEST_CASE("journal offsets are dense across segment rolls and reopening", "[journal]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 4096);
  options.index_interval_bytes = 512;
  std::uint64_t appended = 0;
  for (int session = 0; session < 3; ++session) {
    journal j(options);
    CHECK(j.recovery().clean());
    CHECK(j.recovery().records == appended);
    CHECK(j.next_offset() == appended);
    for (int i = 0; i < 200; ++i, ++appended) REQUIRE(append_numbered(j, appended) == appended);
    CHECK(j.stats().segments > 5);
    auto r = j.read(0);
    CHECK(read_all(r) == iota(0, appended));
    // Seeking to any offset lands exactly there (through the sparse index).
    for (std::uint64_t from : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{37}, appended / 2, appended - 1}) {
      auto s = j.read(from);
      CHECK(read_all(s) == iota(from, appended));
    }
  }
  auto r = agentbus::open_journal_reader(dir.path, 123);
  CHECK(read_all(r) == iota(123, appended));
  CHECK(count_files(dir.path, ".log") == count_files(dir.path, ".idx"));
}

TEST_CASE("journal record bigger than a segment gets a segment of its own", "[journal]") {
  temp_dir dir;
  journal j(dir.options(durability::never(), 4096));
  const auto big = payload_for(1, 20000);
  CHECK(append_numbered(j, 0) == 0);
  CHECK(j.append({.event_id = 1, .payload = big}) == 1);
  CHECK(append_numbered(j, 2) == 2);
  auto r = j.read(0);
  record rec;
  REQUIRE(r.next(rec) == read_status::ok);
  REQUIRE(r.next(rec) == read_status::ok);
  CHECK(rec.payload.size() == big.size());
  CHECK(payload_matches(rec, 1));
  REQUIRE(r.next(rec) == read_status::ok);
  CHECK(rec.offset == 2);
  CHECK(r.next(rec) == read_status::end);
}

TEST_CASE("journal durability never leaves flushing to the OS until sync", "[journal][durability]") {
  temp_dir dir;
  journal j(dir.options(durability::never()));
  for (int i = 0; i < 100; ++i) append_numbered(j, static_cast<std::uint64_t>(i));
  CHECK(j.stats().syncs == 0);
  j.sync();
  CHECK(j.stats().syncs >= 1);
  const auto after = j.stats().syncs;
  j.sync();  // nothing new: nothing to do
  CHECK(j.stats().syncs == after);
}

TEST_CASE("journal durability interval flushes in the background", "[journal][durability][concurrency]") {
  temp_dir dir;
  journal j(dir.options(durability::interval(20ms)));
  append_numbered(j, 0);
  CHECK(j.stats().syncs == 0);  // append did not flush by itself
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (j.stats().syncs == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(j.stats().syncs >= 1);
  // Nothing new: the timer does not flush for nothing.
  std::this_thread::sleep_for(100ms);
  const auto idle = j.stats().syncs;
  std::this_thread::sleep_for(100ms);
  CHECK(j.stats().syncs == idle);
}

TEST_CASE("journal durability every n flushes on the append that completes a batch", "[journal][durability]") {
  temp_dir dir;
  journal j(dir.options(durability::every(4)));
  for (int i = 0; i < 3; ++i) append_numbered(j, static_cast<std::uint64_t>(i));
  CHECK(j.stats().syncs == 0);
  append_numbered(j, 3);  // offset 3 completes the batch 0..3
  CHECK(j.stats().syncs == 1);
  for (int i = 4; i < 8; ++i) append_numbered(j, static_cast<std::uint64_t>(i));
  CHECK(j.stats().syncs == 2);
}

TEST_CASE("journal durability always syncs before append returns", "[journal][durability]") {
  temp_dir dir;
  journal j(dir.options(durability::always()));
  for (int i = 0; i < 20; ++i) {
    append_numbered(j, static_cast<std::uint64_t>(i));
    CHECK(j.stats().syncs == static_cast<std::uint64_t>(i + 1));  // alone: one sync per append
  }
}

TEST_CASE("journal durability always group-commits concurrent appenders", "[journal][durability][concurrency]") {
  temp_dir dir;
  journal j(dir.options(durability::always()));
  constexpr int threads = 8, per_thread = 60;
  std::atomic<int> go{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      go.fetch_add(1);
      while (go.load() < threads) std::this_thread::yield();
      for (int i = 0; i < per_thread; ++i) {
        const auto p = payload_for(static_cast<std::uint64_t>(t * 1000 + i), 64);
        j.append({.topic = "t", .event_id = static_cast<std::uint64_t>(t * 1000 + i), .payload = p});
      }
    });
  for (auto& t : ts) t.join();
  const auto st = j.stats();
  CHECK(st.records == threads * per_thread);
  INFO("syncs " << st.syncs << " for " << threads * per_thread << " appends");
  CHECK(st.syncs < static_cast<std::uint64_t>(threads * per_thread));
  CHECK(st.syncs >= 1);
}

TEST_CASE("journal closes at once, even when it closes while its background thread works", "[journal][concurrency]") {
  // A journal's background thread prepares the next segment as soon as the journal opens. A
  // close that came while it did so used to go unnoticed until the thread's one-second retry
  // timer ran out (or, with durability every/always, until a wake that never came). The
  // cycles below close at a different moment of the thread's start-up each time; a close is
  // slow when it takes half that second (sanitizer builds and a loaded machine stay far below).
  for (const durability d : {durability::never(), durability::always()}) {
    temp_dir dir;
    int slow = 0;
    std::chrono::steady_clock::duration slowest{};
    for (std::uint64_t i = 0; i < 24; ++i) {
      std::optional<journal> j(std::in_place, dir.options(d));
      CHECK(append_numbered(*j, i) == i);
      std::this_thread::sleep_for(std::chrono::microseconds(50 * (i % 12)));
      const auto t0 = std::chrono::steady_clock::now();
      j.reset();
      const auto took = std::chrono::steady_clock::now() - t0;
      slowest = std::max(slowest, took);
      if (took > 500ms) ++slow;
    }
    INFO("slowest close: " << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms");
    CHECK(slow == 0);
  }
}

TEST_CASE("journal refuses a second writer on the same directory", "[journal]") {
  temp_dir dir;
  auto first = std::make_unique<journal>(dir.options());
  append_numbered(*first, 0);
  try {
    journal second(dir.options());
    FAIL("a second writer opened a locked journal");
  } catch (const journal_error& e) {
    CHECK(e.which() == journal_error::code::locked);
    const std::string what = e.what();
    CHECK(what.find(dir.path.string()) != std::string::npos);
    CHECK(what.find("already open by another writer") != std::string::npos);
    CHECK(what.find(std::to_string(::getpid())) != std::string::npos);  // who holds it
    CHECK(what.find("open_journal_reader") != std::string::npos);      // what to do
  }
  // Another process is refused too.
  const pid_t child = ::fork();
  if (child == 0) {
    int code = 3;
    try {
      journal other(dir.options());
      code = 1;
    } catch (const journal_error& e) {
      code = e.which() == journal_error::code::locked ? 0 : 2;
    } catch (...) {
    }
    ::_exit(code);
  }
  REQUIRE(child > 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Readers need no lock.
  auto r = agentbus::open_journal_reader(dir.path);
  CHECK(read_all(r).size() == 1);
  first.reset();  // released on close
  journal again(dir.options());
  CHECK(again.next_offset() == 1);
}

TEST_CASE("journal rejects unusable options and records with clear errors", "[journal]") {
  temp_dir dir;
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const journal_error& e) {
      return e.which();
    }
    return journal_error::code::not_found;  // "no error" stand-in, never expected below
  };
  CHECK(code_of([&] { journal j(journal_options{}); }) == journal_error::code::invalid_options);
  CHECK(code_of([&] { journal j(dir.options(durability::never(), 100)); }) == journal_error::code::invalid_options);
  CHECK(code_of([&] { journal j(dir.options(durability::interval(0ms))); }) == journal_error::code::invalid_options);
  CHECK(code_of([&] { journal j(dir.options(durability::every(0))); }) == journal_error::code::invalid_options);
  CHECK(code_of([&] { (void)agentbus::open_journal_reader(dir.path / "nowhere"); }) == journal_error::code::not_found);
  try {
    journal j(dir.options(durability::never(), 100));
  } catch (const journal_error& e) {
    CHECK(std::string(e.what()).find("segment_bytes") != std::string::npos);
  }
  journal j(dir.options());
  const std::string huge_topic(70000, 't');
  CHECK(code_of([&] { j.append({.topic = huge_topic}); }) == journal_error::code::invalid_argument);
  CHECK(j.next_offset() == 0);  // nothing was stored
  // A file where the directory should be.
  const fs::path file = dir.path / "plain-file";
  { std::ofstream(file) << "x"; }
  auto o = dir.options();
  o.directory = file;
  CHECK_THROWS_AS(journal(o), journal_error);
}

TEST_CASE("journal retention by bytes deletes the oldest sealed segments", "[journal][retention]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 4096);
  options.retention.max_bytes = 4 * 4096;
  journal j(options);
  auto early = j.read(0);  // will be left behind
  for (std::uint64_t i = 0; i < 600; ++i) REQUIRE(append_numbered(j, i) == i);
  const auto st = j.stats();
  CHECK(st.first_offset > 0);
  CHECK(st.next_offset == 600);
  CHECK(st.records == 600 - st.first_offset);
  CHECK(st.bytes <= options.retention.max_bytes + 4096);  // the active segment fills up past it until it rolls
  CHECK(st.segments <= 5);
  CHECK(count_files(dir.path, ".log") == st.segments);
  CHECK(count_files(dir.path, ".idx") == st.segments);
  // What is left is whole and dense.
  auto r = j.read(j.first_offset());
  CHECK(read_all(r) == iota(j.first_offset(), 600));
  // A reader positioned in a deleted segment is told, then continues at the oldest record.
  record rec;
  CHECK(early.next(rec) == read_status::truncated_by_retention);
  CHECK(early.position() == j.first_offset());
  CHECK(std::string(early.error()).find("retention") != std::string::npos);
  REQUIRE(early.next(rec) == read_status::ok);
  CHECK(rec.offset == j.first_offset());
  // So is a reader asked for a deleted offset, in this process or another.
  auto asked = j.read(0);
  CHECK(asked.next(rec) == read_status::truncated_by_retention);
  REQUIRE(asked.next(rec) == read_status::ok);
  CHECK(rec.offset == j.first_offset());
  auto outside = agentbus::open_journal_reader(dir.path, 0);
  CHECK(outside.next(rec) == read_status::truncated_by_retention);
  REQUIRE(outside.next(rec) == read_status::ok);
  CHECK(rec.offset == j.first_offset());
}

TEST_CASE("journal retention by age deletes segments whose newest record is too old", "[journal][retention]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 4096);
  options.retention.max_age = std::chrono::hours(1);
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::int64_t old_ns = now_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(3h).count();
  {
    // Written without retention, so that the old segments are all still there when reopened.
    journal j(dir.options(durability::never(), 4096));
    for (std::uint64_t n = 0; n < 100; ++n) append_numbered(j, n, old_ns);
    for (std::uint64_t n = 100; n < 200; ++n) append_numbered(j, n, now_ns);
    CHECK(j.first_offset() == 0);
  }
  {
    journal j(options);
    CHECK(j.first_offset() == 0);
    j.apply_retention();
    // Every segment holding only old records is gone; the one where old meets new stays.
    CHECK(j.first_offset() > 0);
    CHECK(j.first_offset() <= 100);
    auto r = j.read(0);
    record rec;
    CHECK(r.next(rec) == read_status::truncated_by_retention);
    std::vector<std::uint64_t> rest;
    while (r.next(rec) == read_status::ok) rest.push_back(rec.offset);
    CHECK(rest == iota(j.first_offset(), 200));
  }
  // Rolls apply it too: old records are deleted as their segments are sealed.
  temp_dir other;
  options.directory = other.path;
  journal j(options);
  for (std::uint64_t n = 0; n < 150; ++n) append_numbered(j, n, old_ns);
  CHECK(j.first_offset() > 0);
  CHECK(j.stats().segments == 1);  // all sealed segments held only old records
}

TEST_CASE("journal read_since finds the first record published at or after a time", "[journal][index]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 8192);
  options.index_interval_bytes = 256;
  journal j(options);
  const std::int64_t base = 1'000'000'000;
  for (std::uint64_t i = 0; i < 1000; ++i) append_numbered(j, i, base);  // record i at base + i ms
  auto at = [&](std::int64_t ns) {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
  };
  record rec;
  for (std::uint64_t i : {0, 1, 2, 250, 499, 500, 777, 999}) {
    INFO("record " << i);
    auto r = j.read_since(at(base + static_cast<std::int64_t>(i) * 1'000'000));
    REQUIRE(r.next(rec) == read_status::ok);
    CHECK(rec.offset == i);
    auto r2 = j.read_since(at(base + static_cast<std::int64_t>(i) * 1'000'000 - 1));  // just before
    REQUIRE(r2.next(rec) == read_status::ok);
    CHECK(rec.offset == i);
    // The same from the directory (another process's view: no writer catalog).
    auto d = agentbus::open_journal_reader_since(dir.path, at(base + static_cast<std::int64_t>(i) * 1'000'000));
    // It starts in the segment holding record i (8 KiB segments hold a few dozen records),
    // not at the beginning: whole segments were skipped.
    CHECK(d.position() <= i);
    CHECK(i - d.position() < 100);
    REQUIRE(d.next(rec) == read_status::ok);
    CHECK(rec.offset == i);
  }
  auto before = j.read_since(at(0));
  REQUIRE(before.next(rec) == read_status::ok);
  CHECK(rec.offset == 0);
  auto dir_before = agentbus::open_journal_reader_since(dir.path, at(0));
  REQUIRE(dir_before.next(rec) == read_status::ok);
  CHECK(rec.offset == 0);
  auto after = j.read_since(at(base + 1000 * 1'000'000));
  auto dir_after = agentbus::open_journal_reader_since(dir.path, at(base + 1000 * 1'000'000));
  CHECK(after.next(rec) == read_status::end);
  CHECK(dir_after.next(rec) == read_status::end);
  append_numbered(j, 1000, base);
  REQUIRE(after.next(rec) == read_status::ok);  // it waits at the end like any reader
  CHECK(rec.offset == 1000);
  REQUIRE(dir_after.next(rec) == read_status::ok);
  CHECK(rec.offset == 1000);
  // The rest of the journal follows the first match, whatever its times.
  auto all = j.read_since(at(base + 990 * 1'000'000));
  std::vector<std::uint64_t> seen;
  while (all.next(rec) == read_status::ok) seen.push_back(rec.offset);
  CHECK(seen == iota(990, 1001));
}

TEST_CASE("journal read_since copes with publish times out of order", "[journal][index]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 4096);
  options.index_interval_bytes = 128;
  journal j(options);
  // Times zig-zag: 0, 100, 1, 101, 2, 102, ... (in ms); offsets stay in append order.
  std::vector<std::int64_t> times;
  for (std::uint64_t i = 0; i < 400; ++i) {
    const std::int64_t t = static_cast<std::int64_t>((i % 2 == 0) ? i / 2 : 100 + i / 2) * 1'000'000;
    times.push_back(t);
    const auto p = payload_for(i, 40);
    j.append({.topic = "z", .published_ns = t, .event_id = i, .payload = p});
  }
  record rec;
  for (std::int64_t t_ms : {0, 1, 50, 100, 150, 250, 299, 300}) {
    const std::int64_t t = t_ms * 1'000'000;
    std::uint64_t expect = 400;
    for (std::uint64_t i = 0; i < 400; ++i)
      if (times[i] >= t) {
        expect = i;
        break;
      }
    const std::chrono::system_clock::time_point since{std::chrono::milliseconds(t_ms)};
    INFO("t = " << t_ms << " ms");
    for (bool from_directory : {false, true}) {
      INFO("from the directory: " << from_directory);
      auto r = from_directory ? agentbus::open_journal_reader_since(dir.path, since) : j.read_since(since);
      if (expect == 400) {
        CHECK(r.next(rec) == read_status::end);
      } else {
        REQUIRE(r.next(rec) == read_status::ok);
        CHECK(rec.offset == expect);
      }
    }
  }
}

TEST_CASE("journal concurrent appenders and a tailing reader", "[journal][concurrency]") {
  // Under each durability whose flushes run while the reader follows: a flush drops the
  // writer's page-table entries of the pages behind it, which the in-process reader shares.
  const durability d = GENERATE(durability::never(), durability::interval(1ms), durability::every(50));
  CAPTURE(static_cast<int>(d.kind));
  temp_dir dir;
  auto options = dir.options(d, 64 * 1024);
  options.index_interval_bytes = 1024;
  journal j(options);
  constexpr int writers = 4;
  constexpr std::uint64_t per_writer = 3000;
  constexpr std::uint64_t total = writers * per_writer;
  std::atomic<bool> failed{false};

  // The reader follows the writers as they go, in this process and from the directory.
  auto tail = [&](agentbus::journal_reader r, std::vector<std::uint64_t>& keys) {
    record rec;
    std::uint64_t expect = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (expect < total && std::chrono::steady_clock::now() < deadline && !failed) {
      const read_status s = r.next(rec);
      if (s == read_status::end) {
        std::this_thread::yield();
        continue;
      }
      if (s != read_status::ok || rec.offset != expect || !payload_matches(rec, rec.event_id) ||
          rec.payload.size() != size_for(rec.event_id)) {
        failed = true;
        break;
      }
      keys.push_back(rec.event_id);
      ++expect;
    }
  };
  std::vector<std::uint64_t> inside_keys, outside_keys;
  std::thread inside(tail, j.read(0), std::ref(inside_keys));
  std::thread outside(tail, agentbus::open_journal_reader(dir.path), std::ref(outside_keys));
  std::vector<std::thread> ts;
  std::vector<std::vector<std::uint64_t>> offsets(writers);
  for (int w = 0; w < writers; ++w)
    ts.emplace_back([&, w] {
      for (std::uint64_t i = 0; i < per_writer; ++i) {
        const std::uint64_t key = static_cast<std::uint64_t>(w) * per_writer + i;
        const auto p = payload_for(key, size_for(key));
        offsets[static_cast<std::size_t>(w)].push_back(
            j.append({.topic = "concurrent", .event_id = key, .payload = p}));
      }
    });
  for (auto& t : ts) t.join();
  inside.join();
  outside.join();
  REQUIRE_FALSE(failed.load());
  CHECK(j.next_offset() == total);
  // Each writer's offsets increase; all of them together are 0..total-1 exactly once.
  std::set<std::uint64_t> all;
  for (const auto& v : offsets) {
    CHECK(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  CHECK(all.size() == total);
  CHECK(*all.rbegin() == total - 1);
  // Both readers saw every record once, in offset order.
  for (auto* keys : {&inside_keys, &outside_keys}) {
    REQUIRE(keys->size() == total);
    std::set<std::uint64_t> distinct(keys->begin(), keys->end());
    CHECK(distinct.size() == total);
  }
  CHECK(inside_keys == outside_keys);
}

TEST_CASE("journal pages dropped from the writer's mapping still reach the files", "[journal][durability]") {
  // Flushes and retiring segments drop the writer's page-table entries of written pages (so
  // that their write-back needs no TLB shootdowns); the pages must stay dirty in the page
  // cache. After sync, each segment file read with O_DIRECT (from the disk, past the page
  // cache, after the kernel has written back the pages it knows are dirty) must hold what a
  // buffered read sees: a written page that lost its dirty state would differ. The journal is
  // written where O_DIRECT works (direct_io_dir); where it works nowhere the test warns and
  // compares nothing, or fails when AGENTBUS_REQUIRE_O_DIRECT=1 (as CI sets it).
  const durability d = GENERATE(durability::interval(1ms), durability::every(64), durability::always());
  CAPTURE(static_cast<int>(d.kind));
  const direct_io_dir dir;
  if (dir.path.empty()) {
    const char* require = std::getenv("AGENTBUS_REQUIRE_O_DIRECT");
    if (require != nullptr && std::string_view(require) == "1")
      FAIL("O_DIRECT is supported in none of the candidate directories (" << dir.why
                                                                          << "), and AGENTBUS_REQUIRE_O_DIRECT=1");
    WARN("O_DIRECT is supported in none of the candidate directories (" << dir.why
                                                                        << "): file contents not compared");
    return;  // Catch2 v2 has no SKIP
  }
  INFO("journal in " << dir.path.string());
  auto options = [&](durability dd, std::uint64_t segment_bytes = 1 << 20) {
    journal_options o;
    o.directory = dir.path;
    o.durability = dd;
    o.segment_bytes = segment_bytes;
    return o;
  };
  constexpr std::uint64_t count = 3000;  // several 64 KiB segments
  {
    journal j(options(d, 64 * 1024));
    for (std::uint64_t i = 0; i < count; ++i) append_numbered(j, i);
    j.sync();
  }
  std::size_t compared = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    if (e.path().extension() != ".log") continue;
    const auto size = static_cast<std::size_t>(fs::file_size(e.path()));
    std::vector<char> buffered(size);
    {
      std::ifstream in(e.path(), std::ios::binary);
      in.read(buffered.data(), static_cast<std::streamsize>(size));
      REQUIRE(in.gcount() == static_cast<std::streamsize>(size));
    }
    const int fd = ::open(e.path().c_str(), O_RDONLY | O_DIRECT);
    INFO("O_DIRECT open: " << (fd < 0 ? std::strerror(errno) : "ok"));
    REQUIRE(fd >= 0);  // it worked on the probe file in the same directory
    constexpr std::size_t block = 4096;
    const std::size_t aligned = (size + block - 1) / block * block;
    void* raw = nullptr;
    REQUIRE(::posix_memalign(&raw, block, aligned) == 0);
    std::unique_ptr<char, decltype(&std::free)> direct(static_cast<char*>(raw), &std::free);
    std::size_t got = 0;
    while (got < size) {
      const ssize_t n = ::pread(fd, direct.get() + got, aligned - got, static_cast<off_t>(got));
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    REQUIRE(got >= size);
    INFO(e.path().filename().string());
    CHECK(std::memcmp(direct.get(), buffered.data(), size) == 0);
    ++compared;
  }
  CHECK(compared >= 3);
  journal j(options(durability::never()));
  auto r = j.read(0);
  CHECK(read_all(r) == iota(0, count));
}

TEST_CASE("journal readers outlive the writer and readers are movable", "[journal]") {
  temp_dir dir;
  agentbus::journal_reader kept;
  {
    journal j(dir.options());
    for (std::uint64_t i = 0; i < 10; ++i) append_numbered(j, i);
    kept = j.read(3);
  }
  agentbus::journal_reader moved = std::move(kept);
  record rec;
  CHECK(kept.next(rec) == read_status::end);  // a moved-from reader reads nothing
  CHECK(read_all(moved) == iota(3, 10));
}

TEST_CASE("journal readers in several threads share sealed segments", "[journal][concurrency]") {
  temp_dir dir;
  auto options = dir.options(durability::never(), 4096);
  options.index_interval_bytes = 256;
  journal j(options);
  for (std::uint64_t i = 0; i < 400; ++i) append_numbered(j, i);
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        auto r = j.read(static_cast<std::uint64_t>(t * 37 + round));
        record rec;
        std::uint64_t expect = static_cast<std::uint64_t>(t * 37 + round);
        while (r.next(rec) == read_status::ok) {
          if (rec.offset != expect++ || !payload_matches(rec, rec.offset)) ++bad;
        }
        if (expect < 400) ++bad;
      }
    });
  // Meanwhile the writer goes on (rolls, new sealed segments).
  for (std::uint64_t i = 400; i < 800; ++i) append_numbered(j, i);
  for (auto& t : readers) t.join();
  CHECK(bad.load() == 0);
}

// Journal files are not readable by every local user (issue 12, bug 9): owner-only by default
// (files 0600, the directory 0700), group-readable with file_mode = 0640 (0750), whatever the
// umask lets through; every file the writer creates (segments and indexes, rolled and
// prepared ones, the lock file) gets the mode; an existing directory keeps its own.
TEST_CASE("journal files and directory get journal_options::file_mode", "[journal][permissions]") {
  const mode_t old_umask = ::umask(022);
  struct restore_umask {
    mode_t m;
    ~restore_umask() { ::umask(m); }
  } restore{old_umask};
  temp_dir dir;
  auto mode_of = [](const fs::path& p) {
    struct stat st{};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode & 07777);
  };
  struct variant {
    std::uint32_t file_mode;  // 0: the default
    unsigned file, directory;
  };
  const variant v = GENERATE(variant{0, 0600, 0700}, variant{0600, 0600, 0700}, variant{0640, 0640, 0750},
                             variant{0644, 0644, 0755});
  CAPTURE(v.file_mode);
  const fs::path jdir = dir.path / "nested" / "journal";
  auto options = dir.options(durability::never(), 4096);
  options.directory = jdir;
  if (v.file_mode != 0) options.file_mode = v.file_mode;
  {
    journal j(options);
    for (std::uint64_t i = 0; i < 200; ++i) append_numbered(j, i);  // several rolls
    REQUIRE(j.stats().segments >= 3);
    CHECK(mode_of(jdir) == v.directory);
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(jdir)) {
      INFO(e.path().filename().string());
      CHECK(mode_of(e.path()) == v.file);
      ++files;
    }
    CHECK(files >= 7);  // the lock, three segments and their indexes at least
    CHECK(fs::exists(jdir / agentbus::detail::journal_lock_file_name));
  }
  // Recovery recreating a lost index file gives it the mode too.
  fs::remove(jdir / agentbus::detail::segment_file_name(0, ".idx"));
  {
    journal j(options);
    CHECK(mode_of(jdir / agentbus::detail::segment_file_name(0, ".idx")) == v.file);
  }
  // A directory that exists keeps its mode (the files in it still get file_mode).
  const fs::path existing = dir.path / "existing";
  fs::create_directories(existing);
  ::chmod(existing.c_str(), 0711);
  options.directory = existing;
  {
    journal j(options);
    append_numbered(j, 0);
  }
  CHECK(mode_of(existing) == 0711);
  CHECK(mode_of(existing / agentbus::detail::segment_file_name(0, ".log")) == v.file);
}

TEST_CASE("journal rejects a file_mode the owner cannot read and write or with other bits", "[journal][permissions]") {
  temp_dir dir;
  const std::uint32_t bad = GENERATE(0400u, 0200u, 0700u, 0640u | 01u, 04600u, 0u);
  CAPTURE(bad);
  auto options = dir.options();
  options.file_mode = bad;
  try {
    journal j(options);
    FAIL("opened with file_mode " << bad);
  } catch (const journal_error& e) {
    CHECK(e.which() == journal_error::code::invalid_options);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("file_mode"));
  }
  CHECK_FALSE(fs::exists(dir.path));  // nothing created
}
