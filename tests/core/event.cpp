// SPDX-License-Identifier: MIT
#include <agentbus/core/event.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/copy_counter.hpp"

namespace {
struct named_event {
  static constexpr std::string_view event_name = "tests.named";
  static constexpr std::uint32_t event_version = 3;
  int x = 0;
};
struct plain_event {
  int x = 0;
};
struct custom_event {
  int x = 0;
};
}  // namespace

template <>
struct agentbus::event_traits<custom_event> {
  static constexpr std::string_view name() noexcept { return "tests.custom"; }
  static constexpr std::uint32_t version() noexcept { return 7; }
};

TEST_CASE("event_traits reads declared names and versions, or defaults", "[event]") {
  STATIC_REQUIRE(agentbus::event_traits<named_event>::name() == "tests.named");
  STATIC_REQUIRE(agentbus::event_traits<named_event>::version() == 3);
  STATIC_REQUIRE(agentbus::event_traits<custom_event>::name() == "tests.custom");
  STATIC_REQUIRE(agentbus::event_traits<custom_event>::version() == 7);
  STATIC_REQUIRE(agentbus::event_traits<plain_event>::version() == 1);
  // The default name is the compiler's spelling of the type.
  CHECK(agentbus::event_traits<plain_event>::name().find("plain_event") != std::string_view::npos);
  CHECK(agentbus::event_traits<std::string>::name().find("basic_string") != std::string_view::npos);
}

TEST_CASE("type ids are distinct per type and ignore cv-ref", "[event]") {
  STATIC_REQUIRE(agentbus::type_id_of<int>() == agentbus::type_id_of<const int&>());
  CHECK(agentbus::type_id_of<int>() != agentbus::type_id_of<long>());
  CHECK(agentbus::type_id_of<plain_event>() != agentbus::type_id_of<named_event>());
}

TEST_CASE("event_type accepts movable object types only", "[event]") {
  STATIC_REQUIRE(agentbus::event_type<int>);
  STATIC_REQUIRE(agentbus::event_type<std::unique_ptr<int>>);
  STATIC_REQUIRE(agentbus::event_type<std::string>);
  STATIC_REQUIRE_FALSE(agentbus::event_type<const int>);
  STATIC_REQUIRE_FALSE(agentbus::event_type<int&>);
  STATIC_REQUIRE_FALSE(agentbus::event_type<char[4]>);
  STATIC_REQUIRE_FALSE(agentbus::event_type<void>);
}

TEST_CASE("an event exposes its payload and envelope", "[event]") {
  const agentbus::header hs[] = {{"traceparent", "00-abc-01"}, {"idempotency-key", "k1"}};
  agentbus::publish_options opts{.source = "planner", .correlation_id = 42, .prio = agentbus::priority::high,
                                 .ttl = std::chrono::seconds(5), .headers = hs};
  const plain_event p{9};
  const auto before = std::chrono::system_clock::now();
  const agentbus::event<plain_event> ev(p, "tasks.created", opts, (std::uint64_t{3} << 40) | 17,
                                        agentbus::detail::deadline_from(opts));
  CHECK(&ev.payload() == &p);  // by reference: no copy
  CHECK(ev->x == 9);
  CHECK((*ev).x == 9);
  CHECK(ev.topic() == "tasks.created");
  CHECK(ev.sequence() == 17);
  CHECK(ev.correlation_id() == 42);
  CHECK(ev.source() == "planner");
  CHECK(ev.priority() == agentbus::priority::high);
  REQUIRE(ev.deadline());
  CHECK_FALSE(ev.expired());
  CHECK(ev.expired(*ev.deadline() + std::chrono::milliseconds(1)));
  CHECK(ev.header_value("traceparent") == std::optional<std::string_view>("00-abc-01"));
  CHECK_FALSE(ev.header_value("missing"));
  const auto t = ev.published();
  CHECK(t >= before);
  CHECK(ev.published() == t);  // stamped once
  const auto env = ev.envelope();
  CHECK(env.topic == "tasks.created");
  CHECK(env.id == ev.id());
  CHECK(env.headers.size() == 2);
  CHECK(env.published == t);
}

TEST_CASE("an event without ttl has no deadline", "[event]") {
  const plain_event p{1};
  const agentbus::publish_options opts{};
  const agentbus::event<plain_event> ev(p, "a", opts, 1, agentbus::detail::deadline_from(opts));
  CHECK_FALSE(ev.deadline());
  CHECK_FALSE(ev.expired());
}

TEST_CASE("shared_event keeps payload, envelope and strings in one shared block", "[event][shared]") {
  using agentbus::test::copy_counter;
  copy_counter::reset();
  std::string source = "agent-7";
  std::string key = "trace", value = "t-1";
  const agentbus::header hs[] = {{key, value}};
  auto sev = agentbus::shared_event<copy_counter>::make("tasks.done", {.source = source, .headers = hs}, 5);
  // The strings were copied into the block: changing the originals does not matter.
  source = "xxxxxxx";
  key = "zzzzz";
  value = "yyy";
  REQUIRE(sev);
  CHECK(sev.payload().value == 5);
  CHECK(sev->topic() == "tasks.done");
  CHECK(sev->source() == "agent-7");
  CHECK(sev->header_value("trace") == std::optional<std::string_view>("t-1"));
  CHECK(copy_counter::copies == 0);
  CHECK(copy_counter::moves == 0);  // constructed in place

  auto copy = sev;  // shares, does not copy the payload
  CHECK(sev.use_count() == 2);
  CHECK(&copy.payload() == &sev.payload());
  CHECK(copy_counter::copies == 0);
  auto moved = std::move(copy);
  CHECK(!copy);
  CHECK(sev.use_count() == 2);
  moved = {};
  CHECK(sev.use_count() == 1);
  // retain() on a view that lives in a block shares that block.
  auto again = (*sev).retain();
  CHECK(&again.payload() == &sev.payload());
  CHECK(sev.use_count() == 2);
}

TEST_CASE("a block made with the default options points at them; options of its own are copied", "[event][shared]") {
  using agentbus::detail::adopt_block;
  using agentbus::detail::event_block;
  using agentbus::detail::no_deadline;
  const int* no_payload = nullptr;
  const agentbus::detail::event_core plain(no_payload, "a.b", agentbus::detail::default_publish_options, 1, no_deadline,
                                           nullptr);
  const auto shared_plain = adopt_block(event_block<int>::make(plain, 7));
  std::string source = "agent-1";
  const agentbus::publish_options own{.source = source, .correlation_id = 9, .prio = agentbus::priority::high};
  const agentbus::detail::event_core custom(no_payload, "a.b", own, 2, no_deadline, nullptr);
  const auto shared_custom = adopt_block(event_block<int>::make(custom, 8));
  source = "xxxxxxx";  // the copy does not depend on the caller's strings

  CHECK(shared_plain.payload() == 7);
  CHECK(shared_plain->topic() == "a.b");
  CHECK(shared_plain->source().empty());
  CHECK(shared_plain->correlation_id() == 0);
  CHECK(shared_plain->priority() == agentbus::priority::normal);
  CHECK(shared_plain->headers().empty());
  CHECK(shared_custom.payload() == 8);
  CHECK(shared_custom->source() == "agent-1");
  CHECK(shared_custom->correlation_id() == 9);
  CHECK(shared_custom->priority() == agentbus::priority::high);
  // The copy of the options is the difference (plus the source text and alignment).
  CHECK(shared_plain->block()->bytes + sizeof(agentbus::publish_options) <= shared_custom->block()->bytes);
}

TEST_CASE("retain() on a stack event copies the payload exactly once", "[event][shared]") {
  using agentbus::test::copy_counter;
  copy_counter::reset();
  const copy_counter p{11};
  const agentbus::publish_options opts{.source = "s"};
  const agentbus::event<copy_counter> ev(p, "a.b", opts, 5, agentbus::detail::deadline_from(opts));
  auto kept = ev.retain();
  CHECK(copy_counter::copies == 1);
  CHECK(kept.payload().value == 11);
  CHECK(kept->topic() == "a.b");
  CHECK(kept->source() == "s");
  CHECK(kept->id() == 5);
  CHECK(kept->published() == ev.published());
}

TEST_CASE("move-only payloads live in shared blocks, retain() from the stack refuses clearly", "[event][shared]") {
  auto sev = agentbus::shared_event<std::unique_ptr<int>>::make("a", {}, std::make_unique<int>(4));
  CHECK(*sev.payload() == 4);
  auto shared = (*sev).retain();
  CHECK(shared.use_count() == 2);

  const std::unique_ptr<int> p = std::make_unique<int>(1);
  const agentbus::publish_options opts{};
  const agentbus::event<std::unique_ptr<int>> ev(p, "a", opts, 1, agentbus::detail::deadline_from(opts));
  CHECK_THROWS_AS(ev.retain(), std::logic_error);
}

TEST_CASE("a throwing payload constructor leaves nothing behind", "[event][shared]") {
  struct throws_on_build {
    explicit throws_on_build(int) { throw std::runtime_error("no"); }
  };
  CHECK_THROWS_AS(agentbus::shared_event<throws_on_build>::make("a", {}, 1), std::runtime_error);
}

TEST_CASE("shared_event is shared across threads", "[event][shared][concurrency]") {
  auto sev = agentbus::shared_event<std::vector<int>>::make("a.b", {}, std::vector<int>(100, 1));
  std::vector<std::thread> threads;
  std::atomic<int> sum{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([copy = sev, &sum]() mutable {
      for (int i = 0; i < 1000; ++i) {
        auto c = copy;
        sum += c.payload()[static_cast<std::size_t>(i % 100)];
      }
    });
  for (auto& th : threads) th.join();
  CHECK(sum == 4000);
  CHECK(sev.use_count() == 1);
}

TEST_CASE("offered_reference: taken, the publisher's reference is the taker's; not taken, the publisher releases it; offers nest",
          "[event][shared]") {
  using agentbus::detail::block_header;
  using agentbus::detail::offered_reference;
  using agentbus::detail::reference_offered;
  using agentbus::detail::take_offered_reference;
  auto outer = agentbus::shared_event<plain_event>::make("t.outer", agentbus::publish_options{}, plain_event{1});
  auto inner = agentbus::shared_event<plain_event>::make("t.inner", agentbus::publish_options{}, plain_event{2});
  auto* outer_block = const_cast<block_header*>(outer->block());
  auto* inner_block = const_cast<block_header*>(inner->block());
  CHECK_FALSE(reference_offered(outer_block));

  outer_block->add_ref();  // stands for the publisher's reference
  {
    const offered_reference offer(outer_block);
    CHECK(reference_offered(outer_block));
    CHECK_FALSE(reference_offered(inner_block));
  }  // not taken: released here
  CHECK(outer.use_count() == 1);
  CHECK_FALSE(reference_offered(outer_block));

  outer_block->add_ref();
  {
    const offered_reference offer(outer_block);
    take_offered_reference();
    CHECK_FALSE(reference_offered(outer_block));
  }  // taken: the taker holds it now
  CHECK(outer.use_count() == 2);
  outer_block->release();  // the taker lets go
  CHECK(outer.use_count() == 1);

  // A dispatch inside a receiver offers its own block and gives the outer offer back.
  outer_block->add_ref();
  inner_block->add_ref();
  {
    const offered_reference offer(outer_block);
    {
      const offered_reference nested(inner_block);
      CHECK(reference_offered(inner_block));
      CHECK_FALSE(reference_offered(outer_block));
      take_offered_reference();
    }
    CHECK(reference_offered(outer_block));
  }
  CHECK(outer.use_count() == 1);  // the outer offer was not taken: released
  CHECK(inner.use_count() == 2);  // the nested one was
  inner_block->release();
  CHECK_FALSE(reference_offered(outer_block));
}
