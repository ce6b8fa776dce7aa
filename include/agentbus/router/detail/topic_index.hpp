// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_TOPIC_INDEX_HPP
#define AGENTBUS_ROUTER_DETAIL_TOPIC_INDEX_HPP

// The cached topics, indexed by segment, so that a wildcard subscribe (or unsubscribe) finds
// the cached topics its pattern matches by walking only the branches the pattern can reach:
// "agents.7.*" visits agents -> 7 -> its children, whatever the number of other cached topics.
// (The pattern trie answers the opposite question: which patterns match a topic.)
//
// Built on the first wildcard subscription and kept up to date from then on (a reclaimed
// topic leaves it), so that a bus without wildcards pays nothing for it. Used only under the
// router's writer mutex. Segments are keys of their own: a topic's node may be reclaimed while
// other topics still share its first segments.

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
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
    try {
      table.for_each([this](topic_node& n) { insert(n); });
    } catch (...) {
      root_.children.clear();  // stays inactive, and empty: nothing indexed may outlive its node
      throw;
    }
    active_ = true;
  }

  /// Stops maintaining the index (after an allocation failure) and forgets it; activate()
  /// builds it again from the table.
  void deactivate() noexcept {
    root_.children.clear();
    active_ = false;
  }

  /// Adds a cached topic (again is harmless).
  void insert(topic_node& topic) {
    const std::string_view t = topic.name();
    node* n = &root_;
    for (std::size_t i = 0; i <= t.size();) {
      const std::size_t e = std::min(t.find('.', i), t.size());
      const std::string_view seg = t.substr(i, e - i);
      auto it = n->children.find(seg);
      if (it == n->children.end()) it = n->children.emplace(std::string(seg), std::make_unique<node>()).first;
      n = it->second.get();
      i = e + 1;
    }
    n->topic = &topic;
  }

  /// Removes a cached topic (one that is not indexed is ignored), and the segments only it used.
  void erase(const topic_node& topic) noexcept { erase_below(root_, topic.name(), 0, topic); }

  /// Calls `f(topic_node&)` for every indexed topic `pattern` (a valid pattern) matches.
  template <class F>
  void for_each_match(std::string_view pattern, F&& f) const {
    match(root_, pattern, 0, f);
  }

 private:
  // Segments are looked up by view (heterogeneous lookup: no string built per step).
  struct segment_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct node {
    std::unordered_map<std::string, std::unique_ptr<node>, segment_hash, std::equal_to<>> children;
    topic_node* topic = nullptr;  // the cached topic ending here, if any
  };

  // Clears `topic` below `n` (its segments from `i` on); true when `n` is left empty.
  static bool erase_below(node& n, std::string_view t, std::size_t i, const topic_node& topic) noexcept {
    if (i > t.size()) {
      if (n.topic == &topic) n.topic = nullptr;
    } else {
      const std::size_t e = std::min(t.find('.', i), t.size());
      const auto it = n.children.find(t.substr(i, e - i));
      if (it != n.children.end() && erase_below(*it->second, t, e + 1, topic)) n.children.erase(it);
    }
    return n.topic == nullptr && n.children.empty();
  }

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
