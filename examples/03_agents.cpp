// SPDX-License-Identifier: MIT
// Tutorial 03 — agents and mailboxes: a small team of cooperating agents.
//
// Synchronous handlers (tutorials 01-02) run inside publish(). Agents instead receive events
// through a mailbox and handle them on their own schedule:
//   - an agent with its own thread            agent.start()
//   - agents sharing a pool of worker threads agentbus::agent a("name", pool)
//   - an agent your own loop drives           agent.poll() / agent.run_for(...)
// One agent's handlers never run concurrently, so an agent's state needs no locks.
//
// The team: a planner splits goals into tasks; two coders (on a shared executor) do the tasks
// and report; a reviewer, pumped by main()'s loop, collects the reports. Then a triage agent
// shows what a mailbox does with a backlog: urgent tasks jump the queue (priority) and stale
// ones expire (TTL) instead of being handled late. Everything shuts down cleanly, and the
// program exits non-zero if it did not see what it says.

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct goal {
  std::string text;
  int parts;
};
struct task {
  int id;
  std::string text;
};
struct report {
  int task_id;
  std::string coder;
};

int main() {
  agentbus::bus bus;

  // An executor: two worker threads shared by any number of agents.
  agentbus::executor pool({.threads = 2});

  // Mailboxes are bounded; the overflow policy says what happens when one is full.
  // `block` (the default) makes the publisher wait: nothing is lost.
  agentbus::agent planner("planner");
  agentbus::agent coder_a("coder-a", pool, {.capacity = 64, .overflow = agentbus::overflow::block});
  agentbus::agent coder_b("coder-b", pool, {.capacity = 64, .overflow = agentbus::overflow::block});
  agentbus::agent reviewer("reviewer");  // never started: main() pumps it

  // The planner turns a goal into tasks, published on "tasks.<coder>".
  int next_id = 0;  // planner state: only the planner's handlers touch it, one at a time
  auto plan = planner.subscribe(bus, "goals", [&](const agentbus::event<goal>& g) {
    for (int i = 0; i < g->parts; ++i) {
      const char* who = (next_id % 2 == 0) ? "tasks.coder-a" : "tasks.coder-b";
      // Later parts are marked urgent: they overtake normal tasks already waiting.
      const auto prio = i == g->parts - 1 ? agentbus::priority::high : agentbus::priority::normal;
      bus.publish(who, task{next_id++, fmt::format("{} (part {})", g->text, i + 1)},
                  {.source = "planner", .prio = prio, .ttl = 2s});
    }
  });

  // Each coder handles its own topic; both report to the reviewer.
  auto work = [&bus](const char* name) {
    return [&bus, name](const agentbus::event<task>& t) {
      std::this_thread::sleep_for(1ms);  // "work"
      bus.publish("reports." + std::string(name), report{t->id, name}, {.source = name});
    };
  };
  auto a = coder_a.subscribe(bus, "tasks.coder-a", work("coder-a"));
  auto b = coder_b.subscribe(bus, "tasks.coder-b", work("coder-b"));

  std::vector<report> reports;  // reviewer state, touched only inside reviewer's handlers
  auto review = reviewer.subscribe(bus, "reports.>", [&](const report& r) { reports.push_back(r); });

  // An observer can still subscribe synchronously: this one counts every task, any coder.
  std::atomic<int> tasks_seen{0};
  auto audit = bus.subscribe("tasks.*", [&](const task&) { tasks_seen++; });

  planner.start();
  bus.publish("goals", goal{"ship the release", 5}, {.source = "human"});
  bus.publish("goals", goal{"write the changelog", 3}, {.source = "human"});

  // main() drives the reviewer: handle reports as they arrive, for at most 5 s.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (reports.size() < 8 && std::chrono::steady_clock::now() < deadline) reviewer.run_for(20ms);

  // Shut down: drain handles what is already queued; agents then refuse new events (counted).
  planner.stop(agentbus::stop_mode::drain);
  coder_a.stop(agentbus::stop_mode::drain);
  coder_b.stop(agentbus::stop_mode::drain);
  reviewer.stop(agentbus::stop_mode::drain);

  for (const auto& r : reports) fmt::print("reviewer: task {} done by {}\n", r.task_id, r.coder);
  for (const auto* ag : {&planner, &coder_a, &coder_b, &reviewer}) {
    const auto s = ag->stats();
    fmt::print("{:<9} handled {:>2}, failed {}, expired {}, dropped {}\n", ag->name(), s.handled, s.failed, s.expired,
               s.dropped_newest + s.dropped_oldest + s.rejected);
  }
  fmt::print("tasks seen by the synchronous auditor: {}\n", tasks_seen.load());
  const bool team_ok = reports.size() == 8 && tasks_seen == 8;

  // A backlog. The triage agent is busy elsewhere (nobody pumps it) while tasks arrive: four
  // normal ones, two urgent ones after them, and two whose deadline is a few milliseconds.
  agentbus::agent triage("triage");
  std::vector<int> order;  // triage state
  auto t = triage.subscribe(bus, "triage", [&](const task& k) { order.push_back(k.id); });
  for (int id = 100; id < 104; ++id) bus.publish("triage", task{id, "routine"});
  for (int id = 200; id < 202; ++id) bus.publish("triage", task{id, "urgent"}, {.prio = agentbus::priority::high});
  for (int id = 300; id < 302; ++id) bus.publish("triage", task{id, "only useful now"}, {.ttl = 5ms});
  std::this_thread::sleep_for(20ms);  // the stale ones' deadline passes while they wait
  triage.poll();                      // now it gets to its mailbox

  fmt::print("triage handled, in order:");
  for (int id : order) fmt::print(" {}", id);
  fmt::print("\n");
  const bool overtook = order.size() == 6 && order[0] == 200 && order[1] == 201;
  const auto ts = triage.stats();
  if (overtook) fmt::print("triage: the 2 urgent tasks overtook the 4 normal ones queued before them\n");
  fmt::print("triage: {} stale tasks expired before their turn (never handled late)\n", ts.expired);
  const bool expired = ts.expired == 2 && ts.handled == 6;

  return team_ok && overtook && expired ? 0 : 1;
}
