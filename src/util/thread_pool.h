// Persistent thread pool: n-1 workers plus the calling thread, created once (sized by -t).
//
// A job is a number of chunks that threads claim from a shared counter, so the caller (thread
// 0) takes over the chunks of a worker that has not woken yet instead of waiting for it; the
// job ends when every chunk is done, not when every worker has checked in.
//
// Waiting. Workers spin for a short, time-bounded while after each job (a decode step issues
// hundreds of small jobs microseconds apart, and a futex wake costs more than the gap) and
// then sleep on an atomic wait. The caller spins on the last chunks, then sleeps too.
//
// Contention. When another program takes a core, a spinning pool collapses: a descheduled
// worker holds its chunk while the caller waits. Chunks claimed from a counter already
// soften that (the caller runs what a late worker has not claimed); beyond it the pool
// watches the workers' share of the chunks over a window of jobs, and when they run less
// than half their fair share (they keep losing their cores) it uses one worker fewer (down
// to the caller alone) and spins only briefly. Every kProbeInterval it tries the full width
// again, so it recovers when the cores come back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace glimpse {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads the pool was created with (the upper bound of thread indices passed to fns).
  int size() const { return n_threads_; }
  // Threads the next job will use (size() unless the pool found itself oversubscribed).
  int active_threads() const { return participants_.load(std::memory_order_relaxed) + 1; }

  // fn(begin, end, thread_index) over disjoint contiguous chunks covering [0, n), a few per
  // active thread, claimed in order. A thread may get several chunks; fns must not assume
  // one call per thread. Blocks until done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // fn(item, thread_index) for every item in [0, n), handed out one at a time: for work
  // items of uneven cost (causal attention blocks).
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int)>& fn);

  // Test hook: the pool's adaptation state, counted since construction.
  struct Stats {
    int64_t jobs = 0;              // jobs run with at least one worker invited
    int64_t chunks_by_caller = 0;  // chunks run by thread 0 in those jobs
    int64_t chunks_total = 0;
    int64_t narrowed = 0;          // times the pool dropped a worker for contention
  };
  Stats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  void worker_loop(int index);
  // Runs chunk(c, thread) for every c in [0, n_chunks) on the caller and the active workers.
  void run_job(int64_t n_chunks, const std::function<void(int64_t, int)>& chunk);
  // Claims and runs chunks of the open job until none is left; returns how many it ran.
  int64_t run_chunks(int thread);
  // Folds one job's chunk counts into the contention window and adapts participants_.
  void observe_job(int64_t by_caller, int64_t total);

  int n_threads_;
  std::vector<std::thread> workers_;

  // The open job (written by the caller only while no worker is inside a job).
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<int64_t> done_chunks_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};         // workers between entering and leaving a job
  std::atomic<uint32_t> generation_{0};  // bumped per job; workers wait on it
  std::atomic<int> participants_{0};   // workers invited (indices 1..participants_)
  std::atomic<int64_t> spin_ns_{0};    // how long an idle worker spins before sleeping
  std::atomic<bool> stop_{false};

  // Contention window (caller only).
  int64_t window_by_caller_ = 0, window_total_ = 0;
  int window_jobs_ = 0;
  Clock::time_point last_probe_{};
  bool fixed_width_ = false;  // GLIMPSE_POOL_FIXED set: never narrow (diagnostics)
  Stats stats_;
};

}  // namespace glimpse
