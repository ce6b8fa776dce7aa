// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_ROUTER_DETAIL_PATTERN_TRIE_HPP
#define AGENTBUS_ROUTER_DETAIL_PATTERN_TRIE_HPP

// Every subscription, indexed by its pattern's segments, so that resolving a new topic costs
// O(segments x matching branches) rather than a scan of all subscriptions. Used only under
// the router's writer mutex: the lock-free publish path reads the per-topic cache instead.

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentbus/router/detail/receiver.hpp"

namespace agentbus::detail {

class pattern_trie {
 public:
  void insert(receiver* r) { node_for(r->pattern.str(), true)->add(r, ends_with_gt(r->pattern.str())); }

  void erase(receiver* r) {
    const std::string_view p = r->pattern.str();
    erase_rec(root_, p, 0, r, ends_with_gt(p));
  }

  /// Appends every receiver whose pattern matches `topic` (a valid concrete topic).
  void match(std::string_view topic, std::vector<receiver*>& out) const { match_rec(root_, topic, 0, out); }

 private:
  struct node {
    std::map<std::string, std::unique_ptr<node>, std::less<>> children;  // literal segments
    std::unique_ptr<node> star;                                          // "*"
    std::vector<receiver*> here;  // patterns ending at this node
    std::vector<receiver*> rest;  // patterns ending with ">" after this node

    void add(receiver* r, bool gt) { (gt ? rest : here).push_back(r); }
    bool empty() const noexcept { return children.empty() && !star && here.empty() && rest.empty(); }
  };

  static bool ends_with_gt(std::string_view p) noexcept { return p == ">" || p.ends_with(".>"); }

  node* node_for(std::string_view pattern, bool create) {
    node* n = &root_;
    std::size_t i = 0;
    while (i < pattern.size()) {
      const std::size_t e = std::min(pattern.find('.', i), pattern.size());
      const std::string_view seg = pattern.substr(i, e - i);
      if (seg == ">") break;
      std::unique_ptr<node>* child;
      if (seg == "*") {
        child = &n->star;
      } else {
        auto it = n->children.find(seg);
        if (it == n->children.end()) {
          if (!create) return nullptr;
          // The child is made first: a failed allocation leaves no empty link behind.
          auto fresh = std::make_unique<node>();
          it = n->children.emplace(std::string(seg), std::move(fresh)).first;
        }
        child = &it->second;
      }
      if (!*child) {
        if (!create) return nullptr;
        *child = std::make_unique<node>();
      }
      n = child->get();
      i = e + 1;
    }
    return n;
  }

  // Returns true when `n` became empty and can be pruned by its parent.
  static bool erase_rec(node& n, std::string_view p, std::size_t i, receiver* r, bool gt) {
    const std::size_t e = std::min(p.find('.', i), p.size());
    const std::string_view seg = i < p.size() ? p.substr(i, e - i) : std::string_view{};
    if (i > p.size() || seg == ">") {
      auto& v = gt ? n.rest : n.here;
      v.erase(std::remove(v.begin(), v.end(), r), v.end());
      return n.empty();
    }
    if (seg == "*") {
      if (n.star && erase_rec(*n.star, p, e + 1, r, gt)) n.star.reset();
    } else if (auto it = n.children.find(seg); it != n.children.end()) {
      if (erase_rec(*it->second, p, e + 1, r, gt)) n.children.erase(it);
    }
    return n.empty();
  }

  // `i` is where the next topic segment starts; past the end means every segment is consumed.
  static void match_rec(const node& n, std::string_view t, std::size_t i, std::vector<receiver*>& out) {
    if (i > t.size()) {
      for (receiver* r : n.here) out.push_back(r);
      return;
    }
    for (receiver* r : n.rest) out.push_back(r);  // ">" needs one or more segments: here they are
    const std::size_t e = std::min(t.find('.', i), t.size());
    const std::string_view seg = t.substr(i, e - i);
    if (auto it = n.children.find(seg); it != n.children.end()) match_rec(*it->second, t, e + 1, out);
    if (n.star) match_rec(*n.star, t, e + 1, out);
  }

  node root_;
};

}  // namespace agentbus::detail

#endif  // AGENTBUS_ROUTER_DETAIL_PATTERN_TRIE_HPP
