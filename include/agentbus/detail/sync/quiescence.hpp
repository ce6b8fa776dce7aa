// SPDX-License-Identifier: MIT
// This file is part of agentbus: https://github.com/agentbus/agentbus
#ifndef AGENTBUS_DETAIL_SYNC_QUIESCENCE_HPP
#define AGENTBUS_DETAIL_SYNC_QUIESCENCE_HPP

// Read-side critical sections that cost a few plain instructions, and the writer-side wait
// ("grace period") that makes unsubscribe safe. This is the scheme behind "publish without
// locks, unsubscribe with quiescence".
//
// Readers (publishers) announce themselves in a per-thread, cache-line padded slot: the slot's
// counter is odd while the thread is inside a read section. Entering needs the store to the
// counter to be visible before the reader loads any shared pointer (a StoreLoad order), which
// normally costs a full fence on every publish. On Linux we instead use membarrier(2)
// (PRIVATE_EXPEDITED): the *writer*, which is rare, forces a barrier on every running thread
// of the process, and readers need only a compiler barrier. Where membarrier is unavailable
// (or under ThreadSanitizer, which does not model it) readers fall back to a real fence.
//
// Writers swap in new immutable snapshots, then either
//   - retire() the old ones: freed once every thread that was inside a read section at
//     retire time has left it (no waiting; whoever leaves last frees), or
//   - synchronize(): block until every thread that was inside a read section has left it.
//
// Deadlock freedom. synchronize() called from inside a read section (a handler unsubscribing)
// does not wait for its own thread, and does not wait for another thread that is itself
// blocked in synchronize() from inside a read section: two handlers unsubscribing each other
// on two threads would otherwise wait for each other forever. Memory stays safe in both cases
// because retire() frees nothing until those threads have really left their sections.
//
// One process-wide domain serves every bus: a thread inside a handler of any bus delays
// synchronize() on all of them until that handler returns.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "agentbus/detail/config.hpp"

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace agentbus::detail {

/// Set once, when the domain starts, if membarrier(2) is usable (then light barriers are
/// compiler barriers and heavy ones are membarrier calls).
inline bool asymmetric_barriers_ready = false;

/// The cheap half of an asymmetric Dekker pairing (see the top of this file).
inline void asymmetric_light_barrier() noexcept {
  if (asymmetric_barriers_ready)
    std::atomic_signal_fence(std::memory_order_seq_cst);
  else
    full_fence();
}

/// A registered reader thread. Fields marked "owner" are touched only by the owning thread.
struct alignas(cache_line_size) reader_slot {
  /// The next event id for this thread: slot index in the high bits, sequence in the low 40
  /// (2^40 events per thread before the sequence would run into the index).
  std::uint64_t next_event_id() noexcept { return ++last_id; }

  std::atomic<std::uint64_t> counter{0};  // odd while inside a read section
  std::atomic<bool> waiting{false};       // owner is blocked in synchronize() inside a section
  std::atomic<bool> owes_reclaim{false};  // a retired record waits for this thread
  std::atomic<bool> in_use{false};        // claimed by a live thread
  unsigned depth = 0;                     // owner: read-section nesting depth
  bool needs_fence = true;                // owner: no membarrier, fence on entry
  std::uint64_t last_id = 0;              // owner: last event id handed out (index << 40 | sequence)
  reader_slot* next = nullptr;            // registry list; immutable once published
};

/// Objects retired together, freed when every slot listed in `pending` has moved on.
struct retired_record {
  struct object {
    void* ptr;
    void (*deleter)(void*) noexcept;
  };
  std::vector<object> objects;
  std::vector<std::pair<reader_slot*, std::uint64_t>> pending;
};

/// The process-wide quiescence domain.
class quiescence_domain {
 public:
  static quiescence_domain& instance() noexcept {
    // Immortal on purpose: buses and threads may outlive static destruction order.
    static quiescence_domain* d = new quiescence_domain;
    return *d;
  }

  /// Registers the calling thread (once per thread) and returns its slot.
  reader_slot* register_thread();
  /// Gives the calling thread's slot back at thread exit.
  void release_thread(reader_slot* s) noexcept;

  /// Frees `ptr` with `deleter` once no read section that may see it is still running.
  void retire(std::vector<retired_record::object> objects);
  /// Blocks until every read section running at the time of the call has ended (see top).
  void synchronize();
  /// synchronize(), then frees `objects` (already unreachable for new readers) as soon as no
  /// reader can hold them: at once, unless the caller is inside a read section itself or a
  /// thread was not waited for (see top). One heavy barrier for both.
  void synchronize_and_retire(std::vector<retired_record::object> objects);
  /// Frees whatever retired records are ready.
  void reclaim() noexcept;
  /// reclaim(), skipping the lock when nothing is retired: for the writers' opportunistic
  /// sweeps only (a record added meanwhile is swept by its own defer(), and later by the slots
  /// it waits for, which call reclaim() itself).
  void reclaim_if_any() noexcept {
    if (retired_records_.load(std::memory_order_acquire) != 0) reclaim();
  }

  /// How many grace periods needed the heavy barrier (another reader thread was registered);
  /// the others made do with one atomic add (diagnostics and tests).
  std::uint64_t heavy_grace_barriers() const noexcept { return heavy_grace_barriers_.load(std::memory_order_relaxed); }

  /// Reader slots made so far, and those live threads hold (diagnostics and tests: a thread
  /// whose first read section comes while every slot is held allocates a new one).
  std::uint64_t slots() const noexcept { return slot_count_.load(std::memory_order_relaxed); }
  std::uint64_t held_slots() const noexcept { return live_slots_.load(std::memory_order_relaxed); }

  /// The writer half of the StoreLoad pairing with read_lock() and asymmetric_light_barrier().
  void heavy_barrier() noexcept {
#if defined(__linux__)
    if (asymmetric_ && ::syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
#endif
    full_fence();
  }

 private:
  quiescence_domain() {
#if defined(__linux__) && !AGENTBUS_TSAN
    const long mask = ::syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (mask > 0 && (mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        ::syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
      asymmetric_ = true;
#endif
    asymmetric_barriers_ready = asymmetric_;
  }

  /// Frees `objects` once every slot in `pending` has moved past its counter value.
  void defer(std::vector<retired_record::object> objects, std::vector<std::pair<reader_slot*, std::uint64_t>> pending);
  /// The wait of synchronize(); returns the slots still inside the sections it did not wait
  /// for (a thread blocked in synchronize() inside its section; ourselves when inside one).
  std::vector<std::pair<reader_slot*, std::uint64_t>> wait_for_readers();
  /// Spins until `slot` leaves the section it was in with counter `c`; returns false instead
  /// when `inside` (the caller is in a section itself) and that thread blocks in synchronize()
  /// inside its own (it would be waiting for us).
  static bool wait_past(const reader_slot& slot, std::uint64_t c, bool inside) noexcept;

  /// What a grace period needs before it reads the slots: the heavy barrier, unless the caller
  /// is the only registered thread. Then no other thread can be inside a read section, and one
  /// that registers meanwhile counts itself before its first read, with an atomic increment
  /// that sees what the caller wrote (the empty-registry shortcut of liburcu's
  /// synchronize_rcu). A single-threaded unsubscribe then costs an atomic add, not a membarrier
  /// (~400 ns here); with any other live reader thread nothing changes.
  void grace_barrier() noexcept;

  /// Slots currently inside a read section, other than `self`.
  std::vector<std::pair<reader_slot*, std::uint64_t>> active_slots(const reader_slot* self) const {
    std::vector<std::pair<reader_slot*, std::uint64_t>> out;
    for (reader_slot* s = head_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
      if (s == self) continue;
      const std::uint64_t c = s->counter.load(std::memory_order_acquire);
      if (c & 1) out.emplace_back(s, c);
    }
    return out;
  }

  bool asymmetric_ = false;
  std::atomic<reader_slot*> head_{nullptr};
  std::atomic<std::uint64_t> slot_count_{0};
  std::atomic<std::uint64_t> live_slots_{0};     // slots claimed by live threads (grace_barrier)
  std::atomic<std::size_t> retired_records_{0};  // retired_.size(), read without the lock
  std::atomic<std::uint64_t> heavy_grace_barriers_{0};
  std::mutex registry_mutex_;
  std::mutex retired_mutex_;
  std::vector<retired_record> retired_;
};

/// The calling thread's slot; constinit so that reading it is one TLS load with no init guard.
constinit inline thread_local reader_slot* current_reader_slot = nullptr;

/// Releases the slot when its thread exits. Touched only at registration.
struct reader_slot_owner {
  reader_slot* slot = nullptr;
  ~reader_slot_owner() {
    if (slot) quiescence_domain::instance().release_thread(slot);
  }
};
inline thread_local reader_slot_owner current_reader_slot_owner;

inline void quiescence_domain::grace_barrier() noexcept {
  // A read-modify-write reads the latest count: if a registering thread's increment comes
  // later, that increment reads from this one (release -> acquire), so the new reader sees
  // what the caller wrote before. No fence needed (a locked add is about half an mfence).
  const std::uint64_t own = current_reader_slot != nullptr ? 1 : 0;
  if (live_slots_.fetch_add(0, std::memory_order_acq_rel) <= own) return;
  heavy_grace_barriers_.fetch_add(1, std::memory_order_relaxed);
  heavy_barrier();
}

inline reader_slot* quiescence_domain::register_thread() {
  std::lock_guard lock(registry_mutex_);
  reader_slot* slot = nullptr;
  for (reader_slot* s = head_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
    bool expected = false;
    if (!s->in_use.load(std::memory_order_relaxed) &&
        s->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      slot = s;
      break;
    }
  }
  if (slot == nullptr) {
    slot = new reader_slot;
    slot->in_use.store(true, std::memory_order_relaxed);
    // Event ids are index << 40 | sequence: the low 40 bits are the sequence (event.hpp).
    slot->last_id = (slot_count_.fetch_add(1, std::memory_order_relaxed) + 1) << 40;
    slot->next = head_.load(std::memory_order_relaxed);
    head_.store(slot, std::memory_order_release);
  }
  slot->needs_fence = !asymmetric_;
  current_reader_slot = slot;
  current_reader_slot_owner.slot = slot;
  // Counted before this thread's first read section (grace_barrier: the acquire half).
  live_slots_.fetch_add(1, std::memory_order_acq_rel);
  return slot;
}

inline void quiescence_domain::release_thread(reader_slot* s) noexcept {
  current_reader_slot = nullptr;
  s->depth = 0;
  if (s->counter.load(std::memory_order_relaxed) & 1)  // exiting inside a section: close it
    s->counter.fetch_add(1, std::memory_order_release);
  s->in_use.store(false, std::memory_order_release);
  live_slots_.fetch_sub(1, std::memory_order_release);
  if (s->owes_reclaim.exchange(false, std::memory_order_acq_rel)) reclaim();
}

/// The calling thread's slot, registered by its first use (which allocates: may throw
/// std::bad_alloc). A consumer asks for it before it takes events out of a queue, so that a
/// failure leaves them queued instead of lost; read_lock() cannot throw after that.
AGENTBUS_ALWAYS_INLINE reader_slot* this_thread_reader_slot() {
  reader_slot* s = current_reader_slot;
  if (AGENTBUS_UNLIKELY(s == nullptr)) s = quiescence_domain::instance().register_thread();
  return s;
}

/// Enters a read section (nestable). Returns the slot to pass to read_unlock().
AGENTBUS_ALWAYS_INLINE reader_slot* read_lock() {
  reader_slot* s = this_thread_reader_slot();
  if (AGENTBUS_LIKELY(s->depth++ == 0)) {
    const std::uint64_t c = s->counter.load(std::memory_order_relaxed) + 1;
    if (AGENTBUS_UNLIKELY(s->needs_fence)) {
      s->counter.store(c, std::memory_order_seq_cst);
      full_fence();
    } else {
      s->counter.store(c, std::memory_order_relaxed);
      // Compiler barrier only: the writer's membarrier() supplies the hardware barrier.
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }
  return s;
}

/// Leaves a read section entered by read_lock().
AGENTBUS_ALWAYS_INLINE void read_unlock(reader_slot* s) noexcept {
  if (AGENTBUS_LIKELY(--s->depth == 0)) {
    s->counter.store(s->counter.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    if (AGENTBUS_UNLIKELY(s->owes_reclaim.load(std::memory_order_relaxed))) {
      s->owes_reclaim.store(false, std::memory_order_relaxed);
      quiescence_domain::instance().reclaim();
    }
  }
}

/// The expensive half of an asymmetric Dekker pairing: a full barrier on every running thread.
inline void asymmetric_heavy_barrier() noexcept { quiescence_domain::instance().heavy_barrier(); }

/// RAII read section.
class read_guard {
 public:
  AGENTBUS_ALWAYS_INLINE read_guard() : slot_(read_lock()) {}
  AGENTBUS_ALWAYS_INLINE ~read_guard() { read_unlock(slot_); }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;
  reader_slot* slot() const noexcept { return slot_; }

 private:
  reader_slot* slot_;
};

inline void quiescence_domain::retire(std::vector<retired_record::object> objects) {
  if (objects.empty()) return;
  grace_barrier();
  defer(std::move(objects), active_slots(nullptr));  // includes our own slot when inside a section
}

inline void quiescence_domain::defer(std::vector<retired_record::object> objects,
                                     std::vector<std::pair<reader_slot*, std::uint64_t>> pending) {
  if (pending.empty()) {
    for (auto& o : objects) o.deleter(o.ptr);
    return;
  }
  retired_record rec;
  rec.objects = std::move(objects);
  rec.pending = std::move(pending);
  {
    std::lock_guard lock(retired_mutex_);
    retired_.push_back(std::move(rec));
    retired_records_.store(retired_.size(), std::memory_order_relaxed);
    for (auto& [slot, c] : retired_.back().pending) slot->owes_reclaim.store(true, std::memory_order_release);
  }
  // A slot may have left its section before seeing owes_reclaim; sweep once now.
  reclaim();
}

inline bool quiescence_domain::wait_past(const reader_slot& slot, std::uint64_t c, bool inside) noexcept {
  for (unsigned spins = 0; slot.counter.load(std::memory_order_acquire) == c; ++spins) {
    // A thread blocked in synchronize() inside its own section would be waiting for us.
    if (inside && slot.waiting.load(std::memory_order_seq_cst)) return false;
    if (spins < 64)
      cpu_relax();
    else
      std::this_thread::yield();
  }
  return true;
}

inline std::vector<std::pair<reader_slot*, std::uint64_t>> quiescence_domain::wait_for_readers() {
  grace_barrier();
  reader_slot* self = current_reader_slot;
  const bool inside = self != nullptr && self->depth > 0;
  auto pending = active_slots(inside ? self : nullptr);
  if (inside) self->waiting.store(true, std::memory_order_seq_cst);
  std::size_t left = 0;  // slots not waited for are kept at the front
  for (const auto& [slot, c] : pending)
    if (!wait_past(*slot, c, inside)) pending[left++] = {slot, c};
  if (inside) self->waiting.store(false, std::memory_order_seq_cst);
  pending.resize(left);
  if (inside) pending.emplace_back(self, self->counter.load(std::memory_order_relaxed));
  return pending;
}

inline void quiescence_domain::synchronize() {
  reader_slot* self = current_reader_slot;
  if (self != nullptr && self->depth > 0) {  // inside a section: the general wait (see top)
    (void)wait_for_readers();
    reclaim_if_any();
    return;
  }
  // Outside any section (the usual unsubscribe): wait for each slot found inside one, with no
  // list to keep (an unsubscribe costs tens of nanoseconds when no other thread reads).
  grace_barrier();
  for (reader_slot* s = head_.load(std::memory_order_acquire); s != nullptr; s = s->next) {
    const std::uint64_t c = s->counter.load(std::memory_order_acquire);
    if (c & 1) (void)wait_past(*s, c, false);
  }
  reclaim_if_any();
}

inline void quiescence_domain::synchronize_and_retire(std::vector<retired_record::object> objects) {
  if (objects.empty()) return synchronize();  // the usual unsubscribe: nothing to free, no list kept
  // Every reader that could still see `objects` was inside a section when the barrier ran:
  // those waited for are done, the rest (ourselves, a skipped thread) still hold them.
  auto still_inside = wait_for_readers();
  defer(std::move(objects), std::move(still_inside));
  reclaim_if_any();
}

inline void quiescence_domain::reclaim() noexcept {
  std::vector<retired_record> ready;
  {
    std::lock_guard lock(retired_mutex_);
    for (std::size_t i = 0; i < retired_.size();) {
      bool done = true;
      for (auto& [slot, c] : retired_[i].pending) {
        if (slot->counter.load(std::memory_order_acquire) == c) {
          done = false;
          break;
        }
      }
      if (done) {
        ready.push_back(std::move(retired_[i]));
        retired_[i] = std::move(retired_.back());
        retired_.pop_back();
        retired_records_.store(retired_.size(), std::memory_order_relaxed);
      } else {
        ++i;
      }
    }
  }
  // Deleters run outside the lock: a destructor may itself unsubscribe and retire.
  for (auto& rec : ready)
    for (auto& o : rec.objects) o.deleter(o.ptr);
}

}  // namespace agentbus::detail

#endif  // AGENTBUS_DETAIL_SYNC_QUIESCENCE_HPP
