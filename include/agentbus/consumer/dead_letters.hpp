// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DEAD_LETTERS_HPP
#define AGENTBUS_CONSUMER_DEAD_LETTERS_HPP

// Replaying dead letters: each dead letter of type T whose original topic matches a pattern
// is published again on its original topic, once.
//
//   fix_the_bug();
//   std::size_t n = agentbus::replay_dead_letters<order>(bus, "orders.>");
//
// A dead letter is an ordinary stored event on `$dlq.<original topic>` (durable.hpp), so a
// replay is itself a durable consumer of `$dlq.<pattern>` (named "dlq-replay.<pattern>..."):
// what it replayed is settled in its cursor and is not replayed again, across restarts on a
// journal bus. On a bus without files keep one dead_letter_replayer for the process's life:
// the function form would start from the first dead letter each time.
//
// The replayed event is a new event (a new offset), so each consumer gives it max_deliver new
// attempts; it is dead-lettered again only if those fail too. It keeps the original headers
// (not the dead-letter ones) and carries `agentbus-replayed-from: <dead letter's offset>`.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "agentbus/consumer/durable.hpp"
#include "agentbus/consumer/options.hpp"
#include "agentbus/core/event.hpp"
#include "agentbus/storage/codec.hpp"

namespace agentbus {

/// @brief The header a replayed dead letter carries: the dead letter's offset.
inline constexpr std::string_view replayed_from_header = "agentbus-replayed-from";

namespace detail {

/// The replay consumer's name for `pattern`: readable, and distinct per pattern (a hash of it).
inline std::string dead_letter_replay_name(std::string_view pattern) {
  std::string name = "dlq-replay.";
  for (char c : pattern) {
    const bool plain =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    name += plain ? c : c == '>' ? '-' : '_';  // '*' and anything else: '_'
  }
  if (name.size() > 100) name.resize(100);
  char hash[17];
  const std::uint64_t h = fnv1a(pattern);
  for (int i = 0; i < 16; ++i) hash[i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 0xF];
  hash[16] = '\0';
  return name + "." + std::string(hash, 8);
}

}  // namespace detail

/// @brief Republishes dead letters of type T on their original topics, each once (see the
/// top of dead_letters.hpp). Thread safety: replay() from one thread at a time.
template <class T>
class dead_letter_replayer {
 public:
  /// @brief A replayer of dead letters whose original topic matches `pattern`. `options`
  /// are the replay consumer's (its prefix, directory and clock are used).
  template <class Bus>
  explicit dead_letter_replayer(Bus& on, std::string_view pattern = ">", const consumer_options& options = {})
      : consumer_(on, detail::dead_letter_replay_name(pattern),
                  options.dead_letter_prefix + "." + std::string(pattern), replay_options(options)),
        republish_([&on](std::string_view topic, const T& payload, const publish_options& opts) {
          T copy = payload;
          on.publish(topic, std::move(copy), opts);
        }) {}

  /// @brief Republishes up to `max` dead letters not replayed yet; returns how many.
  std::size_t replay(std::size_t max = std::numeric_limits<std::size_t>::max()) {
    std::size_t total = 0;
    while (total < max) {
      const std::size_t n = consumer_.poll([this](const delivered<T>& d) { republish(d.event()); },
                                           std::min<std::size_t>(max - total, detail::default_poll_batch));
      if (n == 0) break;
      total += n;
    }
    return total;
  }

  /// @brief The replay consumer's counters (acked = replayed).
  consumer_info info() const { return consumer_.info(); }

 private:
  static consumer_options replay_options(consumer_options o) {
    o.start = consumer_start::all();
    o.max_ack_pending = 0;
    return o;
  }

  void republish(const event<T>& ev) {
    const auto topic = ev.header_value(dead_letter_header::topic);
    if (!topic) throw std::invalid_argument("agentbus: a dead letter without its original topic header");
    std::vector<header> headers;
    for (const header& h : ev.headers())
      if (h.key.substr(0, 13) != "agentbus-dlq-") headers.push_back(h);
    const std::string from = std::to_string(ev.offset().value_or(0));
    headers.push_back({replayed_from_header, from});
    publish_options opts;
    opts.source = ev.source();
    opts.correlation_id = ev.correlation_id();
    opts.prio = ev.priority();
    opts.headers = headers;
    republish_(*topic, ev.payload(), opts);
  }

  durable_consumer<T> consumer_;
  std::function<void(std::string_view, const T&, const publish_options&)> republish_;
};

/// @brief Republishes the dead letters of type T whose original topic matches `pattern`, each
/// once (across calls through the replay consumer's stored cursor: a journal bus); returns how many.
template <class T, class Bus>
std::size_t replay_dead_letters(Bus& on, std::string_view pattern = ">", const consumer_options& options = {}) {
  dead_letter_replayer<T> replayer(on, pattern, options);
  return replayer.replay();
}

}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_DEAD_LETTERS_HPP
