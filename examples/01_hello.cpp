// SPDX-License-Identifier: MIT
// Tutorial 01 — hello, bus.
//
// The smallest useful agentbus program: define an event type, subscribe a handler to a topic,
// publish, and see the envelope that travels with every event.

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <string>

// 1. An event is any movable C++ type. Giving it a stable name and version (optional) matters
//    once events are stored or leave the process; in memory the type itself is the identity.
struct task_created {
  static constexpr std::string_view event_name = "tasks.created";
  static constexpr std::uint32_t event_version = 1;

  int id;
  std::string title;
};

int main() {
  // 2. A bus with the defaults: no storage, in-process delivery.
  agentbus::bus bus;

  // 3. Subscribe. The handler's parameter tells the bus the event type: either the payload
  //    (`const task_created&`) or the whole event with its envelope (`const event<task_created>&`).
  //    The returned handle unsubscribes when it is destroyed, so keep it as long as you listen.
  auto worker = bus.subscribe("tasks.planner.created", [](const agentbus::event<task_created>& ev) {
    // `ev->field` reaches the payload; the envelope says where it came from.
    fmt::print("worker: task #{} '{}' on {} from '{}' (sequence {})\n", ev->id, ev->title, ev.topic(), ev.source(),
               ev.sequence());
  });

  int seen = 0;
  auto counter = bus.subscribe("tasks.planner.created", [&seen](const task_created&) { ++seen; });

  // 4. Publish. Handlers run right here, synchronously, in subscription order. They see the
  //    payload by reference: `task` is never copied, however many handlers there are.
  task_created task{1, "write the report"};
  auto result = bus.publish("tasks.planner.created", task, {.source = "planner"});
  fmt::print("delivered to {} handlers\n", result.delivered);

  // 5. A channel binds topic and type once; publishing through it skips the topic lookup.
  //    Use one for anything you publish often.
  auto created = bus.channel<task_created>("tasks.planner.created");
  created.publish(task_created{2, "review the report"}, {.source = "planner"});

  // 6. Topics are validated: a bad one is an exception that says what and where.
  bool rejected = false;
  try {
    bus.publish("tasks..created", task);
  } catch (const agentbus::topic_error& e) {
    fmt::print("rejected: {}\n", e.what());
    rejected = true;
  }

  // 7. Unsubscribe explicitly (or let the handle go out of scope). Once it returns, the handler
  //    is never called again, from any thread.
  worker.unsubscribe();
  created.publish(task_created{3, "nobody prints this"});

  fmt::print("the counter saw {} tasks\n", seen);
  // The program checks what it printed (CI runs it as a test).
  return result.delivered == 2 && rejected && seen == 3 ? 0 : 1;
}
