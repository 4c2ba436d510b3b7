// SpecKV and SpecPC (kv/policy_speckv.cpp, runtime/specpc.h, runtime/draft_model.h): the
// selection rules on synthetic scores, the byte-span mapping between two tokenizations, the
// self-draft = oracle identity on the real model, and the whole path on tiny models and (when
// the file is there) on Gemma 3 with SmolLM2 as its draft.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "model/tiny_model_test_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "runtime/draft_model.h"
#include "runtime/generate.h"
#include "runtime/specpc.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

std::string gemma_path() { return testing::source_dir() + "/models/gemma-3-270m-q4_k_m.gguf"; }

// The engine of a model file, 2 threads.
std::shared_ptr<Engine> load_engine(const std::string& path) {
  EngineParams p;
  p.model_path = path;
  p.n_threads = 2;
  return Engine::load(p);
}

// ~N facts and a question: long enough prose for real tokenizers and models.
std::string fact_text(int n) {
  static const char* colours[] = {"red", "blue", "green", "yellow", "white", "black"};
  std::string s;
  for (int i = 0; i < n; ++i)
    s += fmt::format("Fact {}: the {} box in room {} holds {} apples. ", i, colours[i % 6],
                     (i * 7) % 13, (i * 37) % 101);
  return s + "\n\nQuestion: how many apples does the box in room 5 hold?";
}

TEST(SpecPc, CenteredMaxPool) {
  const std::vector<float> s = {0, 0, 5, 0, 0, 0, 1};
  // kernel 4: window [i-1, i+2], zeros past the ends.
  EXPECT_EQ(centered_max_pool(s, 4), (std::vector<float>{5, 5, 5, 5, 1, 1, 1}));
  EXPECT_EQ(centered_max_pool(s, 1), s);
}

// Two peaks in 1000 tokens, kernel 32: the top pooled tokens of each peak are the 32 whose
// window [i-15, i+16] holds it, each widened by -15..16 nearest first, so a peak at p keeps
// [p-31, p+31]; the last 64 come first; exactly C, in order.
TEST(SpecPc, SelectionWidensPeaksKeepsTheWindowAndTheBudget) {
  std::vector<float> s(1000, 0.0f);
  s[100] = 1.0f;
  s[500] = 0.8f;
  s[980] = 0.9f;  // inside the window: kept anyway
  const std::vector<int64_t> kept = specpc_select(s, 64 + 63 + 63, 32, 64);
  std::vector<int64_t> want;
  for (int64_t j = 69; j <= 131; ++j) want.push_back(j);
  for (int64_t j = 469; j <= 531; ++j) want.push_back(j);
  for (int64_t j = 936; j < 1000; ++j) want.push_back(j);
  EXPECT_EQ(kept, want);
  // A smaller budget cuts the second peak first (rank order), then the first peak's far side.
  const std::vector<int64_t> small = specpc_select(s, 64 + 40, 32, 64);
  ASSERT_EQ(small.size(), 104u);
  EXPECT_TRUE(std::is_sorted(small.begin(), small.end()));
  EXPECT_EQ(small.front(), 69);
  EXPECT_TRUE(std::binary_search(small.begin(), small.end(), 100));
  EXPECT_FALSE(std::binary_search(small.begin(), small.end(), 500));
  EXPECT_EQ(small[40], 936);
  // Kernel 1: the plain top-C (ties to the earlier token) plus the window.
  const std::vector<int64_t> plain = specpc_select(s, 66, 1, 64);
  EXPECT_EQ(plain.front(), 100);
  EXPECT_EQ(plain[1], 500);
  // A budget covering the prompt keeps it all.
  EXPECT_EQ(specpc_select(s, 1000, 32, 64).size(), 1000u);
}

TEST(SpecPc, FirstLayerRule) {
  EXPECT_EQ(specpc_first_layer(30), 8);  // SmolLM2-135M
  EXPECT_EQ(specpc_first_layer(16), 8);  // Llama-3.2-1B, the reference's draft
  EXPECT_EQ(specpc_first_layer(10), 5);
  EXPECT_EQ(specpc_first_layer(2), 1);
}

// A target token's score is the max over the draft tokens its bytes overlap; a token with
// no bytes (BOS) gets the top score.
TEST(DraftModel, ScoresMoveByByteOverlap) {
  TokenSpans from, to;
  from.begin = {0, 3, 5};
  from.end = {3, 5, 9};
  to.begin = {0, 0, 2, 4, 9};
  to.end = {0, 2, 4, 9, 9};
  const std::vector<float> got = map_scores_by_bytes(from, {1.0f, 5.0f, 2.0f}, to);
  EXPECT_EQ(got, (std::vector<float>{5.0f, 1.0f, 5.0f, 5.0f, 5.0f}));
}

// Cross-tokenizer round trip with the real vocabularies: the draft reads the target's prompt
// text (its spans cover it in order), and an answer written in the draft's vocabulary comes
// back to the target as the same text.
TEST(DraftModel, CrossTokenizerRoundTrip) {
  const std::string smol = default_model_path();
  if (!testing::exists(smol)) GTEST_SKIP() << "not found: " << smol;
  if (!testing::exists(gemma_path())) GTEST_SKIP() << "not found: " << gemma_path();
  const std::shared_ptr<const Engine> a = shared_draft_engine(smol);
  const std::shared_ptr<const Engine> b = shared_draft_engine(gemma_path());
  EXPECT_TRUE(same_vocabulary(a->tokenizer(), a->tokenizer()));
  EXPECT_FALSE(same_vocabulary(a->tokenizer(), b->tokenizer()));
  for (int dir = 0; dir < 2; ++dir) {
    const Engine& target = dir ? *b : *a;
    const Engine& draft = dir ? *a : *b;
    SCOPED_TRACE(target.model_path());
    const std::vector<int32_t> prompt = target.tokenize_prompt(fact_text(20) + " Ünïcödé – ok", "", false);
    const DraftPrompt dp = draft_prompt(target.tokenizer(), draft.tokenizer(), prompt);
    ASSERT_TRUE(dp.cross);
    EXPECT_NE(dp.target.text.find("Fact 19: the blue box"), std::string::npos);
    EXPECT_EQ(dp.target.text.substr(dp.target.text.size() - 2), "ok");
    size_t covered = 0, at = 0;
    for (size_t i = 0; i < dp.tokens.size(); ++i) {
      EXPECT_GE(dp.draft.begin[i], at);
      at = dp.draft.end[i];
      covered += dp.draft.end[i] - dp.draft.begin[i];
    }
    EXPECT_EQ(covered, dp.target.text.size());
    const std::string answer = " The red box in room 5 holds 42 apples, café.";
    const std::vector<int32_t> drafted = draft.tokenizer().encode(answer, false, false);
    const std::vector<int32_t> back = answer_for_target(target.tokenizer(), draft.tokenizer(), true, drafted);
    EXPECT_EQ(token_spans(target.tokenizer(), back).text, answer);
  }
}

// With the model as its own draft (window 0, mean over the queries, no pooling, max over the
// group as the oracle is set to), SpecKV's draft answer is the oracle's greedy answer and
// every (layer, KV head) keeps the oracle's entries.
TEST(SpecKv, SelfDraftKeepsTheOraclesEntries) {
  const std::string path = default_model_path();
  if (!testing::exists(path)) GTEST_SKIP() << "not found: " << path;
  const std::shared_ptr<Engine> engine = load_engine(path);
  const std::vector<int32_t> prompt = engine->tokenize_prompt(fact_text(12), "", true);
  ASSERT_GT(prompt.size(), 200u);
  KvPolicySettings oracle;
  oracle.name = "oracle";
  oracle.budget = 64;
  oracle.oracle_max_new = 24;
  oracle.reduce = GroupReduce::Max;
  KvPolicySettings spec = oracle;
  spec.name = "speckv";
  spec.draft_model = path;
  spec.draft_max_new = 24;
  spec.window = 0;
  spec.pool_kernel = 0;
  spec.pool = PoolKind::None;
  spec.draft_query_mean = true;
  Context a(engine), b(engine);
  prefill_with_eviction(a, prompt, -1, oracle);
  const KvCompressReport rep = prefill_with_eviction(b, prompt, -1, spec);
  EXPECT_GT(rep.draft_ms, 0);
  EXPECT_GT(rep.rows_ms, 0);
  const ModelConfig& c = engine->model().config();
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_kv_head; ++h) {
      ASSERT_EQ(b.cache().head(l, h).pos, a.cache().head(l, h).pos) << l << " " << h;
      ASSERT_EQ(b.cache().head(l, h).size(), 64);
    }
  EXPECT_EQ(a.logits(), b.logits());
  EXPECT_EQ(b.n_past(), (int32_t)prompt.size());
}

// Tiny models: SpecPC alone prefills C renumbered tokens; SpecKV-PC hands the draft's answer
// from the compression to SpecKV; SpecKV on a tiny Gemma 3 (its own draft, an answer longer
// than the windows' rollback slack) evicts the global layer only.
class SpecTinyTest : public ::testing::Test {
 protected:
  static std::shared_ptr<Engine> load(const std::string& name, bool gemma, std::string* path) {
    testing::TinyModelSpec s;
    s.n_ctx = 4096;
    if (gemma) {
      s.n_layer = 7;
      s.head_dim = 16;
      s.sliding_window = 8;
    }
    *path = (std::filesystem::temp_directory_path() / name).string();
    gemma ? testing::write_tiny_gemma3(*path, s) : testing::write_tiny_llama(*path, s);
    return load_engine(*path);
  }
  ThreadPool pool_{2};
};

TEST_F(SpecTinyTest, SpecPcAndSpecKvPc) {
  std::string path;
  const std::shared_ptr<Engine> e = load("glimpse_specpc_tiny.gguf", false, &path);
  const std::vector<int32_t> prompt = testing::tiny_tokens(300, 64, 9);
  KvPolicySettings s;
  s.prompt_compress = "specpc";
  s.pc_draft = path;
  s.pc_budget = 100;
  {
    Context ctx(e, ContextParams{1024, 64}, &pool_);
    const KvCompressReport rep = prefill_with_eviction(ctx, prompt, -1, s);
    EXPECT_EQ(rep.n_pc_before, 300);
    EXPECT_EQ(rep.n_pc_after, 100);
    EXPECT_FALSE(rep.pc_cross);
    EXPECT_EQ(ctx.n_past(), 100);  // renumbered positions 0..99
    EXPECT_EQ(ctx.cache().head(0, 0).pos.back(), 99);
    EXPECT_NE(rep.report().find("300 -> 100 tokens"), std::string::npos) << rep.report();
  }
  s.name = "speckv";
  s.budget = 40;
  s.draft_model = path;
  s.draft_max_new = 20;
  Context ctx(e, ContextParams{1024, 64}, &pool_);
  const KvCompressReport rep = prefill_with_eviction(ctx, prompt, -1, s);
  EXPECT_EQ(rep.n_pc_after, 100);
  EXPECT_TRUE(rep.evicted);
  EXPECT_EQ(rep.draft_ms, 0);  // the answer came with the compression's draft run
  EXPECT_GT(rep.rows_ms, 0);
  EXPECT_EQ(ctx.cache().head(1, 1).size(), 40);
  EXPECT_EQ(ctx.n_past(), 100);
  std::filesystem::remove(path);
}

TEST_F(SpecTinyTest, SpecKvOnGemmaEvictsTheGlobalLayer) {
  std::string path;
  const std::shared_ptr<Engine> e = load("glimpse_speckv_gemma_tiny.gguf", true, &path);
  const std::vector<int32_t> prompt = testing::tiny_tokens(700, 64, 11);
  Context plain(e, ContextParams{2048, 64}, &pool_);
  plain.prefill(prompt, nullptr);
  KvPolicySettings s;
  s.name = "speckv";
  s.budget = 64;
  s.draft_model = path;
  s.draft_max_new = 300;
  Context ctx(e, ContextParams{2048, 64}, &pool_);
  const KvCompressReport rep = prefill_with_eviction(ctx, prompt, -1, s);
  EXPECT_EQ(rep.stats.n_layers_evicted, 1);
  for (int l = 0; l < 7; ++l)
    if (l != 5) {
      EXPECT_EQ(ctx.cache().head(l, 0).pos, plain.cache().head(l, 0).pos) << l;
    }
  EXPECT_EQ(ctx.cache().head(5, 0).size(), 64);
  EXPECT_EQ(ctx.logits(), plain.logits());
  std::filesystem::remove(path);
}

// The real pair: Gemma 3 270M with SmolLM2-135M as its draft (different vocabularies), SpecKV
// at C = 256 and SpecPC at C = 300 through generate(): text comes out, the global layers hold
// C prompt entries, the sliding-window layers their window.
TEST(SpecKv, GemmaWithSmolLm2Draft) {
  const std::string smol = default_model_path();
  if (!testing::exists(gemma_path())) GTEST_SKIP() << "not found: " << gemma_path();
  if (!testing::exists(smol)) GTEST_SKIP() << "not found: " << smol;
  const std::shared_ptr<Engine> engine = load_engine(gemma_path());
  const std::vector<int32_t> prompt = engine->tokenize_prompt(fact_text(40), "", false);
  ASSERT_GT(prompt.size(), 700u);
  GenerateParams gp;
  gp.n_predict = 8;
  gp.sampling.temp = 0;
  gp.kv.name = "speckv";
  gp.kv.budget = 256;
  gp.kv.draft_model = smol;
  gp.kv.draft_max_new = 16;
  Context ctx(engine);
  const GenerateResult r = generate(ctx, prompt, gp, nullptr);
  EXPECT_FALSE(r.text.empty());
  EXPECT_EQ(r.timings.kv.stats.n_layers_evicted, 3);
  EXPECT_GT(r.timings.kv.draft_ms, 0);
  const int64_t decoded = ctx.n_past() - (int64_t)prompt.size();
  for (int l : {5, 11, 17}) EXPECT_EQ(ctx.cache().head(l, 0).size(), 256 + decoded) << l;
  // A window layer is not evicted (the prompt is too short for it to drop anything yet).
  EXPECT_EQ(ctx.cache().head(0, 0).size(), ctx.n_past());

  GenerateParams pc = gp;
  pc.kv.name = "none";
  pc.kv.prompt_compress = "specpc";
  pc.kv.pc_draft = smol;
  pc.kv.pc_budget = 300;
  Context c2(engine);
  const GenerateResult r2 = generate(c2, prompt, pc, nullptr);
  EXPECT_FALSE(r2.text.empty());
  EXPECT_TRUE(r2.timings.kv.pc_cross);
  EXPECT_EQ(r2.timings.kv.n_pc_after, 300);
  EXPECT_GE(c2.n_past(), 300);  // 300 prefilled (renumbered), then the decoded tokens
  EXPECT_LE(c2.n_past(), 300 + r2.timings.n_gen);
  EXPECT_EQ(c2.cache().head(5, 0).size(), c2.n_past());
}

}  // namespace
}  // namespace glimpse

namespace glimpse {
namespace {

// GreedyOptions::min_new (what a draft of another family runs with): a short chat answer that
// ends with an end-of-generation token goes on for min_new tokens, its first tokens unchanged
// and none of them ending generation.
TEST(SpecKv, MinNewPassesOverTheEndOfGeneration) {
  const std::string path = default_model_path();
  if (!testing::exists(path)) GTEST_SKIP() << "not found: " << path;
  const std::shared_ptr<Engine> engine = load_engine(path);
  GreedyOptions g;
  g.max_new = 48;
  // The first of these whose greedy answer ends early (each ISA level rounds its own way).
  std::vector<int32_t> prompt;
  GreedyRun ended;
  for (const char* q : {"Say hello.", "What is 2 + 2? Answer with the number only.",
                        "Reply with one word: hi", "Name one color."}) {
    prompt = engine->tokenize_prompt(q, "", true);
    Context a(engine);
    a.prefill(prompt, nullptr);
    ended = a.greedy(g, nullptr);
    if (ended.tokens.size() < 40u) break;
  }
  ASSERT_LT(ended.tokens.size(), 40u) << "no answer ends early: the test would mean nothing";
  g.min_new = g.max_new;
  Context b(engine);
  b.prefill(prompt, nullptr);
  const GreedyRun full = b.greedy(g, nullptr);
  ASSERT_EQ(full.tokens.size(), (size_t)g.max_new);
  EXPECT_TRUE(std::equal(ended.tokens.begin(), ended.tokens.end(), full.tokens.begin()));
  for (int32_t t : full.tokens) EXPECT_FALSE(engine->tokenizer().is_eog(t)) << t;
}

}  // namespace
}  // namespace glimpse
