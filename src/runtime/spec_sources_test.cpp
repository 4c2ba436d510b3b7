// The model-free parts of speculative decoding: source lists, prompt lookup, the ensemble's
// mixture and weight rules, and the adaptive draft length.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "runtime/spec_sources.h"
#include "runtime/spec_weights.h"
#include "runtime/speculative.h"
#include "util/error.h"

namespace glimpse {
namespace {

TEST(SpecSources, ParsesPolicyAtBudgetNgramAndDraft) {
  KvPolicySettings base;
  base.sinks = 2;
  base.budget = 999;
  const std::vector<DraftSpec> d = parse_draft_specs("snapkv@128,streaming@64,ngram,draft", base);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].kind, DraftKind::View);
  EXPECT_EQ(d[0].kv.name, "snapkv");
  EXPECT_EQ(d[0].kv.budget, 128);
  EXPECT_EQ(d[0].kv.sinks, 2);  // the base knobs carry over
  EXPECT_EQ(d[1].kv.name, "streaming");
  EXPECT_EQ(d[1].kv.budget, 64);
  EXPECT_EQ(d[2].kind, DraftKind::Ngram);
  EXPECT_EQ(d[3].kind, DraftKind::Model);
  EXPECT_EQ(d[0].name, "snapkv@128");
}

TEST(SpecSources, RejectsBadEntries) {
  const KvPolicySettings base;
  for (const char* bad : {"snapkv", "snapkv@", "snapkv@0", "snapkv@-3", "snapkv@12x", "bogus@5",
                          "none@5", "", "snapkv@64,", "snapkv@64,snapkv@64", "ngram,,draft",
                          "snapkv@64,snapkv@65,snapkv@66,snapkv@67,snapkv@68,snapkv@69,snapkv@70"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_draft_specs(bad, base), Error);
  }
  try {
    parse_draft_specs("snapkv@12x", base);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("snapkv@12x"), std::string::npos) << e.what();
  }
}

TEST(SpecSources, NgramLookupTakesTheLongestMostRecentSuffix) {
  // "1 2 3 9 | 1 2 3 7 | 5 2 3": the suffix "2 3" last occurred before 7.
  EXPECT_EQ(ngram_lookup({1, 2, 3, 9, 1, 2, 3, 7, 5, 2, 3}), 7);
  // The longer suffix "1 2 3" wins over the more recent "2 3" / "3".
  EXPECT_EQ(ngram_lookup({1, 2, 3, 9, 4, 3, 8, 1, 2, 3}), 9);
  EXPECT_EQ(ngram_lookup({5, 6, 7}), -1);          // nothing recurs
  EXPECT_EQ(ngram_lookup({4}), -1);
  EXPECT_EQ(ngram_lookup({}), -1);
  EXPECT_EQ(ngram_lookup({4, 4}), 4);               // an overlapping occurrence
  EXPECT_EQ(ngram_lookup({1, 2, 1, 2, 1, 2}), 1);   // 4-gram "1 2 1 2" at 0 is followed by 1
  EXPECT_EQ(ngram_lookup({1, 2, 3, 4, 5, 9, 2, 3, 4, 5}, 4, 4), 9);
  EXPECT_EQ(ngram_lookup({1, 2, 9, 3, 2}, 4, 2), -1);  // only a 1-gram recurs
}

Opinion dense(const std::vector<float>& logits) { return dense_opinion(logits.data(), (int64_t)logits.size()); }

TEST(SpecWeights, MixtureArgmaxRenormalisesOverOpinions) {
  const int32_t V = 4;
  const std::vector<float> a = {0.0f, 2.0f, 0.0f, 0.0f}, b = {0.0f, 0.0f, 2.5f, 0.0f};
  std::vector<double> scratch;
  double p = 0;
  std::vector<Opinion> ops = {dense(a), dense(b), Opinion()};
  EXPECT_EQ(ops[0].token, 1);
  EXPECT_NEAR(ops[0].lse, std::log(3 + std::exp(2.0)), 1e-6);
  // Equal weights: b is the more confident.
  EXPECT_EQ(mixture_argmax(ops, {1 / 3.0, 1 / 3.0, 1 / 3.0}, V, &p, scratch), 2);
  // More weight on a.
  EXPECT_EQ(mixture_argmax(ops, {0.7, 0.2, 0.1}, V, &p, scratch), 1);
  const double pa = std::exp(2.0) / (3 + std::exp(2.0)), pb1 = 1 / (3 + std::exp(2.5));
  EXPECT_NEAR(p, (0.7 * pa + 0.2 * pb1) / 0.9, 1e-6);  // the absent source's 0.1 renormalised away
  // A one-hot source with all the weight; then alone.
  ops[2].kind = Opinion::OneHot;
  ops[2].token = 3;
  EXPECT_EQ(mixture_argmax(ops, {0.0, 0.0, 1.0}, V, &p, scratch), 3);
  EXPECT_NEAR(p, 1 - kNgramEpsilon + kNgramEpsilon / V, 1e-9);
  std::vector<Opinion> none = {Opinion(), Opinion()};
  EXPECT_EQ(mixture_argmax(none, {0.5, 0.5}, V, &p, scratch), -1);
  // Weights summing to 0 over the sources with an opinion: uniform over them.
  const std::vector<double> r = renormalised({Opinion(), dense(a), dense(b)}, {1.0, 0.0, 0.0});
  EXPECT_EQ(r, (std::vector<double>{0.0, 0.5, 0.5}));
}

// Source 0 is close to the target, source 1 far: kl and tvd weight 0 higher; grid puts the
// weight where the mixture's top-1 matches; uniform stays uniform.
TEST(SpecWeights, RulesFavourTheSourceThatMatchesTheTarget) {
  const int32_t V = 6;
  const std::vector<float> target = {0, 3, 1, 0, 0, 0}, close = {0, 2.8f, 1, 0, 0, 0},
                           far = {0, 0, 0, 0, 3, 0};
  for (WeightRule rule : {WeightRule::Kl, WeightRule::Tvd, WeightRule::Grid, WeightRule::Uniform}) {
    SCOPED_TRACE(weight_rule_name(rule));
    EnsembleWeights w(3, rule, V);
    EXPECT_EQ(w.weights(), std::vector<double>(3, 1 / 3.0));
    Opinion ng;  // prompt lookup: right once, absent once
    ng.kind = Opinion::OneHot;
    ng.token = 1;
    w.record(target.data(), 1, {dense(close), dense(far), ng});
    w.record(target.data(), 1, {dense(close), dense(far), Opinion()});
    w.update();
    const std::vector<double>& x = w.weights();
    EXPECT_NEAR(std::accumulate(x.begin(), x.end(), 0.0), 1.0, 1e-9);
    if (rule == WeightRule::Uniform) {
      EXPECT_EQ(x, std::vector<double>(3, 1 / 3.0));
    } else if (rule == WeightRule::Grid) {
      EXPECT_EQ(x[1], 0.0);  // any weight on it raises the mixture's KL
      EXPECT_GE(x[0], 0.5);
    } else {
      EXPECT_GT(x[0], 5 * x[1]);
      EXPECT_GT(x[0], x[2]);
      EXPECT_GT(w.mean_kl(0) + w.mean_tvd(0), 0.0);
      // The prompt-lookup source's one position against the sums written out.
      double z = 0, kl = 0, tv = 0;
      for (float t : target) z += std::exp((double)t);
      for (int x = 0; x < V; ++x) {
        const double p = std::exp((double)target[x]) / z;
        const double q = (x == 1 ? 1 - kNgramEpsilon : 0.0) + kNgramEpsilon / V;
        kl += p * std::log(p / q);
        tv += 0.5 * std::fabs(p - q);
      }
      if (rule == WeightRule::Kl) {
        EXPECT_NEAR(w.mean_kl(2), kl, 1e-5);
      } else {
        EXPECT_NEAR(w.mean_tvd(2), tv, 1e-5);
      }
    }
  }
}

TEST(SpecWeights, GridRefusesTooManySources) {
  EXPECT_THROW(EnsembleWeights(kMaxGridSources + 1, WeightRule::Grid, 8), Error);
  EXPECT_NO_THROW(EnsembleWeights(kMaxGridSources + 1, WeightRule::Kl, 8));
  EXPECT_THROW(parse_weight_rule("median"), Error);
}

TEST(SpecDraftLength, GrowsShrinksFallsBackAndProbes) {
  DraftLength len(0, 16);
  EXPECT_EQ(len.k(), 4);
  len.update(4, 4);
  EXPECT_EQ(len.k(), 6);
  len.update(3, 3);  // cut short (p-min) and accepted: unchanged
  EXPECT_EQ(len.k(), 6);
  len.update(0, 0);  // no opinion: unchanged
  EXPECT_EQ(len.k(), 6);
  for (int i = 0; i < 20; ++i) len.update(len.k(), len.k());
  EXPECT_EQ(len.k(), 16);
  for (int i = 0; i < 16; ++i) len.update(len.k(), 0);
  EXPECT_EQ(len.k(), 0);  // falls back to plain decoding...
  for (int i = 0; i < kProbeRounds - 1; ++i) len.update(0, 0);
  EXPECT_EQ(len.k(), 0);
  len.update(0, 0);
  EXPECT_EQ(len.k(), 1);  // ...and probes again
  DraftLength floor(2, 3);
  EXPECT_EQ(floor.k(), 3);
  for (int i = 0; i < 5; ++i) floor.update(floor.k(), 0);
  EXPECT_EQ(floor.k(), 2);
  EXPECT_EQ(DraftLength(0, 0).k(), 0);
}

// The cost rule: two drafting rounds, then one plain round is measured; drafting that
// commits tokens more slowly than plain decoding falls back to k = 0 and probes later;
// drafting that is faster keeps going, with the plain rate refreshed every kPlainRefresh rounds.
TEST(SpecDraftLength, FallsBackWhenDraftingCostsMoreThanItSaves) {
  DraftLength slow(0, 16);
  slow.update(4, 1, 2, 10.0);  // 0.2 tokens per ms while drafting
  slow.update(3, 1, 2, 10.0);
  EXPECT_EQ(slow.k(), 0);      // plain measurement round next
  slow.update(0, 0, 1, 2.0);   // plain: 0.5 tokens per ms
  EXPECT_NEAR(slow.plain_rate(), 0.5, 1e-12);
  EXPECT_EQ(slow.cost_fallbacks(), 0);
  slow.update(slow.k(), 1, 2, 10.0);
  EXPECT_EQ(slow.k(), 0);  // fell back on cost
  EXPECT_EQ(slow.cost_fallbacks(), 1);
  for (int i = 0; i < kProbeRounds; ++i) slow.update(0, 0, 1, 2.0);
  EXPECT_EQ(slow.k(), 1);  // probes again

  DraftLength fast(0, 16);
  for (int i = 0; i < 2; ++i) fast.update(fast.k(), fast.k(), fast.k() + 1, 4.0);
  EXPECT_EQ(fast.k(), 0);  // the plain measurement
  fast.update(0, 0, 1, 2.0);
  const int k = fast.k();
  EXPECT_GT(k, 4);
  for (int i = 0; i < kPlainRefresh; ++i) {
    ASSERT_GT(fast.k(), 0) << i;
    fast.update(fast.k(), fast.k(), fast.k() + 1, 4.0);
  }
  EXPECT_EQ(fast.k(), 0);  // refresh of the plain rate
  fast.update(0, 0, 1, 2.0);
  EXPECT_EQ(fast.k(), 16);
  EXPECT_EQ(fast.cost_fallbacks(), 0);

  DraftLength floor(1, 8);  // a draft-length floor turns the cost rule off
  for (int i = 0; i < 5; ++i) floor.update(floor.k(), 0, 1, 100.0);
  EXPECT_EQ(floor.k(), 1);
}

TEST(SpecChecks, RefusesEvictedTargetsAndBadLengths) {
  GenerateParams p;
  SpecParams sp;
  p.sampling.temp = 0.8f;
  EXPECT_NO_THROW(check_speculative(p, sp));
  p.sampling.temp = 0;
  EXPECT_NO_THROW(check_speculative(p, sp));
  p.kv.name = "snapkv";
  EXPECT_THROW(check_speculative(p, sp), Error);
  p.kv.name = "none";
  sp.draft_min = 5;
  sp.draft_max = 4;
  EXPECT_THROW(check_speculative(p, sp), Error);
}

}  // namespace
}  // namespace glimpse
