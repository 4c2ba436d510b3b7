#include "kv/budget.h"
#include "kv/policy.h"
#include "util/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace glimpse {
namespace {

int64_t sum(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

TEST(KvBudget, RoundSharesIsExactAndCapped) {
  EXPECT_EQ(round_shares({1, 1, 1}, 10, 100), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(round_shares({10, 1, 1}, 12, 5), (std::vector<int64_t>{5, 4, 3}));
  EXPECT_EQ(sum(round_shares({0.3, 2.7, 9.1, 0}, 77, 40)), 77);
  EXPECT_EQ(round_shares({1, 1}, 50, 10), (std::vector<int64_t>{10, 10}));  // capped total
  EXPECT_EQ(round_shares({0, 0}, 3, 10), (std::vector<int64_t>{2, 1}));
}

TEST(KvBudget, PyramidIsBudgetNeutralAndFalls) {
  for (int64_t B : {1, 7, 32, 100, 224}) {
    const BudgetPlan p = allocate_pyramid(30, 3, B, 4000, 20.0);
    EXPECT_EQ(sum(p.keep), 30 * 3 * B) << B;
    for (int l = 1; l < 30; ++l) EXPECT_LE(p.at(l, 0), p.at(l - 1, 0));
    EXPECT_GT(p.at(0, 0), p.at(29, 0)) << B;
    for (int l = 0; l < 30; ++l) EXPECT_EQ(p.at(l, 0), p.at(l, 2));
  }
  // max clamped to the scored tokens: the first layer keeps everything.
  const BudgetPlan c = allocate_pyramid(4, 1, 90, 100, 20.0);
  EXPECT_EQ(c.at(0, 0), 100);
  EXPECT_EQ(sum(c.keep), 360);
}

TEST(KvBudget, AdaFollowsTheScoresWithAFloor) {
  KvScores s(1, 2, 10);
  for (int j = 0; j < 10; ++j) {
    s.at(0, 0)[j] = 1.0f + j;  // head 0 dominates the layer's top entries
    s.at(0, 1)[j] = 0.01f * j;
  }
  const std::vector<uint8_t> prot(10, 0);
  const BudgetPlan p = allocate_ada(s, prot, 4, 0.2);
  // Top 8 of the layer all belong to head 0 (cnt = 8): 8 * 0.8 + 0.8 = 7.2 vs 0.8.
  EXPECT_EQ(p.at(0, 0) + p.at(0, 1), 8);
  EXPECT_EQ(p.at(0, 0), 7);
  EXPECT_EQ(p.at(0, 1), 1);
}

// Global: the layers' budgets follow the scores too; the total is exact, each head keeps its
// floor, protected entries never count, and a layer that is not scored gets nothing.
TEST(KvBudget, GlobalSpreadsOverLayersWithAFloor) {
  KvScores s(3, 2, 10);
  for (int j = 0; j < 10; ++j) {
    s.at(0, 0)[j] = s.at(0, 1)[j] = 0.001f * j;  // layer 0: low scores everywhere
    s.at(1, 0)[j] = 1.0f + j;                   // layer 1: the top of the model
    s.at(1, 1)[j] = 0.5f + j;
    s.at(2, 0)[j] = s.at(2, 1)[j] = 100.0f;     // layer 2: not scored
  }
  std::vector<uint8_t> prot(10, 0);
  prot[9] = 1;  // protected: never counted (it holds the largest scores of layers 0 and 1)
  const std::vector<uint8_t> scored_layers = {1, 1, 0};
  const BudgetPlan p = allocate_global(s, prot, 3, 0.2, scored_layers);
  EXPECT_EQ(p.at(0, 0) + p.at(0, 1) + p.at(1, 0) + p.at(1, 1), 2 * 2 * 3);
  EXPECT_EQ(p.at(2, 0), 0);
  EXPECT_EQ(p.at(2, 1), 0);
  // Top 12 of the 36 unprotected scores of layers 0-1 all lie in layer 1 (18 entries):
  // 6 per head of layer 1; wants 0.6 (the floor) per head of layer 0 and 0.6 + 6 * 0.8 = 5.4
  // per head of layer 1, rounded by largest remainder: 1, 1, 5, 5.
  EXPECT_EQ(p.at(0, 0), 1);
  EXPECT_EQ(p.at(0, 1), 1);
  EXPECT_EQ(p.at(1, 0), 5);
  EXPECT_EQ(p.at(1, 1), 5);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) EXPECT_LE(p.at(l, h), 9);
  // Every layer scored (empty mask): layer 2's equal high scores take its share.
  const BudgetPlan all = allocate_global(s, prot, 3, 0.2, {});
  EXPECT_EQ(sum(all.keep), 3 * 2 * 3);
  EXPECT_GT(all.at(2, 0) + all.at(2, 1), all.at(0, 0) + all.at(0, 1));
  // Budget 0 and budget = everything: no split.
  EXPECT_EQ(sum(allocate_global(s, prot, 0, 0.2, scored_layers).keep), 0);
  const BudgetPlan full = allocate_global(s, prot, 9, 0.2, scored_layers);
  EXPECT_EQ(full.at(0, 1), 9);
  EXPECT_EQ(full.at(2, 1), 0);
  EXPECT_EQ(parse_budget_allocation("global"), BudgetAllocation::Global);
  EXPECT_STREQ(budget_allocation_name(parse_budget_allocation("ada")), "ada");
  EXPECT_THROW(parse_budget_allocation("layers"), Error);
}

TEST(KvBudget, UniformClamps) {
  const BudgetPlan p = allocate_uniform(2, 2, 50, 30);
  for (int64_t k : p.keep) EXPECT_EQ(k, 30);
}


// Default windows and sinks protect at most half the budget; asked-for values are kept; the
// observation window keeps the policy's size at every budget.
TEST(KvBudget, DefaultProtectionIsAtMostHalfTheBudget) {
  PolicyDefaults snap;
  snap.window = 32;
  KvPolicySettings s;
  s.name = "snapkv";
  for (int64_t c : {8, 16, 32, 64, 128, 512}) {
    s.budget = c;
    const ResolvedPolicy r = resolve_policy(s, snap, 4096);
    EXPECT_EQ(r.window, std::min<int64_t>(32, c / 2)) << c;
    EXPECT_EQ(r.observe_window, 32);
    EXPECT_GE(r.scored(), c / 2);
  }
  s.budget = 32;
  s.window = 32;  // asked for: taken as given
  EXPECT_EQ(resolve_policy(s, snap, 4096).window, 32);
  EXPECT_EQ(resolve_policy(s, snap, 4096).scored(), 0);

  PolicyDefaults stream;  // StreamingLLM: sinks 4, the window fills the rest
  stream.sinks = 4;
  stream.window_fills_budget = true;
  KvPolicySettings t;
  t.name = "streaming";
  t.budget = 6;
  const ResolvedPolicy r = resolve_policy(t, stream, 4096);
  EXPECT_EQ(r.sinks, 3);
  EXPECT_EQ(r.window, 3);
  t.budget = 64;
  EXPECT_EQ(resolve_policy(t, stream, 4096).sinks, 4);
  EXPECT_EQ(resolve_policy(t, stream, 4096).window, 60);
}

}  // namespace
}  // namespace glimpse
