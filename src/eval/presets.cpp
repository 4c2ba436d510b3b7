#include "eval/presets.h"

#include "eval/tasks.h"
#include "util/error.h"

namespace glimpse::eval {

EvalPreset eval_preset(std::string_view name) {
  if (name == "quick")
    // Tasks the default 135M model can do at least partly with the full cache at 1-2K
    // (docs/results/fullcache): fewshot_cls, kv_retrieval and cwe sit at the floor.
    return {{"niah_single_noise", "niah_single_text", "niah_multiquery_noise", "niah_multiquery_text",
             "niah_multivalue_text", "vt", "fwe", "open_qa", "doc_fact"},
            {1024, 2048},
            1};
  if (name == "full" || name == "heldout") {
    // full: every task x 4 lengths x 2 seeds. heldout: the same with 3 seeds, so that it
    // has >= 200 prompts (17 tasks x 4 x 3 = 204) over all 8 families, every one on the
    // evaluation side of the corpus split (text_corpus.h).
    // The short ParallelBench-style tasks (fixed_length) are not long-context tasks: they
    // have their own preset.
    EvalPreset p{{}, {1024, 2048, 4096, 8192}, name == "full" ? 2 : 3};
    for (const auto& t : all_tasks())
      if (!t.fixed_length && !t.once_only) p.tasks.push_back(t.name);
    return p;
  }
  if (name == "once") {
    // 4 tasks x 3 lengths x 2 seeds = 24 documents, 4 questions each: 96 answers per policy
    // and budget. Natural text (niah_multikey_text, doc_facts, open_qa) and filler.
    EvalPreset p{{"niah_multikey_noise", "niah_multikey_text", "doc_facts", "open_qa"},
                 {2048, 4096, 8192}, 2};
    p.questions = 4;
    p.query_agnostic = true;
    return p;
  }
  if (name == "parallel") {
    // The ParallelBench-style tasks (tasks_parallel.cpp), 10 seeds each: 120 short prompts
    // (their length does not depend on the target; one nominal length).
    EvalPreset p{{}, {1024}, 10};
    for (const auto& t : all_tasks())
      if (t.fixed_length) p.tasks.push_back(t.name);
    return p;
  }
  if (name == "tiny") return {{"niah_single_noise", "vt"}, {512}, 1};
  fail("unknown preset '{}' (tiny, quick, heldout, parallel, once, full)", name);
}

}  // namespace glimpse::eval
