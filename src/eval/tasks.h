// RULER-style long-context evaluation samples (see docs/eval.md).
//
// A sample is plain text: the runner renders `context + "\n\n" + question` as one user
// message of the chat template, generates at most max_new_tokens greedily, and scores the
// output with the sample's scoring kind (metrics.h). Every generator is deterministic in
// (task, target_tokens, seed): the same triple gives the same bytes on every platform
// (rng.h), and the text corpus, when a task uses one, is part of the input.
//
// Length: the prompt (context + "\n\n" + question), as measured by count_tokens, is filled
// to budget = target_tokens - reserve_tokens - max_new_tokens, landing at most
// 2% of target_tokens below it (the haystack grows in sentences, words or list items, the
// largest ~20 tokens). So template + prompt + answer never exceed target_tokens.
// reserve_tokens stands for what the chat template adds; the runner should pass the
// template's real overhead (tokens of the template around an empty user message).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace glimpse::eval {

class TextCorpus;

// How a prediction is scored (metrics.h).
enum class Scoring {
  kMatchAll,   // fraction of `answers` found in the prediction (all must be returned)
  kMatchPart,  // 1 if any of `answers` is found (alternatives)
  kOpenEnded,  // no reference answer: compared later with the full-cache output
};
std::string_view scoring_name(Scoring s);  // "match_all", "match_part", "open_ended"
Scoring parse_scoring(std::string_view name);  // throws Error on an unknown name

struct Sample {
  std::string task;      // e.g. "niah_single_noise"
  std::string id;        // "<task>/<target_tokens>/<seed>"
  std::string context;
  std::string question;
  std::vector<std::string> answers;  // empty for kOpenEnded
  int max_new_tokens = 32;
  Scoring scoring = Scoring::kMatchAll;
  int64_t target_tokens = 0;
  uint64_t seed = 0;
  int64_t prompt_tokens = 0;  // count_tokens(prompt()) when generated
  nlohmann::json meta = nlohmann::json::object();  // task details: needle depths, keys, ...
  // Facts the answer needs, each a string occurring verbatim in the context (the inserted
  // needles); empty where the task has none to point at (evidence recall is then n/a).
  std::vector<std::string> evidence;

  std::string prompt() const { return context + "\n\n" + question; }
  nlohmann::json to_json() const;
  static Sample from_json(const nlohmann::json& j);
};

using TokenCounter = std::function<int64_t(std::string_view)>;

struct TaskOptions {
  int64_t target_tokens = 4096;  // 1024, 2048, 4096, 8192 in the standard grid
  uint64_t seed = 0;
  int64_t reserve_tokens = 32;   // chat template overhead (see the header comment)
  TokenCounter count_tokens;     // required
  // Required by the *_text, open_* and doc_* tasks; must be an evaluation-side corpus.
  const TextCorpus* corpus = nullptr;
};

struct TaskInfo {
  std::string name;
  std::string family;    // "niah", "vt", "cwe", "fwe", "kv", "fewshot", "open", "doc"
  bool needs_corpus = false;
  std::string summary;
};

// Every task, in a fixed order:
//   niah_{single,multikey,multivalue,multiquery}_{noise,text}, vt, cwe, fwe, kv_retrieval,
//   fewshot_cls, open_summary, open_qa, doc_fact, doc_multifact.
const std::vector<TaskInfo>& all_tasks();
const TaskInfo& task_info(std::string_view name);  // throws Error on an unknown name

// One sample. Throws Error on an unknown task, a missing corpus or counter, or a target
// too small to hold the task's fixed parts.
Sample generate_sample(std::string_view task, const TaskOptions& opt);

}  // namespace glimpse::eval
