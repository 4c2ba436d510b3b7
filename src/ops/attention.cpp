// Tiled attention: a work unit is (KV head, block of kQueryBlock tokens); its G query heads
// x tokens form the rows of a Q tile that streams over key blocks of kKeyBlock entries,
// so each key/value is converted from f16 once per unit and shared by the whole GQA group.
// Scores of a unit are kept as [rows][keys] (at most 16*G rows), never T x T.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/attention.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kQueryBlock = 16;
constexpr int64_t kKeyBlock = 64;

void F16ToF32(const uint16_t* src, float* dst, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src) + i)),
               df, dst + i);
  for (; i < n; ++i) dst[i] = fp16_to_f32(src[i]);
}

// kt[c][j] = k[j][c]: a key block transposed so scores vectorize over keys.
// k: [nk][d] f32, kt: [d][kKeyBlock] f32 (columns >= nk left as they are).
void TransposeKeys(const float* k, int64_t nk, int64_t d, float* kt) {
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t c = 0; c < d; ++c) kt[c * kKeyBlock + j] = k[j * d + c];
}

// s[r][j] = dot(q[r], k[j]) for r < nr, j < nk, from the transposed block kt. Broadcast
// q[r][c] times a row of kt: no horizontal reductions. q: [nr][d], s: [nr][ld].
void Scores(const float* q, int64_t nr, const float* kt, int64_t nk, int64_t d, float* s,
            int64_t ld) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  for (int64_t r = 0; r < nr; ++r) {
    const float* qr = q + r * d;
    float* sr = s + r * ld;
    int64_t j = 0;
    for (; j + 2 * N <= nk; j += 2 * N) {
      auto a0 = hn::Zero(df), a1 = hn::Zero(df);
      for (int64_t c = 0; c < d; ++c) {
        const auto qc = hn::Set(df, qr[c]);
        a0 = hn::MulAdd(qc, hn::LoadU(df, kt + c * kKeyBlock + j), a0);
        a1 = hn::MulAdd(qc, hn::LoadU(df, kt + c * kKeyBlock + j + N), a1);
      }
      hn::StoreU(a0, df, sr + j);
      hn::StoreU(a1, df, sr + j + N);
    }
    for (; j < nk; ++j) {
      float a = 0.0f;
      for (int64_t c = 0; c < d; ++c) a += qr[c] * kt[c * kKeyBlock + j];
      sr[j] = a;
    }
  }
}

// x[0..n) *= scale; returns the max.
float ScaleMax(float* x, int64_t n, float scale) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  const auto vs = hn::Set(df, scale);
  auto vmax = hn::Set(df, -std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + N <= n; j += N) {
    const auto v = hn::Mul(hn::LoadU(df, x + j), vs);
    hn::StoreU(v, df, x + j);
    vmax = hn::Max(vmax, v);
  }
  float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; j < n; ++j) mx = std::max(mx, x[j] *= scale);
  return mx;
}

// x[0..n) = f16(x * inv): normalised probabilities rounded to f16.
void NormalizeRoundF16(float* x, int64_t n, float inv) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  const auto vi = hn::Set(df, inv);
  int64_t j = 0;
  for (; j + N <= n; j += N)
    hn::StoreU(hn::PromoteTo(df, hn::DemoteTo(dh, hn::Mul(hn::LoadU(df, x + j), vi))), df, x + j);
  for (; j < n; ++j) x[j] = fp16_to_f32(f32_to_fp16(x[j] * inv));
}

// p[0..n) = exp(x[0..n) - m); returns the sum.
float ExpShifted(float* x, int64_t n, float m) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  const auto vm = hn::Set(df, m);
  auto vsum = hn::Zero(df);
  int64_t j = 0;
  for (; j + N <= n; j += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + j), vm));
    hn::StoreU(e, df, x + j);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    sum += x[j];
  }
  return sum;
}

// o[0..d) = o * corr + sum_j p[j] * v[j][0..d)
void AccumulatePV(float* o, float corr, const float* p, const float* v, int64_t nk, int64_t d) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  int64_t c = 0;
  for (; c + 4 * N <= d; c += 4 * N) {
    const auto vc = hn::Set(df, corr);
    auto a0 = hn::Mul(hn::LoadU(df, o + c), vc);
    auto a1 = hn::Mul(hn::LoadU(df, o + c + N), vc);
    auto a2 = hn::Mul(hn::LoadU(df, o + c + 2 * N), vc);
    auto a3 = hn::Mul(hn::LoadU(df, o + c + 3 * N), vc);
    for (int64_t j = 0; j < nk; ++j) {
      const auto pj = hn::Set(df, p[j]);
      const float* vr = v + j * d + c;
      a0 = hn::MulAdd(pj, hn::LoadU(df, vr), a0);
      a1 = hn::MulAdd(pj, hn::LoadU(df, vr + N), a1);
      a2 = hn::MulAdd(pj, hn::LoadU(df, vr + 2 * N), a2);
      a3 = hn::MulAdd(pj, hn::LoadU(df, vr + 3 * N), a3);
    }
    hn::StoreU(a0, df, o + c);
    hn::StoreU(a1, df, o + c + N);
    hn::StoreU(a2, df, o + c + 2 * N);
    hn::StoreU(a3, df, o + c + 3 * N);
  }
  for (; c < d; ++c) {
    float a = o[c] * corr;
    for (int64_t j = 0; j < nk; ++j) a += p[j] * v[j * d + c];
    o[c] = a;
  }
}

struct UnitScratch {
  std::vector<float> q, k, v, s, o;
};

// Rounds through f16, as the reference engine does for q (dot with f16 keys) and for the
// attention probabilities (product with f16 values); matching these roundings keeps
// glimpse's logits within noise of llama.cpp's.
inline float round_f16(float x) { return fp16_to_f32(f32_to_fp16(x)); }

void AttentionUnit(const AttentionParams& p, const float* q, int64_t T, const KvHeadView& kv,
                   int g, int64_t t0, float* out, UnitScratch& sc) {
  const int64_t d = p.head_dim;
  const int64_t G = p.n_head / p.n_kv_head;
  const int64_t nt = std::min(kQueryBlock, T - t0);
  const int64_t R = nt * G;                    // row r = t_local * G + gi
  const int64_t n_keys = kv.n_base + t0 + nt;  // keys the last query of the block sees
  sc.q.resize(R * d);
  sc.k.resize(kKeyBlock * d);
  sc.v.resize(kKeyBlock * d);
  sc.s.resize(R * n_keys);  // score rows of this unit: [R][n_keys]
  sc.o.assign(R * d, 0.0f);
  for (int64_t tl = 0; tl < nt; ++tl)
    for (int64_t gi = 0; gi < G; ++gi) {
      const float* src = q + ((t0 + tl) * p.n_head + g * G + gi) * d;
      float* dst = sc.q.data() + (tl * G + gi) * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = round_f16(src[c]);
    }
  // Pass 1: scaled scores.
  for (int64_t kb = 0; kb < n_keys; kb += kKeyBlock) {
    const int64_t nk = std::min(kKeyBlock, n_keys - kb);
    F16ToF32(kv.k + kb * d, sc.v.data(), nk * d);  // sc.v is free until pass 2
    TransposeKeys(sc.v.data(), nk, d, sc.k.data());
    Scores(sc.q.data(), R, sc.k.data(), nk, d, sc.s.data() + kb, n_keys);
  }
  // Softmax per row over the keys its query sees; probabilities rounded to f16.
  for (int64_t r = 0; r < R; ++r) {
    const int64_t limit = kv.n_base + t0 + r / G + 1;
    float* row = sc.s.data() + r * n_keys;
    const float mx = ScaleMax(row, limit, p.scale);
    const float sum = ExpShifted(row, limit, mx);
    NormalizeRoundF16(row, limit, 1.0f / sum);
  }
  // Pass 2: probabilities times values, one key block at a time.
  for (int64_t kb = 0; kb < n_keys; kb += kKeyBlock) {
    const int64_t nk = std::min(kKeyBlock, n_keys - kb);
    F16ToF32(kv.v + kb * d, sc.v.data(), nk * d);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t limit = std::min(nk, kv.n_base + t0 + r / G + 1 - kb);
      if (limit <= 0) continue;
      AccumulatePV(sc.o.data() + r * d, 1.0f, sc.s.data() + r * n_keys + kb, sc.v.data(), limit,
                   d);
    }
  }
  for (int64_t tl = 0; tl < nt; ++tl)
    for (int64_t gi = 0; gi < G; ++gi) {
      const int64_t r = tl * G + gi;
      float* dst = out + ((t0 + tl) * p.n_head + g * G + gi) * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = sc.o[r * d + c];
    }
}

// Queries per work unit, so the driver splits batches exactly as the units expect.
int64_t QueryBlockSize() { return kQueryBlock; }

void AttentionUnitEntry(const AttentionParams& p, const float* q, int64_t T,
                        const KvHeadView& kv, int g, int64_t t0, float* out) {
  thread_local UnitScratch sc;
  AttentionUnit(p, q, T, kv, g, t0, out, sc);
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

HWY_EXPORT(AttentionUnitEntry);
HWY_EXPORT(QueryBlockSize);

void attention(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
               float* out, ThreadPool& pool) {
  if (p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0) fail("bad attention head counts");
  const int64_t qb_size = HWY_DYNAMIC_DISPATCH(QueryBlockSize)();
  const int64_t n_qb = (T + qb_size - 1) / qb_size;
  // Later query blocks see more keys: hand out the most expensive units first.
  pool.parallel_for_dynamic(n_qb * p.n_kv_head, [&](int64_t i, int) {
    const int64_t qb = n_qb - 1 - i / p.n_kv_head;
    const int g = (int)(i % p.n_kv_head);
    HWY_DYNAMIC_DISPATCH(AttentionUnitEntry)(p, q, T, heads[g], g, qb * qb_size, out);
  });
}

void attention_ref(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
                   float* out) {
  const int d = p.head_dim;
  const int G = p.n_head / p.n_kv_head;
  for (int64_t t = 0; t < T; ++t)
    for (int h = 0; h < p.n_head; ++h) {
      const KvHeadView& kv = heads[h / G];
      const int64_t n = kv.n_base + t + 1;
      std::vector<double> s(n);
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int c = 0; c < d; ++c)
          dot += (double)q[(t * p.n_head + h) * d + c] * fp16_to_f32(kv.k[j * d + c]);
        s[j] = dot * p.scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += s[j] * fp16_to_f32(kv.v[j * d + c]);
        out[(t * p.n_head + h) * d + c] = (float)(acc / sum);
      }
    }
}

}  // namespace glimpse
#endif  // HWY_ONCE
