#include "util/stream_read.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {

namespace {

// 32 bytes of lanes; without AVX the compiler splits each into two 16-byte loads, which
// still saturate memory.
typedef long long V4 __attribute__((vector_size(32)));

// A private anonymous mapping, unmapped on scope exit so that the memory really goes back.
// Its pages must be real before reading: untouched anonymous pages all map the one zero
// page, which the cache would serve.
struct Mapping {
  void* p = MAP_FAILED;
  size_t bytes = 0;
  bool populated = false;  // every page allocated (and zeroed) by the kernel
  explicit Mapping(size_t n) : bytes(n) {
    p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("stream-read probe: cannot map {} bytes", n);
#if defined(MADV_HUGEPAGE)
    madvise(p, n, MADV_HUGEPAGE);  // 2 MiB pages: fewer faults and TLB misses; a hint only
#endif
#if defined(MADV_POPULATE_WRITE)
    // One call instead of a fault per page: measured 0.45-0.5 s for 1 GiB on a loaded
    // 2-core machine vs 0.45-1.7 s for two threads faulting the pages in (Linux >= 5.14).
    populated = madvise(p, n, MADV_POPULATE_WRITE) == 0;
#endif
  }
  ~Mapping() { munmap(p, bytes); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

}  // namespace

void stream_read_pass(const uint8_t* buf, size_t bytes, ThreadPool& pool) {
  const V4* v = reinterpret_cast<const V4*>(buf);
  const int64_t n = (int64_t)(bytes / sizeof(V4));
  std::vector<V4> sink((size_t)pool.size() * 2);  // 64 bytes apart: no false sharing
  pool.parallel_for(n / 4, [&](int64_t b, int64_t e, int t) {
    // Four independent chains so that loads are not serialized behind one XOR.
    V4 a0{}, a1{}, a2{}, a3{};
    for (int64_t i = 4 * b; i < 4 * e; i += 4) {
      a0 ^= v[i];
      a1 ^= v[i + 1];
      a2 ^= v[i + 2];
      a3 ^= v[i + 3];
    }
    sink[(size_t)t * 2] = a0 ^ a1 ^ a2 ^ a3;
  });
  // Opaque use of the sinks: the reads cannot be dropped.
  asm volatile("" : : "r"(sink.data()) : "memory");
}

StreamReadProbe stream_read_probe(int n_threads) {
  static std::mutex mu;
  static std::map<int, StreamReadProbe> cache;  // by thread count, once per process
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(n_threads); it != cache.end()) return it->second;
  StreamReadProbe r;
  r.threads = n_threads;
  r.bytes = kProbeBytes;
  r.passes = kProbePasses;
  Stopwatch total;
  {
    ThreadPool pool(n_threads);
    Mapping m(kProbeBytes);
    uint8_t* buf = static_cast<uint8_t*>(m.p);
    if (!m.populated)  // first touch by the threads that will read each share
      pool.parallel_for((int64_t)(kProbeBytes / 4096), [&](int64_t b, int64_t e, int) {
        std::memset(buf + b * 4096, 1, (size_t)(e - b) * 4096);
      });
    double best_ms = 1e30;
    for (int p = 0; p < kProbePasses; ++p) {
      Stopwatch sw;
      stream_read_pass(buf, kProbeBytes, pool);
      best_ms = std::min(best_ms, sw.ms());
    }
    r.gbs = (double)kProbeBytes / (best_ms * 1e6);
  }
  r.total_ms = total.ms();
  cache[n_threads] = r;
  return r;
}

}  // namespace glimpse
