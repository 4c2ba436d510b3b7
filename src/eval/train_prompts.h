// Prompts for training LookaheadKV modules: natural-text instructions, questions and
// summaries over corpus passages, and retrieval of planted facts. Held-out evaluation
// stays held out by construction: the text is the training side of the corpus split
// (handbook pages of the training half, fortunes; text_corpus.h), the question templates,
// fact phrasings, names, value formats and depths are the training side's own, and seeds
// come from a separate range (>= kTrainSeedBase). disjointness_test.cpp proves that the
// default training set shares no 64-byte span with the evaluation presets' prompts.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/tasks.h"

namespace glimpse::eval {

constexpr uint64_t kTrainSeedBase = 1'000'000'000ull;

// The first set (the shipped v1 module's): "train_passage_instruct", "train_passage_keyword",
// "train_planted_facts", "train_fortune_pick", "train_records", prompts room for 128 answer
// tokens. The second adds "train_multi_value", "train_two_hop", "train_count",
// "train_extract_list", "train_config", "train_dialogue" (train_prompts_v2.cpp) and leaves
// room for 256.
enum class TrainSet { kV1, kV2 };
TrainSet parse_train_set(const std::string& name);  // "v1" | "v2"; Error otherwise
const std::vector<std::string>& train_families(TrainSet set = TrainSet::kV1);

// Sample i of a training set: family and length drawn from (seed, i); opt.target_tokens
// is ignored (lengths come from `lengths`), opt.seed is the set's seed. opt.corpus (the
// handbook) and fortunes must be training-side corpora; Error otherwise. The first set's
// samples are unchanged by the second's existence.
Sample make_train_prompt(size_t i, const std::vector<int64_t>& lengths, const TaskOptions& opt,
                         const TextCorpus* fortunes, TrainSet set = TrainSet::kV1);

}  // namespace glimpse::eval
