// glimpse bench --spec ROWS: speculative decoding beside plain decoding at depth, as rows of
// the bench table ("tg128 @ d8000" plain, then "... spec=tabed(lookahead@256,snapkv@128,ngram)").
//
// Speculation needs real text (drafts predict it), so unlike the other bench tests the depth
// is a document: evaluation-side corpus text (or -f FILE, split at blank lines) of about
// `depth` tokens with a question (--question; "Summarize the text above." by default) as
// Engine::task_prompt renders it, then n greedy tokens. Each repetition runs every row on a fresh context (prefill included,
// not timed), interleaved (plain, spec 1, spec 2, ..., then again) so a noisy machine
// disturbs every row alike; t/s is decode speed (tokens after the first / decode time).
// Every spec row must print the plain row's tokens (greedy, lossless), else the bench fails.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "tools/spec_args.h"

namespace glimpse {

struct SpecBenchPlan {
  std::vector<int> depths, n_gen;
  int reps = 3;
  std::string output = "md";
  // ';'-separated rows MODE[/WEIGHTS][:SOURCES] (spec_args.h), e.g.
  // "views:snapkv@256;ngram;tabed:lookahead@256,ngram".
  std::string rows;
  SpecFlags flags;        // weights, draft lengths, p-min, -md (mode and sources per row)
  std::string text_file;  // -f: depth text (empty: the evaluation corpus)
  std::string question = "Summarize the text above.";  // --question: asked after the text
  KvPolicySettings kv;    // knobs of the views' policies
};

// The rows, checked (Error naming the row) before any model loads.
void check_spec_bench(const SpecBenchPlan& plan);

void run_spec_bench(const std::shared_ptr<Engine>& engine, const EngineParams& ep,
                    const SpecBenchPlan& plan);

}  // namespace glimpse
