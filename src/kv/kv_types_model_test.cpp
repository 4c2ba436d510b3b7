// KV cache types on a tiny random model (head_dim 32, so q8_0 applies): logits with an f32
// cache against f16, bf16 / q8_0 staying close, determinism (batch split, threads) per type,
// eviction per type, and every scoring consumer (knorm, attention scores, lookahead) reading
// the stored type exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "lookahead/lookahead_forward.h"
#include "lookahead/lookahead_module.h"
#include "model/model.h"
#include "model/tiny_model_test_util.h"
#include "runtime/test_request_util.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

constexpr KvType kTypes[] = {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0};

class KvTypesModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TinyModelSpec spec;
    spec.n_layer = 3;
    spec.n_embd = 128;  // 4 heads of 32
    spec.n_ff = 96;
    spec.weight_scale = 2.0f;  // peaky attention: the cache's rounding shows in the logits
    engine_ = testing::load_tiny_engine("glimpse_tiny_kv_types.gguf", spec, &path_);
    model_ = &engine_->model();
  }
  static void TearDownTestSuite() {
    model_ = nullptr;
    engine_.reset();
    std::filesystem::remove(path_);
  }

  // Prefill in batches of `batch`, then teacher-forced decode of `forced` (or greedy when
  // empty, n_decode steps). Returns every step's logits; *tokens gets the decoded tokens.
  std::vector<std::vector<float>> run(KvCache& cache, const std::vector<int32_t>& prompt,
                                      int64_t batch, int n_decode, ThreadPool& pool,
                                      const std::vector<int32_t>* forced = nullptr,
                                      std::vector<int32_t>* tokens = nullptr) const {
    std::vector<float> logits;
    for (size_t b = 0; b < prompt.size(); b += batch)
      model_->forward(prompt.data() + b, std::min<int64_t>(batch, prompt.size() - b), cache,
                      LogitsRows::Last, logits, pool);
    std::vector<std::vector<float>> steps{logits};
    for (int i = 0; i < n_decode; ++i) {
      const int32_t tok = forced ? (*forced)[i]
                                 : (int32_t)(std::max_element(logits.begin(), logits.end()) -
                                             logits.begin());
      if (tokens) tokens->push_back(tok);
      model_->forward(&tok, 1, cache, LogitsRows::Last, logits, pool);
      steps.push_back(logits);
    }
    return steps;
  }

  // A copy of the cache whose rows are the stored values dequantized to f32 (exact).
  static KvCache as_f32(const KvCache& c) {
    KvCache out(c.n_layer(), c.n_kv_head(), c.head_dim(), c.n_ctx(), KvType::F32, KvType::F32);
    for (int l = 0; l < c.n_layer(); ++l)
      for (int h = 0; h < c.n_kv_head(); ++h) {
        const KvHead& a = c.head(l, h);
        KvHead& b = out.head(l, h);
        b.k.resize(a.size() * out.k_row_bytes());
        b.v.resize(a.size() * out.v_row_bytes());
        kv_rows_convert(c.type_k(), a.k.data(), KvType::F32, b.k.data(), a.size(), c.head_dim());
        kv_rows_convert(c.type_v(), a.v.data(), KvType::F32, b.v.data(), a.size(), c.head_dim());
        b.pos = a.pos;
      }
    out.set_n_past(c.n_past());
    return out;
  }

  static inline std::string path_;
  static inline std::shared_ptr<Engine> engine_;
  static inline const Model* model_ = nullptr;
  ThreadPool pool_{2};
};

struct Agreement {
  double nmse = 0, max_abs = 0, top1 = 0;
};
Agreement compare(const std::vector<std::vector<float>>& a,
                  const std::vector<std::vector<float>>& ref) {
  Agreement g;
  double num = 0, den = 0;
  int same = 0;
  for (size_t s = 0; s < ref.size(); ++s) {
    for (size_t i = 0; i < ref[s].size(); ++i) {
      const double d = (double)a[s][i] - ref[s][i];
      num += d * d;
      den += (double)ref[s][i] * ref[s][i];
      g.max_abs = std::max(g.max_abs, std::fabs(d));
    }
    same += std::max_element(a[s].begin(), a[s].end()) - a[s].begin() ==
            std::max_element(ref[s].begin(), ref[s].end()) - ref[s].begin();
  }
  g.nmse = num / den;
  g.top1 = (double)same / ref.size();
  return g;
}

TEST_F(KvTypesModel, LogitsAgreeWithF16) {
  const auto prompt = testing::tiny_tokens(120, 64, 21);
  const int n_dec = 32;
  KvCache c16 = KvCache::for_model(model_->config(), 512);
  std::vector<int32_t> greedy16;
  const auto ref = run(c16, prompt, 16, n_dec, pool_, nullptr, &greedy16);
  // Teacher-forced along the f16 greedy path, so every step compares the same context.
  for (KvType tk : kTypes)
    for (KvType tv : kTypes) {
      if (tk == KvType::F16 && tv == KvType::F16) continue;
      if (tk != tv && tk != KvType::F16 && tv != KvType::F16) continue;  // mixed with f16 only
      KvCache c = KvCache::for_model(model_->config(), 512, tk, tv);
      const Agreement g = compare(run(c, prompt, 16, n_dec, pool_, &greedy16), ref);
      std::printf("  K %-4s V %-4s vs f16: logits nMSE %.2e, max |dlogit| %.2e, top-1 %.3f\n",
                  kv_type_name(tk), kv_type_name(tv), g.nmse, g.max_abs, g.top1);
      SCOPED_TRACE(std::string(kv_type_name(tk)) + "/" + kv_type_name(tv));
      // f16 storage rounds by 2^-11 relative and f32 removes that and the q / p rounding
      // (measured nMSE ~4e-6); bf16 (2^-8) and q8_0 (amax / 254 per block) round more
      // coarsely (measured ~2e-4 and ~1e-3 on this deliberately peaky model).
      const bool exactish = (tk == KvType::F32 || tk == KvType::F16) &&
                            (tv == KvType::F32 || tv == KvType::F16);
      EXPECT_LE(g.nmse, exactish ? 2e-5 : 5e-3);
      EXPECT_GE(g.top1, exactish ? 1.0 : 0.8);  // a random tiny model has near ties
    }
  // Greedy generation itself: f32 picks the same tokens as f16.
  KvCache c32 = KvCache::for_model(model_->config(), 512, KvType::F32, KvType::F32);
  std::vector<int32_t> greedy32;
  run(c32, prompt, 16, n_dec, pool_, nullptr, &greedy32);
  EXPECT_EQ(greedy32, greedy16);
}

TEST_F(KvTypesModel, BatchSplitAndThreadsDoNotChangeLogits) {
  const auto prompt = testing::tiny_tokens(70, 64, 22);
  ThreadPool one(1);
  for (KvType t : kTypes) {
    SCOPED_TRACE(kv_type_name(t));
    KvCache a = KvCache::for_model(model_->config(), 256, t, t), b = KvCache::for_model(model_->config(), 256, t, t);
    const auto la = run(a, prompt, 16, 4, pool_);
    const auto lb = run(b, prompt, 1, 4, one);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t s = 0; s < la.size(); ++s)
      EXPECT_EQ(0, std::memcmp(la[s].data(), lb[s].data(), la[s].size() * 4)) << "step " << s;
    for (int l = 0; l < a.n_layer(); ++l)
      for (int h = 0; h < a.n_kv_head(); ++h) {
        EXPECT_EQ(a.head(l, h).k, b.head(l, h).k);
        EXPECT_EQ(a.head(l, h).v, b.head(l, h).v);
      }
  }
}

TEST_F(KvTypesModel, EvictionOnEveryType) {
  const int64_t N = 100, C = 40;
  const auto prompt = testing::tiny_tokens(N, 64, 23);
  const std::pair<KvType, KvType> pairs[] = {{KvType::F32, KvType::F32}, {KvType::F16, KvType::F16},
                                             {KvType::BF16, KvType::BF16},
                                             {KvType::Q8_0, KvType::Q8_0},
                                             {KvType::Q8_0, KvType::F32}};
  for (const auto& [tk, tv] : pairs)
    for (const char* name : {"snapkv", "knorm", "laq", "keydiff", "expected_attention"}) {
      SCOPED_TRACE(std::string(kv_type_name(tk)) + "/" + kv_type_name(tv) + " " + name);
      KvCache full = KvCache::for_model(model_->config(), 512, tk, tv), cache = KvCache::for_model(model_->config(), 512, tk, tv);
      std::vector<float> logits;
      testing::prefill_evict(engine_, pool_, 16, full, prompt, -1, KvPolicySettings{}, logits);
      KvPolicySettings s;
      s.name = name;
      s.budget = C;
      const KvCompressReport rep = testing::prefill_evict(engine_, pool_, 16, cache, prompt, -1, s, logits);
      ASSERT_TRUE(rep.evicted);
      const size_t bk = cache.k_row_bytes(), bv = cache.v_row_bytes();
      EXPECT_EQ(rep.stats.kv_bytes_before, full.resident_bytes());
      EXPECT_EQ(cache.resident_bytes(), (size_t)cache.total_entries() * (bk + bv + 4));
      EXPECT_EQ(cache.total_entries(), (int64_t)cache.n_layer() * cache.n_kv_head() * C);
      for (int l = 0; l < cache.n_layer(); ++l)
        for (int h = 0; h < cache.n_kv_head(); ++h) {
          const KvHead& a = full.head(l, h);
          const KvHead& b = cache.head(l, h);
          ASSERT_EQ(b.size(), C);
          for (int64_t i = 0; i < C; ++i) {  // kept rows are the full cache's rows, byte for byte
            const int32_t p = b.pos[i];
            ASSERT_EQ(0, std::memcmp(&a.k[p * bk], &b.k[i * bk], bk));
            ASSERT_EQ(0, std::memcmp(&a.v[p * bv], &b.v[i * bv], bv));
          }
        }
      for (int i = 0; i < 3; ++i) {  // decoding continues over the compacted cache
        const int32_t tok = 7 + i;
        model_->forward(&tok, 1, cache, LogitsRows::Last, logits, pool_);
        for (float x : logits) ASSERT_TRUE(std::isfinite(x));
      }
      EXPECT_EQ(cache.head(0, 0).size(), C + 3);
    }
}

TEST_F(KvTypesModel, ScoringConsumersReadTheStoredType) {
  // Knorm, the attention scores behind SnapKV/H2O/LAQ and the lookahead pass convert rows
  // to f32 through kv_rows_to_f32: on a cache of any type they give exactly what they give
  // on an f32 copy holding the dequantized values.
  const int64_t N = 60;
  const auto prompt = testing::tiny_tokens(N, 64, 24);
  const ModelConfig& mc = model_->config();
  const LookaheadModule mod = LookaheadModule::create(*model_, LookaheadHyper{4, 4, 8.0f}, 9);
  for (KvType t : kTypes) {
    SCOPED_TRACE(kv_type_name(t));
    KvCache c = KvCache::for_model(model_->config(), 256, t, t);
    std::vector<float> logits = run(c, prompt, 16, 0, pool_).back();
    KvCache f = as_f32(c);

    KvPolicySettings s;
    s.name = "knorm";
    s.budget = 10;
    std::unique_ptr<KvPolicy> pol = make_kv_policy("knorm");
    const ResolvedPolicy r = resolve_policy(s, pol->defaults(), N);
    const std::vector<int32_t> none;
    auto rc = testing::context_with(engine_, pool_, c, logits);
    auto rf = testing::context_with(engine_, pool_, f, logits);
    PolicyInput ic{*model_, *rc, rc->cache(), pool_, r, prompt, none, logits};
    PolicyInput iff{*model_, *rf, rf->cache(), pool_, r, prompt, none, logits};
    EXPECT_EQ(pol->score(ic).s, pol->score(iff).s);

    EXPECT_EQ(lookahead_kv_scores(*model_, c, mod, pool_),
              lookahead_kv_scores(*model_, f, mod, pool_));

    std::vector<float> q(mc.head_dim);
    for (int i = 0; i < mc.head_dim; ++i) q[i] = std::sin(0.7f * i);
    const ScoreQuery qs[] = {{q.data(), N, 0}, {q.data(), N / 2, 1}};
    std::vector<float> a(2 * N, 0.0f), b(2 * N, 0.0f);
    accumulate_attention(qs, 2, t, c.head(1, 1).k.data(), N, mc.head_dim, 0.2f, QueryReduce::Sum,
                         a.data(), N, N);
    accumulate_attention(qs, 2, KvType::F32, f.head(1, 1).k.data(), N, mc.head_dim, 0.2f,
                         QueryReduce::Sum, b.data(), N, N);
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace glimpse
