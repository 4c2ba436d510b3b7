// Prompts for training LookaheadKV modules: natural-text instructions, questions and
// summaries over corpus passages, and retrieval of planted facts — with question templates
// and fact phrasings that the evaluation tasks never use, and seeds from a separate range
// (>= kTrainSeedBase), so held-out evaluation stays held out.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/tasks.h"

namespace glimpse::eval {

constexpr uint64_t kTrainSeedBase = 1'000'000'000ull;

// Families: "train_passage_instruct", "train_passage_keyword", "train_planted_facts",
// "train_fortune_pick", "train_records".
const std::vector<std::string>& train_families();

// Sample i of a training set: family and length drawn from (seed, i); opt.target_tokens
// is ignored (lengths come from `lengths`), opt.seed is the set's seed.
Sample make_train_prompt(size_t i, const std::vector<int64_t>& lengths, const TaskOptions& opt,
                         const TextCorpus* fortunes);

}  // namespace glimpse::eval
