// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_TOPIC_INDEX_HPP
#define AGENTBUS_ROUTER_DETAIL_TOPIC_INDEX_HPP

// The cached topics, indexed by segment, so that a wildcard subscribe (or unsubscribe) finds
// the cached topics its pattern matches by walking only the branches the pattern can reach:
// "agents.7.*" visits agents -> 7 -> its children, whatever the number of other cached topics.
// (The pattern trie answers the opposite question: which patterns match a topic.)
//
// Built on the first wildcard subscription and kept up to date from then on, so that a bus
// without wildcards pays nothing for it. Used only under the router's writer mutex. Segment
// keys are views into the topic nodes' names: nodes never move nor die while the router lives.

#include <algorithm>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "agentbus/router/detail/topic_table.hpp"

namespace agentbus::detail {

class topic_index {
 public:
  /// True once built (the first wildcard subscription).
  bool active() const noexcept { return active_; }
  /// Indexes every node of `table` and keeps the index active from now on.
  void activate(const topic_table& table) {
    table.for_each([this](topic_node& n) { insert(n); });  // throws: stays inactive
    active_ = true;
  }

  /// Stops maintaining the index (after an allocation failure); activate() rebuilds it.
  /// Inserting is idempotent, so what is already indexed stays valid.
  void deactivate() noexcept { active_ = false; }

  /// Adds a cached topic (again is harmless).
  void insert(topic_node& topic) {
    const std::string_view t = topic.name();
    node* n = &root_;
    for (std::size_t i = 0; i <= t.size();) {
      const std::size_t e = std::min(t.find('.', i), t.size());
      std::unique_ptr<node>& child = n->children[t.substr(i, e - i)];
      if (!child) child = std::make_unique<node>();
      n = child.get();
      i = e + 1;
    }
    n->topic = &topic;
  }

  /// Calls `f(topic_node&)` for every indexed topic `pattern` (a valid pattern) matches.
  template <class F>
  void for_each_match(std::string_view pattern, F&& f) const {
    match(root_, pattern, 0, f);
  }

 private:
  struct node {
    std::unordered_map<std::string_view, std::unique_ptr<node>> children;
    topic_node* topic = nullptr;  // the cached topic ending here, if any
  };

  // `i` is where the next pattern segment starts; past the end: every segment is consumed.
  template <class F>
  static void match(const node& n, std::string_view p, std::size_t i, F& f) {
    if (i > p.size()) {
      if (n.topic) f(*n.topic);
      return;
    }
    const std::size_t e = std::min(p.find('.', i), p.size());
    const std::string_view seg = p.substr(i, e - i);
    if (seg == ">") {  // one or more further segments: every topic below each child
      for (const auto& [key, child] : n.children) visit_all(*child, f);
    } else if (seg == "*") {
      for (const auto& [key, child] : n.children) match(*child, p, e + 1, f);
    } else if (const auto it = n.children.find(seg); it != n.children.end()) {
      match(*it->second, p, e + 1, f);
    }
  }

  template <class F>
  static void visit_all(const node& n, F& f) {
    if (n.topic) f(*n.topic);
    for (const auto& [key, child] : n.children) visit_all(*child, f);
  }

  node root_;
  bool active_ = false;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_TOPIC_INDEX_HPP
