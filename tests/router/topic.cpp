// SPDX-License-Identifier: MIT
#include <agentbus/router/topic.hpp>

#include <catch2/catch.hpp>

#include <string>

using agentbus::topic;
using agentbus::topic_errc;
using agentbus::topic_error;
using agentbus::topic_pattern;

TEST_CASE("valid topics are accepted", "[topic]") {
  for (const char* t : {"a", "tasks", "tasks.created", "tasks.planner.created", "a.b.c.d.e.f", "A-b_c.9", "caf\xc3\xa9.menu",
                        "x.$sys.y", "a+b.c#d"}) {
    INFO(t);
    CHECK(topic::validate(t));
    CHECK(topic(t).str() == t);
  }
  CHECK(topic::validate(std::string(agentbus::max_topic_length, 'x')));
}

TEST_CASE("invalid topics are rejected with the problem and its position", "[topic]") {
  struct bad {
    std::string text;
    topic_errc code;
    std::size_t position;
  };
  const bad cases[] = {
      {"", topic_errc::empty, 0},
      {std::string(agentbus::max_topic_length + 1, 'x'), topic_errc::too_long, agentbus::max_topic_length},
      {".a", topic_errc::leading_dot, 0},
      {".", topic_errc::leading_dot, 0},
      {"a.", topic_errc::trailing_dot, 1},
      {"a..b", topic_errc::empty_segment, 2},
      {"a.b..c", topic_errc::empty_segment, 4},
      {"a b", topic_errc::invalid_character, 1},
      {"a.b\tc", topic_errc::invalid_character, 3},
      {"a\nb", topic_errc::invalid_character, 1},
      {std::string("a\0b", 3), topic_errc::invalid_character, 1},
      {"a\x7f", topic_errc::invalid_character, 1},
      {"a.*", topic_errc::wildcard_in_topic, 2},
      {"a.>", topic_errc::wildcard_in_topic, 2},
      {"a.b*", topic_errc::wildcard_in_topic, 3},
      {"*", topic_errc::wildcard_in_topic, 0},
  };
  for (const auto& c : cases) {
    INFO("topic: " << c.text);
    const auto check = topic::validate(c.text);
    CHECK_FALSE(check);
    CHECK(check.code == c.code);
    CHECK(check.position == c.position);
    try {
      topic t(c.text);
      FAIL("accepted an invalid topic");
    } catch (const topic_error& e) {
      CHECK(e.code() == c.code);
      CHECK(e.position() == c.position);
      const std::string what = e.what();
      CHECK(what.find(std::string(agentbus::describe(c.code))) != std::string::npos);
      CHECK(what.find("position " + std::to_string(c.position)) != std::string::npos);
    }
  }
}

TEST_CASE("error messages escape control characters and truncate long input", "[topic]") {
  try {
    topic t("a\nb");
    FAIL("accepted");
  } catch (const topic_error& e) {
    CHECK(std::string(e.what()) == "agentbus: invalid topic \"a\\x0ab\": whitespace or control character at position 1");
  }
  try {
    topic t(std::string(300, 'y'));
    FAIL("accepted");
  } catch (const topic_error& e) {
    CHECK(std::string(e.what()).find("...\"") != std::string::npos);
    CHECK(std::string(e.what()).size() < 200);
  }
}

TEST_CASE("patterns accept whole-segment wildcards only", "[topic]") {
  for (const char* p : {"a", "a.b", "*", ">", "a.*", "a.>", "*.b", "*.*.c", "a.*.>", "*.>"}) {
    INFO(p);
    CHECK(topic_pattern::validate(p));
  }
  CHECK(topic_pattern("a.*").has_wildcards());
  CHECK(topic_pattern("a.>").has_wildcards());
  CHECK_FALSE(topic_pattern("a.b").has_wildcards());

  struct bad {
    const char* text;
    topic_errc code;
    std::size_t position;
  };
  for (const auto& c : {bad{"a.b*", topic_errc::partial_wildcard, 3}, bad{"a*.b", topic_errc::partial_wildcard, 1},
                        bad{"a.>b", topic_errc::partial_wildcard, 2}, bad{"**", topic_errc::partial_wildcard, 0},
                        bad{"a.>.b", topic_errc::full_wildcard_not_last, 2}, bad{">.a", topic_errc::full_wildcard_not_last, 0},
                        bad{"a..*", topic_errc::empty_segment, 2}, bad{"a.* ", topic_errc::partial_wildcard, 2},
                        bad{"", topic_errc::empty, 0}}) {
    INFO(c.text);
    const auto check = topic_pattern::validate(c.text);
    CHECK(check.code == c.code);
    CHECK(check.position == c.position);
    CHECK_THROWS_AS(topic_pattern(c.text), topic_error);
  }
}

TEST_CASE("wildcard semantics follow NATS subjects", "[topic]") {
  struct row {
    const char* pattern;
    const char* topic;
    bool match;
  };
  const row table[] = {
      {"a.b.c", "a.b.c", true},   {"a.b.c", "a.b", false},     {"a.b", "a.b.c", false},
      {"a.*", "a.b", true},       {"a.*", "a.b.c", false},     {"a.*", "a", false},
      {"*", "a", true},           {"*", "a.b", false},         {"*.b", "a.b", true},
      {"*.b", "a.c", false},      {"a.*.c", "a.x.c", true},    {"a.*.c", "a.x.d", false},
      {"a.*.c", "a.c", false},    {"a.>", "a.b", true},        {"a.>", "a.b.c.d", true},
      {"a.>", "a", false},        {">", "a", true},            {">", "a.b.c", true},
      {"*.>", "a", false},        {"*.>", "a.b", true},        {"a.*.>", "a.b", false},
      {"a.*.>", "a.b.c", true},   {"a.b", "a.bc", false},      {"ab", "a.b", false},
      {"a.*", "b.c", false},      {"*.*", "a.b", true},        {"*.*", "a.b.c", false},
  };
  for (const auto& r : table) {
    INFO(r.pattern << " vs " << r.topic);
    CHECK(topic_pattern(r.pattern).matches(topic(r.topic)) == r.match);
  }
}

TEST_CASE("topics compare and hash by text", "[topic]") {
  CHECK(topic("a.b") == topic("a.b"));
  CHECK_FALSE(topic("a.b") == topic("a.c"));
  CHECK(topic("a.b").hash() == topic("a.b").hash());
  CHECK(std::hash<topic>{}(topic("x.y")) == topic("x.y").hash());
  // Hash covers every byte, including the tail of texts that are not a multiple of 8 long.
  CHECK(topic("abcdefgh.i").hash() != topic("abcdefgh.j").hash());
  CHECK(topic("a.b").hash() != topic("a.c").hash());
}

TEST_CASE("validation is usable at compile time", "[topic]") {
  static_assert(topic::validate("tasks.created"));
  static_assert(!topic::validate("tasks..created"));
  static_assert(topic_pattern::validate("tasks.>"));
  SUCCEED();
}
