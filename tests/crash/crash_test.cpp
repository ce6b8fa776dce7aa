// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
//
// journal_crash_test: kill -9 a journal writer at random moments and check that every record
// it acknowledged is there, intact, after recovery.
//
// The parent runs N cycles. Each cycle forks and execs this program as a child, which opens
// the journal with durability::always and appends from several threads; after each append
// returns, the thread writes {offset, key} to a pipe (the acknowledgement). The payload of a
// record is derived from its key (thread, sequence), and its size varies up to 4 KiB so that
// kills land in the middle of copies too. After a random delay (0-30 ms by default) the
// parent sends SIGKILL, reads every acknowledgement, reopens the journal as the writer (so
// recovery runs) and checks:
//   - every acknowledged offset is below next_offset and reads back as that record, intact;
//   - reading everything written since the previous cycle returns no corrupt record and
//     dense offsets;
//   - the offsets continue where the last cycle's left off.
// The delay counts from the exec on even cycles (so kills also hit the child while it is still
// recovering) and from the child's first acknowledgement on odd ones: those cycles must see at
// least --min-acks-per-cycle acknowledgements (default 1), and the child has --ack-timeout-ms
// (default 2000) to make its first; after 3 such timeouts the run stops. Over the whole run at
// least --min-acks acknowledged records (default: 2 per cycle) must have been checked, so a
// runner too slow to append before the kill fails instead of passing without testing. Torn
// tails (cycles where recovery cut something) are counted and reported; --min-torn-tails
// (default 0) can require some.
// One line per cycle and a summary; the exit status is non-zero if any cycle failed or a
// minimum was not met.
//
// Usage: journal_crash_test [--cycles N] [--dir DIR] [--seed S] [--threads T] [--max-delay-ms M]
//                           [--durability always|never] [--min-acks N] [--min-acks-per-cycle N]
//                           [--ack-timeout-ms M] [--min-torn-tails N]
//        (the child is this program run with --child DIR --ack-fd FD ...)

#include <agentbus/journal/journal.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct settings {
  int cycles = 50;
  fs::path dir;
  std::uint64_t seed = 0;
  int threads = 4;
  int max_delay_ms = 30;
  std::string durability = "always";  // always | never (never: many more records, more torn tails)
  long long min_acks = -1;            // over the run; -1: 2 per cycle
  int min_acks_per_cycle = 1;         // on the cycles whose delay counts from the first ack
  int ack_timeout_ms = 2000;          // for the child's first acknowledgement on those cycles
  long long min_torn_tails = 0;       // cycles in which recovery cut a torn tail
  // child mode
  bool child = false;
  int ack_fd = -1;
};

agentbus::journal_options options_for(const fs::path& dir, const std::string& durability = "always") {
  agentbus::journal_options o;
  o.directory = dir;
  // Either way a killed process loses nothing it acknowledged: appended records are in the
  // page cache. `never` appends far more records per cycle, so kills land mid-copy more often.
  o.durability = durability == "never" ? agentbus::durability::never() : agentbus::durability::always();
  o.segment_bytes = 1 << 20;  // rolls happen during the run
  o.retention.max_bytes = 64ull << 20;
  o.index_interval_bytes = 1024;
  return o;
}

// Payload of the record with `key`: size and bytes derived from the key.
std::size_t payload_size(std::uint64_t key) { return static_cast<std::size_t>((key * 2654435761u) % 4096); }
void fill_payload(std::uint64_t key, std::vector<std::byte>& p) {
  p.resize(payload_size(key));
  std::uint64_t x = key * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : p) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x & 0xFF);
  }
}

// ---------------------------------------------------------------------------------- child

[[noreturn]] void run_child(const settings& s) {
  try {
    agentbus::journal j(options_for(s.dir, s.durability));
    std::vector<std::thread> threads;
    const std::uint64_t run = static_cast<std::uint64_t>(::getpid()) << 32;
    for (int t = 0; t < s.threads; ++t)
      threads.emplace_back([&, t] {
        std::vector<std::byte> payload;
        const std::string topic = "crash.thread." + std::to_string(t);
        for (std::uint64_t seq = 0;; ++seq) {
          const std::uint64_t key = run | (static_cast<std::uint64_t>(t) << 24) | seq;
          fill_payload(key, payload);
          agentbus::record_input in;
          in.topic = topic;
          in.event_id = key;
          in.published_ns = static_cast<std::int64_t>(seq);
          in.payload = payload;
          const std::uint64_t offset = j.append(in);
          const std::uint64_t ack[2] = {offset, key};  // 16 bytes: one atomic pipe write
          if (::write(s.ack_fd, ack, sizeof ack) != static_cast<ssize_t>(sizeof ack)) std::_Exit(3);
        }
      });
    for (auto& t : threads) t.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    std::_Exit(2);
  }
  std::_Exit(0);
}

// --------------------------------------------------------------------------------- parent

struct cycle_result {
  bool ok = true;
  std::string why;
  std::uint64_t acknowledged = 0;     // acknowledged records found intact
  std::uint64_t torn_records = 0;     // recovery's truncated_records
  std::uint64_t torn_bytes = 0;       // recovery's truncated_bytes
};

cycle_result check(const fs::path& dir, const std::vector<std::uint64_t>& acks, std::uint64_t& next_expected,
                   std::string& summary) {
  cycle_result r;
  auto fail = [&](std::string why) {
    if (r.ok) r.why = std::move(why);
    r.ok = false;
  };
  agentbus::journal j(options_for(dir));  // recovery runs here
  const auto& rep = j.recovery();
  const std::uint64_t next = j.next_offset();
  if (next < next_expected)
    fail("next_offset " + std::to_string(next) + " is below the previous cycle's " + std::to_string(next_expected));

  // Every acknowledged record is there and intact.
  std::unordered_map<std::uint64_t, std::uint64_t> key_of;  // offset -> key
  std::uint64_t max_ack = 0;
  for (std::size_t i = 0; i + 1 < acks.size(); i += 2) {
    key_of[acks[i]] = acks[i + 1];
    max_ack = std::max(max_ack, acks[i]);
    if (acks[i] >= next)
      fail("acknowledged offset " + std::to_string(acks[i]) + " is beyond next_offset " + std::to_string(next));
  }
  // Everything since the previous cycle: no corrupt record, dense offsets, acknowledged ones intact.
  const std::uint64_t from = std::max(next_expected, j.first_offset());
  auto reader = j.read(from);
  agentbus::record rec;
  std::uint64_t expect = from, present = 0, checked = 0;
  std::vector<std::byte> payload;
  for (;;) {
    const auto st = reader.next(rec);
    if (st == agentbus::read_status::end) break;
    if (st != agentbus::read_status::ok) {
      fail("reader returned " + std::string(st == agentbus::read_status::corrupt ? "corrupt" : "truncated") + ": " +
           std::string(reader.error()));
      break;
    }
    if (rec.offset != expect) fail("offset " + std::to_string(rec.offset) + " where " + std::to_string(expect) + " was expected");
    expect = rec.offset + 1;
    ++present;
    fill_payload(rec.event_id, payload);
    if (rec.payload.size() != payload.size() || !std::equal(payload.begin(), payload.end(), rec.payload.begin()))
      fail("record " + std::to_string(rec.offset) + ": payload does not match its key");
    if (auto it = key_of.find(rec.offset); it != key_of.end()) {
      if (it->second != rec.event_id) fail("record " + std::to_string(rec.offset) + " is not the acknowledged one");
      ++checked;
    }
  }
  if (expect != next) fail("read up to " + std::to_string(expect) + ", next_offset is " + std::to_string(next));
  for (const auto& [offset, key] : key_of)
    if (offset < from) fail("acknowledged offset " + std::to_string(offset) + " is older than this cycle");
  if (checked != key_of.size())
    fail(std::to_string(key_of.size() - checked) + " acknowledged records were not found");
  // What recovery says: only a torn tail can be cut, and problems would mean damage.
  if (!rep.problems.empty()) fail("recovery problems: " + rep.problems.front());

  r.acknowledged = checked;
  r.torn_records = rep.truncated_records;
  r.torn_bytes = rep.truncated_bytes;
  summary = std::to_string(key_of.size()) + " acknowledged, " + std::to_string(present) + " new records present, " +
            "recovery cut " + std::to_string(rep.truncated_records) + " torn record(s) / " +
            std::to_string(rep.truncated_bytes) + " bytes, next offset " + std::to_string(next);
  next_expected = next;
  return r;
}

int run_parent(settings s) {
  bool own_dir = false;
  if (s.dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "agentbus_crash_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 2;
    }
    s.dir = tmpl;
    own_dir = true;
  }
  if (s.seed == 0) s.seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  if (s.min_acks < 0) s.min_acks = 2LL * s.cycles;
  std::printf("journal crash test: %d cycles, %d threads, durability %s, kill after 0-%d ms, seed %llu, dir %s\n"
              "  requires %lld acknowledged records over the run, %d per cycle timed from the first one, "
              "%lld torn tail(s)\n",
              s.cycles, s.threads, s.durability.c_str(), s.max_delay_ms, static_cast<unsigned long long>(s.seed),
              s.dir.c_str(), s.min_acks, s.min_acks_per_cycle, s.min_torn_tails);
  std::fflush(stdout);
  std::mt19937_64 rng(s.seed);
  std::uint64_t next_expected = 0;
  int failures = 0, cycles_run = 0, ack_timeouts = 0, no_ack_cycles = 0;
  std::uint64_t total_acks = 0, torn_tails = 0, torn_records = 0, torn_bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int cycle = 0; cycle < s.cycles; ++cycle) {
    ++cycles_run;
    // Odd cycles time the kill from the first acknowledgement (the child has recovered and
    // appends); even ones from the start, so that kills also land in recovery.
    const bool from_first_ack = cycle % 2 == 1;
    int fds[2];
    if (::pipe(fds) != 0) {
      std::perror("pipe");
      return 2;
    }
    ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) {
      ::close(fds[0]);
      const std::string fd = std::to_string(fds[1]), threads = std::to_string(s.threads);
      ::execl("/proc/self/exe", "journal_crash_test", "--child", s.dir.c_str(), "--ack-fd", fd.c_str(), "--threads",
              threads.c_str(), "--durability", s.durability.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ::close(fds[1]);
    const int delay_us = static_cast<int>(rng() % (static_cast<std::uint64_t>(s.max_delay_ms) * 1000 + 1));
    // Read acknowledgements while waiting, so that the pipe never fills up and blocks the child.
    std::vector<std::uint64_t> acks;
    std::vector<char> pending;
    auto drain = [&](bool block) {
      char buf[65536];
      for (;;) {
        if (!block) {
          ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
        } else {
          ::fcntl(fds[0], F_SETFL, 0);
        }
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) return;
        pending.insert(pending.end(), buf, buf + n);
        const std::size_t whole = pending.size() / 8 * 8;
        for (std::size_t i = 0; i < whole; i += 8) {
          std::uint64_t v;
          std::memcpy(&v, pending.data() + i, 8);
          acks.push_back(v);
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(whole));
      }
    };
    bool ack_timed_out = false;
    if (from_first_ack) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(s.ack_timeout_ms);
      while (acks.empty() && std::chrono::steady_clock::now() < give_up) {
        drain(false);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      ack_timed_out = acks.empty();
    }
    const auto kill_at = std::chrono::steady_clock::now() + std::chrono::microseconds(ack_timed_out ? 0 : delay_us);
    while (std::chrono::steady_clock::now() < kill_at) {
      drain(false);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    drain(true);  // the rest, up to EOF
    ::close(fds[0]);
    if (acks.size() % 2 != 0) acks.pop_back();  // cannot happen: pipe writes of 16 bytes are atomic

    std::string summary;
    cycle_result r;
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    try {
      r = check(s.dir, acks, next_expected, summary);
    } catch (const std::exception& e) {
      r.ok = false;
      r.why = std::string("reopening failed: ") + e.what();
    }
    if (!killed && r.ok) {
      r.ok = false;
      r.why = "the child exited by itself (status " + std::to_string(status) + ")";
    }
    if (r.ok && ack_timed_out) {
      r.ok = false;
      r.why = "no acknowledgement within " + std::to_string(s.ack_timeout_ms) + " ms";
    } else if (r.ok && from_first_ack && r.acknowledged < static_cast<std::uint64_t>(s.min_acks_per_cycle)) {
      r.ok = false;
      r.why = std::to_string(r.acknowledged) + " acknowledged record(s) checked, " +
              std::to_string(s.min_acks_per_cycle) + " required: " + summary;
    }
    total_acks += r.acknowledged;
    if (r.acknowledged == 0) ++no_ack_cycles;
    if (r.torn_records != 0 || r.torn_bytes != 0) ++torn_tails;
    torn_records += r.torn_records;
    torn_bytes += r.torn_bytes;
    std::printf("cycle %4d: killed %5.1f ms after %s: %s%s\n", cycle, delay_us / 1000.0,
                from_first_ack ? "the first ack" : "the start", r.ok ? "ok, " : "FAILED: ",
                r.ok ? summary.c_str() : r.why.c_str());
    std::fflush(stdout);
    if (!r.ok) ++failures;
    if (ack_timed_out && ++ack_timeouts >= 3) {
      std::printf("journal crash test: stopping: %d cycles without an acknowledgement in time\n", ack_timeouts);
      break;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool ok = failures == 0 && cycles_run == s.cycles;
  std::printf("journal crash test: %llu acknowledged records checked (%lld required), %d cycle(s) without any; "
              "torn tails cut in %llu cycle(s) (%llu records, %llu bytes; %lld required)\n",
              static_cast<unsigned long long>(total_acks), s.min_acks, no_ack_cycles,
              static_cast<unsigned long long>(torn_tails), static_cast<unsigned long long>(torn_records),
              static_cast<unsigned long long>(torn_bytes), s.min_torn_tails);
  if (total_acks < static_cast<std::uint64_t>(s.min_acks)) {
    std::printf("journal crash test: FAILED: too few acknowledged records to have tested anything\n");
    ok = false;
  }
  if (torn_tails < static_cast<std::uint64_t>(s.min_torn_tails)) {
    std::printf("journal crash test: FAILED: too few torn tails\n");
    ok = false;
  }
  std::printf("journal crash test: %d of %d cycles failed, %.1f s%s\n", failures, cycles_run, secs,
              !ok ? (" (journal kept in " + s.dir.string() + ")").c_str() : "");
  if (own_dir && ok) {
    std::error_code ec;
    fs::remove_all(s.dir, ec);
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cycles") s.cycles = std::atoi(value().c_str());
    else if (a == "--dir") s.dir = value();
    else if (a == "--seed") s.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--threads") s.threads = std::max(1, std::atoi(value().c_str()));
    else if (a == "--max-delay-ms") s.max_delay_ms = std::max(0, std::atoi(value().c_str()));
    else if (a == "--durability") {
      s.durability = value();
      if (s.durability != "always" && s.durability != "never") {
        std::fprintf(stderr, "--durability: always or never\n");
        return 2;
      }
    }
    else if (a == "--child") {
      s.child = true;
      s.dir = value();
    } else if (a == "--ack-fd") s.ack_fd = std::atoi(value().c_str());
    else if (a == "--min-acks") s.min_acks = std::max(0LL, std::atoll(value().c_str()));
    else if (a == "--min-acks-per-cycle") s.min_acks_per_cycle = std::max(0, std::atoi(value().c_str()));
    else if (a == "--ack-timeout-ms") s.ack_timeout_ms = std::max(1, std::atoi(value().c_str()));
    else if (a == "--min-torn-tails") s.min_torn_tails = std::max(0LL, std::atoll(value().c_str()));
    else {
      std::fprintf(stderr,
                   "usage: journal_crash_test [--cycles N] [--dir DIR] [--seed S] [--threads T] [--max-delay-ms M]\n"
                   "                          [--durability always|never] [--min-acks N] [--min-acks-per-cycle N]\n"
                   "                          [--ack-timeout-ms M] [--min-torn-tails N]\n");
      return 2;
    }
  }
  if (s.child) run_child(s);
  return run_parent(s);
}
