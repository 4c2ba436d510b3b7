// The rolling-hash span index: every shared window is found, at its first offset, and
// nothing shorter than the window width counts.
#include <gtest/gtest.h>

#include <string>

#include "eval/rng.h"
#include "eval/span_index.h"

namespace glimpse::eval {
namespace {

std::string random_text(uint64_t seed, size_t n) {
  Rng r(seed);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "abcdefgh "[r.below(9)];
  return s;
}

TEST(SpanIndex, RollingHashEqualsTheDirectHash) {
  const std::string s = random_text(1, 300);
  std::vector<uint64_t> rolled;
  for_each_window_hash(s, 16, [&](size_t, uint64_t h) { rolled.push_back(h); });
  ASSERT_EQ(rolled.size(), s.size() - 15);
  for (size_t off = 0; off < rolled.size(); off += 37) {
    std::vector<uint64_t> one;
    for_each_window_hash(std::string_view(s).substr(off, 16), 16, [&](size_t, uint64_t h) { one.push_back(h); });
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0], rolled[off]) << off;
  }
}

TEST(SpanIndex, FindsTheFirstSharedWindow) {
  const std::string a = random_text(2, 5000), b = random_text(3, 5000);
  const SpanIndex index({a, b}, 64);
  EXPECT_FALSE(index.first_shared(random_text(4, 5000)).has_value());
  // 64 bytes of b planted at offset 700 of a fresh text: found there.
  std::string q = random_text(5, 2000);
  q.replace(700, 64, b.substr(1234, 64));
  auto hit = index.first_shared(q);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->offset, 700u);
  EXPECT_EQ(hit->text, 1u);
  EXPECT_EQ(hit->text_offset, 1234u);
  // 63 bytes are not enough.
  std::string r = random_text(6, 2000);
  r.replace(100, 63, a.substr(10, 63));
  EXPECT_FALSE(index.first_shared(r).has_value());
  // Short texts and queries: nothing to match, no error.
  const SpanIndex small({"tiny"}, 64);
  EXPECT_FALSE(small.first_shared(a).has_value());
  EXPECT_FALSE(index.first_shared("short").has_value());
}

}  // namespace
}  // namespace glimpse::eval
