// SPDX-License-Identifier: MIT
// The index of cached topics by segment (router/detail/topic_index.hpp): what a pattern
// matches, and erase (a reclaimed topic leaves the index; the segments other topics share
// stay, those only it used go).
#include <agentbus/router/detail/topic_index.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using agentbus::detail::receiver_list;
using agentbus::detail::topic_index;
using agentbus::detail::topic_node;
using agentbus::detail::topic_table;

namespace {

struct nodes {
  std::vector<topic_node*> all;
  topic_node& make(std::string_view name) {
    all.push_back(topic_node::make(name, agentbus::detail::hash_topic_text(name), receiver_list::empty()));
    return *all.back();
  }
  ~nodes() {
    for (topic_node* n : all) topic_node::destroy(n);
  }
};

std::vector<std::string> matches(const topic_index& index, std::string_view pattern) {
  std::vector<std::string> out;
  index.for_each_match(pattern, [&](topic_node& n) { out.emplace_back(n.name()); });
  std::sort(out.begin(), out.end());
  return out;
}

using names = std::vector<std::string>;

}  // namespace

TEST_CASE("topic_index: wildcards find exactly the indexed topics they match", "[router][topic_index]") {
  nodes made;
  topic_index index;
  for (const char* t : {"a.b", "a.c", "a.b.c", "x.b", "a"}) index.insert(made.make(t));
  CHECK(matches(index, "a.*") == names{"a.b", "a.c"});
  CHECK(matches(index, "a.>") == names{"a.b", "a.b.c", "a.c"});
  CHECK(matches(index, "*.b") == names{"a.b", "x.b"});
  CHECK(matches(index, "*") == names{"a"});
  CHECK(matches(index, ">") == names{"a", "a.b", "a.b.c", "a.c", "x.b"});
  CHECK(matches(index, "a.b") == names{"a.b"});
  CHECK(matches(index, "q.*").empty());
}

TEST_CASE("topic_index: erase removes one topic and keeps the segments others share", "[router][topic_index]") {
  nodes made;
  topic_index index;
  topic_node& ab = made.make("a.b");
  topic_node& abc = made.make("a.b.c");
  topic_node& ad = made.make("a.d");
  for (topic_node* n : {&ab, &abc, &ad}) index.insert(*n);

  index.erase(ab);  // "a.b" ends there, but "a.b.c" goes on through it
  CHECK(matches(index, "a.*") == names{"a.d"});
  CHECK(matches(index, "a.>") == names{"a.b.c", "a.d"});
  CHECK(matches(index, "a.b.*") == names{"a.b.c"});

  index.erase(abc);
  CHECK(matches(index, ">") == names{"a.d"});
  index.erase(abc);  // again: ignored
  index.erase(made.make("never.indexed"));
  CHECK(matches(index, ">") == names{"a.d"});

  // A topic erased and made again (a new node for the same name) is found as the new one.
  index.insert(made.make("a.b"));
  CHECK(matches(index, "a.*") == names{"a.b", "a.d"});
  index.erase(ad);
  index.erase(*made.all.back());
  CHECK(matches(index, ">").empty());
}

TEST_CASE("topic_index: the segment keys do not depend on the nodes that made them", "[router][topic_index]") {
  // The first topic through a segment used to provide its key (a view into that node's name):
  // erasing it, then freeing it, must leave the shared segment intact for the others.
  topic_index index;
  topic_node* first = topic_node::make("shared.one", 1, receiver_list::empty());
  topic_node* second = topic_node::make("shared.two", 2, receiver_list::empty());
  index.insert(*first);
  index.insert(*second);
  index.erase(*first);
  topic_node::destroy(first);  // ASan: a key viewing into it would be read after free below
  CHECK(matches(index, "shared.*") == names{"shared.two"});
  CHECK(matches(index, "*.two") == names{"shared.two"});
  index.erase(*second);
  topic_node::destroy(second);
}

TEST_CASE("topic_index: deactivate forgets everything; activate rebuilds from the table", "[router][topic_index]") {
  topic_table table;
  for (const char* t : {"k.1", "k.2", "k.3"})
    table.insert(topic_node::make(t, agentbus::detail::hash_topic_text(t), receiver_list::empty()));
  topic_index index;
  CHECK_FALSE(index.active());
  index.activate(table);
  CHECK(index.active());
  CHECK(matches(index, "k.*") == names{"k.1", "k.2", "k.3"});
  index.deactivate();
  CHECK_FALSE(index.active());
  CHECK(matches(index, "k.*").empty());
  index.activate(table);
  CHECK(matches(index, "k.*") == names{"k.1", "k.2", "k.3"});
}
