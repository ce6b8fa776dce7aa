// SPDX-License-Identifier: MIT
// The stored cursor's settled offsets as runs (format version 2): encode and decode, the run
// helpers, version-1 files (one offset each) still read, malformed runs refused, and a group
// whose members settle whole batches out of order storing a few runs that a restart honours.
#include <agentbus/agentbus.hpp>
#include <agentbus/consumer/detail/cursor_file.hpp>
#include <agentbus/consumer/durable.hpp>
#include <agentbus/consumer/group.hpp>
#include <agentbus/storage/journal.hpp>

#include <catch2/catch.hpp>

#include "consumer/common.hpp"

#include "support/journal_dir.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using agentbus::detail::offset_run;
using runs = std::vector<offset_run>;
using journal_bus = agentbus::basic_bus<agentbus::storage::journal>;

struct cursor_job {
  static constexpr bool agentbus_bitwise_codec = true;
  static constexpr std::string_view event_name = "test.cursor_job";
  std::uint64_t n = 0;
};

// A version-1 copy, as bridges before the runs wrote it: settled offsets one u64 each.
std::vector<std::byte> version_1_copy(const std::vector<std::uint64_t>& settled) {
  std::vector<std::byte> out;
  auto put = [&](auto v) {
    std::byte b[sizeof(v)];
    agentbus::detail::store_le(b, v);
    out.insert(out.end(), b, b + sizeof(v));
  };
  auto put_text = [&](std::string_view t) {
    put(static_cast<std::uint32_t>(t.size()));
    for (char c : t) out.push_back(static_cast<std::byte>(c));
  };
  for (char c : std::string_view("AGBCURS1")) out.push_back(static_cast<std::byte>(c));
  put(std::uint32_t{1});
  put(std::uint32_t{0});
  const std::size_t body = out.size();
  put(std::uint64_t{5});   // floor
  put(std::uint64_t{20});  // delivered_end
  put(std::uint64_t{7});   // writes
  put_text("jobs.>");
  put_text("test.cursor_job");
  put(static_cast<std::uint32_t>(settled.size()));
  for (std::uint64_t o : settled) put(o);
  put(std::uint32_t{1});
  put(std::uint64_t{6});
  put(std::uint32_t{3});
  agentbus::detail::store_le(out.data() + body - 4, static_cast<std::uint32_t>(out.size() - body));
  put(agentbus::detail::crc32c(std::span<const std::byte>(out.data(), out.size())));
  return out;
}

}  // namespace

TEST_CASE("cursor runs: append_offset and append_run join neighbours, contains and drop see run edges") {
  runs r;
  for (std::uint64_t o : {3, 4, 5, 9, 10, 20}) agentbus::detail::append_offset(r, o);
  CHECK(r == runs{{3, 3}, {9, 2}, {20, 1}});
  agentbus::detail::append_run(r, {21, 4});  // touches the last run
  agentbus::detail::append_run(r, {30, 0});  // empty: nothing
  CHECK(r == runs{{3, 3}, {9, 2}, {20, 5}});
  CHECK(agentbus::detail::offset_count(r) == 10);
  for (std::uint64_t o : {3, 5, 9, 10, 20, 24}) CHECK(agentbus::detail::contains_offset(r, o));
  for (std::uint64_t o : {0, 2, 6, 8, 11, 19, 25}) CHECK_FALSE(agentbus::detail::contains_offset(r, o));
  agentbus::detail::drop_offsets_below(r, 4);  // inside the first run: it is cut
  CHECK(r == runs{{4, 2}, {9, 2}, {20, 5}});
  agentbus::detail::drop_offsets_below(r, 11);  // at a run's end: the run goes
  CHECK(r == runs{{20, 5}});
  agentbus::detail::drop_offsets_below(r, 100);
  CHECK(r.empty());
}

TEST_CASE("a cursor copy stores its settled offsets as runs and reads them back") {
  agentbus::detail::cursor_state s;
  s.floor = 100;
  s.delivered_end = 5000;
  s.writes = 3;
  s.pattern = "jobs.>";
  s.schema = "test.cursor_job";
  s.settled = {{1000, 1000}, {3000, 1000}};
  s.attempts = {{150, 2}};
  std::vector<std::byte> bytes;
  agentbus::detail::cursor_file::encode(s, bytes);
  // 2000 settled offsets in two runs: 16 bytes each, where one offset each was 16 000.
  CHECK(bytes.size() < 128);
  agentbus::detail::cursor_state back;
  std::string problem;
  REQUIRE(agentbus::detail::cursor_file::decode(bytes, back, problem));
  CHECK(back.floor == 100);
  CHECK(back.delivered_end == 5000);
  CHECK(back.settled == s.settled);
  CHECK(back.attempts == s.attempts);
}

TEST_CASE("a version-1 cursor copy (one offset each) is read, its offsets joined into runs") {
  const std::vector<std::byte> bytes = version_1_copy({7, 8, 9, 12});
  agentbus::detail::cursor_state s;
  std::string problem;
  REQUIRE(agentbus::detail::cursor_file::decode(bytes, s, problem));
  CHECK(s.floor == 5);
  CHECK(s.writes == 7);
  CHECK(s.settled == runs{{7, 3}, {12, 1}});
  CHECK(s.attempts == std::vector<std::pair<std::uint64_t, std::uint32_t>>{{6, 3}});
}

TEST_CASE("settled offsets that are not ascending runs are refused as damage") {
  agentbus::detail::cursor_state s;
  s.pattern = "jobs.>";
  s.schema = "test.cursor_job";
  std::string problem;
  std::vector<std::byte> bytes;
  for (const runs& bad : {runs{{10, 5}, {12, 1}}, runs{{10, 0}}, runs{{~std::uint64_t{0}, 2}}}) {
    s.settled = bad;
    agentbus::detail::cursor_file::encode(s, bytes);  // encode writes what it is given; decode checks
    agentbus::detail::cursor_state back;
    CHECK_FALSE(agentbus::detail::cursor_file::decode(bytes, back, problem));
    CHECK(problem == "the settled offsets are not ascending runs");
  }
  CHECK_FALSE(agentbus::detail::cursor_file::decode(version_1_copy({9, 8}), s, problem));
}

TEST_CASE("a group whose members settle whole batches out of order stores runs, and a restart honours them") {
  agentbus::test::journal_dir dir("consumer_cursor_runs");
  agentbus::manual_clock clock;
  {
    journal_bus bus(dir.options());
    for (std::uint64_t i = 0; i < 30; ++i) bus.publish("jobs.a", cursor_job{i});
    agentbus::consumer_group<cursor_job> group(bus, "pool", "jobs.>", agentbus::test::exact_timing(clock));
    auto slow = group.join("slow");
    auto fast = group.join("fast");
    // slow takes 0-9 and keeps them out; fast takes and acks 10-19, then 20-29.
    CHECK(slow.poll([](const agentbus::delivered<cursor_job>& d) { (void)d.defer(); }, 10) == 10);
    CHECK(fast.poll([](const agentbus::delivered<cursor_job>&) {}, 10) == 10);
    CHECK(fast.poll([](const agentbus::delivered<cursor_job>&) {}, 10) == 10);
    CHECK(group.info().floor == 0);
  }
  agentbus::detail::cursor_file file(dir.path / "consumers", "pool", false);
  const agentbus::detail::cursor_load loaded = file.load();
  REQUIRE(loaded.result == agentbus::detail::cursor_load::status::ok);
  CHECK(loaded.state.settled == runs{{10, 20}});
  CHECK(agentbus::list_consumers(dir.path / "consumers").at(0).settled_above == 20);

  journal_bus bus(dir.options());
  agentbus::consumer_group<cursor_job> group(bus, "pool", "jobs.>", agentbus::test::exact_timing(clock));
  auto member = group.join("again");
  std::vector<std::uint64_t> seen;
  auto take = [&](const agentbus::delivered<cursor_job>& d) { seen.push_back(d.payload().n); };
  // Half of the unsettled ones: the cursor written now holds this process's floor and the runs
  // the restart has not reached again.
  CHECK(member.poll(take, 5) == 5);
  const agentbus::detail::cursor_load midway = file.load();
  REQUIRE(midway.result == agentbus::detail::cursor_load::status::ok);
  CHECK(midway.state.floor == 5);
  CHECK(midway.state.settled == runs{{10, 20}});
  member.poll(take);
  CHECK(seen == std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});  // 10-29 never again
  CHECK(group.info().floor == 30);
}

TEST_CASE("the settled run of a consumer of some topics covers the other topics' offsets between them") {
  agentbus::test::journal_dir dir("consumer_cursor_gaps");
  agentbus::manual_clock clock;
  {
    journal_bus bus(dir.options());
    for (std::uint64_t i = 0; i < 40; ++i) bus.publish(i % 2 == 0 ? "jobs.a" : "other.b", cursor_job{i});
    agentbus::durable_consumer<cursor_job> c(bus, "evens", "jobs.>", agentbus::test::exact_timing(clock));
    // 0 stays out; 2, 4, ..., 38 are acked: settled above the floor, with 1, 3, ... between.
    CHECK(c.poll([](const agentbus::delivered<cursor_job>& d) {
      if (d.payload().n == 0) (void)d.defer();
    }) == 20);
  }
  agentbus::detail::cursor_file file(dir.path / "consumers", "evens", false);
  const agentbus::detail::cursor_load loaded = file.load();
  REQUIRE(loaded.result == agentbus::detail::cursor_load::status::ok);
  CHECK(loaded.state.settled == runs{{2, 37}});  // one run, 2..38, not 19
  journal_bus bus(dir.options());
  agentbus::durable_consumer<cursor_job> c(bus, "evens", "jobs.>", agentbus::test::exact_timing(clock));
  std::vector<std::uint64_t> seen;
  c.poll([&](const agentbus::delivered<cursor_job>& d) { seen.push_back(d.payload().n); });
  CHECK(seen == std::vector<std::uint64_t>{0});  // only the one never acked
  bus.publish("jobs.a", cursor_job{40});
  bus.publish("other.b", cursor_job{41});
  seen.clear();
  c.poll([&](const agentbus::delivered<cursor_job>& d) { seen.push_back(d.payload().n); });
  CHECK(seen == std::vector<std::uint64_t>{40});
}
