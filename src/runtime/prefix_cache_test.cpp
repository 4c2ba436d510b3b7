// The document cache: a request started from a cached prefix (full, or a document compressed
// query-agnostically) gives exactly the tokens a cold request gives, and the cache stays
// within its byte bound.
#include "runtime/prefix_cache.h"

#include <gtest/gtest.h>

#include "kv/kv_cache_test_util.h"
#include "model/tiny_model_test_util.h"
#include "runtime/generate.h"
#include "runtime/test_request_util.h"
#include "util/error.h"

namespace glimpse {
namespace {

class PrefixCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TinyModelSpec spec;
    spec.n_layer = 3;
    std::string path;
    engine_ = testing::load_tiny_engine("glimpse_prefix_cache_tiny.gguf", spec, &path);
  }
  std::vector<int32_t> tokens(int64_t n, uint64_t seed) const {
    return testing::tiny_tokens(n, std::min(engine_->model().config().n_vocab, 2000), seed);
  }
  std::unique_ptr<Context> context() const {
    ContextParams p;
    p.n_ctx = 512;
    p.n_batch = 16;
    return std::make_unique<Context>(engine_, p);
  }
  static GenerateParams greedy(int n, const KvPolicySettings& kv = {}, int64_t n_compress = -1) {
    GenerateParams g;
    g.n_predict = n;
    g.sampling.temp = 0;
    g.ignore_eos = true;
    g.kv = kv;
    g.n_compress = n_compress;
    return g;
  }
  // A generation from scratch (or from `cached` on ctx), run to the end.
  GenerateResult run(Context& ctx, const std::vector<int32_t>& prompt, const GenerateParams& g,
                     const CachedPrefix& cached = {}) const {
    Generation gen(ctx, prompt, g, nullptr, cached);
    gen.prefill();
    for (int32_t id; (id = gen.step()) >= 0;) ctx.decode(id);
    return gen.finish();
  }
  std::shared_ptr<Engine> engine_;
};

TEST_F(PrefixCacheTest, FollowUpFromAFullPrefixEqualsAColdRun) {
  PrefixCache cache(1u << 30);
  const std::vector<int32_t> first = tokens(70, 1);
  auto ctx = context();
  const GenerateResult r1 = run(*ctx, first, greedy(12));
  // The history the context holds: the prompt and every answer token it decoded.
  std::vector<int32_t> held = first;
  held.insert(held.end(), r1.tokens.begin(), r1.tokens.end());
  held.resize(ctx->n_past());
  ASSERT_EQ((int64_t)held.size(), 70 + 11);
  cache.put_full(held, std::move(ctx));

  std::vector<int32_t> follow = held;  // the conversation goes on
  const std::vector<int32_t> more = tokens(25, 2);
  follow.insert(follow.end(), more.begin(), more.end());
  std::optional<PrefixCache::Hit> hit = cache.find_prefix(follow);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->n_tokens, (int64_t)held.size());
  const GenerateResult warm = run(*hit->ctx, follow, greedy(10), CachedPrefix{hit->n_tokens, {}});
  auto cold_ctx = context();
  const GenerateResult cold = run(*cold_ctx, follow, greedy(10));
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.timings.n_cached, (int64_t)held.size());
  EXPECT_TRUE(testing::same_kv_cache(hit->ctx->cache(), cold_ctx->cache()));

  // A prompt that diverges after 40 tokens reuses those 40; one sharing fewer than the
  // minimum reuses nothing.
  std::vector<int32_t> branch(first.begin(), first.begin() + 40);
  const std::vector<int32_t> other = tokens(30, 3);
  branch.insert(branch.end(), other.begin(), other.end());
  hit = cache.find_prefix(branch);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->n_tokens, 40);
  auto cold_branch = context();
  EXPECT_EQ(run(*hit->ctx, branch, greedy(8), CachedPrefix{40, {}}).tokens,
            run(*cold_branch, branch, greedy(8)).tokens);
  EXPECT_FALSE(cache.find_prefix(tokens(50, 4)));
  // The whole prompt cached: its last token still runs (for the logits).
  hit = cache.find_prefix(held);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->n_tokens, (int64_t)held.size() - 1);
  const PrefixCache::Stats st = cache.stats();
  EXPECT_EQ(st.lookups, 4);
  EXPECT_EQ(st.hits, 3);
}

TEST_F(PrefixCacheTest, CompressedDocumentServesANewQuestion) {
  PrefixCache cache(1u << 30);
  KvPolicySettings kv;
  kv.name = "snapkv";
  kv.budget = 24;
  kv.query_agnostic = true;
  const std::vector<int32_t> doc = tokens(120, 5), q1 = tokens(9, 6), q2 = tokens(12, 7);
  auto join = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // The first question: the document is kept at the moment it is compressed.
  auto ctx = context();
  Generation gen(*ctx, join(doc, q1), greedy(6, kv, (int64_t)doc.size()), nullptr);
  while (gen.prefilling()) {
    const ContextStep chunk = gen.prefill_chunk(16);
    ctx->prefill(chunk.tokens, chunk.observer);
    gen.prefill_ran(chunk, 0);
    if (gen.at_compressed_boundary())
      cache.put_compressed(doc, policy_key(kv), ctx->fork(), gen.prefill_report());
  }
  ASSERT_EQ(cache.stats().entries, 1);
  EXPECT_FALSE(cache.find_compressed(doc, policy_key(KvPolicySettings{})));  // other settings
  // The second question on the cached document equals a cold query-agnostic run.
  std::optional<PrefixCache::Hit> hit = cache.find_compressed(doc, policy_key(kv));
  ASSERT_TRUE(hit && hit->compressed);
  const std::vector<int32_t> prompt2 = join(doc, q2);
  const GenerateResult warm = run(*hit->ctx, prompt2, greedy(8, kv, (int64_t)doc.size()),
                                  CachedPrefix{(int64_t)doc.size(), hit->compressed});
  auto cold_ctx = context();
  const GenerateResult cold = run(*cold_ctx, prompt2, greedy(8, kv, (int64_t)doc.size()));
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_TRUE(testing::same_kv_cache(hit->ctx->cache(), cold_ctx->cache()));
  EXPECT_TRUE(warm.timings.kv.evicted);
  EXPECT_EQ(warm.timings.kv.stats.entries_after, cold.timings.kv.stats.entries_after);
  EXPECT_LT(warm.timings.kv.stats.entries_after * 2, (int64_t)doc.size() * 3 * 2);  // 3 layers x 2 KV heads
}

TEST_F(PrefixCacheTest, StaysWithinItsBytesLeastRecentlyUsedFirst) {
  auto filled = [&](uint64_t seed, int n) {
    auto ctx = context();
    const std::vector<int32_t> t = tokens(n, seed);
    ctx->prefill(t, nullptr);
    return std::make_pair(t, std::move(ctx));
  };
  auto [t1, c1] = filled(11, 60);
  const size_t one = c1->resident_bytes();
  PrefixCache cache(one * 5 / 2);  // room for two such entries
  auto [t2, c2] = filled(12, 60);
  auto [t3, c3] = filled(13, 60);
  cache.put_full(t1, std::move(c1));
  cache.put_full(t2, std::move(c2));
  std::vector<int32_t> q1 = t1;
  q1.push_back(5);
  ASSERT_TRUE(cache.find_prefix(q1));  // t1 is now the most recent
  cache.put_full(t3, std::move(c3));   // over the bound: t2 goes
  const PrefixCache::Stats st = cache.stats();
  EXPECT_EQ(st.entries, 2);
  EXPECT_EQ(st.evictions, 1);
  EXPECT_LE(st.bytes, st.max_bytes);
  std::vector<int32_t> q2 = t2;
  q2.push_back(5);
  EXPECT_FALSE(cache.find_prefix(q2));
  EXPECT_TRUE(cache.find_prefix(q1));
  // A longer history of the same conversation replaces its prefix.
  PrefixCache roomy(1u << 30);
  auto [t5, c5] = filled(11, 60);
  roomy.put_full(t5, std::move(c5));
  auto [t4, c4] = filled(11, 60);
  std::vector<int32_t> longer = t4;
  const std::vector<int32_t> tail = tokens(10, 14);
  c4->prefill(tail, nullptr);
  longer.insert(longer.end(), tail.begin(), tail.end());
  roomy.put_full(longer, std::move(c4));
  EXPECT_EQ(roomy.stats().entries, 1);
  EXPECT_THROW(roomy.put_full(tokens(5, 1), context()), Error);  // holds nothing
}

}  // namespace
}  // namespace glimpse
