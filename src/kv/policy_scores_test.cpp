// Each policy's scores against a plain reference written from the method's definition:
// queries captured from the forward pass, attention recomputed in double one query at a
// time, pooling and group reduction done naively.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <utility>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "kv/policy_util.h"
#include "model/model.h"
#include "model/tiny_model_test_util.h"
#include "ops/isa.h"
#include "ops/rope.h"
#include "runtime/test_request_util.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

using Rows = std::vector<std::vector<double>>;  // [n_head][N] per layer

class PolicyScores : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TinyModelSpec spec;
    spec.n_layer = 2;
    spec.n_head = 6;
    spec.n_kv_head = 2;
    spec.n_embd = 48;
    spec.weight_scale = 2.0f;  // peakier attention than the default
    engine_ = testing::load_tiny_engine("glimpse_tiny_scores.gguf", spec, &path_);
    model_ = &engine_->model();
  }
  static void TearDownTestSuite() {
    model_ = nullptr;
    engine_.reset();
    std::filesystem::remove(path_);
  }

  // Prefills the prompt with the policy's observer and a query capture, scores.
  KvScores policy_scores(const KvPolicySettings& s, const std::vector<int32_t>& prompt,
                         KvCache& cache, QueryCapture& cap, std::vector<float>& logits) {
    std::unique_ptr<KvPolicy> p = make_kv_policy(s.name);
    r_ = resolve_policy(s, p->defaults(), (int64_t)prompt.size());
    ObserverList obs;
    obs.add(p->observer(model_->config(), r_));
    obs.add(&cap);
    for (size_t b = 0; b < prompt.size(); b += 13)
      model_->forward(prompt.data() + b, std::min<int64_t>(13, prompt.size() - b), cache,
                      LogitsRows::Last, logits, pool_, &obs);
    const std::vector<int32_t> none;
    auto req = testing::context_with(engine_, pool_, cache, logits);
    PolicyInput in{*model_, *req, req->cache(), pool_, r_, prompt, none, logits};
    KvScores scores = p->score(in);
    cache = std::move(req->cache());
    return scores;
  }

  // Attention probabilities of query row (layer l, token t, head qh) over keys [0, n_vis).
  std::vector<double> probs(const KvCache& cache, const std::vector<float>& q_layer, int l,
                            int64_t t, int qh, int64_t n_vis) const {
    const int d = model_->config().head_dim;
    const float* q = q_layer.data() + ((size_t)t * model_->config().n_head + qh) * d;
    return probs_of(cache, std::vector<double>(q, q + d), l, qh, n_vis);
  }
  // The same for any query q [head_dim] of query head qh in layer l.
  std::vector<double> probs_of(const KvCache& cache, const std::vector<double>& q, int l, int qh,
                               int64_t n_vis) const {
    const ModelConfig& c = model_->config();
    const int d = c.head_dim, G = c.n_head / c.n_kv_head;
    const KvHead& hd = cache.head(l, qh / G);
    std::vector<float> keys((size_t)n_vis * d);
    kv_rows_to_f32(cache.type_k(), hd.k.data(), n_vis, d, keys.data());
    std::vector<double> p(n_vis);
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < n_vis; ++j) {
      double dot = 0;
      for (int k = 0; k < d; ++k) dot += (double)q[k] * keys[j * d + k];
      p[j] = dot / std::sqrt((double)d);
      mx = std::max(mx, p[j]);
    }
    for (auto& x : p) sum += (x = std::exp(x - mx));
    for (auto& x : p) x /= sum;
    return p;
  }

  // Pool each query head's row (max, kernel k, pad k/2) over its first n_pooled entries (the
  // ones before the protected window; -1: all), mean over each group.
  KvScores reduce(const std::vector<Rows>& per_layer, int k, int64_t n_pooled = -1) const {
    const ModelConfig& c = model_->config();
    const int G = c.n_head / c.n_kv_head;
    const int64_t n = (int64_t)per_layer[0][0].size();
    const int64_t np = n_pooled < 0 ? n : n_pooled;
    KvScores out(c.n_layer, c.n_kv_head, n);
    for (int l = 0; l < c.n_layer; ++l)
      for (int qh = 0; qh < c.n_head; ++qh)
        for (int64_t j = 0; j < n; ++j) {
          double m = -1e300;
          for (int64_t i = j - k / 2; i <= j + k / 2; ++i)
            if (i >= 0 && (j < np ? i < np : i == j)) m = std::max(m, per_layer[l][qh][i]);
          out.at(l, qh / G)[j] += (float)(m / G);
        }
    return out;
  }

  void expect_close(const KvScores& got, const KvScores& want) const {
    ASSERT_EQ(got.s.size(), want.s.size());
    double max_rel = 0;
    for (size_t i = 0; i < got.s.size(); ++i)
      max_rel = std::max(max_rel, std::fabs((double)got.s[i] - want.s[i]) /
                                      std::max(1e-3, std::fabs((double)want.s[i])));
    EXPECT_LE(max_rel, 2e-4);
  }

  static inline std::string path_;
  static inline std::shared_ptr<Engine> engine_;
  static inline const Model* model_ = nullptr;
  ThreadPool pool_{2};
  ResolvedPolicy r_;
};

TEST_F(PolicyScores, SnapKvSumsWindowAttentionThenPools) {
  const int64_t N = 90;
  const auto prompt = testing::tiny_tokens(N, 64, 21);
  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(model_->config().n_layer);
  std::vector<float> logits;
  KvPolicySettings s;
  s.name = "snapkv";
  s.budget = 40;
  s.window = 16;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  const ModelConfig& c = model_->config();
  std::vector<Rows> rows(c.n_layer, Rows(c.n_head, std::vector<double>(N, 0.0)));
  for (int l = 0; l < c.n_layer; ++l)
    for (int qh = 0; qh < c.n_head; ++qh)
      for (int64_t t = N - 16; t < N; ++t) {
        const auto p = probs(cache, cap.q[l], l, t, qh, t + 1);  // causal inside the window
        for (int64_t j = 0; j <= t; ++j) rows[l][qh][j] += p[j];
      }
  expect_close(got, reduce(rows, 7, N - 16));  // the protected window is not pooled
}

TEST_F(PolicyScores, H2oAveragesEveryQueryOverTheQueriesThatSeeAKey) {
  const int64_t N = 70;
  const auto prompt = testing::tiny_tokens(N, 64, 22);
  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(model_->config().n_layer);
  std::vector<float> logits;
  KvPolicySettings s;
  s.name = "h2o";
  s.budget = 30;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  const ModelConfig& c = model_->config();
  std::vector<Rows> rows(c.n_layer, Rows(c.n_head, std::vector<double>(N, 0.0)));
  for (int l = 0; l < c.n_layer; ++l)
    for (int qh = 0; qh < c.n_head; ++qh) {
      for (int64_t t = 0; t < N; ++t) {
        const auto p = probs(cache, cap.q[l], l, t, qh, t + 1);
        for (int64_t j = 0; j <= t; ++j) rows[l][qh][j] += p[j];
      }
      for (int64_t j = 0; j < N; ++j) rows[l][qh][j] /= (double)(N - j);
    }
  expect_close(got, reduce(rows, 1));
}

TEST_F(PolicyScores, TovaUsesTheLastQueryOverAllHeadsOfALayer) {
  const int64_t N = 60;
  const auto prompt = testing::tiny_tokens(N, 64, 23);
  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(model_->config().n_layer);
  std::vector<float> logits;
  KvPolicySettings s;
  s.name = "tova";
  s.budget = 20;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  const ModelConfig& c = model_->config();
  KvScores want(c.n_layer, c.n_kv_head, N);
  for (int l = 0; l < c.n_layer; ++l)
    for (int qh = 0; qh < c.n_head; ++qh) {
      const auto p = probs(cache, cap.q[l], l, N - 1, qh, N);
      for (int h = 0; h < c.n_kv_head; ++h)
        for (int64_t j = 0; j < N; ++j) want.at(l, h)[j] += (float)(p[j] / c.n_head);
    }
  expect_close(got, want);
}

TEST_F(PolicyScores, OracleAveragesItsOwnGreedyAnswersAttention) {
  const int64_t N = 50;
  const int n_ans = 5;
  const auto prompt = testing::tiny_tokens(N, 64, 24);
  const ModelConfig& c = model_->config();
  // Reference: greedy answer on a copy of the full cache, queries captured.
  KvCache ref = KvCache::for_model(model_->config(), 256);
  std::vector<float> logits;
  model_->forward(prompt.data(), N, ref, LogitsRows::Last, logits, pool_);
  const std::vector<float> prompt_logits = logits;
  QueryCapture ans(c.n_layer);
  int32_t tok = argmax_token(logits);
  for (int i = 0; i < n_ans; ++i) {
    model_->forward(&tok, 1, ref, LogitsRows::Last, logits, pool_, &ans);
    tok = argmax_token(logits);
  }
  std::vector<Rows> rows(c.n_layer, Rows(c.n_head, std::vector<double>(N, 0.0)));
  for (int l = 0; l < c.n_layer; ++l)
    for (int qh = 0; qh < c.n_head; ++qh)
      for (int i = 0; i < n_ans; ++i) {
        const auto p = probs(ref, ans.q[l], l, i, qh, N + i + 1);
        for (int64_t j = 0; j < N; ++j) rows[l][qh][j] += p[j] / n_ans;
      }

  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(c.n_layer);
  KvPolicySettings s;
  s.name = "oracle";
  s.budget = 20;
  s.oracle_max_new = n_ans;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  expect_close(got, reduce(rows, 1));
  EXPECT_EQ(cache.n_past(), N);  // the answer's KV is gone again
  EXPECT_EQ(cache.head(0, 0).size(), N);
}

TEST_F(PolicyScores, KnormIsMinusTheKeyNorm) {
  const int64_t N = 40;
  const auto prompt = testing::tiny_tokens(N, 64, 25);
  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(model_->config().n_layer);
  std::vector<float> logits;
  KvPolicySettings s;
  s.name = "knorm";
  s.budget = 10;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  const int d = cache.head_dim();
  for (int l = 0; l < cache.n_layer(); ++l)
    for (int h = 0; h < cache.n_kv_head(); ++h)
      for (int64_t j = 0; j < N; ++j) {
        double ss = 0;
        std::vector<float> key(d);
        kv_rows_to_f32(cache.type_k(), cache.head(l, h).k.data() + j * cache.k_row_bytes(), 1, d,
                       key.data());
        for (int k = 0; k < d; ++k) ss += std::pow(key[k], 2);
        EXPECT_NEAR(got.at(l, h)[j], -std::sqrt(ss), 1e-5);
      }
}

// RoPE written from its definition in double (angles not accumulated): pair i of a head
// turns by freq_scale * pos * base^(-2i/n_rot) / factor_i.
std::pair<int, int> rope_pair(const RopeParams& p, int i) {
  return p.style == RopeStyle::Norm ? std::pair{2 * i, 2 * i + 1} : std::pair{i, i + p.n_rot / 2};
}
double rope_angle(const RopeParams& p, int i, double pos) {
  const double ff = p.freq_factors ? p.freq_factors[i] : 1.0;
  return p.freq_scale * pos * std::pow((double)p.freq_base, -2.0 * i / p.n_rot) / ff;
}
void rotate_ref(const RopeParams& p, double pos, double* x) {
  for (int i = 0; i < p.n_rot / 2; ++i) {
    const auto [a, b] = rope_pair(p, i);
    const double c = std::cos(rope_angle(p, i, pos)), s = std::sin(rope_angle(p, i, pos));
    const double x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

// Rows [0, n) of a head's keys or values in double.
std::vector<double> head_rows(const KvCache& cache, int l, int h, int64_t n, bool keys) {
  const int d = cache.head_dim();
  std::vector<float> f((size_t)n * d);
  const KvHead& hd = cache.head(l, h);
  kv_rows_to_f32(keys ? cache.type_k() : cache.type_v(), keys ? hd.k.data() : hd.v.data(), n, d,
                 f.data());
  return std::vector<double>(f.begin(), f.end());
}

TEST_F(PolicyScores, PseudoQueryMovesTheLastQueriesToTheFutureAndAveragesTheirAttention) {
  for (const int64_t N : {75, 20}) {  // 20: fewer prompt queries than 32, all are used
    SCOPED_TRACE(N);
    const auto prompt = testing::tiny_tokens(N, 64, 26);
    KvCache cache = KvCache::for_model(model_->config(), 256);
    QueryCapture cap(model_->config().n_layer);
    std::vector<float> logits;
    KvPolicySettings s;
    s.name = "pseudoquery";
    s.budget = 10;
    const KvScores got = policy_scores(s, prompt, cache, cap, logits);
    const ModelConfig& c = model_->config();
    const int d = c.head_dim;
    const int64_t R = std::min<int64_t>(32, N);
    std::vector<Rows> rows(c.n_layer, Rows(c.n_head, std::vector<double>(N, 0.0)));
    for (int l = 0; l < c.n_layer; ++l)
      for (int qh = 0; qh < c.n_head; ++qh)
        for (int64_t i = 0; i < R; ++i) {
          const int64_t t = N - R + i;  // prompt row (= its position)
          const float* qf = cap.q[l].data() + ((size_t)t * c.n_head + qh) * d;
          std::vector<double> q(qf, qf + d);
          rotate_ref(c.rope, -(double)t, q.data());      // back to pre-RoPE
          rotate_ref(c.rope, (double)(N + i), q.data());  // to lookahead row i's position
          const auto p = probs_of(cache, q, l, qh, N);
          for (int64_t j = 0; j < N; ++j) rows[l][qh][j] += p[j] / (double)R;
        }
    expect_close(got, reduce(rows, 1));
  }
}

TEST_F(PolicyScores, KeyDiffIsMinusTheCosineToTheMeanUnitKey) {
  const int64_t N = 45;
  const auto prompt = testing::tiny_tokens(N, 64, 27);
  KvCache cache = KvCache::for_model(model_->config(), 256);
  QueryCapture cap(model_->config().n_layer);
  std::vector<float> logits;
  KvPolicySettings s;
  s.name = "keydiff";
  s.budget = 12;
  const KvScores got = policy_scores(s, prompt, cache, cap, logits);
  const int d = cache.head_dim();
  KvScores want(cache.n_layer(), cache.n_kv_head(), N);
  for (int l = 0; l < cache.n_layer(); ++l)
    for (int h = 0; h < cache.n_kv_head(); ++h) {
      const std::vector<double> k = head_rows(cache, l, h, N, true);
      auto norm = [&](const double* x) {
        double ss = 0;
        for (int c = 0; c < d; ++c) ss += x[c] * x[c];
        return std::sqrt(ss);
      };
      std::vector<double> anchor(d, 0.0);
      for (int64_t j = 0; j < N; ++j)
        for (int c = 0; c < d; ++c) anchor[c] += k[j * d + c] / norm(&k[j * d]) / (double)N;
      for (int64_t j = 0; j < N; ++j) {
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += k[j * d + c] * anchor[c];
        want.at(l, h)[j] = (float)(-dot / (norm(&k[j * d]) * norm(anchor.data())));
      }
    }
  expect_close(got, want);
}

// ExpectedAttention from its definition: two-pass moments of the pre-RoPE queries at
// positions S..N-1, the average rotation as an explicit d x d matrix, softmax of the
// expected logits over keys S..N-1, times ||v||, group mean, sinks at the layer's max + 1.
KvScores expected_attention_ref(const ModelConfig& c, const KvCache& cache, const QueryCapture& cap,
                                const KvPolicySettings& s, int64_t N, int64_t S) {
  const int d = c.head_dim, G = c.n_head / c.n_kv_head;
  std::vector<double> rbar((size_t)d * d, 0.0);  // mean over the F future positions
  for (int a = 0; a < d; ++a) rbar[(size_t)a * d + a] = 1.0;
  for (int i = 0; i < c.rope.n_rot / 2; ++i) {
    const auto [a, b] = rope_pair(c.rope, i);
    double cm = 0, sm = 0;
    for (int t = 0; t < s.ea_future; ++t) {
      cm += std::cos(rope_angle(c.rope, i, (double)(N + t))) / s.ea_future;
      sm += std::sin(rope_angle(c.rope, i, (double)(N + t))) / s.ea_future;
    }
    rbar[(size_t)a * d + a] = rbar[(size_t)b * d + b] = cm;
    rbar[(size_t)a * d + b] = -sm;
    rbar[(size_t)b * d + a] = sm;
  }
  KvScores out(c.n_layer, c.n_kv_head, N);
  for (int l = 0; l < c.n_layer; ++l) {
    for (int qh = 0; qh < c.n_head; ++qh) {
      std::vector<std::vector<double>> q;  // pre-RoPE queries of positions S..N-1
      for (int64_t t = S; t < N; ++t) {
        const float* qf = cap.q[l].data() + ((size_t)t * c.n_head + qh) * d;
        q.emplace_back(qf, qf + d);
        rotate_ref(c.rope, -(double)t, q.back().data());
      }
      std::vector<double> mu(d, 0.0), cov((size_t)d * d, 0.0);
      for (const auto& x : q)
        for (int a = 0; a < d; ++a) mu[a] += x[a] / (double)q.size();
      for (const auto& x : q)
        for (int a = 0; a < d; ++a)
          for (int b = 0; b < d; ++b) cov[(size_t)a * d + b] += (x[a] - mu[a]) * (x[b] - mu[b]) / (double)q.size();
      std::vector<double> mu2(d, 0.0), rc((size_t)d * d, 0.0), cov2((size_t)d * d, 0.0);
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) {
          mu2[a] += rbar[(size_t)a * d + b] * mu[b];
          for (int e = 0; e < d; ++e) rc[(size_t)a * d + b] += rbar[(size_t)a * d + e] * cov[(size_t)e * d + b];
        }
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b)
          for (int e = 0; e < d; ++e) cov2[(size_t)a * d + b] += rc[(size_t)a * d + e] * rbar[(size_t)b * d + e];
      const std::vector<double> k = head_rows(cache, l, qh / G, N, true);
      const std::vector<double> v = head_rows(cache, l, qh / G, N, false);
      std::vector<double> z(N, 0.0);
      double sum = 0;
      for (int64_t j = S; j < N; ++j) {
        const double* kj = &k[j * d];
        for (int a = 0; a < d; ++a) {
          z[j] += mu2[a] * kj[a] / std::sqrt((double)d);
          if (s.ea_covariance)
            for (int b = 0; b < d; ++b) z[j] += kj[a] * cov2[(size_t)a * d + b] * kj[b] / (2.0 * d);
        }
        sum += std::exp(z[j]);
      }
      for (int64_t j = S; j < N; ++j) {
        double p = std::exp(z[j]) / sum, vn = 0;
        for (int a = 0; a < d; ++a) vn += v[j * d + a] * v[j * d + a];
        if (s.ea_vnorm) p = (p + s.ea_epsilon) * std::sqrt(vn);
        out.at(l, qh / G)[j] += (float)(p / G);
      }
    }
    float top = -1e30f;
    for (int h = 0; h < c.n_kv_head; ++h)
      for (int64_t j = S; j < N; ++j) top = std::max(top, out.at(l, h)[j]);
    for (int h = 0; h < c.n_kv_head; ++h)
      for (int64_t j = 0; j < S; ++j) out.at(l, h)[j] = top + 1.0f;
  }
  return out;
}

TEST_F(PolicyScores, ExpectedAttentionMatchesTheGaussianEstimate) {
  const int64_t N = 80;
  KvPolicySettings defaults;  // kvpress's: 512 future positions, covariance, ||v||, 4 sinks
  defaults.name = "expected_attention";
  defaults.budget = 20;
  KvPolicySettings other = defaults;
  other.ea_future = 7;
  other.ea_covariance = false;
  other.ea_epsilon = 0.01;
  other.sinks = 0;
  KvPolicySettings no_vnorm = defaults;
  no_vnorm.ea_vnorm = false;
  no_vnorm.sinks = 2;
  for (const KvPolicySettings& s : {defaults, other, no_vnorm}) {
    SCOPED_TRACE(s.ea_future);
    const auto prompt = testing::tiny_tokens(N, 64, 28);
    KvCache cache = KvCache::for_model(model_->config(), 256);
    QueryCapture cap(model_->config().n_layer);
    std::vector<float> logits;
    const KvScores got = policy_scores(s, prompt, cache, cap, logits);
    const int64_t S = s.sinks >= 0 ? s.sinks : 4;
    expect_close(got, expected_attention_ref(model_->config(), cache, cap, s, N, S));
  }
}

TEST(AttentionScoresKernel, MatchesTheReferenceForSumAndMax) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-2, 2);
    for (KvType type : {KvType::F16, KvType::F32, KvType::BF16, KvType::Q8_0})
      for (int d : {8, 48, 64}) {
        if (!kv_type_supports(type, d)) continue;
        SCOPED_TRACE(kv_type_name(type));
        const int64_t n = 77;
        std::vector<float> kf(n * d);
        for (auto& k : kf) k = u(rng);
        std::vector<uint8_t> keys(n * kv_row_bytes(type, d));
        kv_rows_from_f32(type, kf.data(), n, d, keys.data());
        std::vector<std::vector<float>> q(11, std::vector<float>(d));
        std::vector<ScoreQuery> qs;
        for (int i = 0; i < 11; ++i) {
          for (auto& x : q[i]) x = u(rng);
          qs.push_back({q[i].data(), 1 + (i * 13) % n, i % 3});
        }
        for (QueryReduce red : {QueryReduce::Sum, QueryReduce::Max}) {
          std::vector<float> a(3 * 70, 0.0f), b(3 * 70, 0.0f);
          accumulate_attention(qs.data(), 11, type, keys.data(), n, d, 0.3f, red, a.data(), 70, 60);
          accumulate_attention_ref(qs.data(), 11, type, keys.data(), n, d, 0.3f, red, b.data(), 70,
                                   60);
          for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << d << " " << i;
        }
      }
  }
}

}  // namespace
}  // namespace glimpse
