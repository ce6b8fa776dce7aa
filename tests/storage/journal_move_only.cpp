// SPDX-License-Identifier: MIT
// A journal bus and a move-only event published as an lvalue to a topic with a mailbox
// subscriber: refused (it cannot be copied for the mailbox) before anything is stored, so the
// retry the error asks for (std::move) is stored once and delivered, not taken for a duplicate.
#include <agentbus/agentbus.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string_view>

#include "support/journal_dir.hpp"

namespace {
struct move_only_job {
  static constexpr std::string_view event_name = "test.move_only_job";
  std::unique_ptr<int> n;
};
void agentbus_encode(agentbus::byte_writer& out, const move_only_job& j) { agentbus::encode(out, *j.n); }
move_only_job agentbus_decode(agentbus::byte_reader& in, agentbus::codec_tag<move_only_job>) {
  return move_only_job{std::make_unique<int>(agentbus::codec<int>::decode(in))};
}
}  // namespace

TEST_CASE("journal bus: a move-only lvalue refused for a mailbox is not stored, nor its key remembered",
          "[storage][journal]") {
  agentbus::test::journal_dir dir("journal_move_only");
  agentbus::basic_bus<agentbus::storage::journal> bus(dir.options());
  agentbus::agent worker("w");
  auto sub = bus.subscribe("jobs.>", [](const move_only_job&) {}, agentbus::async(worker));
  move_only_job j{std::make_unique<int>(1)};
  CHECK_THROWS_WITH(bus.publish("jobs.a", j, {.idempotency_key = "k"}), Catch::Contains("std::move"));
  CHECK(bus.storage().next_offset() == 0);  // nothing stored
  CHECK_FALSE(bus.publish("jobs.a", std::move(j), {.idempotency_key = "k"}).duplicate);
  CHECK(bus.storage().next_offset() == 1);
  CHECK(worker.poll() == 1);
}
