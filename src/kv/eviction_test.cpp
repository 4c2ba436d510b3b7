// KV eviction on a tiny random model: exact budgets, protected entries, bit-identity when
// nothing is evicted, position preservation, memory release.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>

#include "kv/evict.h"
#include "kv/policy.h"
#include "model/model.h"
#include "model/tiny_model_test_util.h"
#include "runtime/test_request_util.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

class EvictionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TinyModelSpec spec;
    spec.n_layer = 3;
    engine_ = testing::load_tiny_engine("glimpse_tiny_evict.gguf", spec, &path_);
    model_ = &engine_->model();
  }
  static void TearDownTestSuite() {
    model_ = nullptr;
    engine_.reset();
    std::filesystem::remove(path_);
  }

  // Prefill (with eviction) + n_decode greedy steps; returns the logits of every step.
  std::vector<std::vector<float>> run(const KvPolicySettings& kv, const std::vector<int32_t>& prompt,
                                      int n_decode, KvCache* out_cache = nullptr,
                                      int64_t n_compress = -1, KvCompressReport* rep = nullptr) {
    KvCache cache = KvCache::for_model(model_->config(), 512);
    std::vector<float> logits;
    KvCompressReport r = testing::prefill_evict(engine_, pool_, 16, cache, prompt, n_compress, kv, logits);
    if (rep) *rep = r;
    std::vector<std::vector<float>> steps{logits};
    for (int i = 0; i < n_decode; ++i) {
      int32_t tok = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
      model_->forward(&tok, 1, cache, LogitsRows::Last, logits, pool_);
      steps.push_back(logits);
    }
    if (out_cache) *out_cache = cache;
    return steps;
  }

  static inline std::string path_;
  static inline std::shared_ptr<Engine> engine_;
  static inline const Model* model_ = nullptr;
  ThreadPool pool_{2};
};

KvPolicySettings settings(const std::string& name, int64_t budget) {
  KvPolicySettings s;
  s.name = name;
  s.budget = budget;
  return s;
}

TEST_F(EvictionTest, NoneAndFullBudgetAreBitIdenticalToNoEviction) {
  const auto prompt = testing::tiny_tokens(100, 64);
  const auto ref = run(settings("none", -1), prompt, 4);
  for (const std::string& name : kv_policy_names()) {
    if (name == "none") continue;
    SCOPED_TRACE(name);
    KvCompressReport rep;
    KvPolicySettings s = settings(name, 100);
    s.draft_model = path_;  // speckv: the model as its own draft
    const auto got = run(s, prompt, 4, nullptr, -1, &rep);
    EXPECT_FALSE(rep.evicted);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_EQ(0, std::memcmp(got[i].data(), ref[i].data(), ref[i].size() * 4)) << "step " << i;
  }
}

TEST_F(EvictionTest, UniformBudgetIsMetExactlyAndProtectedEntriesSurvive) {
  const int64_t N = 120, C = 40;
  const auto prompt = testing::tiny_tokens(N, 64, 11);
  for (const char* name : {"streaming", "snapkv", "h2o", "tova", "knorm", "random", "oracle", "laq",
                           "keydiff", "expected_attention", "pseudoquery"}) {
    SCOPED_TRACE(name);
    KvCache cache(1, 1, 1, 1);
    KvCompressReport rep;
    KvPolicySettings s = settings(name, C);
    s.oracle_max_new = 6;
    run(s, prompt, 0, &cache, -1, &rep);
    ASSERT_TRUE(rep.evicted);
    for (int l = 0; l < cache.n_layer(); ++l)
      for (int h = 0; h < cache.n_kv_head(); ++h) {
        const KvHead& hd = cache.head(l, h);
        ASSERT_EQ(hd.size(), C);
        EXPECT_TRUE(std::is_sorted(hd.pos.begin(), hd.pos.end()));
        for (int32_t p = 0; p < rep.sinks; ++p)
          EXPECT_NE(std::find(hd.pos.begin(), hd.pos.end(), p), hd.pos.end()) << "sink " << p;
        for (int32_t p = (int32_t)(N - rep.window); p < N; ++p)
          EXPECT_NE(std::find(hd.pos.begin(), hd.pos.end(), p), hd.pos.end()) << "window " << p;
      }
    EXPECT_EQ(cache.n_past(), N);  // decoding continues at position N
  }
}

TEST_F(EvictionTest, StreamingKeepsSinksAndTheMostRecent) {
  const int64_t N = 90, C = 20;
  KvCache cache(1, 1, 1, 1);
  run(settings("streaming", C), testing::tiny_tokens(N, 64), 0, &cache);
  std::vector<int32_t> want = {0, 1, 2, 3};
  for (int32_t p = (int32_t)(N - (C - 4)); p < N; ++p) want.push_back(p);
  for (int l = 0; l < cache.n_layer(); ++l)
    for (int h = 0; h < cache.n_kv_head(); ++h) EXPECT_EQ(cache.head(l, h).pos, want);
}

TEST_F(EvictionTest, PyramidAndAdaSpendTheSameTotalBudget) {
  const int64_t N = 150, C = 50;
  const auto prompt = testing::tiny_tokens(N, 64, 5);
  for (const std::string name : {"pyramidkv", "adakv"}) {
    SCOPED_TRACE(name);
    KvCache cache(1, 1, 1, 1);
    KvCompressReport rep;
    run(settings(name, C), prompt, 0, &cache, -1, &rep);
    EXPECT_EQ(cache.total_entries(), (int64_t)cache.n_layer() * cache.n_kv_head() * C);
    bool differs = false;
    for (int l = 0; l < cache.n_layer(); ++l) {
      if (name == "adakv") {
        EXPECT_EQ(cache.layer_entries(l), cache.n_kv_head() * C);
      }
      for (int h = 0; h < cache.n_kv_head(); ++h) {
        const KvHead& hd = cache.head(l, h);
        EXPECT_GE(hd.size(), rep.window);
        for (int32_t p = (int32_t)(N - rep.window); p < N; ++p)
          EXPECT_NE(std::find(hd.pos.begin(), hd.pos.end(), p), hd.pos.end());
        differs |= hd.size() != C;
      }
    }
    if (name == "pyramidkv") {
      EXPECT_TRUE(differs);
      EXPECT_GT(cache.layer_entries(0), cache.layer_entries(cache.n_layer() - 1));
    }
  }
}

TEST_F(EvictionTest, KeptEntriesKeepTheirKeysValuesAndPositions) {
  const int64_t N = 100;
  const auto prompt = testing::tiny_tokens(N, 64, 3);
  KvCache full(1, 1, 1, 1), kept(1, 1, 1, 1);
  run(settings("none", -1), prompt, 0, &full);
  run(settings("snapkv", 48), prompt, 0, &kept);
  const size_t bk = full.k_row_bytes(), bv = full.v_row_bytes();
  for (int l = 0; l < full.n_layer(); ++l)
    for (int h = 0; h < full.n_kv_head(); ++h) {
      const KvHead& a = full.head(l, h);
      const KvHead& b = kept.head(l, h);
      for (int64_t i = 0; i < b.size(); ++i) {
        const int32_t p = b.pos[i];
        ASSERT_EQ(a.pos[p], p);
        EXPECT_EQ(0, std::memcmp(&a.k[p * bk], &b.k[i * bk], bk));
        EXPECT_EQ(0, std::memcmp(&a.v[p * bv], &b.v[i * bv], bv));
      }
    }
}

TEST_F(EvictionTest, PermutedPhysicalOrderGivesTheSameLogits) {
  const auto prompt = testing::tiny_tokens(80, 64, 9);
  KvCache a = KvCache::for_model(model_->config(), 512);
  std::vector<float> la;
  for (size_t b = 0; b < prompt.size(); b += 16)
    model_->forward(prompt.data() + b, std::min<int64_t>(16, prompt.size() - b), a,
                    LogitsRows::Last, la, pool_);
  KvCache b = a;
  std::mt19937 rng(1);
  for (int l = 0; l < b.n_layer(); ++l)
    for (int h = 0; h < b.n_kv_head(); ++h) {
      std::vector<int32_t> idx(b.head(l, h).size());
      std::iota(idx.begin(), idx.end(), 0);
      std::shuffle(idx.begin(), idx.end(), rng);
      b.gather(l, h, idx.data(), (int64_t)idx.size());
    }
  std::vector<float> lb;
  for (int step = 0; step < 3; ++step) {
    const int32_t tok = 5 + step;
    model_->forward(&tok, 1, a, LogitsRows::Last, la, pool_);
    model_->forward(&tok, 1, b, LogitsRows::Last, lb, pool_);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < la.size(); ++i) {
      max_diff = std::max(max_diff, (double)std::fabs(la[i] - lb[i]));
      max_abs = std::max(max_abs, (double)std::fabs(la[i]));
    }
    // Only the order inside attention differs: summation order, and the running max the
    // f16-rounded probabilities are taken against (2^-11 relative per probability).
    EXPECT_LE(max_diff, 2e-3 * std::max(1.0, max_abs)) << "step " << step;
    EXPECT_EQ(std::max_element(la.begin(), la.end()) - la.begin(),
              std::max_element(lb.begin(), lb.end()) - lb.begin());
  }
}

TEST_F(EvictionTest, EvictionReleasesMemory) {
  const int64_t N = 400;
  KvCache full(1, 1, 1, 1), kept(1, 1, 1, 1);
  KvCompressReport rep;
  run(settings("snapkv", 40), testing::tiny_tokens(N, 64), 0, &kept, -1, &rep);
  EXPECT_LT(rep.stats.kv_bytes_after * 8, rep.stats.kv_bytes_before);
  EXPECT_EQ(rep.stats.kv_bytes_after, kept.resident_bytes());
  // Exactly the kept entries are allocated: k and v f16 rows plus one position each.
  const size_t per_entry = (size_t)kept.head_dim() * 2 * 2 + 4;
  ASSERT_EQ(kept.k_row_bytes() + kept.v_row_bytes() + 4, per_entry);
  EXPECT_EQ(kept.resident_bytes(), (size_t)kept.total_entries() * per_entry);
}

TEST_F(EvictionTest, QueryAgnosticPrefillsTheQuestionAfterCompression) {
  const int64_t N = 100, Q = 12, C = 30;
  for (const char* name : {"snapkv", "keydiff", "expected_attention", "pseudoquery"}) {
    SCOPED_TRACE(name);
    KvCache cache(1, 1, 1, 1);
    KvCompressReport rep;
    KvPolicySettings s = settings(name, C);
    s.query_agnostic = true;
    run(s, testing::tiny_tokens(N + Q, 64, 4), 0, &cache, N, &rep);
    EXPECT_EQ(rep.n_compressed, N);
    // The kept context is what compressing the context alone keeps: the question is read
    // only afterwards.
    KvCache alone(1, 1, 1, 1);
    KvPolicySettings a = settings(name, C);
    const auto tokens = testing::tiny_tokens(N + Q, 64, 4);
    run(a, std::vector<int32_t>(tokens.begin(), tokens.begin() + N), 0, &alone);
    for (int l = 0; l < cache.n_layer(); ++l)
      for (int h = 0; h < cache.n_kv_head(); ++h) {
        const KvHead& hd = cache.head(l, h);
        ASSERT_EQ(hd.size(), C + Q);
        EXPECT_EQ(std::vector<int32_t>(hd.pos.begin(), hd.pos.begin() + C), alone.head(l, h).pos);
        for (int64_t i = 0; i < Q; ++i) EXPECT_EQ(hd.pos[C + i], N + i);  // question intact
      }
    EXPECT_EQ(cache.n_past(), N + Q);
  }
}

TEST(EvictionSelect, KeepsProtectedPlusTopScoresInOrder) {
  const std::vector<float> s = {5, 1, 9, 3, 9, 0, 7, 2};
  const auto prot = protected_mask(8, 1, 2);  // entries 0, 6, 7
  EXPECT_EQ(select_keep(s.data(), prot, 2), (std::vector<int32_t>{0, 2, 4, 6, 7}));
  EXPECT_EQ(select_keep(s.data(), prot, 1), (std::vector<int32_t>{0, 2, 6, 7}));  // tie: earlier
  EXPECT_EQ(select_keep(s.data(), prot, 0), (std::vector<int32_t>{0, 6, 7}));
  EXPECT_EQ(select_keep(s.data(), prot, 99).size(), 8u);
}

}  // namespace
}  // namespace glimpse
