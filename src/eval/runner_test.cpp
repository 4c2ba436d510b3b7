#include "eval/runner.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>

namespace glimpse::eval {
namespace {

TEST(EvalRunner, TokenF1CountsSharedWords) {
  EXPECT_DOUBLE_EQ(token_f1("the cat sat", "the cat sat"), 1.0);
  EXPECT_DOUBLE_EQ(token_f1("", ""), 1.0);
  EXPECT_DOUBLE_EQ(token_f1("dog", ""), 0.0);
  EXPECT_DOUBLE_EQ(token_f1("a b", "c d"), 0.0);
  // 2 shared of 3 predicted and 4 reference words: P = 2/3, R = 1/2, F1 = 4/7.
  EXPECT_NEAR(token_f1("The cat ran", "the cat sat down"), 4.0 / 7.0, 1e-12);
  // Repeated words count once per occurrence in the reference.
  EXPECT_NEAR(token_f1("cat cat cat", "cat"), 0.5, 1e-12);
  // Case and whitespace do not matter; word order does not either.
  EXPECT_DOUBLE_EQ(token_f1("Sat  THE\ncat", "the cat sat"), 1.0);
  // Punctuation stays part of a word: "cat." is not "cat". P = 1/2, R = 1/2.
  EXPECT_NEAR(token_f1("the cat.", "the cat"), 0.5, 1e-12);
  // Symmetric in its arguments: P and R swap.
  EXPECT_NEAR(token_f1("the cat sat down", "The cat ran"), 4.0 / 7.0, 1e-12);
}

// The settings fingerprint: equal settings give equal keys; every shared knob changes it.
TEST(EvalRunner, SettingsFingerprintCoversEverySharedKnob) {
  EvalSettings base;
  base.policies = {"snapkv"};
  base.budgets = {64};
  const std::string fp = settings_fingerprint(base);
  EXPECT_EQ(fp.rfind("v" + std::to_string(kEvalSemanticsVersion) + "-", 0), 0u) << fp;
  EXPECT_EQ(fp.size(), 2 + std::to_string(kEvalSemanticsVersion).size() + 16);
  // Stored in result caches: the default settings' value must not drift by accident.
  EXPECT_EQ(settings_description(base),
            "window=default sinks=default pool_kernel=default pool=default reduce=mean "
            "query_agnostic=0 ada_alpha=0.2 pyramid_beta=20 seed=0 oracle_max_new=128 laq_pseudo=8 "
            "ea_future=512 ea_covariance=1 ea_vnorm=1 ea_epsilon=0");
  // What each branch sets for itself does not enter it: the policy list, budgets, name,
  // budget, ratio, module path.
  EvalSettings same = base;
  same.policies = {"h2o", "adakv"};
  same.budgets = {32, 128};
  same.base.name = "h2o";
  same.base.budget = 99;
  same.base.ratio = 0.5;
  same.base.lookahead_module = "/elsewhere.gguf";
  EXPECT_EQ(settings_fingerprint(same), fp);
  const std::vector<std::pair<const char*, std::function<void(EvalSettings&)>>> knobs = {
      {"window", [](EvalSettings& e) { e.base.window = 16; }},
      {"sinks", [](EvalSettings& e) { e.base.sinks = 4; }},
      {"pool kernel", [](EvalSettings& e) { e.base.pool_kernel = 5; }},
      {"pool", [](EvalSettings& e) { e.base.pool = PoolKind::Avg; }},
      {"reduce", [](EvalSettings& e) { e.base.reduce = GroupReduce::Max; }},
      {"query-agnostic", [](EvalSettings& e) { e.query_agnostic = true; }},
      {"ada alpha", [](EvalSettings& e) { e.base.ada_alpha = 0.3; }},
      {"pyramid beta", [](EvalSettings& e) { e.base.pyramid_beta = 10; }},
      {"seed", [](EvalSettings& e) { e.base.seed = 1; }},
      {"oracle n", [](EvalSettings& e) { e.base.oracle_max_new = 64; }},
      {"laq pseudo", [](EvalSettings& e) { e.base.laq_pseudo = 4; }},
      {"allocation", [](EvalSettings& e) { e.base.allocation = BudgetAllocation::Global; }},
      {"pc draft", [](EvalSettings& e) { e.base.pc_draft = "/draft.gguf"; }},
      {"pc kernel", [](EvalSettings& e) {
         e.base.pc_draft = "/draft.gguf";
         e.base.pc_kernel = 16;
       }}};
  std::set<std::string> seen = {fp};
  for (const auto& [name, set] : knobs) {
    EvalSettings e = base;
    set(e);
    EXPECT_TRUE(seen.insert(settings_fingerprint(e)).second) << name;
  }
  // An explicit value equal to a policy's default is still a different request.
  EvalSettings w0 = base;
  w0.base.window = 0;
  EXPECT_NE(settings_fingerprint(w0), fp);
}

}  // namespace
}  // namespace glimpse::eval
