// Highway kernel (runtime dispatch) for the score rows; softmax and accumulation are scalar.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/attention_scores.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

#include "kv/attention_scores.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[i][j] = sum_c q_i[c] * kt[c][j] for i < m (m <= 8), j < n. kt: [d][n_pad], s: [m][n_pad]
// with n_pad a multiple of the vector length (padding columns are computed and ignored).
void ScoreRows(const float* const* q, int m, const float* kt, int64_t n_pad, int d, float* s) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  for (int64_t j = 0; j < n_pad; j += (int64_t)L) {
    auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int c = 0; c < d; ++c) {
      const auto kv = hn::LoadU(df, kt + (size_t)c * n_pad + j);
      a0 = hn::MulAdd(hn::Set(df, q[0][c]), kv, a0);
      if (m > 1) a1 = hn::MulAdd(hn::Set(df, q[1][c]), kv, a1);
      if (m > 2) a2 = hn::MulAdd(hn::Set(df, q[2][c]), kv, a2);
      if (m > 3) a3 = hn::MulAdd(hn::Set(df, q[3][c]), kv, a3);
      if (m > 4) a4 = hn::MulAdd(hn::Set(df, q[4][c]), kv, a4);
      if (m > 5) a5 = hn::MulAdd(hn::Set(df, q[5][c]), kv, a5);
      if (m > 6) a6 = hn::MulAdd(hn::Set(df, q[6][c]), kv, a6);
      if (m > 7) a7 = hn::MulAdd(hn::Set(df, q[7][c]), kv, a7);
    }
    hn::StoreU(a0, df, s + j);
    if (m > 1) hn::StoreU(a1, df, s + n_pad + j);
    if (m > 2) hn::StoreU(a2, df, s + 2 * n_pad + j);
    if (m > 3) hn::StoreU(a3, df, s + 3 * n_pad + j);
    if (m > 4) hn::StoreU(a4, df, s + 4 * n_pad + j);
    if (m > 5) hn::StoreU(a5, df, s + 5 * n_pad + j);
    if (m > 6) hn::StoreU(a6, df, s + 6 * n_pad + j);
    if (m > 7) hn::StoreU(a7, df, s + 7 * n_pad + j);
  }
}

size_t FloatLanes() { return hn::Lanes(hn::ScalableTag<float>()); }

// s[j] = exp(s[j] * scale - mx) for j < n (n_pad-padded buffer), returns the sum in double
// lane-wise partial sums. Vector exp (Highway contrib, ~1 ulp): the softmax is the bulk of
// the scoring pass's work besides the dot products.
double ExpShiftSum(float* s, int64_t n, float scale, float mx) {
  const hn::ScalableTag<float> df;
  const int64_t L = (int64_t)hn::Lanes(df);
  const auto vs = hn::Set(df, scale), vm = hn::Set(df, mx);
  auto acc = hn::Zero(df);
  double sum = 0;
  int64_t j = 0;
  for (; j + L <= n; j += L) {
    const auto e = hn::Exp(df, hn::MulSub(hn::LoadU(df, s + j), vs, vm));
    hn::StoreU(e, df, s + j);
    acc = hn::Add(acc, e);
  }
  sum += hn::GetLane(hn::SumOfLanes(df, acc));
  for (; j < n; ++j) sum += (s[j] = std::exp(s[j] * scale - mx));
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {
HWY_EXPORT(ScoreRows);
HWY_EXPORT(FloatLanes);
HWY_EXPORT(ExpShiftSum);

namespace {

// Softmax of s[0..nv) * scale in place (f32, max-subtracted) and accumulation.
void softmax_accumulate(float* s, int64_t nv, float scale, QueryReduce reduce, float* acc,
                        int64_t n_cols) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < nv; ++j) mx = std::max(mx, s[j] * scale);
  const double sum = HWY_DYNAMIC_DISPATCH(ExpShiftSum)(s, nv, scale, mx);
  const float inv = (float)(1.0 / sum);
  const int64_t nc = std::min(nv, n_cols);
  if (reduce == QueryReduce::Sum)
    for (int64_t j = 0; j < nc; ++j) acc[j] += s[j] * inv;
  else
    for (int64_t j = 0; j < nc; ++j) acc[j] = std::max(acc[j], s[j] * inv);
}

}  // namespace

void score_rows(const float* const* q, int m, const float* kt, int64_t n_pad, int d, float* s) {
  HWY_DYNAMIC_DISPATCH(ScoreRows)(q, m, kt, n_pad, d, s);
}

void accumulate_attention(const ScoreQuery* qs, int64_t n_q, KvType key_type, const void* keys,
                          int64_t n_keys, int d, float scale, QueryReduce reduce, float* acc,
                          int64_t acc_stride, int64_t n_cols) {
  if (n_q <= 0) return;
  int64_t n = 0;
  for (int64_t i = 0; i < n_q; ++i) {
    if (qs[i].n_visible <= 0 || qs[i].n_visible > n_keys)
      fail("attention scores: a query sees {} of {} keys", qs[i].n_visible, n_keys);
    n = std::max(n, qs[i].n_visible);
  }
  const int64_t L = (int64_t)HWY_DYNAMIC_DISPATCH(FloatLanes)();
  const int64_t n_pad = (n + L - 1) / L * L;
  // kt [d][n_pad]: blocks of 16 keys go to f32 rows [16][d], then each of the d columns
  // takes 16 consecutive floats (one cache line) instead of one float per row, which at
  // n_pad * 4 bytes apart would make every store miss.
  constexpr int64_t kBlock = 16;
  thread_local std::vector<float> kt, s, rows;
  kt.resize((size_t)d * n_pad);
  rows.resize((size_t)kBlock * d);
  const size_t ldk = kv_row_bytes(key_type, d);
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t nb = std::min(kBlock, n - j0);
    kv_rows_to_f32(key_type, static_cast<const uint8_t*>(keys) + j0 * ldk, nb, d, rows.data());
    for (int c = 0; c < d; ++c) {
      float* col = kt.data() + (size_t)c * n_pad + j0;
      for (int64_t i = 0; i < nb; ++i) col[i] = rows[i * d + c];
    }
  }
  for (int c = 0; c < d; ++c)  // padding columns: scored and ignored, but finite
    std::fill(kt.data() + (size_t)c * n_pad + n, kt.data() + (size_t)(c + 1) * n_pad, 0.0f);
  s.resize((size_t)8 * n_pad);
  for (int64_t i0 = 0; i0 < n_q; i0 += 8) {
    const int m = (int)std::min<int64_t>(8, n_q - i0);
    const float* q[8];
    for (int i = 0; i < m; ++i) q[i] = qs[i0 + i].q;
    score_rows(q, m, kt.data(), n_pad, d, s.data());
    for (int i = 0; i < m; ++i) {
      const ScoreQuery& sq = qs[i0 + i];
      softmax_accumulate(s.data() + i * n_pad, sq.n_visible, scale, reduce,
                         acc + sq.slot * acc_stride, n_cols);
    }
  }
}

void accumulate_attention_ref(const ScoreQuery* qs, int64_t n_q, KvType key_type,
                              const void* keys, int64_t n_keys, int d, float scale,
                              QueryReduce reduce, float* acc, int64_t acc_stride,
                              int64_t n_cols) {
  std::vector<float> kf((size_t)std::max<int64_t>(n_keys, 0) * d);
  kv_rows_to_f32(key_type, keys, n_keys, d, kf.data());
  for (int64_t i = 0; i < n_q; ++i) {
    const ScoreQuery& sq = qs[i];
    if (sq.n_visible <= 0 || sq.n_visible > n_keys) fail("attention scores: bad query");
    std::vector<double> p(sq.n_visible);
    double mx = -INFINITY;
    for (int64_t j = 0; j < sq.n_visible; ++j) {
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += (double)sq.q[c] * kf[(size_t)j * d + c];
      p[j] = dot * scale;
      mx = std::max(mx, p[j]);
    }
    double sum = 0;
    for (auto& x : p) sum += (x = std::exp(x - mx));
    float* a = acc + sq.slot * acc_stride;
    for (int64_t j = 0; j < std::min(sq.n_visible, n_cols); ++j) {
      const float v = (float)(p[j] / sum);
      a[j] = reduce == QueryReduce::Sum ? a[j] + v : std::max(a[j], v);
    }
  }
}

AttentionRecorder::AttentionRecorder(const ModelConfig& c, int64_t n_cols, int32_t pos_lo,
                                     int32_t pos_hi, QueryReduce reduce)
    : n_layer_(c.n_layer), n_head_(c.n_head), n_kv_head_(c.n_kv_head), head_dim_(c.head_dim),
      n_cols_(n_cols), pos_lo_(pos_lo), pos_hi_(pos_hi), reduce_(reduce),
      scale_(c.attn_scale > 0 ? c.attn_scale : 1.0f / std::sqrt((float)c.head_dim)),
      acc_((size_t)c.n_layer * c.n_head * n_cols, 0.0f) {
  for (int l = c.n_layer - 1; l >= 0; --l)
    if (scored_layer(c, l)) first_scored_ = l;
  for (int l = 0; l < c.n_layer; ++l) scored_.push_back(scored_layer(c, l));
}

void AttentionRecorder::on_queries(const LayerQueries& lq, ThreadPool& pool) {
  if (!scored_[(size_t)lq.layer]) return;  // a sliding-window layer: never evicted
  std::vector<int64_t> rows;  // batch rows whose position is selected
  for (int64_t t = 0; t < lq.n_tokens; ++t)
    if (lq.pos[t] >= pos_lo_ && lq.pos[t] < pos_hi_) rows.push_back(t);
  if (rows.empty()) return;
  Stopwatch sw;
  const int G = n_head_ / n_kv_head_, d = head_dim_;
  const float scale = scale_;
  float* acc_l = acc_.data() + (size_t)lq.layer * n_head_ * n_cols_;
  // One unit per query head: each owns its accumulator row, so no locking is needed.
  pool.parallel_for_dynamic(n_head_, [&](int64_t qh, int) {
    const int h = (int)qh / G;
    const KvHeadView& kh = lq.heads[h];
    const int64_t n_base = kh.n_base, n_keys = n_base + lq.n_tokens;
    std::vector<ScoreQuery> qs;
    qs.reserve(rows.size());
    for (int64_t t : rows)
      qs.push_back({lq.q + ((size_t)t * n_head_ + qh) * d, n_base + t + 1, 0});
    accumulate_attention(qs.data(), (int64_t)qs.size(), lq.type_k, kh.k, n_keys, d, scale, reduce_, acc_l + qh * n_cols_, n_cols_, n_cols_);
  });
  if (lq.layer == first_scored_) n_queries_ += (int64_t)rows.size();
  ms_ += sw.ms();
}

}  // namespace glimpse
#endif  // HWY_ONCE
