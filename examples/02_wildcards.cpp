// SPDX-License-Identifier: MIT
// Tutorial 02 — topics and wildcards.
//
// Topics are dot-separated segments, like NATS subjects: "agents.planner.inbox".
// Subscriptions may use two wildcards:
//   *   exactly one segment        "agents.*.inbox"  matches "agents.planner.inbox"
//   >   one or more final segments "agents.>"        matches "agents.planner" and "agents.a.b.c"
// Both must be whole segments; ">" only at the end. Publishing always names a concrete topic.

#include <agentbus/agentbus.hpp>

#include <fmt/core.h>

#include <string>
#include <vector>

struct note {
  std::string text;
};
struct metric {
  double value;
};

int main() {
  agentbus::bus bus;
  std::vector<std::string> log;

  // Every agent's inbox, one segment in the middle.
  auto inboxes = bus.subscribe("agents.*.inbox", [&](const agentbus::event<note>& ev) {
    log.push_back(fmt::format("inboxes   <- {} : {}", ev.topic(), ev->text));
  });
  // Everything under "agents", however deep.
  auto audit = bus.subscribe("agents.>", [&](const agentbus::event<note>& ev) {
    log.push_back(fmt::format("audit     <- {} : {}", ev.topic(), ev->text));
  });
  // One exact topic.
  auto planner = bus.subscribe("agents.planner.inbox", [&](const note& n) {
    log.push_back(fmt::format("planner   <- {}", n.text));
  });

  bus.publish("agents.planner.inbox", note{"plan the week"});     // all three
  bus.publish("agents.coder.inbox", note{"fix issue 7"});         // inboxes + audit
  bus.publish("agents.coder.status.busy", note{"compiling"});     // audit only ("*" is one segment)
  bus.publish("agents", note{"nobody: '>' needs at least one more segment"});

  // Subscriptions are typed. A handler for `note` never sees a `metric`, even on a topic its
  // pattern matches: the bus skips it and counts the skip.
  bus.publish("agents.coder.load", metric{0.75});

  // Patterns are validated too.
  try {
    auto bad = bus.subscribe("agents.>.inbox", [](const note&) {});
  } catch (const agentbus::topic_error& e) {
    log.push_back(fmt::format("rejected pattern: {}", e.what()));
  }

  for (const auto& line : log) fmt::print("{}\n", line);
  const auto stats = bus.stats();
  fmt::print("type mismatches skipped: {}\n", stats.type_mismatches);
  // The program checks what it printed: who received what (CI runs it as a test).
  const std::vector<std::string> expected_receivers = {"inboxes   <- agents.planner.inbox", "audit     <- agents.planner.inbox",
                                                       "planner   <- plan the week",       "inboxes   <- agents.coder.inbox",
                                                       "audit     <- agents.coder.inbox",  "audit     <- agents.coder.status.busy",
                                                       "rejected pattern:"};
  bool as_expected = log.size() == expected_receivers.size() && stats.type_mismatches == 1;
  for (std::size_t i = 0; as_expected && i < log.size(); ++i) as_expected = log[i].starts_with(expected_receivers[i]);
  return as_expected ? 0 : 1;
}
