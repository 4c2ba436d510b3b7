// Eviction on a model with sliding-window layers (a tiny Gemma 3: layer 5 global, the others
// windows of 8 keys): every policy scores and budgets only the global layer, and what rolls
// back further than the windows' 256-position slack (the oracle's answer, SpecKV's draft rows,
// eval's branches, bench repetitions) works through KeepWindowEntries.
#include <gtest/gtest.h>

#include <filesystem>

#include "kv/evict.h"
#include "kv/kv_cache.h"
#include "kv/policy.h"
#include "model/tiny_model_test_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

constexpr int kGlobal = 5;

class GemmaEvictionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::TinyModelSpec s;
    s.n_layer = 7;
    s.head_dim = 16;
    s.n_ctx = 4096;
    s.sliding_window = 8;
    s.seed = 5;
    path_ = (std::filesystem::temp_directory_path() / "glimpse_gemma_evict.gguf").string();
    testing::write_tiny_gemma3(path_, s);
    EngineParams p;
    p.model_path = path_;
    p.n_threads = 2;
    engine_ = Engine::load(p);
  }
  static void TearDownTestSuite() {
    engine_.reset();
    std::filesystem::remove(path_);
  }
  std::unique_ptr<Context> context(int n_batch = 64) {
    return std::make_unique<Context>(engine_, ContextParams{2048, n_batch, KvType::F16, KvType::F16},
                                     &pool_);
  }
  static inline std::string path_;
  static inline std::shared_ptr<Engine> engine_;
  ThreadPool pool_{2};
};

// A rollback of 300 positions (more than the 256 of slack) under KeepWindowEntries is exact,
// and without it is refused.
TEST_F(GemmaEvictionTest, KeepWindowEntriesAllowsADeepRollback) {
  const std::vector<int32_t> prompt = testing::tiny_tokens(700, 64, 3);
  auto ref = context();
  ref->prefill(prompt, nullptr);
  ref->decode(7);
  auto ctx = context();
  ctx->prefill(prompt, nullptr);
  {
    KeepWindowEntries keep(ctx->cache());
    for (int i = 0; i < 300; ++i) ctx->decode((int32_t)(i % 60 + 3));
    ctx->truncate(700);
  }
  EXPECT_TRUE(ctx->cache().drops_out_of_window());
  ctx->decode(7);
  EXPECT_EQ(ctx->logits(), ref->logits());
  for (int i = 0; i < 300; ++i) ctx->decode((int32_t)(i % 60 + 3));
  EXPECT_ANY_THROW(ctx->truncate(400));  // the window layers dropped what 400 needs
}

// Every policy of the table evicts the global layer to the budget and leaves the
// sliding-window layers as a plain prefill has them; the report counts 1 evicted layer.
TEST_F(GemmaEvictionTest, PoliciesBudgetOnlyTheGlobalLayers) {
  const std::vector<int32_t> prompt = testing::tiny_tokens(700, 64, 4);
  auto plain = context();
  plain->prefill(prompt, nullptr);
  for (const std::string& name : kv_policy_names()) {
    if (name == "none" || name == "lookahead" || name == "speckv") continue;
    SCOPED_TRACE(name);
    KvPolicySettings s;
    s.name = name;
    s.budget = 48;
    s.oracle_max_new = 300;  // deeper than the windows' rollback slack
    auto ctx = context();
    const KvCompressReport rep = prefill_with_eviction(*ctx, prompt, -1, s);
    ASSERT_TRUE(rep.evicted);
    EXPECT_EQ(rep.stats.n_layers_evicted, 1);
    EXPECT_NE(rep.report().find("on 1 of 7 layers"), std::string::npos) << rep.report();
    for (int l = 0; l < 7; ++l)
      for (int h = 0; h < 2; ++h) {
        const KvHead& got = ctx->cache().head(l, h);
        if (l == kGlobal) {
          EXPECT_EQ(ctx->cache().layer_entries(l), 2 * 48);  // Ada-KV splits it between heads
        } else {
          EXPECT_EQ(got.pos, plain->cache().head(l, h).pos) << l;
        }
      }
    EXPECT_EQ(ctx->logits(), plain->logits());  // the prompt's logits, whatever the policy ran
    ctx->decode(5);  // decoding goes on from position 700
    EXPECT_EQ(ctx->n_past(), 701);
  }
}

// The budget and the scores live on the global layers only: PyramidKV (budget-neutral over
// the evicted layers) keeps exactly C there, and SnapKV's scores of the window layers are 0.
TEST_F(GemmaEvictionTest, PyramidSpreadsOverTheEvictedLayers) {
  ResolvedPolicy r;
  r.budget = 40;
  r.n_prompt = 100;
  r.allocation = BudgetAllocation::Pyramid;
  r.s.pyramid_beta = 20;
  std::vector<uint8_t> layers(7, 0);
  layers[kGlobal] = 1;
  const BudgetPlan p = plan_budget(r, KvScores(7, 2, 100), std::vector<uint8_t>(100, 0), 7, 2, layers);
  for (int l = 0; l < 7; ++l) EXPECT_EQ(p.at(l, 0), l == kGlobal ? 40 : 0) << l;

  const ModelConfig& c = engine_->model().config();
  EXPECT_EQ(n_scored_layers(c), 1);
  const std::vector<int32_t> prompt = testing::tiny_tokens(300, 64, 5);
  KvPolicySettings s;
  s.name = "snapkv";
  s.budget = 40;
  auto ctx = context();
  PromptCompressor pc(s, c, 300);
  ctx->prefill(prompt, pc.observer());
  const KvScores& sc = pc.score(*ctx, prompt, {});
  for (int l = 0; l < 7; ++l) {
    double sum = 0;
    for (int64_t j = 0; j < 300; ++j) sum += sc.at(l, 0)[j];
    if (l == kGlobal) EXPECT_GT(sum, 0) << l;
    else EXPECT_EQ(sum, 0) << l;
  }
}

}  // namespace
}  // namespace glimpse
