// SPDX-License-Identifier: MIT
// The router's index of subscriptions by pattern (router/detail/pattern_trie.hpp): exact
// segments, "*" and ">", several receivers on one pattern, erase (also of what is not there),
// and, over random patterns and topics, the same answers as topic_pattern::matches.
#include <agentbus/router/detail/pattern_trie.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using agentbus::detail::pattern_trie;
using agentbus::detail::receiver;

namespace {

// A receiver built by hand: the trie only reads its pattern.
struct fake_receiver : receiver {
  explicit fake_receiver(std::string_view text)
      : receiver(agentbus::type_id_of<int>(), &never_invoked, &never_destroyed, agentbus::topic_pattern(text)) {}
  static bool never_invoked(receiver*, const agentbus::detail::event_core&) { return false; }
  static void never_destroyed(receiver*) noexcept {}
};

std::vector<receiver*> match(const pattern_trie& trie, std::string_view topic) {
  std::vector<receiver*> out;
  trie.match(topic, out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<receiver*> sorted(std::vector<receiver*> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("pattern_trie: an exact pattern matches its topic only", "[router][trie]") {
  pattern_trie trie;
  fake_receiver abc("a.b.c"), ab("a.b");
  trie.insert(&abc);
  trie.insert(&ab);
  CHECK(match(trie, "a.b.c") == std::vector<receiver*>{&abc});
  CHECK(match(trie, "a.b") == std::vector<receiver*>{&ab});
  CHECK(match(trie, "a").empty());
  CHECK(match(trie, "a.b.c.d").empty());
  CHECK(match(trie, "a.b.x").empty());
  CHECK(match(trie, "b.b.c").empty());
}

TEST_CASE("pattern_trie: * matches exactly one segment, in any position", "[router][trie]") {
  pattern_trie trie;
  fake_receiver middle("a.*.c"), first("*.b"), alone("*"), both("*.*");
  for (receiver* r : {static_cast<receiver*>(&middle), static_cast<receiver*>(&first), static_cast<receiver*>(&alone),
                      static_cast<receiver*>(&both)})
    trie.insert(r);
  CHECK(match(trie, "a.x.c") == std::vector<receiver*>{&middle});
  CHECK(match(trie, "a.c") == std::vector<receiver*>{&both});  // not a.*.c: * is one segment, not zero
  CHECK(match(trie, "a.x.y.c").empty());
  CHECK(match(trie, "z.b") == sorted({&first, &both}));
  CHECK(match(trie, "z.q") == std::vector<receiver*>{&both});
  CHECK(match(trie, "solo") == std::vector<receiver*>{&alone});
}

TEST_CASE("pattern_trie: > matches one or more trailing segments", "[router][trie]") {
  pattern_trie trie;
  fake_receiver tail("a.>"), everything(">"), deep("a.*.>");
  trie.insert(&tail);
  trie.insert(&everything);
  trie.insert(&deep);
  CHECK(match(trie, "a") == std::vector<receiver*>{&everything});  // "a.>" needs a segment after a
  CHECK(match(trie, "a.b") == sorted({&tail, &everything}));
  CHECK(match(trie, "a.b.c") == sorted({&tail, &everything, &deep}));
  CHECK(match(trie, "a.b.c.d.e") == sorted({&tail, &everything, &deep}));
  CHECK(match(trie, "b.c") == std::vector<receiver*>{&everything});
}

TEST_CASE("pattern_trie: match appends, and reports every matching receiver once", "[router][trie]") {
  pattern_trie trie;
  fake_receiver exact("x.y"), star("x.*"), gt("x.>"), other("q.y");
  for (receiver* r : {static_cast<receiver*>(&exact), static_cast<receiver*>(&star), static_cast<receiver*>(&gt),
                      static_cast<receiver*>(&other)})
    trie.insert(r);
  fake_receiver sentinel("s");
  std::vector<receiver*> out{&sentinel};
  trie.match("x.y", out);
  REQUIRE(out.size() == 4);
  CHECK(out.front() == &sentinel);
  CHECK(sorted(std::vector<receiver*>(out.begin() + 1, out.end())) == sorted({&exact, &star, &gt}));
}

TEST_CASE("pattern_trie: two receivers on the same pattern are both matched and erased apart", "[router][trie]") {
  pattern_trie trie;
  fake_receiver first("jobs.*.done"), second("jobs.*.done"), tail1("jobs.>"), tail2("jobs.>");
  trie.insert(&first);
  trie.insert(&second);
  trie.insert(&tail1);
  trie.insert(&tail2);
  CHECK(match(trie, "jobs.7.done") == sorted({&first, &second, &tail1, &tail2}));
  trie.erase(&first);
  trie.erase(&tail2);
  CHECK(match(trie, "jobs.7.done") == sorted({&second, &tail1}));
  trie.erase(&second);
  trie.erase(&tail1);
  CHECK(match(trie, "jobs.7.done").empty());
  // The emptied branch can be used again.
  trie.insert(&first);
  CHECK(match(trie, "jobs.8.done") == std::vector<receiver*>{&first});
}

TEST_CASE("pattern_trie: erasing a receiver that is not there changes nothing", "[router][trie]") {
  pattern_trie trie;
  fake_receiver kept("a.b"), kept_gt("a.>"), missing_same("a.b"), missing_path("c.d.*"), missing_gt("z.>");
  trie.insert(&kept);
  trie.insert(&kept_gt);
  trie.erase(&missing_same);  // same pattern, another receiver
  trie.erase(&missing_path);  // a path the trie does not have
  trie.erase(&missing_gt);
  CHECK(match(trie, "a.b") == sorted({&kept, &kept_gt}));
  trie.erase(&kept);
  trie.erase(&kept);  // twice
  CHECK(match(trie, "a.b") == std::vector<receiver*>{&kept_gt});
  CHECK(match(trie, "a.c") == std::vector<receiver*>{&kept_gt});
}

TEST_CASE("pattern_trie: random patterns give the answers of topic_pattern::matches", "[router][trie]") {
  std::mt19937 rng(20261201);
  const std::vector<std::string> words{"a", "b", "c"};
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  auto random_topic = [&] {
    std::string t;
    const std::size_t segments = 1 + pick(4);
    for (std::size_t i = 0; i < segments; ++i) t += (i ? "." : "") + words[pick(words.size())];
    return t;
  };
  auto random_pattern = [&] {
    std::string p;
    const std::size_t segments = 1 + pick(4);
    for (std::size_t i = 0; i < segments; ++i) {
      const std::size_t k = pick(5);
      const std::string seg = k < 3 ? words[k] : k == 3 ? "*" : (i + 1 == segments ? ">" : "*");
      p += (i ? "." : "") + seg;
    }
    return p;
  };

  pattern_trie trie;
  std::vector<std::unique_ptr<fake_receiver>> all;
  std::vector<receiver*> live;
  for (int step = 0; step < 3000; ++step) {
    if (live.empty() || pick(3) != 0) {
      all.push_back(std::make_unique<fake_receiver>(random_pattern()));
      trie.insert(all.back().get());
      live.push_back(all.back().get());
    } else {
      const std::size_t i = pick(live.size());
      trie.erase(live[i]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (step % 10 == 0) {
      const std::string topic = random_topic();
      std::vector<receiver*> expected;
      for (receiver* r : live)
        if (r->pattern.matches(topic)) expected.push_back(r);
      INFO("topic " << topic << " after step " << step);
      REQUIRE(match(trie, topic) == sorted(expected));
    }
  }
}
