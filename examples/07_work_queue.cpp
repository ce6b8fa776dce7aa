// SPDX-License-Identifier: MIT
// 07: a durable work queue. Jobs are published on a journal bus; a consumer group of three
// worker threads shares them with acknowledgements. A flaky job succeeds on its second try
// (nack, then redelivered after the backoff); a poison job fails every time and ends in the
// dead-letter topic after max_deliver attempts; once "fixed", the dead letter is replayed to its
// topic and done. A second run of the program resumes where the first stopped (the group's
// cursor is stored beside the journal): pass a directory to keep it, e.g. `07_work_queue /tmp/q`.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/dead_letters.hpp>
#include <agentbus/consumer/group.hpp>
#include <agentbus/storage/journal.hpp>

#include <fmt/core.h>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct job {
  static constexpr bool agentbus_bitwise_codec = true;  // plain bytes: stored as they are
  static constexpr std::string_view event_name = "example.job";
  std::uint32_t id = 0;
};

int main(int argc, char** argv) {
  const bool keep = argc > 1;
  const std::filesystem::path dir =
      keep ? std::filesystem::path(argv[1])
           : std::filesystem::temp_directory_path() / ("agentbus_07_" + std::to_string(::getpid()));
  std::size_t jobs_done = 0;
  {
    agentbus::basic_bus<agentbus::storage::journal> bus(agentbus::journal_options{.directory = dir});

    for (std::uint32_t id = 1; id <= 20; ++id) bus.publish("jobs.render", job{id});

    agentbus::consumer_options options;
    options.ack_wait = 2s;    // a worker that hangs longer loses its job to the others
    options.max_deliver = 3;  // then the dead-letter topic
    options.backoff = {.initial = 5ms, .multiplier = 2.0, .max = 50ms, .jitter = 0.1};
    agentbus::consumer_group<job> workers(bus, "renderers", "jobs.>", options);

    bool poison_fixed = false;
    std::mutex log_mutex;
    std::set<std::uint32_t> done;
    std::atomic<bool> stop{false};
    auto work = [&](const agentbus::delivered<job>& d) -> agentbus::outcome {
      const std::uint32_t id = d.payload().id;
      if (id == 7 && d.attempt() == 1) return agentbus::outcome::nack("flaky: try again");
      if (id == 13 && !poison_fixed) throw std::runtime_error("cannot render job 13");
      std::lock_guard lock(log_mutex);
      done.insert(id);
      if (d.attempt() > 1) fmt::print("job {:2} done by {} on attempt {}\n", id, d.member(), d.attempt());
      return agentbus::outcome::ack();
    };
    auto run_workers = [&] {
      stop = false;
      std::vector<std::thread> threads;
      for (int w = 1; w <= 3; ++w)
        threads.emplace_back([&, w] {
          auto me = workers.join("worker-" + std::to_string(w));
          while (!stop) me.poll_for(work, 20ms, 4);
        });
      // Until everything is settled: acked, or dead-lettered.
      while (workers.info().pending != 0 || workers.info().lag != 0) std::this_thread::sleep_for(5ms);
      stop = true;
      for (auto& t : threads) t.join();
    };

    run_workers();
    const agentbus::consumer_info info = workers.info();
    fmt::print("{} jobs done, {} redelivered, {} dead-lettered\n", done.size(), info.redelivered, info.dead_lettered);
    for (const auto& dead : bus.records<job>(agentbus::history::all(), "$dlq.>"))
      fmt::print("dead letter: job {} on {}: {}\n", dead.payload().id, dead.topic(),
                 dead.header_value(agentbus::dead_letter_header::reason).value_or("?"));

    poison_fixed = true;  // the bug is fixed: send the dead letters back
    fmt::print("replayed {} dead letter(s)\n", agentbus::replay_dead_letters<job>(bus, "jobs.>"));
    run_workers();
    fmt::print("{} jobs done; cursor at {}\n", done.size(), workers.cursor_path().filename().string());
    jobs_done = done.size();
  }  // the group and the bus close (the cursor is written) before the directory goes

  if (!keep) std::filesystem::remove_all(dir);
  return jobs_done == 20 ? 0 : 1;
}
