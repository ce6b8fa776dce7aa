// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DELIVERY_DETAIL_MAILBOX_HPP
#define AGENTBUS_DELIVERY_DETAIL_MAILBOX_HPP

// A mailbox: the bounded queues through which an agent receives events asynchronously.
//
// Publishing to a mailbox subscriber puts the event's shared block (built once per publish,
// shared by every mailbox and handler: the payload is never copied per receiver) into one of
// three lock-free MPMC queues, one per priority. Exactly one consumer at a time takes events
// out, high priority first, and runs the subscriber's handler: the agent's thread, a worker of
// an executor, or the application itself (poll / run_for).
//
// Full mailbox: the overflow policy decides (block, fail, drop_newest, drop_oldest; one per
// priority if asked); every event that is not handled is counted and reported to the
// mailbox's undelivered hook. Expired events (deadline passed when they reach the head) are
// not handled; counted and reported too.
//
// Order among priorities: strict by default; with mailbox_options::weights, weighted round
// robin (each priority takes up to its weight of events per round, so none starves).
//
// Stop: close() refuses later events; the consumer's final drain (stop) then takes out
// everything a publish managed to queue, including a publish that claimed a queue slot before
// the close and fills it after (drain_settled waits for those), so that every accepted event
// is handled or counted and reported, never freed silently with the mailbox.
//
// Memory: a priority's queue is allocated by the first event of that priority, not when the
// mailbox is made, and it starts small. An idle agent's mailbox is a few hundred bytes
// instead of three full rings (3 x 1024 slots x 32 B = 96 KiB by default); one that has
// received a few events holds a first ring of tuning::mailbox_first_ring slots (about 2 KiB
// with the queue's own indices) instead of 33 KiB. So 100 000 agents that each received a
// request fit in a few hundred megabytes, not 3.3 GB.
//
// Growing: when the first ring fills, a publisher makes the full ring (the capacity), closes
// the first one to pushes and sends later events to the full one. The consumer takes the
// first ring's events before any of the full one's, so FIFO per publisher holds across the
// switch. The bound holds too: the full ring starts with as many positions reserved (holes,
// mpmc_queue::reserve_front) as the first ring still held, and each event taken out of the
// first ring afterwards frees one of them (take_while_growing, credit). So the two together
// never hold more than the capacity, and the overflow policies act at the same count as with
// one ring (drop_oldest drops one event per event pushed). The first ring is kept until the
// mailbox dies (a publisher may still be failing a push on it).
// The slow paths this adds to publish: one lock and allocation per priority when its first
// event arrives (queue_for) and once more when that first ring fills (grow).

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "agentbus/core/event.hpp"
#include "agentbus/detail/config.hpp"
#include "agentbus/detail/sync/quiescence.hpp"
#include "agentbus/detail/tuning.hpp"
#include "agentbus/core/failure.hpp"
#include "agentbus/delivery/mailbox_options.hpp"
#include "agentbus/detail/chrono.hpp"
#include "agentbus/detail/memory/prefetch.hpp"
#include "agentbus/router/detail/receiver.hpp"
#include "agentbus/queue/mpmc_queue.hpp"
#include "agentbus/router/router.hpp"

namespace agentbus {

namespace detail {

class mailbox;

/// The part of a mailbox receiver the mailbox uses: where its events go and how their
/// handler is run (delivery/mailbox.hpp builds the typed receiver on it).
struct mailbox_receiver_base : receiver {
  /// Runs the handler on an event taken out of the mailbox.
  using handle_fn = void (*)(receiver*, const event_core&);

  mailbox_receiver_base(type_id t, invoke_fn inv, destroy_fn des, topic_pattern pat, mailbox& home_box,
                        handle_fn run, destroy_fn give_back) noexcept
      : receiver(t, inv, des, std::move(pat), /*keeps_events=*/true, give_back), home(&home_box), handle(run) {}

  mailbox* home;
  handle_fn handle;
};

/// One queued event: which subscription it is for and one reference to its shared block.
/// No default member initializers: run_batch keeps a burst of these on its stack, and zeroing
/// them on every call would cost more than the burst saves when it is short.
struct mail {
  mailbox_receiver_base* target;
  block_header* block;
};

class mailbox {
 public:
  /// Wakes the consumer; set by the agent that owns the mailbox.
  using wake_fn = void (*)(void* context) noexcept;

  /// Throws what mpmc_queue throws for a capacity it refuses (0, or above its maximum): at
  /// once, although the queues themselves are made by the first event of each priority.
  /// Throws std::invalid_argument for weights that mix zero and non-zero values.
  mailbox(std::string name, const mailbox_options& options)
      : name_(std::move(name)),
        options_(options),
        capacity_(checked_capacity(options.capacity)),
        overflow_{options.priority_overflow.high.value_or(options.overflow),
                  options.priority_overflow.normal.value_or(options.overflow),
                  options.priority_overflow.low.value_or(options.overflow)},
        weights_{options.weights.high, options.weights.normal, options.weights.low},
        weighted_(checked_weighted(options.weights)),
        credit_(weights_) {}

  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  ~mailbox() {
    // Whoever destroys the mailbox has unsubscribed its receivers and drained it (agent does:
    // nothing is left). Should anything be, it is still counted and reported, not freed silently.
    mail m;
    for_each_ring([&](mpmc_queue<mail>& q) {  // per priority the first ring first: FIFO
      while (q.try_pop(m)) {
        note(undelivered_reason::discarded, *m.block->core);
        m.block->release();
      }
    });
    for_each_ring([](mpmc_queue<mail>& q) { delete &q; });
    for (receiver* r : retired_) r->destroy(r);
  }

  void set_wake(wake_fn fn, void* context) noexcept {
    wake_ = fn;
    wake_context_ = context;
  }
  void set_undelivered_handler(undelivered_handler h) {
    auto p = h ? std::make_shared<const undelivered_handler>(std::move(h)) : nullptr;
    std::lock_guard lock(hook_mutex_);
    undelivered_ = std::move(p);
  }

  const std::string& name() const noexcept { return name_; }
  const mailbox_options& options() const noexcept { return options_; }
  /// Events each priority queue holds.
  std::size_t capacity() const noexcept { return capacity_; }
  /// Bytes of queue storage allocated so far (the rings made since the first event of each
  /// priority: a small first ring, and the full one once that filled).
  std::size_t queue_bytes() const noexcept {
    std::size_t n = 0;
    for_each_ring([&n](const mpmc_queue<mail>& q) { n += ring_bytes(q.capacity()); });
    return n;
  }
  /// What one priority's ring takes once allocated (its slots and the queue object).
  static constexpr std::size_t ring_bytes(std::size_t capacity) noexcept {
    return capacity * sizeof(mpmc_slot<mail>) + sizeof(mpmc_queue<mail>);
  }

  // ---- producer side (publishing threads) ----

  /// Queues `ev` (which lives in a shared block) for receiver `r`. False when refused.
  bool deliver(mailbox_receiver_base* r, const event_core& ev) {
    mpmc_queue<mail>* const queue = queue_for(index_of(ev.priority()));
    if (AGENTBUS_UNLIKELY(queue == nullptr))  // closed before its first event, or out of memory
      return refuse(closing_.load(std::memory_order_acquire) ? undelivered_reason::closed : undelivered_reason::rejected, ev);
    auto* block = const_cast<block_header*>(ev.block());
    // The publisher offers its own reference when we are the topic's only receiver: the queue
    // takes it once the event is in, and nobody touches the count (core/event.hpp).
    const bool offered = reference_offered(block);
    // Otherwise a count of 1 is the caller's own reference (whoever dispatches holds one for the
    // whole dispatch): no other thread holds the block or can take a reference to it, so a
    // plain store will do. That saves a locked instruction, which would first wait for all the
    // stores that built the block to drain. Acquire: if the 1 was left by another mailbox's
    // consumer releasing its reference, its reads of the event happen before whoever frees it.
    if (!offered) {
      if (block->refs.load(std::memory_order_acquire) == 1)
        block->refs.store(2, std::memory_order_relaxed);
      else
        block->add_ref();
    }
    const mail m{r, block};
    mpmc_queue<mail>* q = queue;
    bool ok = q->try_push(m);
    if (AGENTBUS_UNLIKELY(!ok)) {
      if (q->capacity() < capacity_)  // the first ring is full (or another publisher grew it)
        if (mpmc_queue<mail>* full = grow(index_of(ev.priority()))) {
          q = full;
          ok = q->try_push(m);
        }
      if (!ok) {
        try {
          ok = deliver_full(*q, m, ev);
        } catch (...) {  // a blocking wait's mutex or condition variable failed (std::system_error)
          ok = refuse(undelivered_reason::rejected, ev);
        }
      }
    }
    if (!ok) {
      if (!offered) block->release();  // an offered reference stays the publisher's
      return false;
    }
    if (offered) take_offered_reference();  // queued: the consumer may free the block from now on
    // The sleep handshake (see prepare_sleep): our claim in try_push was a seq_cst RMW, so
    // this seq_cst load either sees the consumer's flag or the consumer sees our claim.
    if (sleeping_.load(std::memory_order_seq_cst) && sleeping_.exchange(false, std::memory_order_acq_rel)) wake_(wake_context_);
    return true;
  }

  // ---- consumer side (one thread at a time) ----

  /// What one run_batch did.
  struct batch_result {
    std::size_t taken = 0;  ///< events taken out of the queues (handled, failed, expired, ...)
    std::size_t ran = 0;    ///< handler calls among them (returned or threw)
  };

  /// Runs up to `max` handler calls, high priority first. Events that run no handler
  /// (expired, discarded, for an ended subscription) are taken out too but do not count
  /// against `max`: a mailbox full of stale events does not starve the live ones.
  ///
  /// Events are taken out in bursts: the run of events waiting at the head of the highest
  /// non-empty queue, claimed at once (up to `burst`). Before the handlers run, the burst's
  /// blocks are prefetched, so that a consumer which has fallen behind pays for the cache
  /// lines the publisher wrote (the block header, envelope and payload) in parallel rather
  /// than one miss after another. Priorities hold per event: before each normal (low) event
  /// of a burst, high (and normal) events that arrived meanwhile are handled first.
  ///
  /// `one_pass`: return after a burst that took fewer than asked (the events ready at the head
  /// of that queue are all handled) instead of looking again at once: a consumer that keeps
  /// looking takes events one by one right behind the publisher (see agent::thread_main).
  ///
  /// Throws std::bad_alloc, with every event still queued, when this thread has never entered
  /// a read section and there is no memory for its slot (consume's read sections then cannot
  /// throw with an event taken out).
  batch_result run_batch(std::size_t max, stop_mode mode = stop_mode::drain, bool one_pass = false) {
    (void)this_thread_reader_slot();
    batch_result out;
    bool drained = false;
    mail taken[burst];
    while (out.ran < max) {
      std::size_t level = 0;
      std::size_t k = 0;
      const std::size_t want = max - out.ran < burst_ ? max - out.ran : burst_;
      if (weighted_) {
        k = take_weighted(taken, want, level);
      } else {
        for (; level < levels; ++level)
          if ((k = take(level, taken, want)) != 0) break;
      }
      if (k == 0) {
        drained = true;
        break;
      }
      out.taken += k;
      prefetch(taken, k);
      burst_guard guard{this, taken, 0, k};
      for (std::size_t& i = guard.next; i < k;) {
        // Strict priority: higher priorities that arrived during the burst go first, within
        // the budget (the rest of the burst may still run a handler each). Weighted: the
        // burst is at most the priority's remaining weight; the others wait their turn.
        if (level > 0 && !weighted_)
          while (out.ran + (k - i) < max && higher_pending(level)) {
            mail m;
            if (!pop_above(level, m)) break;
            ++out.taken;
            out.ran += consume(m, mode);
          }
        out.ran += consume(taken[i++], mode);
      }
      if (one_pass && k < want) break;
    }
    if (drained || out.ran < max) free_retired_if_idle();
    return out;
  }

  /// After close() has returned (closed() is true): true when no event can still appear in
  /// the queues, i.e. every publish that claimed a slot has filled it and it was taken out.
  /// A push that claims a slot after the close sees the queue closed and leaves nothing (the
  /// queue's own claim-then-check), so once this is true the final drain is complete.
  bool drain_settled() noexcept {
    // Pairs with the publisher's claim (seq_cst) and its closed check (seq_cst) after it: a
    // claim whose check missed our close is ordered before it, hence before this fence, and
    // the index loads below see it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!empty()) return false;
    // From now on nothing can be queued: a later push claims a slot only to leave a hole
    // (which the queue's size still counts until a pop steps over it), so depth reads 0.
    drained_.store(true, std::memory_order_release);
    return true;
  }

  /// True when nothing is queued (approximate while producers are active). Every load is
  /// seq_cst (the ring pointers, the claim index in size_approx): prepare_sleep's handshake
  /// needs them in the total order.
  bool empty() const noexcept {
    for (std::size_t level = 0; level < levels; ++level)
      if (!level_empty(level)) return false;
    return true;
  }

  /// The consumer is about to stop looking. Returns false when events arrived in the meantime
  /// and the consumer still owns the mailbox (it must keep going); true when it may sleep: a
  /// producer will call wake() when the next event arrives.
  /// `wake_on_close`: a closing mailbox also keeps (or wakes) the consumer, which must notice.
  ///
  /// The handshake is a Dekker pair made of seq_cst operations only: the consumer stores the
  /// flag, then reads the queues' claim indices (empty(): seq_cst loads); a producer claims its
  /// slot with a seq_cst RMW (mpmc_queue's enqueue), then reads the flag (deliver). In the one
  /// total order of seq_cst operations one of the two comes first, so either the consumer sees
  /// the claim and stays, or the producer sees the flag and wakes it. On x86 this costs the
  /// consumer one xchg and the producer nothing (its RMW was needed anyway, and a seq_cst load
  /// is a plain load). It replaced a membarrier(2) here: each park then sent an IPI to every
  /// CPU running the process, the publishers' included (10% of a 2-thread executor's time).
  bool prepare_sleep(bool wake_on_close) noexcept {
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!empty() || (wake_on_close && closed_.load(std::memory_order_seq_cst))) {
      // Take the wake back unless a producer already took it (then its wake() is coming).
      if (sleeping_.exchange(false, std::memory_order_acq_rel)) return false;
    }
    return true;
  }
  /// Claims the mailbox for a consumer that is not woken by producers (stop, poll): true when
  /// the caller now owns it, false when another consumer is running it.
  bool try_claim() noexcept { return sleeping_.exchange(false, std::memory_order_acq_rel); }
  /// True while no consumer owns the mailbox.
  bool is_sleeping() const noexcept { return sleeping_.load(std::memory_order_acquire); }
  /// The flag a parked thread waits on.
  std::atomic<bool>& sleep_flag() noexcept { return sleeping_; }

  /// Stops accepting events: later deliveries are refused (counted as closed). When it
  /// returns, every queue is closed and no new one will be made (closed() is true).
  /// stop_mode::discard: from now on the consumer discards (counts, reports) every event it
  /// takes out instead of running its handler, also in a round that is already running.
  void close(stop_mode how = stop_mode::drain) noexcept {
    if (how == stop_mode::discard) discarding_.store(true, std::memory_order_relaxed);
    // Under the lock that makes queues (make_queue): a queue is either made before and
    // closed here, or not made at all. Without it, a queue published by a racing first event
    // could take another publisher's event after the consumer's final drain.
    {
      std::lock_guard lock(queue_mutex_);
      closing_.store(true, std::memory_order_seq_cst);
      for_each_ring([](mpmc_queue<mail>& q) { q.close(); });
    }
    closed_.store(true, std::memory_order_seq_cst);
  }
  /// True once close() has begun.
  bool closing() const noexcept { return closing_.load(std::memory_order_acquire); }
  /// True once close() has returned: the consumer may begin its final drain.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  /// Called by the router (via receiver::hand_over) after unsubscribing an asynchronous
  /// receiver: frees it once no queued event can name it.
  void retire_receiver(receiver* r) {
    std::lock_guard lock(retired_mutex_);
    retired_.push_back(r);
    has_retired_.store(true, std::memory_order_release);
    forget_tracked(r->owner, r->id);
  }

  /// Remembers a subscription made on this mailbox, so the owner can end them all.
  void track(const std::shared_ptr<router>& owner, std::uint64_t id) {
    std::lock_guard lock(retired_mutex_);
    tracked_.push_back({owner, owner.get(), id});
  }
  /// Ends every tracked subscription, waiting for running publishes and handlers: one grace
  /// period per router (the batched unsubscribe), not one per subscription.
  void unsubscribe_all() {
    std::vector<tracked_subscription> all;
    {
      std::lock_guard lock(retired_mutex_);
      all.swap(tracked_);
    }
    // Group by router (owner order, valid for expired pointers too), then one call per group.
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.owner.owner_before(b.owner); });
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < all.size();) {
      std::size_t j = i;
      ids.clear();
      for (; j < all.size() && !all[i].owner.owner_before(all[j].owner); ++j) ids.push_back(all[j].id);
      if (auto r = all[i].owner.lock()) r->unsubscribe(std::span<const std::uint64_t>(ids));
      i = j;
    }
  }

  mailbox_stats stats() const noexcept {
    mailbox_stats s;
    s.handled = handled_.load(std::memory_order_relaxed);
    s.failed = failed_.load(std::memory_order_relaxed);
    s.rejected = count(undelivered_reason::rejected);
    s.dropped_newest = count(undelivered_reason::dropped_newest);
    s.dropped_oldest = count(undelivered_reason::dropped_oldest);
    s.expired = count(undelivered_reason::expired);
    s.discarded = count(undelivered_reason::discarded);
    s.closed = count(undelivered_reason::closed);
    s.unsubscribed = count(undelivered_reason::unsubscribed);
    if (!drained_.load(std::memory_order_acquire))
      for (std::size_t level = 0; level < levels; ++level) s.depth += level_depth(level);
    // Derived rather than counted on the hot path: everything accepted is queued or has an outcome.
    s.queue_bytes = queue_bytes();
    s.queued = s.handled + s.failed + s.expired + s.discarded + s.dropped_oldest + s.unsubscribed + s.depth;
    {
      std::lock_guard lock(retired_mutex_);
      s.subscriptions = tracked_.size();
    }
    return s;
  }

 private:
  static std::size_t index_of(priority p) noexcept {
    return p == priority::high ? 0 : p == priority::normal ? 1 : 2;
  }

  // True for weighted round robin, false for strict priority; throws for a mix.
  static bool checked_weighted(const per_priority<std::uint32_t>& w) {
    const int nonzero = (w.high != 0) + (w.normal != 0) + (w.low != 0);
    if (nonzero != 0 && nonzero != 3)
      throw std::invalid_argument(
          "agentbus: mailbox_options::weights: give every priority a weight (all non-zero: weighted "
          "round robin) or none (all zero: strict priority)");
    return nonzero == 3;
  }

  // Weighted round robin: a burst from the highest priority that has weight left in this
  // round and events waiting, at most its remaining weight. When no priority with weight left
  // has events, a new round begins (every weight restored); a fresh round that finds nothing
  // means the mailbox is empty. credit_ is the consumer's own (one consumer at a time, handed
  // over with acquire/release like the rest of its state).
  std::size_t take_weighted(mail* taken, std::size_t want, std::size_t& level) noexcept {
    for (int round = 0; round < 2; ++round) {
      for (level = 0; level < levels; ++level) {
        if (credit_[level] == 0) continue;
        const std::size_t n = want < credit_[level] ? want : credit_[level];
        if (const std::size_t k = take(level, taken, n); k != 0) {
          credit_[level] -= static_cast<std::uint32_t>(k);
          return k;
        }
      }
      if (credit_ == weights_) break;  // a full round found nothing
      credit_ = weights_;
    }
    return 0;
  }

  // The same checks (and messages) as mpmc_queue's constructor, made when the mailbox is.
  static std::size_t checked_capacity(std::size_t requested) {
    if (requested == 0 || requested > mpmc_queue<mail>::max_capacity)
      (void)mpmc_queue<mail>(requested);  // throws mpmc_queue's own invalid_argument / length_error
    return std::bit_ceil(requested);
  }

  // The queue of priority `level`, made by the first event of that priority. After that, one
  // acquire load of a pointer that never changes again (the same cost as the unique_ptr it
  // replaces). Null when the mailbox closed before the first event of that priority (no need
  // for a queue then) or when there was no memory to make it: the event is then refused
  // (counted as closed or rejected, and reported), as publish does not throw for a full
  // mailbox either.
  AGENTBUS_ALWAYS_INLINE mpmc_queue<mail>* queue_for(std::size_t level) noexcept {
    if (mpmc_queue<mail>* q = push_rings_[level].load(std::memory_order_acquire); AGENTBUS_LIKELY(q != nullptr)) return q;
    return make_queue(level);
  }

  // Slow path, once per priority: allocate and publish under queue_mutex_. No reader can see a
  // half-made queue (the release store publishes its construction). Memory: the queue is
  // freed with the mailbox (nothing frees it earlier, so a producer never holds a stale
  // pointer).
  AGENTBUS_NOINLINE mpmc_queue<mail>* make_queue(std::size_t level) noexcept {
    // Under the lock close() takes: a queue is published before a close (which then closes
    // it) or not at all. Racing first events of one priority take turns; the second finds the
    // first one's queue. Allocating outside the lock would let losers allocate for nothing.
    try {
      std::lock_guard lock(queue_mutex_);
      if (mpmc_queue<mail>* q = push_rings_[level].load(std::memory_order_relaxed)) return q;
      if (closing_.load(std::memory_order_relaxed)) return nullptr;
      // capacity_ was checked: only bad_alloc
      auto* fresh = new mpmc_queue<mail>(capacity_ < tuning::mailbox_first_ring ? capacity_ : tuning::mailbox_first_ring);
      // seq_cst, all three: see prepare_sleep
      first_rings_[level].store(fresh, std::memory_order_seq_cst);
      take_rings_[level].store(fresh, std::memory_order_seq_cst);
      push_rings_[level].store(fresh, std::memory_order_seq_cst);
      return fresh;
    } catch (...) {
      return push_rings_[level].load(std::memory_order_acquire);  // out of memory (or the lock failed)
    }
  }

  // Slow path, once per priority: the first ring is full (or closed by a publisher that grew
  // it). Makes the full ring under queue_mutex_ (as make_queue, against close), with the first
  // ring's events reserved in it, and sends publishers there. Null when the mailbox is closing
  // or there is no memory: the publisher then applies the overflow policy to the first ring.
  AGENTBUS_NOINLINE mpmc_queue<mail>* grow(std::size_t level) noexcept {
    try {
      std::lock_guard lock(queue_mutex_);
      if (mpmc_queue<mail>* full = full_rings_[level].load(std::memory_order_relaxed)) return full;
      if (closing_.load(std::memory_order_relaxed)) return nullptr;
      auto full = std::make_unique<mpmc_queue<mail>>(capacity_);  // before anything changes
      mpmc_queue<mail>* first = first_rings_[level].load(std::memory_order_relaxed);
      // Closed first: a push that claimed a slot before the close fills it and is counted by
      // size_approx below (claims before the close are visible to it); later ones fail and
      // come here. The reservation may include the holes of such failed pushes: for a moment
      // the bound is that many events conservative, never larger.
      first->close();
      full->reserve_front(first->size_approx());
      // Published after the size was read: whoever takes an event out of the first ring after
      // seeing full_rings_ set took one that was counted, and frees one reserved position
      // (credit). seq_cst also for prepare_sleep's handshake.
      full_rings_[level].store(full.get(), std::memory_order_seq_cst);
      push_rings_[level].store(full.get(), std::memory_order_seq_cst);
      return full.release();
    } catch (...) {
      return full_rings_[level].load(std::memory_order_acquire);
    }
  }

  // Takes up to `want` of `level`'s waiting events into `out` (consumer side); 0 when none is
  // ready. Until a first ring grows, and after the consumer has moved to the full ring, it is
  // one bulk pop, as with a single ring.
  AGENTBUS_ALWAYS_INLINE std::size_t take(std::size_t level, mail* out, std::size_t want) noexcept {
    mpmc_queue<mail>* q = take_rings_[level].load(std::memory_order_acquire);
    if (q == nullptr) return 0;
    if (mpmc_queue<mail>* full = full_rings_[level].load(std::memory_order_acquire); AGENTBUS_UNLIKELY(full != nullptr && full != q))
      return take_while_growing(level, *q, *full, out, want);
    return q->try_pop_bulk(out, want);
  }
  // The first ring has grown: its events go first (FIFO per publisher), each freeing one
  // reserved position of the full ring, so the two rings together stay within the capacity
  // at every moment and accept exactly as much as one ring of the capacity would. Once it is
  // drained the consumer moves to the full ring for good. Drained means final: every push that
  // claimed a slot before grow() closed it is visible to empty_approx (grow closed it before
  // publishing full_rings_, which we read), later pushes fail.
  AGENTBUS_NOINLINE std::size_t take_while_growing(std::size_t level, mpmc_queue<mail>& first, mpmc_queue<mail>& full,
                                                   mail* out, std::size_t want) noexcept {
    if (!first.empty_approx()) {
      const std::size_t k = first.try_pop_bulk(out, want);
      credit(full, k);
      return k;
    }
    take_rings_[level].store(&full, std::memory_order_seq_cst);  // seq_cst: see prepare_sleep
    return full.try_pop_bulk(out, want);
  }
  // `taken` events left the first ring after it grew: as many reserved positions of the full
  // ring are free again. Stepping over one fails only if a pop of the full ring (drop_oldest,
  // once the first ring looked empty) already stepped over it: nothing is owed then.
  static void credit(mpmc_queue<mail>& full, std::size_t taken) noexcept {
    for (std::size_t i = 0; i < taken && full.try_skip_hole(); ++i) {
    }
  }

  // No event of `level` waits (either ring). seq_cst loads: see prepare_sleep.
  bool level_empty(std::size_t level) const noexcept {
    const mpmc_queue<mail>* q = take_rings_[level].load(std::memory_order_seq_cst);
    if (q == nullptr) return true;
    if (!q->empty_approx()) return false;
    const mpmc_queue<mail>* full = full_rings_[level].load(std::memory_order_seq_cst);
    return full == nullptr || full == q || full->empty_approx();
  }
  // Events of `level` waiting (approximate, as size_approx). While a first ring is being
  // drained, the full ring's reserved positions stand for its events.
  std::size_t level_depth(std::size_t level) const noexcept {
    const mpmc_queue<mail>* full = full_rings_[level].load(std::memory_order_acquire);
    if (full != nullptr) return full->size_approx();
    const mpmc_queue<mail>* first = first_rings_[level].load(std::memory_order_acquire);
    return first != nullptr ? first->size_approx() : 0;
  }

  // Calls fn on every ring made (per priority the first, then the full one).
  template <class Fn>
  void for_each_ring(Fn&& fn) const {
    for (std::size_t level = 0; level < levels; ++level) {
      if (mpmc_queue<mail>* q = first_rings_[level].load(std::memory_order_acquire)) fn(*q);
      if (mpmc_queue<mail>* q = full_rings_[level].load(std::memory_order_acquire)) fn(*q);
    }
  }

  // Events claimed at once by run_batch: at most `burst`, and at most an eighth of a queue's
  // capacity, so that the events taken out but not handled yet (which no longer count against
  // the capacity) stay a small part of what the mailbox holds back before its overflow
  // policy applies.
  static constexpr std::size_t burst = tuning::mailbox_burst;
  static std::size_t burst_for(std::size_t capacity) noexcept {
    const std::size_t eighth = capacity / 8;
    return eighth == 0 ? 1 : eighth < burst ? eighth : burst;
  }

  // True when a queue of higher priority than `level` holds events.
  bool higher_pending(std::size_t level) const noexcept {
    for (std::size_t i = 0; i < level; ++i)
      if (!level_empty(i)) return true;
    return false;
  }
  // Takes one event of higher priority than `level`.
  bool pop_above(std::size_t level, mail& m) {
    for (std::size_t i = 0; i < level; ++i)
      if (take(i, &m, 1) != 0) return true;
    return false;
  }

  // Fetches the lines of the burst's blocks that the consumer touches: the header (written:
  // the reference count), the event view and the start of the payload. Every block spans at
  // least two lines (header and view alone take 96 bytes), so both are the block's own; a
  // third could be the next block's, which its publisher may be writing right now.
  static void prefetch(const mail* taken, std::size_t k) noexcept {
    for (std::size_t i = 0; i < k; ++i) {
      const auto* bytes = reinterpret_cast<const char*>(taken[i].block);
      prefetch_for_write(bytes);
      prefetch_for_read(bytes + cache_line_size);
    }
  }

  // Should a handler-side failure unwind run_batch (it does not: handler exceptions are caught),
  // the rest of a burst is not lost: counted as discarded and its blocks released.
  struct burst_guard {
    mailbox* self;
    mail* taken;
    std::size_t next;
    std::size_t end;
    ~burst_guard() {
      for (; next < end; ++next) {
        self->note(undelivered_reason::discarded, *taken[next].block->core);
        taken[next].block->release();
      }
    }
  };

  // The slow path of deliver(): the queue was full (or closed).
  AGENTBUS_NOINLINE bool deliver_full(mpmc_queue<mail>& q, const mail& m, const event_core& ev) {
    if (closing_.load(std::memory_order_acquire)) return refuse(undelivered_reason::closed, ev);
    // `q` refuses because it is closed: by close() (refused as closed), or because it is a
    // first ring that another publisher grew while this one waited on it (its own grow found
    // no memory): the full ring takes the event then (a blocking wait starts again there).
    const auto closed_under_us = [&]() -> bool {
      if (!closing_.load(std::memory_order_acquire))
        if (mpmc_queue<mail>* full = full_rings_[index_of(ev.priority())].load(std::memory_order_acquire);
            full != nullptr && full != &q)
          return full->try_push(m) || deliver_full(*full, m, ev);
      return refuse(undelivered_reason::closed, ev);
    };
    switch (overflow_[index_of(ev.priority())]) {
      case overflow::fail: return refuse(undelivered_reason::rejected, ev);
      case overflow::drop_newest: return refuse(undelivered_reason::dropped_newest, ev);
      case overflow::drop_oldest: {
        // The oldest may still be in the first ring, while the full one is being filled.
        const std::size_t level = index_of(ev.priority());
        mpmc_queue<mail>* older = &q == full_rings_[level].load(std::memory_order_acquire)
                                      ? first_rings_[level].load(std::memory_order_acquire)
                                      : nullptr;
        for (;;) {
          if (q.try_push(m)) return true;
          if (q.closed()) return closed_under_us();
          mail old;
          // The first ring's events are the oldest: they go first, each freeing its reserved
          // position in the full ring (credit), so one event is dropped per event pushed.
          const bool from_first = older != nullptr && !older->empty_approx();
          if ((from_first ? *older : q).try_pop(old)) {
            if (from_first) credit(q, 1);
            note(undelivered_reason::dropped_oldest, *old.block->core);
            old.block->release();
          } else {
            std::this_thread::yield();  // a consumer holds the slot we would drop; it is about to free one
          }
        }
      }
      case overflow::block: {
        // Room usually appears within a few handler calls. Rather than retrying the push
        // (which polls the very slot the consumer is about to free, slowing it down), wait
        // until a quarter of the queue is free, then go on: the publisher and the consumer
        // then work on slots far apart. Pause first, then yield (a consumer may share our
        // core), and only then park in the queue: parking makes every pop pay for a wake-up.
        const bool forever = options_.block_timeout == std::chrono::nanoseconds::max();
        const auto deadline = forever ? std::chrono::steady_clock::time_point::max()
                                      : std::chrono::steady_clock::now() + options_.block_timeout;
        const std::size_t resume_at = q.capacity() - q.capacity() / 4;
        for (unsigned i = 0; i < tuning::full_wait_rounds; ++i) {
          if (q.closed()) return closed_under_us();
          if (q.size_approx() <= resume_at && q.try_push(m)) return true;
          if (i < tuning::full_wait_pause_rounds) {
            for (unsigned k = 0; k < tuning::full_wait_pauses_per_round; ++k) cpu_relax();
          } else {
            if (!forever && std::chrono::steady_clock::now() >= deadline) break;
            std::this_thread::yield();
          }
        }
        bool ok = false;
        if (forever)
          ok = q.push(m);
        else if (const auto now = std::chrono::steady_clock::now(); now < deadline)
          ok = q.push_for(m, deadline - now);
        if (ok) return true;
        if (q.closed()) return closed_under_us();
        return refuse(undelivered_reason::rejected, ev);
      }
    }
    return false;
  }

  // Counters written only by the consumer (one at a time) need no read-modify-write.
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  bool refuse(undelivered_reason why, const event_core& ev) {
    note(why, ev);
    return false;
  }

  void note(undelivered_reason why, const event_core& ev) noexcept {
    counters_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const undelivered_handler> hook;
    {
      std::lock_guard lock(hook_mutex_);
      hook = undelivered_;
    }
    if (!hook) return;
    try {
      (*hook)(undelivered{why, ev.envelope(), name_});
    } catch (...) {
      // Documented: swallowed.
    }
  }

  std::uint64_t count(undelivered_reason why) const noexcept {
    return counters_[static_cast<std::size_t>(why)].load(std::memory_order_relaxed);
  }

  // Hands one event to its handler, or counts why not. Returns 1 when a handler ran.
  std::size_t consume(mail& m, stop_mode mode) {
    const event_core& ev = *m.block->core;
    std::size_t ran = 0;
    // discarding_: a stop(discard) that came while the consumer was in a round (relaxed: a
    // few more handler calls before it is seen are allowed; the stop's own drain sees it).
    if (mode == stop_mode::discard || discarding_.load(std::memory_order_relaxed)) {
      note(undelivered_reason::discarded, ev);
    } else if (ev.expired(clock_source::or_steady(options_.clock))) {  // the clock is read only for events with a deadline
      note(undelivered_reason::expired, ev);
    } else {
      bool ended;
      {
        // The read section makes unsubscribe wait for this call, as for synchronous handlers.
        read_guard guard;
        ended = !m.target->alive.load(std::memory_order_relaxed);
        if (!ended) {
          ran = 1;
          try {
            m.target->handle(m.target, ev);
            bump(handled_);
          } catch (...) {
            bump(failed_);
            m.target->owner->report_failure(ev, *m.target, std::current_exception());
          }
        }
      }
      if (ended) note(undelivered_reason::unsubscribed, ev);  // outside the section: the hook may unsubscribe
    }
    release(m.block);
    return ran;
  }

  // Drops the mail's reference. Usually the publisher has already dropped its own and ours is
  // the last: a count of 1 is then ours alone (nobody can take a reference without holding
  // one), so the block is freed without the locked decrement, which would first wait for
  // every store before it to drain. Acquire: the other owners' releasing decrements happen
  // before the free.
  static void release(block_header* block) noexcept {
    if (block->refs.load(std::memory_order_acquire) == 1)
      block->destroy(block);
    else
      block->release();
  }

  // A retired receiver can be freed once the queues have been seen empty after it was
  // retired: it was retired after every publish that could queue it had finished.
  void free_retired_if_idle() {
    if (!has_retired_.load(std::memory_order_acquire)) return;
    std::vector<receiver*> ready;
    {
      std::lock_guard lock(retired_mutex_);
      ready.swap(retired_);
      has_retired_.store(false, std::memory_order_relaxed);
    }
    if (!empty()) {
      std::lock_guard lock(retired_mutex_);
      retired_.insert(retired_.end(), ready.begin(), ready.end());
      has_retired_.store(true, std::memory_order_relaxed);
      return;
    }
    for (receiver* r : ready) r->destroy(r);
  }

  const std::string name_;
  const mailbox_options options_;
  const std::size_t capacity_;  // of each queue (a power of two)
  static constexpr std::size_t levels = 3;  // high, normal, low
  // Per level (high, normal, low). The first ring: null until the first event of that
  // priority (make_queue), then fixed. The full ring: null until the first ring fills (grow),
  // then fixed; when the capacity is no larger than a first ring, never made. Publishers push
  // to push_rings_ (the first, then the full one); the consumer takes from take_rings_ (the
  // first until it is drained after growing, then the full one). All freed with the mailbox.
  std::array<std::atomic<mpmc_queue<mail>*>, levels> first_rings_{};
  std::array<std::atomic<mpmc_queue<mail>*>, levels> full_rings_{};
  std::array<std::atomic<mpmc_queue<mail>*>, levels> push_rings_{};
  std::array<std::atomic<mpmc_queue<mail>*>, levels> take_rings_{};
  const std::size_t burst_ = burst_for(capacity_);
  const std::array<agentbus::overflow, 3> overflow_;  // per level (high, normal, low)
  const std::array<std::uint32_t, 3> weights_;        // per level; all zero: strict
  const bool weighted_;
  std::array<std::uint32_t, 3> credit_;  // consumer-owned: weight left in this round, per level
  std::mutex queue_mutex_;               // make_queue against close

  alignas(cache_line_size) std::atomic<bool> sleeping_{true};  // no consumer owns the mailbox
  std::atomic<bool> closing_{false};
  std::atomic<bool> closed_{false};  // close() has returned
  std::atomic<bool> discarding_{false};  // close(stop_mode::discard): handle nothing more
  std::atomic<bool> drained_{false};     // the final drain is complete (drain_settled)
  wake_fn wake_ = [](void*) noexcept {};
  void* wake_context_ = nullptr;

  alignas(cache_line_size) std::atomic<std::uint64_t> handled_{0};  // consumer-written counters
  std::atomic<std::uint64_t> failed_{0};
  std::array<std::atomic<std::uint64_t>, 7> counters_{};  // by undelivered_reason

  std::mutex hook_mutex_;
  std::shared_ptr<const undelivered_handler> undelivered_;

  mutable std::mutex retired_mutex_;
  std::atomic<bool> has_retired_{false};
  std::vector<receiver*> retired_;
  // A subscription delivering here: the router (weak, for unsubscribe_all; raw, to match the
  // receiver that ends) and its id. Ended ones leave (forget_tracked), so an agent that churns
  // subscriptions (reply routes, say) keeps only its live ones.
  struct tracked_subscription {
    std::weak_ptr<router> owner;
    const router* key;
    std::uint64_t id;
  };
  // Caller holds retired_mutex_. From the back: the subscription that ends is usually a recent one.
  void forget_tracked(const router* key, std::uint64_t id) noexcept {
    for (std::size_t i = tracked_.size(); i-- > 0;)
      if (tracked_[i].id == id && tracked_[i].key == key) {
        tracked_[i] = std::move(tracked_.back());
        tracked_.pop_back();
        return;
      }
  }
  std::vector<tracked_subscription> tracked_;
};

}  // namespace detail
}  // namespace agentbus

#endif  // AGENTBUS_DELIVERY_DETAIL_MAILBOX_HPP
