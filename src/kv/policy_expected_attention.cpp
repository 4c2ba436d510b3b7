// ExpectedAttention (query-agnostic): score each prompt key by the attention that future
// queries are expected to pay it, with the future queries modelled as a Gaussian fitted to
// the prompt's own queries. Defaults follow kvpress's ExpectedAttentionPress:
//
// 1. Statistics: per (layer, query head), mean mu and covariance Sigma (divided by the count,
//    not count - 1) of the pre-RoPE queries at prompt positions S .. N-1, S = 4 sinks (the
//    first entries are skipped: their queries are outliers). The forward pass hands the
//    observer post-RoPE queries (model/model.h); rotating each back by its own position is
//    exact (the inverse rotation is the transpose), and q's bias, if any, is included.
// 2. Average rotation: R = mean of the RoPE rotations of positions N .. N+F-1 (F = 512
//    future positions; the model's RoPE settings and pair layout, ops/rope.h). mu' = R mu,
//    Sigma' = R Sigma R^T. R is an average of rotations, not a rotation itself: its pairs
//    shrink as the angle spreads over the F positions.
// 3. Expected logit of key k_j (post-RoPE, as stored) for j in [S, N):
//      z_j = mu'.k_j / sqrt(d) + k_j^T Sigma' k_j / (2d)
//    (log E[exp(q.k/sqrt(d))] for q ~ N(mu', Sigma')); the covariance term can be turned
//    off (ea_covariance).
// 4. p = softmax of z over j in [S, N) per query head (in double), then (p_j + epsilon) *
//    ||v_j|| (ea_vnorm, epsilon = 0 by default), then the group reduction (mean by default;
//    it commutes with the ||v|| weight, which is per KV head).
// 5. The S sink entries score the layer's largest score + 1, so they are kept first (and the
//    policy's default protects them too: sinks 4, at most half the budget as for every
//    policy). --kv-sink S changes both the protected and the skipped entries.
// No window or pooling by default (pooling settable). Scores do not depend on the budget.
// Cost: O(N H d^2) per layer for the statistics and for the covariance term, both as f32
// products through the scoring kernel (score_rows) with sums kept in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "ops/rope.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {
namespace {

constexpr int64_t kSinks = 4;

// Entries skipped by the statistics and the softmax: the asked or default sinks, leaving at
// least one key to score.
int64_t scoring_sinks(const KvPolicySettings& s, int64_t n) {
  return std::clamp<int64_t>(s.sinks >= 0 ? s.sinks : kSinks, 0, n - 1);
}

constexpr int64_t kPad = 16;  // a multiple of the f32 vector width on every target
int64_t padded(int64_t n) { return (n + kPad - 1) / kPad * kPad; }

// Running moments of the pre-RoPE queries per (layer, query head) over prompt positions
// [pos_lo, pos_hi), fed batch by batch during prefill. Sums are kept in double relative to
// a shift (the head's first query), so the covariance does not cancel when the mean is
// large compared with the spread; a batch's second moments are one f32 product Y^T Y of its
// shifted rows Y [T][d] (score_rows), added into the double sums.
class QueryMoments final : public ForwardObserver {
 public:
  QueryMoments(const ModelConfig& c, int32_t pos_lo, int32_t pos_hi, bool second)
      : rope_(c.rope), n_head_(c.n_head), d_(c.head_dim), pos_lo_(pos_lo), pos_hi_(pos_hi),
        second_(second), count_(c.n_layer, 0),
        shift_((size_t)c.n_layer * c.n_head * c.head_dim, 0.0), s1_(shift_.size(), 0.0),
        s2_(second ? shift_.size() * c.head_dim : 0, 0.0) {}

  void on_queries(const LayerQueries& lq, ThreadPool& pool) override {
    std::vector<int64_t> rows;  // batch rows whose position is counted
    for (int64_t t = 0; t < lq.n_tokens; ++t)
      if (lq.pos[t] >= pos_lo_ && lq.pos[t] < pos_hi_) rows.push_back(t);
    if (rows.empty()) return;
    Stopwatch sw;
    const int H = n_head_, d = d_;
    const int64_t T = (int64_t)rows.size(), hd = (int64_t)H * d, dp = padded(d);
    std::vector<double> x((size_t)T * hd);  // [T][H][d] pre-RoPE queries
    std::vector<float> cs(rope_.n_rot);
    for (int64_t i = 0; i < T; ++i) {
      std::copy(lq.q + rows[i] * hd, lq.q + (rows[i] + 1) * hd, x.begin() + i * hd);
      rope_cos_sin(rope_, lq.pos[rows[i]], cs.data());
      rope_apply(rope_, cs.data(), x.data() + i * hd, H, d, /*inverse=*/true);
    }
    const bool first = count_[lq.layer] == 0;
    pool.parallel_for_dynamic(H, [&](int64_t qh, int) {
      const size_t o = ((size_t)lq.layer * H + qh) * d;
      double* shift = shift_.data() + o;
      double* s1 = s1_.data() + o;
      if (first) std::copy(x.begin() + qh * d, x.begin() + (qh + 1) * d, shift);
      // Y [T][dp] (zero padded) and its transpose [d][T].
      std::vector<float> y((size_t)T * dp, 0.0f), yt((size_t)d * T);
      for (int64_t i = 0; i < T; ++i)
        for (int a = 0; a < d; ++a) {
          const double v = x[i * hd + qh * d + a] - shift[a];
          s1[a] += v;
          y[i * dp + a] = yt[a * T + i] = (float)v;
        }
      if (!second_) return;
      double* s2 = s2_.data() + o * d;
      std::vector<float> g((size_t)8 * dp);  // rows a0.. of Y^T Y
      for (int a0 = 0; a0 < d; a0 += 8) {
        const int m = std::min(8, d - a0);
        const float* q[8];
        for (int i = 0; i < m; ++i) q[i] = yt.data() + (a0 + i) * T;
        score_rows(q, m, y.data(), dp, (int)T, g.data());
        for (int i = 0; i < m; ++i)
          for (int b = 0; b < d; ++b) s2[(size_t)(a0 + i) * d + b] += g[i * dp + b];
      }
    });
    count_[lq.layer] += T;
    ms_ += sw.ms();
  }

  int64_t count(int l) const { return count_[l]; }
  // mean [d] and, if kept, covariance [d][d] (sum of squared deviations / count) of a head.
  void moments(int l, int qh, double* mean, double* cov) const {
    const int d = d_;
    const size_t o = ((size_t)l * n_head_ + qh) * d;
    const double n = (double)count_[l];
    std::vector<double> m1(d);
    for (int a = 0; a < d; ++a) {
      m1[a] = s1_[o + a] / n;
      mean[a] = shift_[o + a] + m1[a];
    }
    if (!second_ || !cov) return;
    const double* s2 = s2_.data() + o * d;
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) cov[(size_t)a * d + b] = s2[(size_t)a * d + b] / n - m1[a] * m1[b];
  }
  double ms() const { return ms_; }

 private:
  RopeParams rope_;
  int n_head_, d_;
  int32_t pos_lo_, pos_hi_;
  bool second_;
  std::vector<int64_t> count_;      // [n_layer] queries seen (the same for every head)
  std::vector<double> shift_, s1_;  // [n_layer][n_head][d]
  std::vector<double> s2_;          // [n_layer][n_head][d][d]
  double ms_ = 0;
};

// (cos, sin) pairs [n_rot] averaged over positions pos0 .. pos0 + n - 1: the average rotation
// R, applied with rope_apply like a single position's pairs.
std::vector<float> average_rotation(const RopeParams& p, int64_t pos0, int n) {
  std::vector<double> sum(p.n_rot, 0.0);
  std::vector<float> cs(p.n_rot);
  for (int t = 0; t < n; ++t) {
    rope_cos_sin(p, pos0 + t, cs.data());
    for (int i = 0; i < p.n_rot; ++i) sum[i] += cs[i];
  }
  for (int i = 0; i < p.n_rot; ++i) cs[i] = (float)(sum[i] / n);
  return cs;
}

// Rows [d + 1][d] in f32 for one query head: Sigma' (rows 0..d-1, if the covariance is used)
// and mu' (row d), i.e. step 2 above.
std::vector<float> rotated_moments(const ModelConfig& c, const QueryMoments& qm,
                                   const std::vector<float>& rot, bool covariance, int l, int qh) {
  const int d = c.head_dim;
  std::vector<double> mu(d), cov(covariance ? (size_t)d * d : 0);
  qm.moments(l, qh, mu.data(), covariance ? cov.data() : nullptr);
  rope_apply(c.rope, rot.data(), mu.data(), 1, d);  // mu' = R mu
  if (covariance) {
    // Rows r_a -> R r_a gives Sigma R^T; its transpose is R Sigma; rows again: R Sigma R^T.
    rope_apply(c.rope, rot.data(), cov.data(), d, d);
    for (int a = 0; a < d; ++a)
      for (int b = a + 1; b < d; ++b) std::swap(cov[(size_t)a * d + b], cov[(size_t)b * d + a]);
    rope_apply(c.rope, rot.data(), cov.data(), d, d);
  }
  std::vector<float> out((size_t)(d + 1) * d, 0.0f);
  std::copy(cov.begin(), cov.end(), out.begin());
  std::copy(mu.begin(), mu.end(), out.begin() + (size_t)d * d);
  return out;
}

// Steps 3-4 for the G query heads of KV head h of layer l: rows [G][N] (0 for the S sinks;
// the caller fills them). The keys go once into an f32 panel kt [d][n_pad]; each query
// head's d + 1 rows (Sigma', mu') run against it through score_rows, so Sigma' K^T costs one
// vectorised product and k^T Sigma' k is a column-wise dot with the panel.
void expected_attention_group(const ModelConfig& c, const KvCache& cache, const QueryMoments& qm,
                              const std::vector<float>& rot, const KvPolicySettings& s, int l,
                              int h, int64_t n, int64_t S, float* rows) {
  const int d = c.head_dim, G = c.n_head / c.n_kv_head;
  const int64_t np = padded(n);
  const KvHead& hd = cache.head(l, h);
  std::vector<float> k((size_t)n * d), kt((size_t)d * np, 0.0f);
  kv_rows_to_f32(cache.type_k(), hd.k.data(), n, d, k.data());
  for (int64_t j = 0; j < n; ++j)
    for (int a = 0; a < d; ++a) kt[(size_t)a * np + j] = k[(size_t)j * d + a];
  std::vector<double> vnorm(n, 1.0);
  if (s.ea_vnorm) {
    std::vector<float> v((size_t)n * d);
    kv_rows_to_f32(cache.type_v(), hd.v.data(), n, d, v.data());
    for (int64_t j = 0; j < n; ++j) {
      double ss = 0;
      for (int a = 0; a < d; ++a) ss += (double)v[(size_t)j * d + a] * v[(size_t)j * d + a];
      vnorm[j] = std::sqrt(ss);
    }
  }
  std::vector<float> sbuf((size_t)8 * np), lin(np), quad(np);
  std::vector<double> z(n);
  for (int g = 0; g < G; ++g) {
    const int qh = h * G + g;
    const std::vector<float> m = rotated_moments(c, qm, rot, s.ea_covariance, l, qh);
    std::fill(quad.begin(), quad.end(), 0.0f);
    for (int r0 = s.ea_covariance ? 0 : d; r0 <= d; r0 += 8) {
      const int mr = std::min(8, d + 1 - r0);
      const float* q[8];
      for (int i = 0; i < mr; ++i) q[i] = m.data() + (size_t)(r0 + i) * d;
      score_rows(q, mr, kt.data(), np, d, sbuf.data());
      for (int i = 0; i < mr; ++i) {
        const float* si = sbuf.data() + (size_t)i * np;
        if (r0 + i == d) {
          std::copy(si, si + np, lin.begin());
          continue;
        }
        const float* ka = kt.data() + (size_t)(r0 + i) * np;  // k[.][a] along keys
        for (int64_t j = 0; j < np; ++j) quad[j] += ka[j] * si[j];
      }
    }
    double mx = -INFINITY, sum = 0;
    for (int64_t j = S; j < n; ++j) {
      z[j] = lin[j] / std::sqrt((double)d) + quad[j] / (2.0 * d);
      mx = std::max(mx, z[j]);
    }
    for (int64_t j = S; j < n; ++j) sum += (z[j] = std::exp(z[j] - mx));
    float* row = rows + (size_t)g * n;
    for (int64_t j = S; j < n; ++j) {
      const double p = z[j] / sum;
      row[j] = (float)(s.ea_vnorm ? (p + s.ea_epsilon) * vnorm[j] : p);
    }
  }
}

class ExpectedAttentionPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "expected_attention"; }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.sinks = kSinks;
    return d;
  }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    const int64_t S = scoring_sinks(r.s, r.n_prompt);
    moments_ = std::make_unique<QueryMoments>(c, (int32_t)S, (int32_t)r.n_prompt, r.s.ea_covariance);
    return moments_.get();
  }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const KvPolicySettings& s = in.cfg.s;
    const int64_t n = in.cfg.n_prompt, S = scoring_sinks(s, n);
    if (s.ea_future < 1) fail("expected_attention: future positions must be >= 1");
    for (int l = 0; l < c.n_layer; ++l)
      if (moments_->count(l) < 1) fail("expected_attention: no prompt queries were seen");
    const std::vector<float> rot = average_rotation(c.rope, in.cache.n_past(), s.ea_future);
    std::vector<float> rows((size_t)c.n_layer * c.n_head * n, 0.0f);  // [L][H][N]
    const int G = c.n_head / c.n_kv_head;
    in.pool.parallel_for_dynamic((int64_t)c.n_layer * c.n_kv_head, [&](int64_t u, int) {
      if (!scored_layer(c, (int)(u / c.n_kv_head))) return;  // sliding-window layer: rows stay 0
      expected_attention_group(c, in.cache, *moments_, rot, s, (int)(u / c.n_kv_head),
                               (int)(u % c.n_kv_head), n, S, rows.data() + (size_t)u * G * n);
    });
    KvScores out = reduce_query_heads(rows, c.n_layer, c.n_head, c.n_kv_head, n,
                                      in.cfg.pool_kernel, in.cfg.pool, s.reduce);
    for (int l = 0; l < c.n_layer; ++l) {  // sinks above everything else of the layer
      float top = -INFINITY;
      for (int h = 0; h < c.n_kv_head; ++h)
        for (int64_t j = S; j < n; ++j) top = std::max(top, out.at(l, h)[j]);
      for (int h = 0; h < c.n_kv_head; ++h) std::fill(out.at(l, h), out.at(l, h) + S, top + 1.0f);
    }
    return out;
  }
  double observer_ms() const override { return moments_ ? moments_->ms() : 0; }

 private:
  std::unique_ptr<QueryMoments> moments_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_expected_attention_policy() {
  return std::make_unique<ExpectedAttentionPolicy>();
}

}  // namespace glimpse
