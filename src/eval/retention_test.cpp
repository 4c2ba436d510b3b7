// Recall of the training target and evidence recall on hand-made kept sets, and the mapping
// of evidence strings to prompt tokens (with the real tokenizer when the model is present).
#include "eval/retention.h"

#include <gtest/gtest.h>

#include "gguf/gguf_file.h"
#include "kv/kv_cache.h"
#include "kv/kv_scores.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

TEST(EvalRetention, TokensOverlappingSpans) {
  // Tokens: 0 = [0,3), 1 = [3,5), 2 = [5,5) (empty), 3 = [5,9), 4 = [9,12).
  const std::vector<size_t> off = {0, 3, 5, 5, 9, 12};
  using V = std::vector<int64_t>;
  EXPECT_EQ(tokens_overlapping(off, {{4, 6}}), (V{1, 3}));  // the empty piece overlaps nothing
  EXPECT_EQ(tokens_overlapping(off, {{0, 3}}), (V{0}));     // half-open: 3 belongs to token 1
  EXPECT_EQ(tokens_overlapping(off, {{2, 3}}), (V{0}));
  EXPECT_EQ(tokens_overlapping(off, {{3, 3}}), V{});        // an empty span
  EXPECT_EQ(tokens_overlapping(off, {{11, 100}}), (V{4}));
  EXPECT_EQ(tokens_overlapping(off, {{12, 20}}), V{});      // past the end
  EXPECT_EQ(tokens_overlapping(off, {{9, 12}, {0, 4}, {1, 2}}), (V{0, 1, 4}));  // sorted, unique
  EXPECT_EQ(tokens_overlapping({0}, {{0, 5}}), V{});        // no tokens
}

// 2 layers x 2 KV heads, evidence tokens {10, 11, 12, 13}:
//   L0H0 keeps 10, 11 (+0, 1)  -> 1/2     L0H1 keeps 12, 13 -> 1/2
//   L1H0 keeps 10, 12 (+5)     -> 1/2     L1H1 keeps none   -> 0
// mean 3/8; per layer 1/2, 1/4. Layer 0's heads together hold all 4, layer 1's hold 10 and
// 12: any_head = (1 + 1/2) / 2 = 3/4.
TEST(EvalRetention, EvidenceRecallPerHeadMeanAndAnyHead) {
  const std::vector<std::vector<int32_t>> kept = {{10, 11, 0, 1}, {13, 12}, {5, 12, 10}, {}};
  const auto r = evidence_recall(kept, 2, 2, {10, 11, 12, 13});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->per_head, (std::vector<double>{0.5, 0.5, 0.5, 0.0}));
  EXPECT_EQ(r->per_layer, (std::vector<double>{0.5, 0.25}));
  EXPECT_DOUBLE_EQ(r->mean, 0.375);
  EXPECT_DOUBLE_EQ(r->any_head, 0.75);
  // Repeated and unordered evidence indices count once.
  const auto dup = evidence_recall(kept, 2, 2, {13, 10, 10, 12, 11, 13});
  ASSERT_TRUE(dup.has_value());
  EXPECT_DOUBLE_EQ(dup->mean, 0.375);
  EXPECT_DOUBLE_EQ(dup->any_head, 0.75);
  // Heads of a layer that keep the same tokens: any_head = mean. Heads that split them:
  // any_head counts the layer's union.
  const auto same = evidence_recall({{7}, {7}, {8}, {}}, 2, 2, {7});
  EXPECT_DOUBLE_EQ(same->mean, 0.5);
  EXPECT_DOUBLE_EQ(same->any_head, 0.5);
  const auto split = evidence_recall({{7}, {8}}, 1, 2, {7, 8});
  EXPECT_DOUBLE_EQ(split->mean, 0.5);
  EXPECT_DOUBLE_EQ(split->any_head, 1.0);
  // Everything kept: 1 and 1.
  const auto all = evidence_recall({{1, 2}, {2, 1}}, 1, 2, {1, 2});
  EXPECT_DOUBLE_EQ(all->mean, 1.0);
  EXPECT_DOUBLE_EQ(all->any_head, 1.0);
  // No evidence: n/a. A shape that does not match: an error.
  EXPECT_FALSE(evidence_recall(kept, 2, 2, {}).has_value());
  EXPECT_THROW(evidence_recall(kept, 2, 1, {10}), Error);
}

TEST(EvalRetention, EvidenceRecallReadsTheCachePositions) {
  KvCache kc(2, 1, 64, 32);
  kc.head(0, 0).pos = {0, 3, 4, 9};
  kc.head(1, 0).pos = {3, 5};
  const auto r = evidence_recall(kc, {3, 4, 5});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->per_head, (std::vector<double>{2.0 / 3, 2.0 / 3}));
  EXPECT_DOUBLE_EQ(r->mean, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r->any_head, 2.0 / 3);  // one head per layer: the union is the head
}

// Head 0 kept the oracle's top 3 exactly; head 1 kept 2 entries, neither of the oracle's top 2.
TEST(EvalRetention, TargetRecallIsTheOraclesTopCPerHead) {
  KvCache kc(1, 2, 64, 32);
  KvScores oracle(1, 2, 6);
  const float h0[] = {0.1f, 0.9f, 0.2f, 0.8f, 0.0f, 0.3f};  // top 3: 1, 3, 5
  const float h1[] = {0.5f, 0.4f, 0.7f, 0.0f, 0.9f, 0.1f};  // top 2: 4, 2
  std::copy(h0, h0 + 6, oracle.at(0, 0));
  std::copy(h1, h1 + 6, oracle.at(0, 1));
  kc.head(0, 0).pos = {1, 3, 5};
  kc.head(0, 1).pos = {0, 1};
  EXPECT_DOUBLE_EQ(target_recall(kc, oracle, 6), 0.5);
  kc.head(0, 1).pos = {2, 3};  // one of the two
  EXPECT_DOUBLE_EQ(target_recall(kc, oracle, 6), 0.75);
  kc.head(0, 0).pos = {0, 1, 2, 3, 4, 5};  // nothing evicted: 1
  kc.head(0, 1).pos = {0, 1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(target_recall(kc, oracle, 6), 1.0);
}

// The real tokenizer: the evidence tokens of a prompt rendered ChatML-style are the ones
// whose bytes cover the evidence string, and nothing around it.
TEST(EvalRetention, EvidenceTokensWithTheRealTokenizer) {
  const std::string path = testing::model_path();
  if (!testing::exists(path)) GTEST_SKIP() << "model not found: " << path;
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(path));
  Sample s;
  s.context = "Some filler text comes first. The secret code for the blue door is 4417. More "
              "filler follows here, and then some more.";
  s.question = "What is the code for the blue door?";
  s.evidence = {"The secret code for the blue door is 4417."};
  const std::string text = "<|im_start|>user\n" + s.prompt() + "<|im_end|>\n<|im_start|>assistant\n";
  const std::vector<int32_t> ids = tok.encode(text, tok.add_bos(), true);
  std::string joined;
  const std::vector<size_t> off = piece_offsets(tok, ids, &joined);
  EXPECT_NE(joined.find(s.prompt()), std::string::npos);
  EXPECT_EQ(off.back(), joined.size());

  const auto ev = evidence_tokens(tok, ids, s, (int64_t)ids.size());
  ASSERT_TRUE(ev.has_value());
  ASSERT_GE(ev->size(), 5u);
  for (size_t i = 1; i < ev->size(); ++i) EXPECT_EQ((*ev)[i], (*ev)[i - 1] + 1);  // one run
  auto piece_run = [&](int64_t a, int64_t b) {  // decoded pieces [a, b)
    std::string r;
    for (int64_t i = a; i < b; ++i) r += tok.token_to_piece(ids[i]);
    return r;
  };
  const int64_t first = ev->front(), last = ev->back();
  EXPECT_NE(piece_run(first, last + 1).find(s.evidence[0]), std::string::npos);
  // Inner tokens lie within the evidence; the neighbours lie outside it.
  EXPECT_NE(s.evidence[0].find(piece_run(first + 1, last)), std::string::npos);
  const size_t a = joined.find(s.evidence[0]), b = a + s.evidence[0].size();
  EXPECT_TRUE(off[first] <= a && a < off[first + 1]) << off[first] << " " << a;
  EXPECT_TRUE(off[last] < b && b <= off[last + 1]) << off[last] << " " << b;

  // Only tokens below the limit (the compressed entries) count; none left is n/a.
  EXPECT_EQ(evidence_tokens(tok, ids, s, first + 2)->size(), 2u);
  EXPECT_FALSE(evidence_tokens(tok, ids, s, first).has_value());
  // No evidence, or a prompt the tokens do not hold: n/a.
  Sample bare = s;
  bare.evidence.clear();
  EXPECT_FALSE(evidence_tokens(tok, ids, bare, (int64_t)ids.size()).has_value());
  Sample other = s;
  other.question = "A different question?";
  EXPECT_FALSE(evidence_tokens(tok, ids, other, (int64_t)ids.size()).has_value());
}

}  // namespace
}  // namespace glimpse::eval
