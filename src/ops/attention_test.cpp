// Fused causal attention against attention_ref (double scores, exact softmax).
//
// Tolerance: the fast path rounds q and the softmax probabilities to f16 (as the reference
// engine does), i.e. relative errors ~2^-11 on each; outputs are compared with
// max |out - ref| <= 2e-3 and the normalised MSE sum(out - ref)^2 / sum(ref^2) <= 1e-6.
// Shapes cover odd lengths, key counts around the tile
// (64) and split-K chunk (256) boundaries, unequal head lengths, GQA groups 1/3/4 and head
// dims that are and are not a multiple of the vector width.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

float uni(std::mt19937& rng, float a) {
  return (float)(((double)rng() / 4294967296.0 * 2.0 - 1.0) * a);
}

struct Pools {
  ThreadPool one{1};
  ThreadPool two{2};
};
Pools& pools() {
  static Pools p;
  return p;
}

struct Cache {
  std::vector<std::vector<uint16_t>> k, v;
  std::vector<KvHeadView> views;
};

// Per-KV-head arrays holding exactly n_base[g] + T entries.
Cache make_cache(int n_kv, int hd, int64_t T, const std::vector<int64_t>& n_base,
                 std::mt19937& rng) {
  Cache c;
  c.k.resize(n_kv);
  c.v.resize(n_kv);
  for (int g = 0; g < n_kv; ++g) {
    const int64_t n = n_base[g] + T;
    c.k[g].resize(n * hd);
    c.v[g].resize(n * hd);
    for (auto& x : c.k[g]) x = f32_to_fp16(uni(rng, 2.0f));
    for (auto& x : c.v[g]) x = f32_to_fp16(uni(rng, 1.0f));
  }
  for (int g = 0; g < n_kv; ++g) c.views.push_back({c.k[g].data(), c.v[g].data(), n_base[g]});
  return c;
}

struct Err {
  double max_abs = 0, nmse = 0;
};
Err error(const std::vector<float>& a, const std::vector<float>& ref) {
  Err e;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = (double)a[i] - ref[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  e.nmse = num / den;
  return e;
}

void check_case(const AttentionParams& p, int64_t T, const std::vector<int64_t>& n_base,
                uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "n_head=" << p.n_head << " n_kv=" << p.n_kv_head
                                  << " hd=" << p.head_dim << " T=" << T
                                  << " n_base[0]=" << n_base[0]);
  std::mt19937 rng(seed);
  const Cache c = make_cache(p.n_kv_head, p.head_dim, T, n_base, rng);
  std::vector<float> q(T * p.n_head * p.head_dim);
  for (auto& x : q) x = uni(rng, 2.0f);
  std::vector<float> ref(q.size()), o1(q.size(), NAN), o2(q.size(), NAN);
  attention_ref(p, q.data(), T, c.views.data(), ref.data());
  attention(p, q.data(), T, c.views.data(), o1.data(), pools().one);
  attention(p, q.data(), T, c.views.data(), o2.data(), pools().two);
  for (size_t i = 0; i < o1.size(); ++i) ASSERT_TRUE(std::isfinite(o1[i])) << i;
  EXPECT_EQ(o1, o2) << "1 and 2 threads differ";
  const Err e = error(o1, ref);
  EXPECT_LE(e.max_abs, 2e-3);
  EXPECT_LE(e.nmse, 1e-6);
}

AttentionParams params(int n_head, int n_kv, int hd) {
  AttentionParams p;
  p.n_head = n_head;
  p.n_kv_head = n_kv;
  p.head_dim = hd;
  p.scale = 1.0f / std::sqrt((float)hd);
  return p;
}

TEST(Attention, MatchesReferenceGqa) {
  uint32_t seed = 100;
  for (int hd : {64, 48, 128, 40})
    for (int G : {1, 3, 4})
      for (int64_t T : {1, 2, 17})
        for (int64_t nb : {0, 63, 300}) check_case(params(2 * G, 2, hd), T, {nb, nb}, seed++);
}

TEST(Attention, LongerBatches) {
  uint32_t seed = 150;
  for (int64_t T : {33, 100})
    for (int64_t nb : {0, 7, 250}) check_case(params(9, 3, 64), T, {nb, nb, nb}, seed++);
}

TEST(Attention, SplitKBoundaries) {
  // Decode over key counts around the tile (64) and chunk (256) sizes.
  uint32_t seed = 170;
  for (int64_t n : {63, 64, 65, 255, 256, 257, 511, 512, 513, 1000})
    check_case(params(9, 3, 64), 1, {n - 1, n - 1, n - 1}, seed++);
}

TEST(Attention, HeadsWithDifferentBaseLengths) {
  uint32_t seed = 200;
  for (int hd : {64, 40})
    for (int64_t T : {1, 5, 33}) {
      check_case(params(6, 3, hd), T, {0, 70, 7}, seed++);
      check_case(params(6, 3, hd), T, {129, 3, 64}, seed++);
      check_case(params(6, 3, hd), T, {300, 255, 0}, seed++);
    }
}

TEST(Attention, MhaAndMqa) {
  AttentionParams p = params(4, 4, 64);
  p.scale = 0.125f;
  check_case(p, 17, {3, 0, 65, 16}, 300);
  p.n_kv_head = 1;
  check_case(p, 20, {50}, 301);
}

TEST(Attention, BatchMatchesOneTokenAtATime) {
  // A token attended inside a batch (prefill, chunks walked in order on one thread) gets
  // bit-for-bit the output it gets alone (decode, chunks split across threads and merged).
  for (int64_t nb : {0, 250, 600}) {
    SCOPED_TRACE(nb);
    const AttentionParams p = params(9, 3, 64);
    const int64_t T = 40, row = 9 * 64;
    std::mt19937 rng(400 + (uint32_t)nb);
    const Cache c = make_cache(3, 64, T, {nb, nb, nb}, rng);
    std::vector<float> q(T * row), batch(T * row), one(row);
    for (auto& x : q) x = uni(rng, 2.0f);
    attention(p, q.data(), T, c.views.data(), batch.data(), pools().two);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<KvHeadView> views = c.views;
      for (auto& v : views) v.n_base = nb + t;
      attention(p, q.data() + t * row, 1, views.data(), one.data(), pools().two);
      ASSERT_TRUE(std::equal(one.begin(), one.end(), batch.begin() + t * row)) << "token " << t;
    }
  }
}

TEST(Attention, SingleKeyReturnsItsValue) {
  // T = 1, empty cache: the only visible entry gets probability 1.
  AttentionParams p;
  p.n_head = 2;
  p.n_kv_head = 1;
  p.head_dim = 40;
  p.scale = 0.3f;
  std::mt19937 rng(5);
  const Cache c = make_cache(1, 40, 1, {0}, rng);
  std::vector<float> q(2 * 40), out(2 * 40);
  for (auto& x : q) x = uni(rng, 3.0f);
  attention(p, q.data(), 1, c.views.data(), out.data(), pools().two);
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < 40; ++d) EXPECT_EQ(out[h * 40 + d], fp16_to_f32(c.v[0][d])) << h << d;
}

TEST(Attention, IsCausal) {
  // Changing the last entry only changes the last query's output.
  AttentionParams p;
  p.n_head = 6;
  p.n_kv_head = 2;
  p.head_dim = 64;
  p.scale = 0.125f;
  const int64_t T = 33;
  std::mt19937 rng(9);
  Cache c = make_cache(2, 64, T, {7, 7}, rng);
  std::vector<float> q(T * 6 * 64);
  for (auto& x : q) x = uni(rng, 2.0f);
  std::vector<float> a(q.size()), b(q.size());
  attention(p, q.data(), T, c.views.data(), a.data(), pools().two);
  for (int g = 0; g < 2; ++g)
    for (int d = 0; d < 64; ++d) {
      c.k[g][(7 + T - 1) * 64 + d] = f32_to_fp16(5.0f);
      c.v[g][(7 + T - 1) * 64 + d] = f32_to_fp16(-9.0f);
    }
  attention(p, q.data(), T, c.views.data(), b.data(), pools().two);
  const int64_t last = (T - 1) * 6 * 64;
  for (int64_t i = 0; i < last; ++i) ASSERT_EQ(a[i], b[i]) << i;
  bool changed = false;
  for (int64_t i = last; i < (int64_t)a.size(); ++i) changed |= a[i] != b[i];
  EXPECT_TRUE(changed);
}

TEST(Attention, RejectsBadHeadCounts) {
  AttentionParams p;
  p.n_head = 6;
  p.n_kv_head = 4;
  p.head_dim = 8;
  float q[48] = {}, out[48];
  EXPECT_THROW(attention(p, q, 1, nullptr, out, pools().one), Error);
  p.n_kv_head = 0;
  EXPECT_THROW(attention(p, q, 1, nullptr, out, pools().one), Error);
}

}  // namespace
}  // namespace glimpse
