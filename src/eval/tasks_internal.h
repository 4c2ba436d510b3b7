// Shared machinery of the task generators (tasks_*.cpp): haystacks made of segments,
// needle insertion by depth, and the search that fills a prompt to its token budget.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/rng.h"
#include "eval/tasks.h"

namespace glimpse::eval::detail {

// A haystack is a list of segments (sentences with their trailing separator: " " inside a
// paragraph, "\n\n" at its end), so that any prefix joined is well-formed text.
using Segments = std::vector<std::string>;

// The repeated-filler haystack ("The grass is green. The sky is blue. ..."), n segments.
const Segments& noise_sentences();  // one cycle of the filler
std::string noise_segment(size_t i);

// Paragraphs split into sentence segments. A sentence ends at . ! ? followed by a space and
// a character that is not a lowercase letter (so "e.g. the" stays whole).
Segments split_sentences(const std::vector<std::string>& paragraphs);

// Sentence segments of a corpus passage with at least min_bytes of text.
Segments corpus_segments(const TaskOptions& opt, uint64_t seed, size_t min_bytes,
                         bool from_doc_start = false, std::vector<size_t>* paragraphs = nullptr);

// One entry of a sample's question set (Sample::meta "questions", ask_question).
nlohmann::json question_entry(const std::string& question, const std::vector<std::string>& answers,
                              const std::vector<std::string>& evidence, int max_new_tokens,
                              Scoring scoring);

struct Insert {
  double depth;      // 0 = before the first segment, 1 = after the last
  std::string text;  // one sentence, without separators
};
// The first n segments joined, with each insert placed at the segment boundary nearest its
// depth (inserts at the same boundary keep their order), then the first partial_words words
// of segment n: the haystack may end mid-sentence, as RULER's token-level cut does, so that
// long natural sentences do not make the length overshoot or undershoot.
std::string join_with_inserts(const Segments& segs, size_t n, const std::vector<Insert>& ins,
                              size_t partial_words = 0);
// Most words in one segment (the fine-unit range for partial_words).
size_t max_segment_words(const Segments& segs);

// Tokens the prompt may use: target - reserve - max_new_tokens.
int64_t prompt_budget(const TaskOptions& opt, int max_new_tokens);

// Builds the sample with n haystack units and m fine padding units (m is 0 unless the task
// declares fine units; they exist where a unit is too coarse to land within 2%).
using Builder = std::function<Sample(size_t n, size_t m)>;

struct FitLimits {
  size_t n_max = SIZE_MAX;  // units available (corpus text); more is an error
  size_t m_max = 0;         // fine units available
  size_t n_probe = 16;      // first measured size (extrapolated from)
};

// Largest n (then m) whose prompt fits the budget, by extrapolation and bisection with
// few count_tokens calls. Assumes the count grows with n (it may wobble by a few tokens:
// the result is always checked to fit). Fills prompt_tokens, target_tokens, seed and id.
Sample fit_to_budget(const Builder& build, const TaskOptions& opt, std::string_view task,
                     int max_new_tokens, const FitLimits& lim);

// A passage that opens a corpus document, long enough for the prompt budget of a task
// answering in max_new_tokens: its sentence segments and the paragraphs they came from.
struct DocPassage {
  Segments segs;
  std::vector<size_t> paragraphs;  // indices into opt.corpus->paragraphs()
};
DocPassage doc_passage(const TaskOptions& opt, uint64_t seed, int max_new_tokens);

// proto with its context = the passage's first segments (inserts placed by depth), cut at a
// sentence and padded by words to the token budget (fit_to_budget over segments, then words).
Sample fit_doc_passage(const Sample& proto, const Segments& segs, const std::vector<Insert>& ins,
                       const TaskOptions& opt, std::string_view task);

// The ParallelBench-style tasks in order: (name, one-line summary).
const std::vector<std::pair<std::string_view, std::string_view>>& parallel_task_summaries();

// Depths for k needles: evenly spread bands with jitter, in random order, so one seed
// covers the whole range and different seeds move the needles.
std::vector<double> needle_depths(Rng& rng, size_t k);

// Generators of each family (dispatch in tasks.cpp).
Sample gen_niah(std::string_view task, const TaskOptions& opt);
Sample gen_vt(std::string_view task, const TaskOptions& opt);
Sample gen_cwe(std::string_view task, const TaskOptions& opt);
Sample gen_fwe(std::string_view task, const TaskOptions& opt);
Sample gen_kv(std::string_view task, const TaskOptions& opt);
Sample gen_fewshot(std::string_view task, const TaskOptions& opt);
Sample gen_open(std::string_view task, const TaskOptions& opt);
Sample gen_doc(std::string_view task, const TaskOptions& opt);
Sample gen_parallel(std::string_view task, const TaskOptions& opt);  // tasks_parallel.cpp

}  // namespace glimpse::eval::detail
