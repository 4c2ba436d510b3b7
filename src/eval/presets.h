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
  // Questions asked about each sample's context (ask_question), each its own run; > 1 only
  // for tasks with a question set.
  int questions = 1;
  // Compress before the question is read (a document cache's setting): the preset means it.
  bool query_agnostic = false;
};

// tiny | quick | heldout | parallel | once | full; throws Error on another name.
//   once: compress once, ask four. Every document is compressed query-agnostically and asked
//         four different questions (needles at four depths, four facts of four kinds, or a
//         summary and questions about the start and the end of a passage).
EvalPreset eval_preset(std::string_view name);

}  // namespace glimpse::eval
