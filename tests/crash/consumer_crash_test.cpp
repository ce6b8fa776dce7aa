// SPDX-License-Identifier: MIT
// Durable consumer cursors across SIGKILL: a child consumes a prefilled journal (acking most
// events, nacking some, in small batches so that the cursor is rewritten often) and is killed at
// a random moment; the parent then checks the stored cursor:
//   - it is never damaged (the replace is atomic);
//   - it never moves past an event whose handler had not run: every offset below its floor,
//     and every one it lists as settled, was reported by a child's handler before the kill;
// and after the last cycle a consumer in this process finishes the work: every event handled
// at least once; the duplicates (handled again after a kill) are counted in the summary.
//
// Usage: consumer_crash_test [--cycles N] [--events N]
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/durable.hpp>
#include <agentbus/storage/journal.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

struct work {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "crash.work";
  std::uint64_t n = 0;
};
using journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

agentbus::journal_options journal_at(const std::filesystem::path& dir) {
  agentbus::journal_options o;
  o.directory = dir;
  o.durability = agentbus::durability::never();  // the page cache survives SIGKILL
  return o;
}

agentbus::consumer_options consumer_settings() {
  agentbus::consumer_options o;
  o.ack_wait = std::chrono::hours(1);
  o.max_deliver = 0;  // never dead-letter here: every event must be handled
  o.backoff = {
      .initial = std::chrono::nanoseconds(0), .multiplier = 1.0, .max = std::chrono::nanoseconds(0), .jitter = 0};
  return o;
}

[[noreturn]] void child(const std::filesystem::path& dir, int out) {
  journal_bus bus(journal_at(dir));
  agentbus::durable_consumer<work> c(bus, "crash", "work.>", consumer_settings());
  std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()));
  const char ready = 'r';
  if (::write(out, &ready, 1) != 1) std::_Exit(3);
  for (;;) {
    c.poll(
        [&](const agentbus::delivered<work>& d) -> agentbus::outcome {
          if (rng() % 20 == 0) return agentbus::outcome::nack("crash test: try again");  // attempts > 1 get stored
          const std::uint64_t offset = d.offset();
          // Reported before the ack: the parent may see handled events that were not acked, never the reverse.
          if (::write(out, &offset, sizeof offset) != sizeof offset) std::_Exit(3);
          return agentbus::outcome::ack();
        },
        1 + rng() % 8);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int cycles = 40;
  std::uint64_t events = 200000;  // more than the cycles get through: every kill lands mid-work
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--cycles")
      cycles = std::atoi(argv[i + 1]);
    else if (a == "--events")
      events = std::strtoull(argv[i + 1], nullptr, 10);
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("agentbus_consumer_crash_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    journal_bus bus(journal_at(dir));
    for (std::uint64_t i = 0; i < events; ++i) bus.publish("work.x", work{i});
  }
  std::set<std::uint64_t> handled;
  std::uint64_t reports = 0, checked_floor = 0;
  int mid_work = 0;  // cycles whose kill found the cursor moving (floor above the last one, below the end)
  std::mt19937_64 rng(12345);
  int failures = 0;
  for (int cycle = 0; cycle < cycles && failures == 0; ++cycle) {
    int fds[2];
    if (::pipe(fds) != 0) return 2;
    const pid_t pid = ::fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      ::close(fds[0]);
      child(dir, fds[1]);
    }
    ::close(fds[1]);
    char ready = 0;
    if (::read(fds[0], &ready, 1) != 1) {
      std::fprintf(stderr, "cycle %d: the child did not start\n", cycle);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 3000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::uint64_t offset = 0;
    while (::read(fds[0], &offset, sizeof offset) == static_cast<ssize_t>(sizeof offset)) {
      handled.insert(offset);
      ++reports;
    }
    ::close(fds[0]);

    agentbus::detail::cursor_file file(dir / "consumers", "crash", false);
    const agentbus::detail::cursor_load loaded = file.load();
    if (loaded.result == agentbus::detail::cursor_load::status::missing) continue;  // killed before its first write
    if (loaded.result != agentbus::detail::cursor_load::status::ok) {
      std::fprintf(stderr, "cycle %d: the cursor is damaged: %s\n", cycle, loaded.problem.c_str());
      ++failures;
      break;
    }
    for (std::uint64_t o = 0; o < loaded.state.floor; ++o)
      if (handled.count(o) == 0) {
        std::fprintf(stderr, "cycle %d: the cursor's floor %llu is past offset %llu, which no handler saw\n", cycle,
                     static_cast<unsigned long long>(loaded.state.floor), static_cast<unsigned long long>(o));
        ++failures;
        break;
      }
    for (const agentbus::detail::offset_run& run : loaded.state.settled)
      for (std::uint64_t o = run.first; o < run.end(); ++o)
        if (handled.count(o) == 0) {
          std::fprintf(stderr, "cycle %d: the cursor lists offset %llu as settled, which no handler saw\n", cycle,
                       static_cast<unsigned long long>(o));
          ++failures;
        }
    if (loaded.state.floor > checked_floor && loaded.state.floor < events) ++mid_work;
    checked_floor = loaded.state.floor;
  }
  if (failures != 0) return 1;

  // Finish in this process: everything left is handled, nothing is skipped.
  std::uint64_t finished = 0;
  {
    journal_bus bus(journal_at(dir));
    agentbus::durable_consumer<work> c(bus, "crash", "work.>", consumer_settings());
    while (c.poll([&](const agentbus::delivered<work>& d) {
      handled.insert(d.offset());
      ++reports;
      ++finished;
    }) != 0) {}
    if (c.info().floor != events) {
      std::fprintf(stderr, "the final floor is %llu, not %llu\n", static_cast<unsigned long long>(c.info().floor),
                   static_cast<unsigned long long>(events));
      return 1;
    }
  }
  if (handled.size() != events) {
    std::fprintf(stderr, "%zu of %llu events were handled: some were skipped\n", handled.size(),
                 static_cast<unsigned long long>(events));
    return 1;
  }
  std::printf(
      "consumer crash: %d cycles (%d killed while the cursor moved), %llu events, last floor before finishing %llu, "
      "finished %llu in-process, duplicates %llu\n",
      cycles, mid_work, static_cast<unsigned long long>(events), static_cast<unsigned long long>(checked_floor),
      static_cast<unsigned long long>(finished), static_cast<unsigned long long>(reports - events));
  if (mid_work < cycles / 4) {
    std::fprintf(stderr, "only %d of %d cycles were killed while the cursor moved: the test did not test\n", mid_work,
                 cycles);
    return 1;
  }
  std::filesystem::remove_all(dir);
  return 0;
}
