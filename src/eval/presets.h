// The named task grids of `glimpse eval --preset` (tools/cmd_eval.cpp), here so that tests
// can generate exactly the prompts a preset evaluates (disjointness_test.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace glimpse::eval {

// Sample seeds of an evaluation start here by default (training seeds: train_prompts.h).
constexpr int kDefaultEvalSeed0 = 1000;

struct EvalPreset {
  std::vector<std::string> tasks;
  std::vector<int> lengths;  // target tokens
  int seeds;                 // per task and length, from the first seed
};

// tiny | quick | heldout | full; throws Error on another name.
EvalPreset eval_preset(std::string_view name);

}  // namespace glimpse::eval
