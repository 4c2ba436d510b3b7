// The streaming-read probe: a positive bandwidth, measured once per thread count (the second
// call returns the first result without reading again).
#include "util/stream_read.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {
namespace {

TEST(StreamRead, PassCoversOddSplits) {
  // 3 threads over 1000 chunks of 128 bytes: uneven shares, each read once.
  std::vector<uint8_t> buf(128 * 1000, 1);
  ThreadPool pool(3);
  stream_read_pass(buf.data(), buf.size(), pool);
}

#if !defined(__SANITIZE_ADDRESS__)
TEST(StreamRead, ProbeIsMeasuredOnceAndFast) {
  const StreamReadProbe a = stream_read_probe(2);
  EXPECT_GT(a.gbs, 0.1);
  EXPECT_EQ(a.threads, 2);
  EXPECT_EQ(a.bytes, kProbeBytes);
  // Its time (~0.3 s on a quiet machine) is recorded, not checked: a loaded machine slows
  // the first touch of the buffer many times over.
  RecordProperty("probe_ms", std::to_string(a.total_ms));
  Stopwatch sw;
  const StreamReadProbe b = stream_read_probe(2);
  EXPECT_LT(sw.ms(), 50.0);
  EXPECT_EQ(a.gbs, b.gbs);
  EXPECT_EQ(a.total_ms, b.total_ms);
}
#endif

}  // namespace
}  // namespace glimpse
