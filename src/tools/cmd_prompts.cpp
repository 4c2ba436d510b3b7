// glimpse prompts: writes LookaheadKV training prompts as JSONL (one Sample per line, with
// "context" and "question"), from families and seeds disjoint from the evaluation tasks.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "eval/text_corpus.h"
#include "eval/train_prompts.h"
#include "tools/commands.h"
#include "util/error.h"
#include "util/progress.h"

namespace glimpse {

int cmd_prompts(int argc, char** argv, int first) {
  EngineParams sp;
  std::string out;
  int n = 200, seed = 1;
  eval::TrainSet set = eval::TrainSet::kV1;
  std::vector<int> lengths = {512, 1024, 1536, 2048, 3072, 4096};
  ArgParser ap("prompts", "Write LookaheadKV training prompts (JSONL) disjoint from the evaluation.");
  add_model_args(ap, sp);
  ap.add({"-o", "--out"}, "FILE", "output JSONL file", [&](const std::string& v) { out = v; });
  ap.add({"-n", "--n-prompts"}, "N", "prompts to write (default: 200)",
         [&](const std::string& v) { n = parse_int("-n", v, 1, 10000000); });
  ap.add({"--lengths"}, "LIST", "prompt lengths in tokens (default: 512,1024,1536,2048,3072,4096)",
         [&](const std::string& v) { lengths = parse_int_list("--lengths", v); });
  ap.add({"-s", "--seed"}, "N", "set seed (default: 1)",
         [&](const std::string& v) { seed = parse_int("-s", v, 0, 1 << 30); });
  ap.add({"--set"}, "NAME", "training set: v1 (5 families, the shipped module's) or v2 (11 "
         "families: adds multi-value, two-hop, counting, list extraction, configuration files "
         "and code, chat logs) (default: v1)",
         [&](const std::string& v) { set = eval::parse_train_set(v); });
  if (!ap.parse(argc, argv, first)) return 0;
  if (out.empty()) fail("prompts: -o FILE is required");
  const std::shared_ptr<Engine> s = Engine::load(sp);
  // The training side of the corpus split only (eval/text_corpus.h).
  const eval::TextCorpus handbook = eval::TextCorpus::load(eval::CorpusSource::kHandbook, eval::CorpusSide::kTrain);
  const eval::TextCorpus fortunes = eval::TextCorpus::load(eval::CorpusSource::kFortunes, eval::CorpusSide::kTrain);
  eval::TaskOptions opt;
  opt.seed = (uint64_t)seed;
  opt.reserve_tokens = s->task_prompt_overhead() + 2;
  opt.count_tokens = [&](std::string_view t) { return (int64_t)s->tokenizer().encode(t, false, false).size(); };
  opt.corpus = &handbook;
  std::vector<int64_t> lens(lengths.begin(), lengths.end());
  std::ofstream f(out, std::ios::binary);
  if (!f) fail("cannot write '{}'", out);
  ProgressBar bar(n, "prompts");
  for (int i = 0; i < n; ++i) {
    const eval::Sample smp = eval::make_train_prompt((size_t)i, lens, opt, &fortunes, set);
    nlohmann::json line = smp.to_json();
    // Several questions about the same document (the second set): top-level "questions",
    // what train-lookahead --agnostic reads.
    if (smp.meta.contains("questions")) line["questions"] = smp.meta["questions"];
    f << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    bar.add(1);
  }
  bar.finish();
  if (!f.flush()) fail("cannot write '{}'", out);
  std::fprintf(stderr, "glimpse prompts: %d prompts in %s\n", n, out.c_str());
  return 0;
}

}  // namespace glimpse
