// SPDX-License-Identifier: MIT
// The quiescence domain (detail/sync/quiescence.hpp): retire() frees an object only once every
// read section that could see it has ended, synchronize() waits for the read sections running
// when it was called, read sections nest, and synchronize() from inside a read section (a
// handler unsubscribing) does not wait for itself, nor for another thread doing the same.
#include <agentbus/detail/sync/quiescence.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support/eventually.hpp"

using namespace std::chrono_literals;
using agentbus::test::eventually;
using agentbus::detail::quiescence_domain;
using agentbus::detail::read_guard;

namespace {

// A retired "object": freeing it counts, so a test can tell whether (and when) it was freed.
void count_free(void* p) noexcept { static_cast<std::atomic<int>*>(p)->fetch_add(1, std::memory_order_acq_rel); }

void retire_counter(std::atomic<int>& frees) { quiescence_domain::instance().retire({{&frees, &count_free}}); }

// A thread parked inside a read section until released.
struct reader_inside {
  std::atomic<bool> inside{false}, release{false}, left{false};
  std::thread thread{[this] {
    {
      read_guard g;
      inside.store(true);
      while (!release.load()) std::this_thread::yield();
      left.store(true);  // before the section ends: whoever saw the section end sees this
    }
  }};
  reader_inside() { REQUIRE(eventually([&] { return inside.load(); })); }
  ~reader_inside() {
    release.store(true);
    thread.join();
  }
};

}  // namespace

TEST_CASE("retire with no reader inside a read section frees at once", "[detail][quiescence]") {
  std::atomic<int> frees{0};
  retire_counter(frees);
  CHECK(frees.load() == 1);
  quiescence_domain::instance().reclaim();
  CHECK(frees.load() == 1);  // freed once, not again
}

TEST_CASE("retire from inside the caller's own read section frees when the section ends", "[detail][quiescence]") {
  std::atomic<int> frees{0};
  {
    read_guard g;
    retire_counter(frees);
    quiescence_domain::instance().reclaim();
    CHECK(frees.load() == 0);  // this thread may still hold a pointer to it
  }
  CHECK(frees.load() == 1);
}

TEST_CASE("read sections nest: the object is freed when the outermost one ends", "[detail][quiescence]") {
  std::atomic<int> frees{0};
  {
    read_guard outer;
    {
      read_guard inner;
      CHECK(inner.slot() == outer.slot());
      CHECK(inner.slot()->depth == 2);
      CHECK((inner.slot()->counter.load() & 1) == 1);  // odd: inside
      retire_counter(frees);
    }
    CHECK(outer.slot()->depth == 1);
    CHECK((outer.slot()->counter.load() & 1) == 1);  // leaving the inner section did not end it
    quiescence_domain::instance().reclaim();
    CHECK(frees.load() == 0);
  }
  CHECK(frees.load() == 1);
}

TEST_CASE("retire frees only after a reader that was inside a read section leaves it", "[detail][quiescence][concurrency]") {
  std::atomic<int> frees{0};
  {
    reader_inside reader;
    retire_counter(frees);
    std::this_thread::sleep_for(20ms);
    quiescence_domain::instance().reclaim();
    CHECK(frees.load() == 0);
    // A read section that starts after the retire cannot see the object: it does not delay it.
    {
      read_guard late;
      CHECK(frees.load() == 0);
    }
    CHECK(frees.load() == 0);
  }  // the reader leaves; the last one out frees
  CHECK(frees.load() == 1);
}

TEST_CASE("synchronize waits for a reader in another thread", "[detail][quiescence][concurrency]") {
  reader_inside reader;
  std::atomic<bool> returned{false}, reader_had_left{false};
  std::thread writer([&] {
    quiescence_domain::instance().synchronize();
    reader_had_left.store(reader.left.load());
    returned.store(true);
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(returned.load());  // the reader is still inside
  reader.release.store(true);
  writer.join();
  CHECK(returned.load());
  CHECK(reader_had_left.load());
}

TEST_CASE("synchronize does not wait for read sections that start after it", "[detail][quiescence][concurrency]") {
  // A reader that keeps entering and leaving sections never holds synchronize up for long.
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop.load()) {
      read_guard g;
    }
  });
  for (int i = 0; i < 100; ++i) quiescence_domain::instance().synchronize();
  stop.store(true);
  busy.join();
  SUCCEED("100 grace periods ended while another thread kept entering read sections");
}

TEST_CASE("synchronize from inside a read section does not wait for its own thread", "[detail][quiescence]") {
  std::atomic<int> frees{0};
  {
    read_guard g;
    retire_counter(frees);
    quiescence_domain::instance().synchronize();  // would never return if it waited for us
    CHECK(frees.load() == 0);                     // and memory is still safe: we are inside
  }
  CHECK(frees.load() == 1);
}

TEST_CASE("two threads inside read sections calling synchronize do not wait for each other", "[detail][quiescence][concurrency]") {
  // Two handlers on two threads unsubscribing each other: each is inside a read section and
  // waits for read sections to end.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> ready{0}, done{0};
    auto handler = [&] {
      read_guard g;
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      quiescence_domain::instance().synchronize();
      done.fetch_add(1);
    };
    std::thread a(handler), b(handler);
    const bool finished = eventually([&] { return done.load() == 2; });
    if (!finished) {  // deadlocked: report it rather than hang
      a.detach();
      b.detach();
      FAIL("synchronize() from two read sections deadlocked in round " << round);
    }
    a.join();
    b.join();
  }
}

TEST_CASE("objects retired while readers come and go are each freed exactly once", "[detail][quiescence][concurrency]") {
  constexpr int objects = 2000;
  std::vector<std::atomic<int>> frees(objects);
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&] {
      while (!stop.load()) {
        read_guard g;
        std::this_thread::yield();
      }
    });
  for (auto& f : frees) retire_counter(f);
  stop.store(true);
  for (auto& t : readers) t.join();
  quiescence_domain::instance().synchronize();  // sweeps what the readers left behind
  int wrong = 0;
  for (auto& f : frees) wrong += f.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("a grace period takes the heavy barrier only while another reader thread is registered",
          "[detail][quiescence][concurrency]") {
  auto& domain = quiescence_domain::instance();
  { read_guard g; }  // this thread is registered
  const std::uint64_t before = domain.heavy_grace_barriers();
  domain.synchronize();  // no other thread: no barrier needed
  CHECK(domain.heavy_grace_barriers() == before);

  std::atomic<bool> registered{false}, release{false};
  std::thread other([&] {
    { read_guard g; }  // registered, then outside any section
    registered.store(true);
    while (!release.load()) std::this_thread::yield();
  });
  REQUIRE(eventually([&] { return registered.load(); }));
  domain.synchronize();  // another live reader: it may be inside a section we cannot see yet
  CHECK(domain.heavy_grace_barriers() == before + 1);
  release.store(true);
  other.join();  // its slot is given back at thread exit

  domain.synchronize();
  CHECK(domain.heavy_grace_barriers() == before + 1);
  std::atomic<int> frees{0};
  retire_counter(frees);  // retire() takes the same shortcut
  CHECK(frees.load() == 1);
  CHECK(domain.heavy_grace_barriers() == before + 1);
}
