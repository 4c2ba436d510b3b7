// Speculative sampling's verification rule (spec_verify.h) on a synthetic chain: over a
// 6-token vocabulary the target is a first-order Markov chain P(.|prev) and the drafter
// another chain q(.|prev) (some tokens it never proposes, some it over-proposes). Sequences of
// 4 tokens made by rounds of up to 3 drafts, verified by verify_round_sampled, are distributed
// as the target chain's: a chi-square test over all 6^4 sequences' exact probabilities with
// 200,000 draws. A negative control (every draft accepted) fails the same test.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/spec_verify.h"
#include "util/error.h"

namespace glimpse {
namespace {

constexpr int kVocab = 6, kLen = 4;

// Row prev of a chain: (token, prob) over the tokens with weight > 0.
SparseDist chain_row(const double (&w)[kVocab][kVocab], int prev) {
  double total = 0;
  for (int t = 0; t < kVocab; ++t) total += w[prev][t];
  SparseDist d;
  for (int t = 0; t < kVocab; ++t)
    if (w[prev][t] > 0) d.push_back({t, (float)(w[prev][t] / total)});
  return d;
}

// Target and draft weights; row index = previous token (the sequence starts after token 0).
const double kTarget[kVocab][kVocab] = {{5, 1, 3, 0, 2, 1}, {1, 4, 1, 2, 0, 3}, {2, 2, 2, 2, 1, 1},
                                        {0, 3, 1, 5, 1, 2}, {4, 0, 2, 1, 3, 1}, {1, 1, 1, 1, 1, 6}};
const double kDraft[kVocab][kVocab] = {{1, 6, 3, 0, 0, 2}, {3, 1, 0, 2, 2, 3}, {1, 0, 5, 1, 1, 1},
                                       {2, 2, 2, 2, 2, 2}, {6, 1, 0, 0, 1, 0}, {0, 2, 1, 1, 1, 1}};

// Wilson-Hilferty: the chi-square quantile with df degrees of freedom at normal quantile z.
double chi2_quantile(int df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

// The chi-square statistic of counts against probs (cells with expected count < 5 pooled)
// and its degrees of freedom.
std::pair<double, int> chi_square(const std::map<std::vector<int32_t>, int>& counts,
                                  const std::map<std::vector<int32_t>, double>& probs, int n) {
  double stat = 0, pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (const auto& [seq, p] : probs) {
    const double e = p * n;
    const auto it = counts.find(seq);
    const double o = it == counts.end() ? 0 : it->second;
    if (e < 5) {
      pooled_e += e;
      pooled_o += o;
      continue;
    }
    stat += (o - e) * (o - e) / e;
    ++cells;
  }
  if (pooled_e > 0) {
    stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++cells;
  }
  for (const auto& [seq, c] : counts)
    if (!probs.count(seq)) stat += 1e9;  // a sequence the target can never produce
  return {stat, cells - 1};
}

// Exact probabilities of every length-kLen sequence under the target chain.
std::map<std::vector<int32_t>, double> exact_sequences() {
  std::map<std::vector<int32_t>, double> out;
  std::vector<int32_t> seq;
  auto rec = [&](auto&& self, int prev, double prob) -> void {
    if ((int)seq.size() == kLen) {
      out[seq] += prob;
      return;
    }
    for (const auto& [t, p] : chain_row(kTarget, prev)) {
      seq.push_back(t);
      self(self, t, prob * p);
      seq.pop_back();
    }
  };
  rec(rec, 0, 1.0);
  return out;
}

// One sequence by speculative rounds of up to 3 drafts; accept_all: the broken rule that
// takes every draft (the negative control).
std::vector<int32_t> speculative_sequence(std::mt19937_64& draft_rng, std::mt19937_64& rng,
                                          std::vector<float>& dense, bool accept_all) {
  std::vector<int32_t> seq;
  while ((int)seq.size() < kLen) {
    const int room = kLen - (int)seq.size() - 1;  // drafts that leave room for the last token
    std::vector<int32_t> drafts;
    std::vector<SparseDist> q;
    int prev = seq.empty() ? 0 : seq.back();
    for (int i = 0; i < std::min(3, room); ++i) {
      q.push_back(chain_row(kDraft, prev));
      drafts.push_back(draw_from(q.back(), draft_rng));
      prev = drafts.back();
    }
    if (accept_all) {
      seq.insert(seq.end(), drafts.begin(), drafts.end());
      seq.push_back(draw_from(chain_row(kTarget, seq.back()), rng));
      continue;
    }
    const size_t base = seq.size();
    const int32_t before = base == 0 ? 0 : seq[base - 1];
    auto target = [&](size_t i) { return chain_row(kTarget, i == 0 ? before : drafts[i - 1]); };
    auto commit = [&](int32_t t) {
      seq.push_back(t);
      return (int)seq.size() < kLen;
    };
    verify_round_sampled(drafts, q, target, commit, rng, dense);
  }
  return seq;
}

TEST(SpecVerify, SampledRoundsMatchTheTargetChain) {
  const auto probs = exact_sequences();
  constexpr int kDraws = 200000;
  for (bool accept_all : {false, true}) {
    std::mt19937_64 draft_rng(11), rng(12);
    std::vector<float> dense(kVocab, 0.0f);
    std::map<std::vector<int32_t>, int> counts;
    for (int i = 0; i < kDraws; ++i) ++counts[speculative_sequence(draft_rng, rng, dense, accept_all)];
    const auto [stat, df] = chi_square(counts, probs, kDraws);
    const double crit = chi2_quantile(df, 3.719);  // p = 1e-4
    if (accept_all)
      EXPECT_GT(stat, crit) << "the negative control passed: the test has no power";
    else
      EXPECT_LT(stat, crit) << "df " << df;
    for (float v : dense) EXPECT_EQ(v, 0.0f);
  }
}

TEST(SpecVerify, AcceptsWhereTheTargetIsLikelierAndNeverResamplesTheRejectedToken) {
  std::mt19937_64 rng(1);
  std::vector<float> dense(4, 0.0f);
  const SparseDist p = {{0, 0.5f}, {1, 0.5f}}, q = {{0, 0.25f}, {2, 0.75f}};
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(verify_sampled(p, q, 0, rng, dense).accepted);  // p(0) >= q(0)
    const VerifiedToken v = verify_sampled(p, q, 2, rng, dense);  // p(2) = 0: always rejected
    EXPECT_FALSE(v.accepted);
    EXPECT_TRUE(v.token == 0 || v.token == 1);
  }
  // A draft token outside its own distribution is a caller error.
  EXPECT_THROW(verify_sampled(p, q, 1, rng, dense), Error);
  EXPECT_THROW(draw_from({}, rng), Error);
}

}  // namespace
}  // namespace glimpse
