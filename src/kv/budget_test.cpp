#include "kv/budget.h"
#include "kv/policy.h"

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
