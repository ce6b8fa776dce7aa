// The README's quick start, compiled and run by CI (scripts/check_readme.sh keeps them equal).
#include <agentbus/agentbus.hpp>

#include <cstdio>
#include <string>

struct task_created {
  int id;
  std::string title;
};

int main() {
  agentbus::bus bus;
  auto sub = bus.subscribe("tasks.*.created", [](const agentbus::event<task_created>& ev) {
    std::printf("%s: #%d %s (from %s)\n", std::string(ev.topic()).c_str(), ev->id, ev->title.c_str(),
                std::string(ev.source()).c_str());
  });
  const auto first = bus.publish("tasks.planner.created", task_created{1, "write the report"}, {.source = "planner"});
  auto channel = bus.channel<task_created>("tasks.coder.created");  // resolved once, fastest path
  const auto second = channel.publish(task_created{2, "fix the build"});
  return first.delivered == 1 && second.delivered == 1 ? 0 : 1;  // each reached the handler
}
