// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_CORE_EVENT_HPP
#define AGENTBUS_CORE_EVENT_HPP

// What a handler receives: event<T>, a payload plus its envelope; and shared_event<T>, the
// same event retained in one reference-counted block that any number of owners share.
//
// Zero copy: a synchronous publish builds an event<T> on the publisher's stack that refers to
// the caller's payload; every handler gets a `const event<T>&` to it, so nothing is copied
// and nothing is allocated. Only a receiver that must keep the event beyond the call
// (a mailbox, storage, a transport, or a handler calling retain()) promotes it, once, into a
// shared block: one allocation holding the payload, the envelope and its strings.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

#include "agentbus/core/clock.hpp"
#include "agentbus/core/event_traits.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/memory/block_pool.hpp"

namespace agentbus {

/// @brief Delivery priority: mailboxes hand high-priority events out first.
enum class priority : std::uint8_t { low = 0, normal = 1, high = 2 };

/// @brief A string header carried with an event (trace context, idempotency key, ...).
struct header {
  std::string_view key;    ///< header name
  std::string_view value;  ///< header value
};

/// @brief Clock used for deadlines (monotonic).
using deadline_clock = std::chrono::steady_clock;

/// @brief Per-publish settings; every field is optional.
///
/// `bus.publish("tasks.created", task, {.source = "planner", .prio = priority::high});`
/// Strings and headers are referenced, not copied, for the duration of the publish; an event
/// that is retained copies them into its block.
struct publish_options {
  std::string_view source{};                     ///< publishing agent's name
  std::uint64_t correlation_id = 0;              ///< links replies to requests; 0 = none
  priority prio = priority::normal;              ///< delivery priority
  deadline_clock::duration ttl{0};               ///< time to live; zero = no deadline
  std::span<const header> headers{};             ///< extra string headers
  /// Idempotency key (a bus that stores events): a second publish with the same key within the
  /// bus's dedup window is not stored or delivered (storage/dedup.hpp). Empty = none.
  std::string_view idempotency_key{};
  /// Delayed delivery (a bus that stores events): the event is stored at once and handed to
  /// durable consumers and groups when the delay has passed, in due order, also after a restart
  /// (the due time travels as the header `agentbus-not-before`, wall-clock nanoseconds). Live
  /// subscriptions do not receive a delayed event, except those that asked for delayed events
  /// at once (subscribe_options::delayed, such as the JetStream publisher's, which hands them to
  /// JetStream to be held until due). Zero = deliver now.
  deadline_clock::duration delay{0};
};

/// @brief The header that carries a delayed event's due time (publish_options::delay), as
/// nanoseconds of wall-clock time since the epoch.
inline constexpr std::string_view not_before_header = "agentbus-not-before";

/// @brief The envelope of an event as a plain value: what the error hook and tools see.
///
/// String views refer to the event they were taken from and live as long as it does.
struct envelope {
  std::string_view topic;                         ///< concrete topic it was published on
  /// Sequence number of the publishing thread's slot (the low 40 bits of `id`; the rest name
  /// the slot): it increases by one per event the slot publishes. A slot outlives its thread:
  /// a thread that starts after another ended may take its slot over, and the numbers then go
  /// on from where that thread's stopped (ids stay unique; they are not per thread from 1).
  std::uint64_t sequence = 0;
  std::uint64_t id = 0;                           ///< process-unique event id
  std::uint64_t correlation_id = 0;               ///< 0 = none
  std::string_view source;                        ///< publishing agent, may be empty
  agentbus::priority prio = priority::normal;     ///< delivery priority
  std::optional<deadline_clock::time_point> deadline;  ///< when the event expires, if it does
  std::chrono::system_clock::time_point published;     ///< publish time (see event::published)
  std::span<const header> headers;                ///< string headers
  std::optional<std::uint64_t> offset;            ///< position in the bus's storage, when it stores events
};

template <class T>
class shared_event;

namespace detail {
template <class T>
struct event_block;
/// Wraps a freshly made block (reference count 1) in a handle without adding a reference.
template <class T>
shared_event<T> adopt_block(event_block<T>* block) noexcept;

/// Bits of the event id taken by the per-thread sequence; the rest name the publishing thread.
inline constexpr int sequence_bits = 40;
inline constexpr std::uint64_t sequence_mask = (std::uint64_t{1} << sequence_bits) - 1;
inline constexpr auto no_deadline = deadline_clock::time_point::max();
/// The offset of an event that no storage holds.
inline constexpr std::uint64_t no_offset = ~std::uint64_t{0};
struct offset_setter;

/// Header of every shared block: an intrusive reference count and the type-erased destroyer.
class event_core;

struct block_header {
  std::atomic<std::uint32_t> refs{1};
  std::uint32_t bytes = 0;  // size of the allocation, for the pool
  void (*destroy)(block_header*) noexcept = nullptr;
  const event_core* core = nullptr;  // the event view inside the block, type-erased

  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the last owner must see every other owner's reads done before it frees.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }
};

/// The block whose publisher's reference is on offer on this thread (null: none); see
/// offered_reference.
inline thread_local const block_header* offered_block = nullptr;

/// Publish side: offers the publisher's own reference to `block` to the one receiver it is
/// dispatched to, for the scope of that dispatch. A receiver that keeps the event takes it
/// (take_offered) instead of adding a reference of its own, and the publisher then does not
/// release it: that release was a locked decrement on a line the consumer is already reading,
/// the costliest instruction of a publish to a mailbox (85% of publish_retained's samples in
/// bench/async 1P1A, perf). Not taken (refused, another type, a receiver that adds its own),
/// the publisher releases it here as before. Nests: a dispatch inside a receiver offers its
/// own block and restores ours.
class offered_reference {
 public:
  explicit offered_reference(block_header* block) noexcept : block_(block), previous_(offered_block) {
    offered_block = block;
  }
  offered_reference(const offered_reference&) = delete;
  offered_reference& operator=(const offered_reference&) = delete;
  ~offered_reference() {
    // Taken: the block may be freed already; compare the pointer, never read the block.
    const bool taken = offered_block != block_;
    offered_block = previous_;
    if (!taken) block_->release();
  }

 private:
  block_header* block_;
  const block_header* previous_;
};

/// Receiver side: true when the publisher offers its reference to `block`.
inline bool reference_offered(const block_header* block) noexcept { return offered_block == block; }
/// Receiver side: takes the offered reference. Call the moment the block is kept for good
/// (queued), before anything that can throw: the block may be freed by another thread from
/// then on, and the publisher no longer releases it.
inline void take_offered_reference() noexcept { offered_block = nullptr; }

/// The type-independent part of an event. Receivers are type-erased down to this and cast
/// back to event<T> once the type id has been checked.
class event_core {
 public:
  event_core(const void* payload, std::string_view topic, const publish_options& options, std::uint64_t id,
             deadline_clock::time_point deadline, const block_header* block,
             std::uint64_t offset = no_offset) noexcept
      : payload_(payload), topic_(topic), options_(&options), id_(id), deadline_(deadline), block_(block),
        offset_(offset) {}

  std::string_view topic() const noexcept { return topic_; }
  std::uint64_t id() const noexcept { return id_; }
  std::uint64_t sequence() const noexcept { return id_ & sequence_mask; }
  std::uint64_t correlation_id() const noexcept { return options_->correlation_id; }
  std::string_view source() const noexcept { return options_->source; }
  agentbus::priority priority() const noexcept { return options_->prio; }
  std::span<const header> headers() const noexcept { return options_->headers; }

  std::optional<deadline_clock::time_point> deadline() const noexcept {
    if (deadline_ == no_deadline) return std::nullopt;
    return deadline_;
  }
  /// True when the event has a deadline and it has passed; the clock is read only for an event
  /// that has one (a default argument read it for every event: a clock call per consumed event).
  bool expired() const noexcept { return deadline_ != no_deadline && deadline_clock::now() >= deadline_; }
  /// True when the event has a deadline and `clock` says it has passed (a consumer's or a
  /// mailbox's own clock, which is read only for an event that has one).
  bool expired(const clock_source& clock) const noexcept { return deadline_ != no_deadline && clock.now() >= deadline_; }
  /// True when the event has a deadline and `now` is at or past it.
  bool expired(deadline_clock::time_point now) const noexcept { return deadline_ != no_deadline && now >= deadline_; }
  std::optional<std::string_view> header_value(std::string_view key) const noexcept {
    for (const auto& h : options_->headers)
      if (h.key == key) return h.value;
    return std::nullopt;
  }

  std::chrono::system_clock::time_point published() const noexcept {
    // Stamped lazily: reading the clock costs more than a whole synchronous publish, so it is
    // only read when someone asks (or when the event is retained).
    if (published_ns_ == 0) published_ns_ = now_ns();
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds{published_ns_})};
  }

  /// The event's position in the bus's storage (journal or memory ring); empty when the bus
  /// stores nothing. Replayed events carry the offset they were stored at.
  std::optional<std::uint64_t> offset() const noexcept {
    if (offset_ == no_offset) return std::nullopt;
    return offset_;
  }

  agentbus::envelope envelope() const noexcept {
    return {topic_, sequence(), id_, correlation_id(), source(), priority(), deadline(), published(), headers(), offset()};
  }

  const void* payload_address() const noexcept { return payload_; }
  const block_header* block() const noexcept { return block_; }

 protected:
  static std::int64_t now_ns() noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    return ns == 0 ? 1 : static_cast<std::int64_t>(ns);
  }

  const void* payload_;
  std::string_view topic_;
  const publish_options* options_;
  std::uint64_t id_;
  deadline_clock::time_point deadline_;
  mutable std::int64_t published_ns_ = 0;  // system_clock ns since the epoch; 0 = not stamped yet
  const block_header* block_;
  std::uint64_t offset_;

  template <class U>
  friend struct event_block;
  friend struct offset_setter;
};

/// Storage policies set an event's offset and publish time before anyone else sees the event.
struct offset_setter {
  static void set(event_core& e, std::uint64_t offset) noexcept { e.offset_ = offset; }
  static void set_published(const event_core& e, std::int64_t ns) noexcept { e.published_ns_ = ns; }
  static std::int64_t published_ns(const event_core& e) noexcept {
    (void)e.published();
    return e.published_ns_;
  }
};

/// Computes an event's deadline from its options; reads the clock only when a TTL is set.
inline deadline_clock::time_point deadline_from(const publish_options& options) noexcept {
  if (options.ttl <= deadline_clock::duration::zero()) return no_deadline;
  const auto now = deadline_clock::now();
  // A TTL beyond what the clock can count (an imported deadline can say anything) is none.
  return options.ttl < no_deadline - now ? now + options.ttl : no_deadline;
}

}  // namespace detail

/// @brief A delivered event: the payload of type T and its envelope.
///
/// Handlers receive `const event<T>&`. An event delivered synchronously lives on the
/// publisher's stack and is valid for the duration of the handler call; call retain() to keep
/// it longer. The payload is never copied on delivery.
///
/// Thread safety: a `const event<T>&` handed to a handler is for that handler's thread; a
/// shared_event<T> may be read from any number of threads at once.
template <class T>
class event : public detail::event_core {
 public:
  /// @brief The payload type (lets handler signatures be deduced).
  using agentbus_payload_type = T;

  /// @brief Wraps a payload that outlives the event (used by publish; not usually called by users).
  event(const T& payload, std::string_view topic, const publish_options& options, std::uint64_t id,
        deadline_clock::time_point deadline, const detail::block_header* block = nullptr,
        std::uint64_t offset = detail::no_offset) noexcept
      : event_core(std::addressof(payload), topic, options, id, deadline, block, offset) {}

  /// @brief The payload.
  const T& payload() const noexcept { return *static_cast<const T*>(payload_); }
  /// @brief The payload.
  const T& operator*() const noexcept { return payload(); }
  /// @brief Member access to the payload.
  const T* operator->() const noexcept { return static_cast<const T*>(payload_); }

  /// @brief Keeps the event beyond the handler call. Shares the block when the event already
  /// lives in one (no copy); otherwise copies the payload once into a new block.
  shared_event<T> retain() const;

  // Also available (from the envelope): topic(), id(), sequence(), correlation_id(), source(),
  // priority(), deadline(), expired(), headers(), header_value(key), published(), offset(),
  // envelope().
  //
  // published(): a retained event is stamped when it is retained; a synchronously delivered
  // event is stamped the first time any handler asks during that dispatch (all handlers then
  // see the same value). Either way the time lies between the start of publish() and the
  // first read, which for synchronous dispatch is inside the publish call.
};

namespace detail {

/// The options of a publish that passed none. A block made from them points here instead of
/// copying them (see event_block).
inline constexpr publish_options default_publish_options{};

/// One allocation holding the payload, its envelope and copies of the envelope's strings.
///
/// Layout: this struct, then (when the publish passed options of its own) a copy of them, its
/// headers and the strings (topic, source, header keys and values). A publish with the
/// default options, the usual case, copies no options: its event points at
/// default_publish_options, and the block is 80 bytes smaller (more than a cache line), which
/// is memory the publisher writes and every consumer on another core reads.
template <class T>
struct event_block : block_header {
  event<T> view;
  alignas(T) unsigned char payload_storage[sizeof(T)];

  T* payload() noexcept { return std::launder(reinterpret_cast<T*>(payload_storage)); }

  static void destroy_block(block_header* h) noexcept {
    auto* self = static_cast<event_block*>(h);
    const std::size_t bytes = self->bytes;
    self->payload()->~T();
    self->~event_block();
    deallocate(self, bytes);
  }

  // Blocks of ordinary alignment come from the block pool (freed on other threads cheaply).
  static void* allocate(std::size_t size) {
    if constexpr (alignof(event_block) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      return ::operator new(size, std::align_val_t{alignof(event_block)});
    else
      return block_pool::allocate(size);
  }
  static void deallocate(void* p, std::size_t size) noexcept {
    if constexpr (alignof(event_block) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      ::operator delete(p, std::align_val_t{alignof(event_block)});
    else
      block_pool::deallocate(p, size);
  }

  /// Builds a block from `meta` (copying its strings) and a payload constructed from `args`.
  template <class... Args>
  static event_block* make(const event_core& meta, Args&&... args) {
    const auto& src = *meta.options_;
    const bool own_options = &src != &default_publish_options;
    std::size_t text_bytes = meta.topic_.size() + src.source.size();
    for (const auto& h : src.headers) text_bytes += h.key.size() + h.value.size();
    const std::size_t options_offset = round_up(sizeof(event_block), alignof(publish_options));
    const std::size_t headers_offset =
        round_up(own_options ? options_offset + sizeof(publish_options) : sizeof(event_block), alignof(header));
    const std::size_t text_offset = headers_offset + src.headers.size() * sizeof(header);
    const std::size_t bytes = text_offset + text_bytes;
    void* raw = allocate(bytes);

    auto* block = static_cast<event_block*>(raw);
    char* text = static_cast<char*>(raw) + text_offset;
    auto copy_text = [&text](std::string_view s) {
      if (!s.empty()) std::memcpy(text, s.data(), s.size());
      std::string_view out{text, s.size()};
      text += s.size();
      return out;
    };
    auto* headers = reinterpret_cast<header*>(static_cast<char*>(raw) + headers_offset);
    for (std::size_t i = 0; i < src.headers.size(); ++i)
      ::new (static_cast<void*>(headers + i)) header{copy_text(src.headers[i].key), copy_text(src.headers[i].value)};
    const std::string_view topic = copy_text(meta.topic_);
    const publish_options* options = &default_publish_options;
    if (own_options) {  // views and numbers only (trivially destructible): nothing to destroy later
      auto* copy = ::new (static_cast<char*>(raw) + options_offset) publish_options(src);
      copy->source = copy_text(src.source);
      copy->headers = std::span<const header>(headers, src.headers.size());
      // The key is the caller's text and is not copied: a stored event carries it as a header
      // (idempotency_header), so the copy keeps no view that dies with the publish call.
      copy->idempotency_key = {};
      options = copy;
    }

    ::new (static_cast<void*>(block)) event_block(*options, topic, meta);
    block->bytes = static_cast<std::uint32_t>(bytes);
    try {
      ::new (static_cast<void*>(block->payload_storage)) T(std::forward<Args>(args)...);
    } catch (...) {
      block->~event_block();
      deallocate(raw, bytes);
      throw;
    }
    return block;
  }

 private:
  static constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

  event_block(const publish_options& options, std::string_view topic, const event_core& meta) noexcept
      : view(*payload(), topic, options, meta.id_, meta.deadline_, this, meta.offset_) {
    destroy = &destroy_block;
    core = &view;
    view.published_ns_ = meta.published_ns_ != 0 ? meta.published_ns_ : event_core::now_ns();
  }
};

}  // namespace detail

/// @brief A retained event: shared ownership of one immutable block holding the payload and
/// the envelope. Copying shares the block (an atomic increment), never the payload.
/// Safe to copy, read and destroy from any threads at once.
template <class T>
class shared_event {
 public:
  /// @brief An empty handle.
  shared_event() noexcept = default;
  /// @brief Shares `other`'s block.
  shared_event(const shared_event& other) noexcept : block_(other.block_) {
    if (block_) block_->add_ref();
  }
  /// @brief Takes `other`'s block, leaving it empty.
  shared_event(shared_event&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  /// @brief Shares `other`'s block.
  shared_event& operator=(const shared_event& other) noexcept {
    shared_event(other).swap(*this);
    return *this;
  }
  /// @brief Takes `other`'s block.
  shared_event& operator=(shared_event&& other) noexcept {
    shared_event(std::move(other)).swap(*this);
    return *this;
  }
  ~shared_event() {
    if (block_) block_->release();
  }

  /// @brief Builds a retained event: the payload is constructed in the block from `args`.
  template <class... Args>
  static shared_event make(std::string_view topic, const publish_options& options, Args&&... args) {
    const publish_options& opts = options;
    const T* no_payload = nullptr;
    detail::event_core meta(no_payload, topic, opts, 0, detail::deadline_from(opts), nullptr);
    return shared_event(detail::event_block<T>::make(meta, std::forward<Args>(args)...));
  }

  /// @brief The event (envelope + payload). Precondition: not empty.
  const event<T>& operator*() const noexcept { return block_->view; }
  /// @brief Access to the event. Precondition: not empty.
  const event<T>* operator->() const noexcept { return &block_->view; }
  /// @brief The payload. Precondition: not empty.
  const T& payload() const noexcept { return block_->view.payload(); }
  /// @brief True when the handle holds an event.
  explicit operator bool() const noexcept { return block_ != nullptr; }
  /// @brief Number of owners of the block (for tests and diagnostics; racy by nature).
  std::uint32_t use_count() const noexcept { return block_ ? block_->refs.load(std::memory_order_relaxed) : 0; }
  /// @brief Swaps two handles.
  void swap(shared_event& other) noexcept { std::swap(block_, other.block_); }

 private:
  template <class U>
  friend class event;
  template <class U>
  friend struct detail::event_block;
  friend shared_event detail::adopt_block<T>(detail::event_block<T>*) noexcept;

  explicit shared_event(detail::event_block<T>* b) noexcept : block_(b) {}

  detail::event_block<T>* block_ = nullptr;
};

template <class T>
shared_event<T> detail::adopt_block(detail::event_block<T>* block) noexcept {
  return shared_event<T>(block);
}

template <class T>
shared_event<T> event<T>::retain() const {
  if (block_ != nullptr) {
    // Already in a block (this view lives in it): share it.
    auto* b = static_cast<detail::event_block<T>*>(const_cast<detail::block_header*>(block_));
    b->add_ref();
    return shared_event<T>(b);
  }
  if constexpr (std::is_copy_constructible_v<T>) {
    (void)published();  // stamp first so the stack event and the retained copy agree
    return shared_event<T>(detail::event_block<T>::make(*this, payload()));
  } else {
    throw std::logic_error(
        "agentbus: retain() on a synchronously delivered event would copy the payload, and this event "
        "type is move-only; publish a shared_event<T> (shared_event<T>::make) to share it instead");
  }
}

}  // namespace agentbus

#endif  // AGENTBUS_CORE_EVENT_HPP
