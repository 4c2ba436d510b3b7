// Helpers shared by the training-prompt families of both sets (train_prompts.cpp,
// train_prompts_v2.cpp). Training side only: the names, value formats and depths here are
// not the evaluation tasks' (train_prompts_test.cpp, disjointness_test.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "eval/rng.h"
#include "eval/tasks.h"

namespace glimpse::eval {
class TextCorpus;
}

namespace glimpse::eval::detail {

// n people "Given Family", no two sharing either name.
std::vector<std::string> distinct_people(Rng& rng, size_t n);
// Depths of k facts: independent draws in [0.05, 0.95], in reading order (facts may
// cluster; evaluation needles get one band each, in random order).
std::vector<double> train_fact_depths(Rng& rng, size_t k);
// n lines "Record 17: a crimson kayak, stored in aisle 42, weight 310 grams.\n".
std::vector<std::string> train_record_lines(Rng& rng, size_t n);

// The families the second set adds to the first set's five (train_prompts.h).
const std::vector<std::string>& train_v2_new_families();
// One sample of such a family: proto carries max_new_tokens; opt the length, seed and the
// training-side handbook; fortunes the training-side fortunes (null: the handbook stands in
// for the chat lines). meta["questions"]: several questions about the same document, the
// asked one first, drawn from qrng beyond what the document needs. Returns the fitted
// sample (finish() names it).
Sample gen_train_v2(std::string_view family, const TaskOptions& opt, const TextCorpus* fortunes,
                    Rng& rng, Rng& qrng, const Sample& proto);

}  // namespace glimpse::eval::detail
