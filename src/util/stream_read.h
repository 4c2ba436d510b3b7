// Streaming-read bandwidth of this machine: the roofline of memory-bound work such as a
// decode step, which reads every weight and every cached key/value once per token.
// A buffer much larger than the last-level cache is split across the threads of a pool,
// each thread reading its contiguous share with independent vector XOR chains (no stores
// but one sink per thread); the best of a few passes is kept.
#pragma once

#include <cstddef>
#include <cstdint>

namespace glimpse {

class ThreadPool;

// One read of buf[0, bytes) split across pool's threads. bytes: a multiple of 128.
void stream_read_pass(const uint8_t* buf, size_t bytes, ThreadPool& pool);

struct StreamReadProbe {
  double gbs = 0;       // best pass, 1e9 bytes per second
  int threads = 0;
  size_t bytes = 0;     // buffer size read per pass
  int passes = 0;
  double total_ms = 0;  // the whole probe: allocation, first touch and the passes
};

// Measures n_threads reading a kProbeBytes buffer (best of kProbePasses) the first time it is
// called for n_threads in this process; later calls return that result. The buffer is
// unmapped before returning (it counts in the process's peak RSS, so callers that report
// peak RSS read it first). About 0.3 s with 2 threads on the EPYC of the README's numbers,
// most of it the first touch of the buffer (transparent huge pages asked for, as they also
// spare the passes TLB misses).
StreamReadProbe stream_read_probe(int n_threads);

inline constexpr size_t kProbeBytes = size_t{1} << 30;  // 1 GiB: far past any LLC
inline constexpr int kProbePasses = 4;

}  // namespace glimpse
