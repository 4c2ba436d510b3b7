// Persistent thread pool: n-1 workers plus the calling thread, created once (sized by -t).
// parallel_for splits [0, n) into contiguous chunks, one per thread; workers spin briefly
// and then sleep on an atomic wait, so a decode step's hundreds of small dispatches cost
// microseconds, not thread creations.
#pragma once

#include <atomic>
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

  int size() const { return n_threads_; }

  // fn(begin, end, thread_index) over disjoint chunks covering [0, n). Blocks until done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // fn(item, thread_index) for every item in [0, n), handed out one at a time from a
  // shared counter: for work items of uneven cost (causal attention blocks).
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int)>& fn);

  // fn(thread_index) once on each thread.
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace glimpse
