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
  // ParallelBench-style (tasks_parallel.cpp): the prediction's last [...] list, or its last
  // four grid rows; `answers` carry what each check needs (metrics.h).
  kListExact,       // the list equals `answers`
  kListShuffle,     // same multiset as `answers` (the input), another order
  kListInsertAny,   // answers = input + [item]: the list minus one `item` is the input
  kListRemoveAny,   // answers = input: the list is the input with one entry left out
  kListReplaceAny,  // answers = input + [item]: one position of the input changed to `item`
  kLatinSquare,     // answers = 4 rows "A,.,.,D": a 4x4 Latin square keeping the givens
  kGridExact,       // answers = the 4 solution rows "1,2,3,4"
};
// "match_all", "match_part", "open_ended", "list_exact", "list_shuffle", "list_insert_any",
// "list_remove_any", "list_replace_any", "latin_square", "grid_exact"
std::string_view scoring_name(Scoring s);
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
  // Task details: needle depths, keys, ... Tasks with a question set (TaskInfo::questions > 1)
  // list here, under "questions", every question about this context as objects {question,
  // answers, evidence, max_new_tokens, scoring}; the first is the sample's own.
  nlohmann::json meta = nlohmann::json::object();
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
  std::string family;    // "niah", "vt", "cwe", "fwe", "kv", "fewshot", "open", "doc",
                         // "waiting_line", "puzzle"
  bool needs_corpus = false;
  std::string summary;
  bool fixed_length = false;  // short prompts of their own size: target lengths do not apply
  // Different questions each sample can ask about one context ("compress once, ask many":
  // ask_question); 1 for a single question.
  int questions = 1;
  // Only in the compress-once preset (`once`), not in heldout/full: adding it there would
  // change those presets' prompt sets and their cached results.
  bool once_only = false;
};

// Every task, in a fixed order:
//   niah_{single,multikey,multivalue,multiquery}_{noise,text}, vt, cwe, fwe, kv_retrieval,
//   fewshot_cls, open_summary, open_qa, doc_fact, doc_multifact, doc_facts (compress-once
//   only), then the ParallelBench-style
//   wl_{copy,sort,reverse,shuffle,insert_index,remove_index,replace_index,insert_random,
//   remove_random,replace_random}, latin_square, sudoku (fixed_length).
const std::vector<TaskInfo>& all_tasks();
const TaskInfo& task_info(std::string_view name);  // throws Error on an unknown name

// One sample. Throws Error on an unknown task, a missing corpus or counter, or a target
// too small to hold the task's fixed parts.
Sample generate_sample(std::string_view task, const TaskOptions& opt);

// The sample asking question q of its task's question set (meta "questions"): the same
// context bytes, that question's text, answers, evidence, answer length and scoring; id
// "<id>/q<q>" and meta "question_index" = q. Throws Error when the sample has no question q.
Sample ask_question(const Sample& s, int q);

}  // namespace glimpse::eval
