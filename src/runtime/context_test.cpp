// Request contexts over one shared engine: batched forwards and batched greedy decoding give
// each context what it gets alone (bit for bit), fork + truncate restore a context exactly,
// two threads drive two contexts of one model at once, and the weights are held once however
// many contexts exist.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include "kv/kv_cache_test_util.h"
#include "model/tiny_model_test_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"
#include "util/malloc_trim.h"
#include "util/proc_memory.h"

namespace glimpse {
namespace {

// The default model (Q4_1: the int8 kernels) and a tiny f32 model (the f32 panel path).
std::shared_ptr<Engine> load_engine(const std::string& which) {
  if (which == "default") {
    const std::string path = default_model_path();
    if (!std::filesystem::exists(path)) return nullptr;
    EngineParams p;
    p.model_path = path;
    p.n_threads = 2;
    return Engine::load(p);
  }
  static const std::string tiny = testing::temp_path("glimpse_ctx_tiny.gguf");
  testing::TinyModelSpec spec;
  spec.n_layer = 3;
  testing::write_tiny_llama(tiny, spec);
  EngineParams p;
  p.model_path = tiny;
  p.n_threads = 2;
  return Engine::load(p);
}

std::vector<int32_t> tokens(int64_t n, int n_vocab, uint64_t seed) {
  return testing::tiny_tokens(n, std::min(n_vocab, 2000), seed);
}

class ContextTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    engine_ = load_engine(GetParam());
    if (!engine_) GTEST_SKIP() << "default model not found";
    V_ = engine_->model().config().n_vocab;
  }
  ContextParams params(int n_ctx = 512) const {
    ContextParams p;
    p.n_ctx = n_ctx;
    p.n_batch = 32;
    return p;
  }
  // A context with a prompt run through the eviction path (policy "none" = plain prefill).
  std::unique_ptr<Context> prompted(const std::vector<int32_t>& prompt, const std::string& policy,
                                    int64_t budget) {
    auto c = std::make_unique<Context>(engine_, params());
    KvPolicySettings s;
    s.name = policy;
    s.budget = budget;
    prefill_with_eviction(*c, prompt, -1, s);
    return c;
  }
  std::shared_ptr<Engine> engine_;
  int V_ = 0;
};

// Mixed lengths, mixed policies, one context compressed, one prefilling a chunk while the
// others decode: each context's logits equal those of the same steps run alone.
TEST_P(ContextTest, BatchedForwardIsBitIdenticalToEachAlone) {
  const std::vector<std::vector<int32_t>> prompts = {tokens(37, V_, 1), tokens(150, V_, 2),
                                                     tokens(5, V_, 3), tokens(90, V_, 4)};
  const std::vector<std::pair<std::string, int64_t>> policies = {
      {"none", 0}, {"snapkv", 40}, {"none", 0}, {"streaming", 24}};
  std::vector<std::unique_ptr<Context>> batched, alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    batched.push_back(prompted(prompts[i], policies[i].first, policies[i].second));
    alone.push_back(prompted(prompts[i], policies[i].first, policies[i].second));
    ASSERT_EQ(batched[i]->logits(), alone[i]->logits());
  }
  EXPECT_LT(batched[1]->cache().total_entries(), (int64_t)150 * 30);  // really compressed
  for (int step = 0; step < 6; ++step) {
    std::vector<ContextStep> steps;
    for (size_t i = 0; i < batched.size(); ++i) {
      // Context 2 takes a 7-token chunk on step 2 (a prefill beside decodes).
      std::vector<int32_t> t = i == 2 && step == 2 ? tokens(7, V_, 50 + step)
                                                   : std::vector<int32_t>{(int32_t)(11 + 13 * i + step)};
      steps.push_back({batched[i].get(), t});
      alone[i]->prefill(t, nullptr);
    }
    forward_contexts(steps);
    for (size_t i = 0; i < batched.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(step) + " context " + std::to_string(i));
      ASSERT_EQ(batched[i]->logits(), alone[i]->logits());
      ASSERT_EQ(batched[i]->n_past(), alone[i]->n_past());
    }
  }
}

// A prompt taken in chunks (StagedPrefill, as the server's scheduler runs it), each chunk
// inside a batched forward with another context decoding, leaves exactly the cache and
// logits of one prefill_with_eviction call: plain, query-aware eviction and query-agnostic
// eviction (the question prefilled after the compression).
TEST_P(ContextTest, StagedPrefillInBatchedStepsEqualsOneCall) {
  const std::vector<int32_t> prompt = tokens(150, V_, 21);
  struct Case {
    const char* policy;
    bool agnostic;
  };
  // The default model takes the two SnapKV cases in bigger chunks (it is slow under ASan);
  // the tiny model all four in chunks of 7 and 13.
  const bool big = GetParam() == "default";
  std::vector<Case> cases = {Case{"snapkv", false}, Case{"snapkv", true}};
  if (!big) cases.insert(cases.end(), {Case{"none", false}, Case{"streaming", true}});
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.policy) + (c.agnostic ? " agnostic" : " aware"));
    KvPolicySettings s;
    s.name = c.policy;
    s.budget = 40;
    s.query_agnostic = c.agnostic;
    auto whole = std::make_unique<Context>(engine_, params());
    const KvCompressReport want = prefill_with_eviction(*whole, prompt, 120, s);
    auto staged = std::make_unique<Context>(engine_, params());
    std::unique_ptr<Context> other = prompted(tokens(20, V_, 22), "none", 0);
    StagedPrefill sp(*staged, prompt, 120, s);
    for (int i = 0; !sp.done(); ++i) {
      std::vector<ContextStep> steps = {sp.next(big ? (i % 2 ? 40 : 24) : (i % 2 ? 13 : 7)),
                                        ContextStep{other.get(), {(int32_t)(5 + i)}, nullptr}};
      forward_contexts(steps);
      sp.ran(steps[0], 1.0);
    }
    EXPECT_EQ(sp.report().evicted, want.evicted);
    EXPECT_EQ(sp.report().stats.entries_after, want.stats.entries_after);
    EXPECT_EQ(staged->logits(), whole->logits());
    EXPECT_TRUE(testing::same_kv_cache(staged->cache(), whole->cache()));
    if (std::string(c.policy) != "none") {
      EXPECT_TRUE(want.evicted);
    }
  }
}

TEST_P(ContextTest, ForkAndTruncateRestoreExactly) {
  for (const char* policy : {"none", "snapkv"}) {
    SCOPED_TRACE(policy);
    std::unique_ptr<Context> ctx = prompted(tokens(120, V_, 9), policy, 48);
    const std::unique_ptr<Context> snapshot = ctx->fork();
    const int32_t end = ctx->n_past();
    GreedyOptions g;
    g.max_new = 6;
    g.stop_at_eog = false;
    ctx->greedy(g, nullptr);  // speculative tokens...
    ASSERT_EQ(ctx->n_past(), end + 6);
    EXPECT_TRUE(testing::same_kv_cache(snapshot->cache(), snapshot->fork()->cache()));
    ctx->truncate(end);  // ...rolled back
    EXPECT_TRUE(testing::same_kv_cache(ctx->cache(), snapshot->cache()));
    ctx->decode(42);
    snapshot->decode(42);
    EXPECT_EQ(ctx->logits(), snapshot->logits());
  }
}

// The contexts greedy_contexts is tested on: prompts of different lengths under different
// policies (plain, evicted to different sizes), each forked into several that differ by one
// decoded token (more than per_forward: several forwards per step), one whose context fills
// up after 3 tokens, one whose first choice is an end-of-generation token, and (with a chat
// template) a chat prompt the model may end by itself.
std::vector<std::unique_ptr<Context>> greedy_test_contexts(const std::shared_ptr<Engine>& e,
                                                           const std::vector<std::unique_ptr<Context>>& bases,
                                                           const ContextParams& small, bool chat_prompt,
                                                           size_t per_forward) {
  const int V = e->model().config().n_vocab;
  std::vector<std::unique_ptr<Context>> out;
  for (size_t k = 0; out.size() < per_forward + 6; ++k) {
    out.push_back(bases[k % bases.size()]->fork());
    out.back()->decode((int32_t)((17 + 31 * k) % std::min(V, 2000)));
  }
  auto full_soon = std::make_unique<Context>(e, small);  // n_ctx = prompt + 3
  full_soon->prefill(tokens(small.n_ctx - 3, V, 77), nullptr);
  out.push_back(std::move(full_soon));
  const Tokenizer& tok = e->tokenizer();
  if (!tok.eog_ids().empty()) {
    std::unique_ptr<Context> eog = bases[0]->fork();
    std::vector<float> l = eog->logits();
    l[tok.eog_ids().front()] = *std::max_element(l.begin(), l.end()) + 1;
    eog->set_logits(l);
    out.push_back(std::move(eog));
  }
  if (chat_prompt) {
    auto chat = std::make_unique<Context>(e, ContextParams{512, 32});
    chat->prefill(e->tokenize_prompt("Answer with one word: is snow white?", "", true), nullptr);
    out.push_back(std::move(chat));
  }
  return out;
}

// Batched greedy decoding gives every context exactly what its own greedy gives: tokens,
// rows, steps, and the final cache, position and logits; in both feed modes. The tiny model
// runs the production group size (70 contexts: two forwards per step); the default model,
// whose each lone greedy is a full 135M forward per token (~6 min under ASan at 64), groups
// of 8 (14+ contexts: the same split, two forwards per step).
TEST_P(ContextTest, GreedyContextsEqualEachGreedyAlone) {
  const size_t per_forward = GetParam() == "default" ? 8 : kGreedyContextsPerForward;
  std::vector<std::unique_ptr<Context>> bases;
  bases.push_back(prompted(tokens(37, V_, 1), "none", 0));
  bases.push_back(prompted(tokens(150, V_, 2), "snapkv", 40));
  bases.push_back(prompted(tokens(120, V_, 3), "streaming", 24));
  bases.push_back(prompted(tokens(90, V_, 4), "tova", 56));
  bases.push_back(prompted(tokens(9, V_, 5), "none", 0));
  EXPECT_NE(bases[1]->cache().total_entries(), bases[2]->cache().total_entries());
  const std::vector<std::unique_ptr<Context>> contexts =
      greedy_test_contexts(engine_, bases, params(40), GetParam() == "default", per_forward);
  for (const bool feed_last : {false, true}) {
    SCOPED_TRACE(feed_last ? "feed_last" : "last token not fed");
    GreedyOptions g;
    g.max_new = 8;
    g.feed_last = feed_last;
    g.keep_rows = !feed_last;
    std::vector<std::unique_ptr<Context>> batched, alone;
    std::vector<Context*> ptrs;
    for (const auto& c : contexts) {
      batched.push_back(c->fork());
      alone.push_back(c->fork());
      ptrs.push_back(batched.back().get());
    }
    const std::vector<GreedyRun> runs = greedy_contexts(ptrs, g, per_forward);
    ASSERT_EQ(runs.size(), contexts.size());
    std::set<int> steps_seen;
    for (size_t k = 0; k < contexts.size(); ++k) {
      SCOPED_TRACE("context " + std::to_string(k));
      const GreedyRun want = alone[k]->greedy(g, nullptr);
      EXPECT_EQ(runs[k].tokens, want.tokens);
      EXPECT_EQ(runs[k].rows, want.rows);
      EXPECT_EQ(runs[k].steps, want.steps);
      EXPECT_EQ(runs[k].decode_ms, runs[0].decode_ms);
      EXPECT_EQ(batched[k]->n_past(), alone[k]->n_past());
      EXPECT_TRUE(testing::same_kv_cache(batched[k]->cache(), alone[k]->cache()));
      EXPECT_EQ(batched[k]->logits(), alone[k]->logits());
      steps_seen.insert(want.steps);
    }
    EXPECT_GE(steps_seen.size(), 2u);  // some stopped early (context full, end of generation)
  }
  EXPECT_TRUE(greedy_contexts({}, GreedyOptions()).empty());
  EXPECT_THROW(greedy_contexts({bases[0].get(), bases[0].get()}, GreedyOptions()), Error);
  EXPECT_THROW(greedy_contexts({bases[0].get()}, GreedyOptions(), 0), Error);
}

// A request's sampler, stream decoder and stop matcher live in its context: a fork carries
// them, so both copies draw the same tokens and emit the same text from the same logits.
TEST_P(ContextTest, ForkCarriesTheSamplingState) {
  Context ctx(engine_, params());
  const std::vector<int32_t> prompt = tokens(40, V_, 31);
  SamplerParams sp;
  sp.temp = 0.9f;
  sp.seed = 1234;
  ctx.begin_sampling(sp, {"zzz"}, prompt);
  ctx.prefill(prompt, nullptr);
  for (int i = 0; i < 3; ++i) ctx.decode(ctx.sample_next());
  std::unique_ptr<Context> twin = ctx.fork();
  for (int i = 0; i < 8; ++i) {
    const int32_t a = ctx.sample_next(), b = twin->sample_next();
    ASSERT_EQ(a, b);
    EXPECT_EQ(ctx.text_of(a), twin->text_of(b));
    ctx.decode(a);
    twin->decode(b);
  }
  EXPECT_EQ(ctx.finish_text(), twin->finish_text());
  Context fresh(engine_, params());
  EXPECT_THROW(fresh.sample_next(), Error);
}

// Two threads, each with its own pool and context over the same engine, run at once; each
// gets what it gets alone. (Run under ASan in CI; TSan-clean by construction: the engine is
// read-only and every mutable buffer belongs to a context or a thread.)
TEST_P(ContextTest, TwoThreadsTwoContextsOfOneModel) {
  const std::vector<int32_t> pa = tokens(64, V_, 21), pb = tokens(100, V_, 22);
  GreedyOptions g;
  g.max_new = 12;
  g.stop_at_eog = false;
  auto run = [&](const std::vector<int32_t>& p, ThreadPool* pool) {
    Context c(engine_, params(), pool);
    c.prefill(p, nullptr);
    GreedyRun r = c.greedy(g, nullptr);
    r.rows = {c.logits()};
    return r;
  };
  const GreedyRun ra = run(pa, nullptr), rb = run(pb, nullptr);
  GreedyRun ta, tb;
  ThreadPool pool_a(1), pool_b(1);
  std::thread a([&] { ta = run(pa, &pool_a); });
  std::thread b([&] { tb = run(pb, &pool_b); });
  a.join();
  b.join();
  EXPECT_EQ(ta.tokens, ra.tokens);
  EXPECT_EQ(tb.tokens, rb.tokens);
  EXPECT_EQ(ta.rows, ra.rows);
  EXPECT_EQ(tb.rows, rb.rows);
}

// The weight bytes of a decode step (bench roofline): every tensor of the file once, but of
// the embedding table one row, and the table again in full when it doubles as the output.
TEST_P(ContextTest, DecodeWeightBytesCountEveryTensorOnce) {
  const Model& m = engine_->model();
  const GgufTensor* emb = m.gguf().find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  size_t want = ggml_row_bytes(emb->type, emb->ne[0]);
  for (const GgufTensor& t : m.gguf().tensors())
    if (t.name != "token_embd.weight") want += t.nbytes;
  if (!m.gguf().find_tensor("output.weight")) want += emb->nbytes;  // tied output
  EXPECT_EQ(m.decode_weight_bytes(), want);
}

INSTANTIATE_TEST_SUITE_P(Models, ContextTest, ::testing::Values("default", "tiny"));

#if !defined(__SANITIZE_ADDRESS__)
// The weights are held once: 8 contexts cost their KV bytes, not 8 models.
TEST(ContextMemory, EightContextsShareTheWeights) {
  const std::shared_ptr<Engine> e = load_engine("default");
  if (!e) GTEST_SKIP() << "default model not found";
  const std::vector<int32_t> p = tokens(200, e->model().config().n_vocab, 5);
  ContextParams cp;
  cp.n_ctx = 1024;
  std::vector<std::unique_ptr<Context>> ctxs;
  ctxs.push_back(std::make_unique<Context>(e, cp));
  ctxs[0]->prefill(p, nullptr);
  release_free_memory();
  const double rss1 = (double)current_rss_bytes();
  const double kv1 = (double)ctxs[0]->resident_bytes();
  for (int i = 1; i < 8; ++i) {
    ctxs.push_back(std::make_unique<Context>(e, cp));
    ctxs.back()->prefill(p, nullptr);
  }
  const double rss8 = (double)current_rss_bytes();
  EXPECT_LE(rss8, 1.10 * (rss1 + 7 * kv1)) << "rss1 " << rss1 / 1048576 << " MiB, kv per context "
                                           << kv1 / 1048576 << " MiB, rss8 " << rss8 / 1048576;
}
#endif

// A task prompt is one user turn of the chat template when the GGUF has one (the default
// model: the same tokens as before), and raw text with an answer cue for a base model
// (Gemma 3 270M has no template), the context's tokens first in both.
TEST(EngineTaskPrompt, ChatTurnOrRawTextWithAnAnswerCue) {
  int checked = 0;
  for (const std::string& path :
       {default_model_path(), testing::source_dir() + "/models/gemma-3-270m-q4_k_m.gguf"}) {
    if (!std::filesystem::exists(path)) continue;
    EngineParams p;
    p.model_path = path;
    p.n_threads = 1;
    const std::shared_ptr<Engine> e = Engine::load(p);
    const std::string context = "The port is 4242.", question = "Which port? Answer briefly.";
    const PromptTokens pt = e->task_prompt(context, question);
    const Tokenizer& tok = e->tokenizer();
    if (e->has_chat_template()) {
      EXPECT_EQ(pt.tokens, e->tokenize_prompt(context, question, "", true).tokens);
      EXPECT_EQ(e->task_prompt_overhead(), (int64_t)e->tokenize_prompt("", "", true).size());
    } else {
      EXPECT_EQ(pt.tokens, tok.encode(context + "\n\n" + question + "\nAnswer:", tok.add_bos(), false));
      EXPECT_EQ(e->task_prompt_overhead(),
                (int64_t)(tok.encode("", tok.add_bos(), false).size() + tok.encode("\nAnswer:", false, false).size()));
    }
    const std::vector<int32_t> head = tok.encode(context, tok.add_bos(), false);
    ASSERT_GT(pt.n_context, 0);
    if (!e->has_chat_template()) {
      EXPECT_EQ(std::vector<int32_t>(pt.tokens.begin(), pt.tokens.begin() + pt.n_context),
                std::vector<int32_t>(head.begin(), head.begin() + pt.n_context));
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no model file";
}

}  // namespace
}  // namespace glimpse
