// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CONSUMER_DURABLE_HPP
#define AGENTBUS_CONSUMER_DURABLE_HPP

// Durable consumers: at-least-once delivery of stored events, with acks, redelivery and dead
// letters. A named consumer on a bus that stores events reads the storage from its cursor; on
// a journal bus the cursor is stored beside the journal, so after a restart the consumer
// resumes at the first event it has not acknowledged.
//
//   agentbus::basic_bus<agentbus::storage::journal> bus({.directory = "events"});
//   agentbus::durable_consumer<order> billing(bus, "billing", "orders.>", {.max_deliver = 5});
//   billing.poll([](const agentbus::delivered<order>& d) -> agentbus::outcome {
//     if (!charge(d.payload())) return agentbus::outcome::nack("card declined");  // retried
//     return agentbus::outcome::ack();
//   });
//
// A handler returning void acks when it returns and nacks when it throws. Unsettled deliveries
// are redelivered after ack_wait; failed attempts wait their backoff; after max_deliver the
// event is published on `$dlq.<topic>` with headers saying why (dead_letter_header). What is
// promised, and the choices where brokers differ: consumer/group.hpp (a durable consumer is a
// consumer group of one member).
//
// Records that cannot be read as a T (another schema version with no upcaster registered, a
// codec layout that differs, bytes the codec rejects, a damaged record) are not delivered and
// not dead-lettered (there is no T to hand over): the consumer passes them, counts each in
// info().unreadable (with the first messages explaining them), and its floor moves on.
//
// Cursor crash safety: the stored cursor is two checksummed copies written in turn
// (detail/cursor_file.hpp): a SIGKILL never moves it past an unacknowledged event and never
// leaves it unreadable. Acks made since
// the last write are lost by a crash, so those events come again (duplicates, never loss);
// each poll writes the cursor before handing out its batch and after settling it.
//
// Thread safety: poll from one thread at a time (use a consumer_group to share the work
// between threads); info, flush and ack tokens from any thread. The bus must outlive it.

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agentbus/consumer/delivered.hpp"
#include "agentbus/consumer/detail/cursor_file.hpp"
#include "agentbus/consumer/group.hpp"
#include "agentbus/consumer/options.hpp"

namespace agentbus {

/// @brief A named durable consumer of events of type T (see the top of durable.hpp).
/// Movable; a moved-from consumer polls nothing (returns 0).
template <class T>
class durable_consumer {
 public:
  /// @brief Opens (creating it at options.start, or resuming its stored cursor) the consumer
  /// `name` for events of type T on topics matching `pattern`. Throws std::invalid_argument
  /// for a bad name or when `name` exists with another pattern or type; journal_error when
  /// its cursor cannot be written.
  template <class Bus>
  durable_consumer(Bus& on, std::string name, std::string_view pattern, const consumer_options& options = {})
      : group_(on, std::move(name), pattern, options), self_(group_.join(std::string())) {}

  /// @brief Hands up to `max` events (due redeliveries first, then new ones) to `handler` on
  /// this thread and settles each by the handler's outcome; returns how many. Does not wait.
  template <class F>
  std::size_t poll(F&& handler, std::size_t max = detail::default_poll_batch) {
    return self_.poll(std::forward<F>(handler), max);
  }
  /// @brief As poll, but when nothing is due waits up to `timeout` (on the consumer's clock)
  /// for a publish on the pattern or a redelivery time.
  template <class F>
  std::size_t poll_for(F&& handler, clock_source::duration timeout, std::size_t max = detail::default_poll_batch) {
    return self_.poll_for(std::forward<F>(handler), timeout, max);
  }
  /// @brief Counters and position (pending, lag, dead letters per topic, ...).
  consumer_info info() const { return group_.info(); }
  /// @brief Writes the cursor now if it changed (for acks made by tokens since the last poll).
  void flush() { group_.flush(); }
  /// @brief The consumer's name.
  const std::string& name() const noexcept { return group_.name(); }
  /// @brief Where its cursor is stored (empty when the bus has no files).
  std::filesystem::path cursor_path() const { return group_.cursor_path(); }

 private:
  consumer_group<T> group_;
  group_member<T> self_;
};

/// @brief The consumers whose cursors are stored in `directory` (on a journal bus:
/// `<journal directory>/consumers`), by name. A damaged cursor file is listed with its problem.
inline std::vector<stored_consumer> list_consumers(const std::filesystem::path& directory) {
  std::vector<stored_consumer> out;
  std::error_code ec;
  for (const auto& item : std::filesystem::directory_iterator(directory, ec)) {
    const std::filesystem::path& p = item.path();
    if (p.extension() != ".cursor") continue;
    stored_consumer c;
    c.name = p.stem().string();
    detail::cursor_file file(directory, c.name, false);
    detail::cursor_load loaded = file.load();
    if (loaded.result != detail::cursor_load::status::ok) {
      c.problem = loaded.problem.empty() ? "unreadable" : loaded.problem;
    } else {
      const detail::cursor_state& s = loaded.state;
      c.pattern = s.pattern;
      c.schema = s.schema;
      c.floor = s.floor;
      c.delivered_end = s.delivered_end;
      c.settled_above = static_cast<std::size_t>(detail::offset_count(s.settled));
      c.retrying = s.attempts.size();
      c.writes = s.writes;
    }
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const stored_consumer& a, const stored_consumer& b) { return a.name < b.name; });
  return out;
}

/// @brief Deletes the stored cursor of consumer `name` in `directory` (it must not be open):
/// the next consumer of that name starts afresh. True if there was one.
inline bool remove_consumer(const std::filesystem::path& directory, std::string_view name) {
  if (!detail::valid_consumer_name(name)) return false;
  detail::cursor_file file(directory, name, false);
  return file.remove();
}

}  // namespace agentbus

#endif  // AGENTBUS_CONSUMER_DURABLE_HPP
