#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace glimpse {
namespace {

using namespace std::chrono_literals;

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad_thread{0};
      pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
        if (t < 0 || t >= threads) bad_thread = 1;
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << n;
      EXPECT_EQ(bad_thread.load(), 0);
    }
  }
}

TEST(ThreadPool, DynamicCoversEveryItemOnceOverManyJobs) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(37);
  for (int job = 0; job < 2000; ++job)
    pool.parallel_for_dynamic(37, [&](int64_t i, int) { hits[i].fetch_add(1); });
  for (auto& h : hits) EXPECT_EQ(h.load(), 2000);
}

// A worker that keeps losing its core (here: sleeps in every item it takes) runs far less
// than its share; the pool then drops to fewer threads, and after the probe interval tries
// the full width again.
TEST(ThreadPool, NarrowsWhenAWorkerFallsBehindAndProbesBack) {
  ThreadPool pool(2);
  ASSERT_EQ(pool.active_threads(), 2);
  for (int job = 0; job < 2000 && pool.active_threads() == 2; ++job)
    pool.parallel_for_dynamic(20, [&](int64_t, int t) {
      if (t != 0) std::this_thread::sleep_for(200us);
    });
  EXPECT_EQ(pool.active_threads(), 1);
  EXPECT_GE(pool.stats().narrowed, 1);
  // Narrowed: everything runs on the caller, no job is published.
  const auto before = pool.stats();
  std::atomic<int> on_worker{0};
  for (int job = 0; job < 50; ++job)
    pool.parallel_for(100, [&](int64_t, int64_t, int t) { on_worker += t != 0; });
  EXPECT_EQ(on_worker.load(), 0);
  EXPECT_EQ(pool.stats().jobs, before.jobs);
  std::this_thread::sleep_for(250ms);
  pool.parallel_for(100, [&](int64_t, int64_t, int) {});
  EXPECT_EQ(pool.active_threads(), 2);
}

// The caller takes over the chunks of a worker that has not started: a job whose worker
// sleeps before it can claim anything still finishes on the caller alone.
TEST(ThreadPool, CallerTakesChunksOfALateWorker) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int job = 0; job < 200; ++job)
    pool.parallel_for(1000, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
  EXPECT_EQ(sum.load(), 200 * (999 * 1000 / 2));
  const auto s = pool.stats();
  EXPECT_EQ(s.chunks_total, s.jobs * 4);
  EXPECT_GT(s.chunks_by_caller, 0);
}

TEST(ThreadPool, DestroysWhileWorkersSleep) {
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(3);
    pool.parallel_for(10, [](int64_t, int64_t, int) {});
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace
}  // namespace glimpse
