// Scoring and fidelity metrics on hand-made cases with known values.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/metrics.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

TEST(EvalMetrics, NormalizeLowercasesAndCollapsesWhitespace) {
  EXPECT_EQ(normalize_answer("  The  Answer\n\tIS 42 "), "the answer is 42");
  EXPECT_EQ(normalize_answer(""), "");
}

TEST(EvalMetrics, StringMatchAllCountsTheFractionFound) {
  const std::vector<std::string> ans = {"1234567", "7654321", "1111111"};
  EXPECT_DOUBLE_EQ(string_match_all("The numbers are 1234567 and 7654321.", ans), 2.0 / 3);
  EXPECT_DOUBLE_EQ(string_match_all("1111111, 7654321, 1234567", ans), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("none", ans), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("anything", {}), 0.0);
  // Case and whitespace do not matter.
  EXPECT_DOUBLE_EQ(string_match_all("QUIET-Harbor   and  new\nyork", {"quiet-harbor", "New York"}), 1.0);
}

TEST(EvalMetrics, StringMatchEdgeCases) {
  // An answer split over a line break still matches; an empty prediction matches nothing.
  EXPECT_DOUBLE_EQ(string_match_all("the key is quiet\n  harbor", {"quiet harbor"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("", {"1234567"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("", {"a"}), 0.0);
  // Substring matching: a longer number containing the answer counts (RULER's rule).
  EXPECT_DOUBLE_EQ(string_match_all("81234567", {"1234567"}), 1.0);
  // Each listed answer counts, repeated ones too.
  EXPECT_DOUBLE_EQ(string_match_all("alpha", {"alpha", "alpha", "beta"}), 2.0 / 3);
  // One answer: match_all and match_part agree.
  for (const char* p : {"it is 42", "none"})
    EXPECT_EQ(string_match_all(p, {"42"}), string_match_part(p, {"42"})) << p;
}

TEST(EvalMetrics, StringMatchPartNeedsOne) {
  EXPECT_DOUBLE_EQ(string_match_part("It is about Sports.", {"sports", "music"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_part("travel", {"sports", "music"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("x", {}), 0.0);
  EXPECT_DOUBLE_EQ(score_prediction(Scoring::kMatchPart, "music!", {"sports", "music"}), 1.0);
  EXPECT_DOUBLE_EQ(score_prediction(Scoring::kMatchAll, "music!", {"sports", "music"}), 0.5);
  EXPECT_THROW(score_prediction(Scoring::kOpenEnded, "x", {}), Error);
}

TEST(EvalMetrics, GreedyAgreement) {
  const std::vector<int32_t> ref = {1, 2, 3, 4};
  auto a = greedy_agreement(ref, std::vector<int32_t>{1, 2, 9});
  EXPECT_FALSE(a.exact);
  EXPECT_EQ(a.common_prefix, 2u);
  EXPECT_DOUBLE_EQ(a.prefix_fraction, 0.5);
  a = greedy_agreement(ref, ref);
  EXPECT_TRUE(a.exact);
  EXPECT_DOUBLE_EQ(a.prefix_fraction, 1.0);
  a = greedy_agreement(ref, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8});  // longer test
  EXPECT_FALSE(a.exact);
  EXPECT_DOUBLE_EQ(a.prefix_fraction, 0.5);
  a = greedy_agreement({}, {});
  EXPECT_TRUE(a.exact);
  EXPECT_DOUBLE_EQ(a.prefix_fraction, 1.0);
  a = greedy_agreement(ref, std::vector<int32_t>{7});
  EXPECT_EQ(a.common_prefix, 0u);
  EXPECT_DOUBLE_EQ(a.prefix_fraction, 0.0);
}

TEST(EvalMetrics, KlDivergenceOfKnownDistributions) {
  // P = (1/2, 1/4, 1/4), Q = (1/4, 1/4, 1/2):
  // KL = 1/2 ln 2 + 1/4 ln 1 + 1/4 ln(1/2) = (1/4) ln 2.
  const std::vector<float> p = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  const std::vector<float> q = {std::log(0.25f), std::log(0.25f), std::log(0.5f)};
  EXPECT_NEAR(kl_divergence(p, q), 0.25 * std::log(2.0), 1e-7);
  // Reverse: 1/4 ln(1/2) + 0 + 1/2 ln 2 = (1/4) ln 2 as well (symmetric by construction).
  EXPECT_NEAR(kl_divergence(q, p), 0.25 * std::log(2.0), 1e-7);
  // Logits are shift-invariant, and large values do not overflow.
  std::vector<float> p2 = p, q2 = q;
  for (float& x : p2) x += 1000.0f;
  for (float& x : q2) x -= 500.0f;
  EXPECT_NEAR(kl_divergence(p2, q2), 0.25 * std::log(2.0), 1e-4);
  EXPECT_NEAR(kl_divergence(p, p), 0.0, 1e-12);
  // P = (0.9, 0.1), Q = (0.5, 0.5): 0.9 ln 1.8 + 0.1 ln 0.2.
  EXPECT_NEAR(kl_divergence_probs(std::vector<double>{0.9, 0.1}, std::vector<double>{0.5, 0.5}),
              0.9 * std::log(1.8) + 0.1 * std::log(0.2), 1e-12);
  EXPECT_TRUE(std::isinf(kl_divergence_probs(std::vector<double>{0.5, 0.5},
                                             std::vector<double>{1.0, 0.0})));
  EXPECT_DOUBLE_EQ(kl_divergence_probs(std::vector<double>{1.0, 0.0},
                                       std::vector<double>{0.5, 0.5}), std::log(2.0));
  EXPECT_THROW(kl_divergence(p, std::vector<float>{1, 2}), Error);
}

TEST(EvalMetrics, KlDivergenceOfTwoWayAndUniformRows) {
  // Two tokens, logits (0, a) and (0, b): with p1 = e^a / (1 + e^a),
  // KL = ln(1 + e^b) - ln(1 + e^a) + p1 (a - b).
  for (const auto& [a, b] : {std::pair{2.0, -1.0}, std::pair{-3.0, 0.5}, std::pair{0.0, 4.0}}) {
    const double p1 = std::exp(a) / (1 + std::exp(a));
    const double want = std::log1p(std::exp(b)) - std::log1p(std::exp(a)) + p1 * (a - b);
    EXPECT_NEAR(kl_divergence(std::vector<float>{0, (float)a}, std::vector<float>{0, (float)b}), want, 1e-6)
        << a << " " << b;
  }
  // P uniform over 4, Q = (2/5, 1/5, 1/5, 1/5): KL = 1/4 (ln(5/8) + 3 ln(5/4)).
  EXPECT_NEAR(kl_divergence(std::vector<float>{7, 7, 7, 7}, std::vector<float>{std::log(2.0f), 0, 0, 0}),
              0.25 * (std::log(5.0 / 8) + 3 * std::log(5.0 / 4)), 1e-7);
}

// The teacher-forced means over answer positions: per position KL and top-1, averaged.
TEST(EvalMetrics, FidelityMeanOverAnswerPositions) {
  FidelityMean none;
  EXPECT_EQ(none.kl(), 0.0);
  EXPECT_EQ(none.top1(), 0.0);
  const std::vector<float> a = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  const std::vector<float> b = {std::log(0.25f), std::log(0.25f), std::log(0.5f)};
  std::vector<float> a_shift = a;
  for (float& x : a_shift) x += 3.0f;
  FidelityMean m;
  m.add(a, a);        // same row: KL 0, same argmax
  m.add(a, b);        // KL (1/4) ln 2, argmax 0 vs 2
  m.add(a, a_shift);  // shifted logits, same distribution
  EXPECT_EQ(m.n(), 3);
  EXPECT_NEAR(m.kl(), std::log(2.0) / 12, 1e-7);
  EXPECT_NEAR(m.top1(), 2.0 / 3, 1e-12);
  EXPECT_THROW(m.add(a, std::vector<float>{1, 2}), Error);
}

TEST(EvalMetrics, Top1Agreement) {
  const std::vector<float> a = {0.1f, 3.0f, 2.0f}, b = {5.0f, 9.0f, -1.0f}, c = {1, 1, 7};
  EXPECT_EQ(argmax(a), 1u);
  EXPECT_TRUE(top1_agree(a, b));
  EXPECT_FALSE(top1_agree(a, c));
  EXPECT_EQ(argmax(std::vector<float>{2, 2, 1}), 0u);  // first on ties
}

TEST(EvalMetrics, TopKAndRecall) {
  const std::vector<float> v = {0.1f, 0.9f, 0.5f, 0.9f, 0.3f};
  EXPECT_EQ(top_k_indices(v, 3), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(top_k_indices(v, 10).size(), 5u);
  EXPECT_DOUBLE_EQ(recall_at_k({1, 2, 3, 4}, {4, 9, 1}), 0.5);
  EXPECT_DOUBLE_EQ(recall_at_k({1, 2}, {2, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(recall_at_k({}, {5}), 1.0);
  EXPECT_DOUBLE_EQ(recall_at_k({3}, {}), 0.0);
}

TEST(EvalMetrics, MeanStat) {
  MeanStat m;
  EXPECT_EQ(m.mean(), 0);
  for (double x : {1.0, 0.0, 0.5}) m.add(x);
  EXPECT_DOUBLE_EQ(m.mean(), 0.5);
  EXPECT_EQ(m.min, 0.0);
  EXPECT_EQ(m.max, 1.0);
  EXPECT_EQ(m.n, 3);
}

}  // namespace
}  // namespace glimpse::eval
