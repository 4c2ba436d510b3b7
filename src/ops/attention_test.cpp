// Fused causal attention against attention_ref (double scores, exact softmax), for every KV
// element type (ops/kv_types.h) and mixed K/V types.
//
// The reference dequantizes the stored rows, so the comparison measures the kernel, not the
// storage rounding. Tolerance: with f16 keys/values the fast path rounds q / the softmax
// probabilities to f16 (as the reference engine does), i.e. relative errors ~2^-11 on each;
// outputs are compared with max |out - ref| <= 2e-3 and the normalised MSE
// sum(out - ref)^2 / sum(ref^2) <= 1e-6. Shapes cover odd lengths, key counts around the
// tile (64) and split-K chunk (256) boundaries, unequal head lengths, GQA groups 1/3/4 and
// head dims that are and are not a multiple of the vector width (q8_0 needs multiples of 32).
#include "ops/attention.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ops/isa.h"
#include "ops/kv_types.h"
#include "util/error.h"
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

// Per-KV-head stored rows (types of p) holding exactly n_base[g] + T entries.
struct Cache {
  std::vector<std::vector<uint8_t>> k, v;
  std::vector<KvHeadView> views;
  KvType tk = KvType::F16, tv = KvType::F16;
  int hd = 0;
  // Stores f32 values into row j of head g (both K and V).
  void set_row(int g, int64_t j, const float* kf, const float* vf) {
    kv_rows_from_f32(tk, kf, 1, hd, k[g].data() + j * kv_row_bytes(tk, hd));
    kv_rows_from_f32(tv, vf, 1, hd, v[g].data() + j * kv_row_bytes(tv, hd));
  }
  // Row j of head g's values, dequantized.
  std::vector<float> value(int g, int64_t j) const {
    std::vector<float> out(hd);
    kv_rows_to_f32(tv, v[g].data() + j * kv_row_bytes(tv, hd), 1, hd, out.data());
    return out;
  }
};

Cache make_cache(const AttentionParams& p, int64_t T, const std::vector<int64_t>& n_base,
                 std::mt19937& rng) {
  Cache c;
  c.tk = p.type_k;
  c.tv = p.type_v;
  c.hd = p.head_dim;
  const int n_kv = p.n_kv_head, hd = p.head_dim;
  c.k.resize(n_kv);
  c.v.resize(n_kv);
  std::vector<float> kf(hd), vf(hd);
  for (int g = 0; g < n_kv; ++g) {
    const int64_t n = n_base[g] + T;
    c.k[g].resize(n * kv_row_bytes(c.tk, hd));
    c.v[g].resize(n * kv_row_bytes(c.tv, hd));
    for (int64_t j = 0; j < n; ++j) {
      for (auto& x : kf) x = uni(rng, 2.0f);
      for (auto& x : vf) x = uni(rng, 1.0f);
      c.set_row(g, j, kf.data(), vf.data());
    }
  }
  for (int g = 0; g < n_kv; ++g) c.views.push_back({c.k[g].data(), c.v[g].data(), n_base[g]});
  return c;
}

// The T queries of q ([T][n_head * head_dim]) attended as one batch over heads of nb entries
// each give, row for row, the bits of each token attended alone.
void ExpectBatchEqualsOneTokenAtATime(const AttentionParams& p, const Cache& c, int64_t nb,
                                      const std::vector<float>& q) {
  const int64_t row = (int64_t)p.n_head * p.head_dim, T = (int64_t)q.size() / row;
  std::vector<float> batch(T * row), one(row);
  attention(p, q.data(), T, c.views.data(), batch.data(), pools().two);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<KvHeadView> views = c.views;
    for (auto& v : views) v.n_base = nb + t;
    attention(p, q.data() + t * row, 1, views.data(), one.data(), pools().two);
    ASSERT_TRUE(std::equal(one.begin(), one.end(), batch.begin() + t * row)) << "token " << t;
  }
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
  SCOPED_TRACE(testing::Message() << "K " << kv_type_name(p.type_k) << " V "
                                  << kv_type_name(p.type_v) << " n_head=" << p.n_head
                                  << " n_kv=" << p.n_kv_head << " hd=" << p.head_dim << " T=" << T
                                  << " n_base[0]=" << n_base[0]);
  std::mt19937 rng(seed);
  const Cache c = make_cache(p, T, n_base, rng);
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

// K and V types of a test instance.
struct Types {
  KvType k, v;
};
std::string TypesName(const testing::TestParamInfo<Types>& i) {
  return std::string(kv_type_name(i.param.k)) + "_" + kv_type_name(i.param.v);
}

class AttentionTypes : public testing::TestWithParam<Types> {
 protected:
  AttentionParams params(int n_head, int n_kv, int hd) const {
    AttentionParams p;
    p.n_head = n_head;
    p.n_kv_head = n_kv;
    p.head_dim = hd;
    p.scale = 1.0f / std::sqrt((float)hd);
    p.type_k = GetParam().k;
    p.type_v = GetParam().v;
    return p;
  }
  // Head dims to try: awkward ones where the types allow them.
  bool fits(int hd) const {
    return kv_type_supports(GetParam().k, hd) && kv_type_supports(GetParam().v, hd);
  }
  // A head dim the types allow: hd itself or a q8_0-compatible stand-in.
  int dim(int hd) const { return fits(hd) ? hd : 64; }
};

TEST_P(AttentionTypes, MatchesReferenceGqa) {
  uint32_t seed = 100;
  for (int hd : {64, 48, 128, 40, 96})
    if (fits(hd))
      for (int G : {1, 3, 4})
        for (int64_t T : {1, 2, 17})
          for (int64_t nb : {0, 63, 300}) check_case(params(2 * G, 2, hd), T, {nb, nb}, seed++);
}

TEST_P(AttentionTypes, LongerBatches) {
  uint32_t seed = 150;
  for (int64_t T : {33, 100})
    for (int64_t nb : {0, 7, 250}) check_case(params(9, 3, 64), T, {nb, nb, nb}, seed++);
}

TEST_P(AttentionTypes, SplitKBoundaries) {
  // Decode over key counts around the tile (64) and chunk (256) sizes.
  uint32_t seed = 170;
  for (int64_t n : {63, 64, 65, 255, 256, 257, 511, 512, 513, 1000})
    check_case(params(9, 3, 64), 1, {n - 1, n - 1, n - 1}, seed++);
}

TEST_P(AttentionTypes, HeadsWithDifferentBaseLengths) {
  uint32_t seed = 200;
  for (int hd : {64, dim(40)})
    for (int64_t T : {1, 5, 33}) {
      check_case(params(6, 3, hd), T, {0, 70, 7}, seed++);
      check_case(params(6, 3, hd), T, {129, 3, 64}, seed++);
      check_case(params(6, 3, hd), T, {300, 255, 0}, seed++);
    }
}

TEST_P(AttentionTypes, MhaAndMqa) {
  AttentionParams p = params(4, 4, 64);
  p.scale = 0.125f;
  check_case(p, 17, {3, 0, 65, 16}, 300);
  p.n_kv_head = 1;
  check_case(p, 20, {50}, 301);
}

TEST_P(AttentionTypes, BatchMatchesOneTokenAtATime) {
  // A token attended inside a batch (prefill, chunks walked in order on one thread) gets
  // bit-for-bit the output it gets alone (decode, chunks split across threads and merged).
  for (int64_t nb : {0, 250, 600}) {
    SCOPED_TRACE(nb);
    const AttentionParams p = params(9, 3, 64);
    const int64_t T = 40, row = 9 * 64;
    std::mt19937 rng(400 + (uint32_t)nb);
    const Cache c = make_cache(p, T, {nb, nb, nb}, rng);
    std::vector<float> q(T * row);
    for (auto& x : q) x = uni(rng, 2.0f);
    ExpectBatchEqualsOneTokenAtATime(p, c, nb, q);
  }
}

TEST_P(AttentionTypes, SingleKeyReturnsItsValue) {
  // T = 1, empty cache: the only visible entry gets probability 1.
  const int hd = dim(40);
  AttentionParams p = params(2, 1, hd);
  p.scale = 0.3f;
  std::mt19937 rng(5);
  const Cache c = make_cache(p, 1, {0}, rng);
  std::vector<float> q(2 * hd), out(2 * hd);
  for (auto& x : q) x = uni(rng, 3.0f);
  attention(p, q.data(), 1, c.views.data(), out.data(), pools().two);
  const std::vector<float> v0 = c.value(0, 0);
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < hd; ++d) EXPECT_EQ(out[h * hd + d], v0[d]) << h << d;
}

TEST_P(AttentionTypes, IsCausal) {
  // Changing the last entry only changes the last query's output.
  AttentionParams p = params(6, 2, 64);
  p.scale = 0.125f;
  const int64_t T = 33;
  std::mt19937 rng(9);
  Cache c = make_cache(p, T, {7, 7}, rng);
  std::vector<float> q(T * 6 * 64);
  for (auto& x : q) x = uni(rng, 2.0f);
  std::vector<float> a(q.size()), b(q.size());
  attention(p, q.data(), T, c.views.data(), a.data(), pools().two);
  const std::vector<float> kf(64, 5.0f), vf(64, -9.0f);
  for (int g = 0; g < 2; ++g) c.set_row(g, 7 + T - 1, kf.data(), vf.data());
  attention(p, q.data(), T, c.views.data(), b.data(), pools().two);
  const int64_t last = (T - 1) * 6 * 64;
  for (int64_t i = 0; i < last; ++i) ASSERT_EQ(a[i], b[i]) << i;
  bool changed = false;
  for (int64_t i = last; i < (int64_t)a.size(); ++i) changed |= a[i] != b[i];
  EXPECT_TRUE(changed);
}

TEST_P(AttentionTypes, SlidingWindowMatchesReference) {
  // Windows shorter and longer than the batch, across tile (64) and chunk (256) boundaries,
  // prefill (T > 1, chunks in order) and decode (split-K).
  uint32_t seed = 500;
  for (int64_t window : {1, 5, 64, 100, 256, 300})
    for (int64_t T : {1, 17, 70})
      for (int64_t nb : {0, 40, 300, 700}) {
        AttentionParams p = params(4, 2, 64);
        p.window = window;
        SCOPED_TRACE(testing::Message() << "window=" << window);
        check_case(p, T, {nb, nb}, seed++);
      }
}

TEST_P(AttentionTypes, SlidingWindowIgnoresEntriesOutsideIt) {
  // Entries no query sees: changing them changes nothing, and dropping a whole
  // kAttentionChunk of them from the front of every head gives bit-identical outputs.
  const AttentionParams base = params(6, 2, 64);
  for (int64_t T : {1, 40})
    for (int64_t window : {64, 200}) {
      SCOPED_TRACE(testing::Message() << "T=" << T << " window=" << window);
      AttentionParams p = base;
      p.window = window;
      const int64_t nb = 2 * kAttentionChunk + 150, row = 6 * 64;
      std::mt19937 rng(600 + (uint32_t)(T + window));
      Cache c = make_cache(p, T, {nb, nb}, rng);
      std::vector<float> q(T * row), a(T * row), b(T * row), dropped(T * row);
      for (auto& x : q) x = uni(rng, 2.0f);
      attention(p, q.data(), T, c.views.data(), a.data(), pools().two);
      // The first query sees entries from nb + 1 - window on.
      const std::vector<float> kf(64, 7.0f), vf(64, -5.0f);
      for (int g = 0; g < 2; ++g)
        for (int64_t j = 0; j < nb + 1 - window; ++j) c.set_row(g, j, kf.data(), vf.data());
      attention(p, q.data(), T, c.views.data(), b.data(), pools().two);
      EXPECT_EQ(a, b);
      std::vector<KvHeadView> views = c.views;  // the first chunk dropped (nb + 1 - window > 256)
      for (int g = 0; g < 2; ++g) {
        views[g].k = c.k[g].data() + kAttentionChunk * kv_row_bytes(p.type_k, 64);
        views[g].v = c.v[g].data() + kAttentionChunk * kv_row_bytes(p.type_v, 64);
        views[g].n_base = nb - kAttentionChunk;
      }
      attention(p, q.data(), T, views.data(), dropped.data(), pools().one);
      EXPECT_EQ(a, dropped);
    }
}

TEST_P(AttentionTypes, SlidingWindowBatchMatchesOneTokenAtATime) {
  AttentionParams p = params(4, 2, 64);
  p.window = 100;
  const int64_t T = 150, nb = 260, row = 4 * 64;
  std::mt19937 rng(700);
  const Cache c = make_cache(p, T, {nb, nb}, rng);
  std::vector<float> q(T * row);
  for (auto& x : q) x = uni(rng, 2.0f);
  ExpectBatchEqualsOneTokenAtATime(p, c, nb, q);
}

// Every type with itself, and mixed pairs (K and V are chosen independently).
INSTANTIATE_TEST_SUITE_P(
    KvTypes, AttentionTypes,
    testing::Values(Types{KvType::F16, KvType::F16}, Types{KvType::F32, KvType::F32},
                    Types{KvType::BF16, KvType::BF16}, Types{KvType::Q8_0, KvType::Q8_0},
                    Types{KvType::F16, KvType::Q8_0}, Types{KvType::Q8_0, KvType::F16},
                    Types{KvType::F32, KvType::BF16}, Types{KvType::BF16, KvType::F32}),
    TypesName);

TEST(Attention, EveryCompiledTargetMatchesTheReference) {
  // The tile loads have per-target code (AVX-512 transposes from the stored rows, scalar
  // loads elsewhere): every type on every target this CPU can run.
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    uint32_t seed = 500;
    for (KvType tk : {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0})
      for (KvType tv : {tk, KvType::Q8_0}) {
        AttentionParams p;
        p.n_head = 6;
        p.n_kv_head = 2;
        p.scale = 0.125f;
        p.type_k = tk;
        p.type_v = tv;
        for (int hd : {64, 40}) {
          if (!kv_type_supports(tk, hd) || !kv_type_supports(tv, hd)) continue;
          p.head_dim = hd;
          check_case(p, 17, {70, 3}, seed++);    // prefill tiles
          check_case(p, 1, {300, 129}, seed++);  // decode, split-K
        }
      }
  }
  set_isa_level_for_testing(isa_level());  // back to the level in use
}

TEST(Attention, EveryIsaLevelMatchesTheReference) {
  // The levels of ops/isa.h (what GLIMPSE_ISA selects) restrict the targets above: prefill
  // and decode on each level this CPU runs.
  uint32_t seed = 900;
  for (IsaLevel level : available_isa_levels()) {
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    for (KvType t : {KvType::F16, KvType::Q8_0}) {
      AttentionParams p;
      p.n_head = 4;
      p.n_kv_head = 2;
      p.scale = 0.125f;
      p.type_k = p.type_v = t;
      p.head_dim = 64;
      check_case(p, 9, {40, 2}, seed++);
      check_case(p, 1, {300, 77}, seed++);
    }
  }
}

TEST(Attention, F16MatchesItsRoundedInputs) {
  // With f16 keys and values, q and p are rounded to f16 (as the reference engine); with
  // f32 they are not, so an f32 cache holding the same (f16-exact) values stays closer to
  // the reference.
  std::mt19937 rng(77);
  AttentionParams p;
  p.n_head = 6;
  p.n_kv_head = 2;
  p.head_dim = 64;
  p.scale = 0.125f;
  const int64_t T = 20, nb = 300;
  Cache c16 = make_cache(p, T, {nb, nb}, rng);
  AttentionParams p32 = p;
  p32.type_k = p32.type_v = KvType::F32;
  Cache c32 = make_cache(p32, T, {nb, nb}, rng);
  std::vector<float> kf(64);
  for (int g = 0; g < 2; ++g)
    for (int64_t j = 0; j < nb + T; ++j) {  // the same f16 values, stored as f32
      kv_rows_to_f32(KvType::F16, c16.k[g].data() + j * 128, 1, 64, kf.data());
      const std::vector<float> vf = c16.value(g, j);
      c32.set_row(g, j, kf.data(), vf.data());
    }
  std::vector<float> q(T * 6 * 64);
  for (auto& x : q) x = uni(rng, 2.0f);
  std::vector<float> ref(q.size()), o16(q.size()), o32(q.size());
  attention_ref(p, q.data(), T, c16.views.data(), ref.data());
  attention(p, q.data(), T, c16.views.data(), o16.data(), pools().two);
  attention(p32, q.data(), T, c32.views.data(), o32.data(), pools().two);
  const Err e16 = error(o16, ref), e32 = error(o32, ref);
  EXPECT_LE(e16.nmse, 1e-6);
  EXPECT_LE(e32.nmse, 1e-9);
  EXPECT_LT(e32.nmse, e16.nmse / 10);
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
