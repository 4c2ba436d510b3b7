// Held-out evaluation is held out: no prompt of the default training set shares a 64-byte
// span with any prompt of the evaluation presets.
//
// Training set: what scripts/train-lookahead.sh writes (train.jsonl: 320 prompts at
// 512-2048 tokens, set seed 1; heldout.jsonl: 24 at 1024-2048, seed 2) and the default of
// `glimpse prompts` (200 at 512-4096, seed 1). Evaluation: every sample of the quick,
// heldout and parallel presets and every question of the compress-once preset (`once`;
// eval/presets.h) from the default first seed. Prompts are context + "\n\n" + question,
// as the runner sends them (the chat template around them is the same on both sides and is
// not part of the check). With the model file the prompts are the
// exact ones the tools produce (its tokenizer and chat-template overhead); without it a
// byte-based counter stands in, which moves the cut points but not the sources.
//
// Every 64-byte window of the training prompts goes into a rolling-hash index
// (span_index.h); each evaluation prompt is scanned, and a hash hit is confirmed byte for
// byte; a failure names both prompts and the shared span.
#include <gtest/gtest.h>

#include <set>

#include "eval/presets.h"
#include "eval/span_index.h"
#include "eval/tasks.h"
#include "eval/text_corpus.h"
#include "eval/train_prompts.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse::eval {
namespace {

struct Prompt {
  std::string id, text;
};

struct TrainPromptSet {
  uint64_t seed;
  int n;
  std::vector<int64_t> lengths;
  TrainSet set = TrainSet::kV1;
};

TEST(HeldOut, TrainingAndEvaluationPromptsShareNo64ByteSpan) {
  std::unique_ptr<TextCorpus> train, fortunes, eval;
  try {
    train = std::make_unique<TextCorpus>(TextCorpus::load(CorpusSource::kHandbook, CorpusSide::kTrain));
    fortunes = std::make_unique<TextCorpus>(TextCorpus::load(CorpusSource::kFortunes, CorpusSide::kTrain));
    eval = std::make_unique<TextCorpus>(TextCorpus::load_side(CorpusSide::kEval));
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  // The tools' token counter and template overhead (cmd_prompts.cpp, cmd_eval.cpp).
  std::shared_ptr<Engine> engine;
  TaskOptions base;
  base.count_tokens = [](std::string_view s) { return ((int64_t)s.size() + 3) / 4; };
  if (testing::exists(testing::model_path())) {
    EngineParams ep;
    ep.model_path = testing::model_path();
    ep.n_threads = 1;
    engine = Engine::load(ep);
    base.reserve_tokens = engine->task_prompt_overhead() + 2;
    base.count_tokens = [&](std::string_view s) {
      return (int64_t)engine->tokenizer().encode(s, false, false).size();
    };
  } else {
    std::printf("[ note     ] model not found (%s): a byte counter stands in for the tokenizer\n",
                testing::model_path().c_str());
  }
  Stopwatch sw;

  std::vector<Prompt> train_prompts;
  const TrainPromptSet sets[] = {{1, 320, {512, 1024, 1536, 2048}},  // scripts/train-lookahead.sh
                           {2, 24, {1024, 2048}},
                           {1, 200, {512, 1024, 1536, 2048, 3072, 4096}},  // glimpse prompts
                           // glimpse prompts --set v2 -n 1200 -s 3: the second set
                           {3, 1200, {512, 1024, 1536, 2048, 3072, 4096}, TrainSet::kV2}};
  for (const TrainPromptSet& set : sets) {
    TaskOptions o = base;
    o.seed = set.seed;
    o.corpus = train.get();
    for (int i = 0; i < set.n; ++i) {
      const Sample s = make_train_prompt((size_t)i, set.lengths, o, fortunes.get(), set.set);
      train_prompts.push_back({fmt::format("set {} #{} ({})", set.seed, i, s.id), s.prompt()});
      if (s.meta.contains("questions"))  // the other questions about the same document
        for (const auto& q : s.meta["questions"])
          train_prompts.push_back({fmt::format("set {} #{} ({}) question", set.seed, i, s.id),
                                   q.get<std::string>()});
    }
  }
  std::vector<std::string_view> views;
  size_t train_bytes = 0;
  for (const Prompt& p : train_prompts) views.push_back(p.text), train_bytes += p.text.size();
  const SpanIndex index(std::move(views), 64);
  const double train_ms = sw.ms();

  std::set<std::string> done;
  size_t n_eval = 0, eval_bytes = 0;
  std::set<std::string> families;
  for (const char* name : {"quick", "heldout", "parallel", "once"}) {
    const EvalPreset pr = eval_preset(name);
    for (const std::string& task : pr.tasks)
      for (int len : pr.lengths)
        for (int k = 0; k < pr.seeds; ++k) {
          TaskOptions o = base;
          o.target_tokens = len;
          o.seed = (uint64_t)(kDefaultEvalSeed0 + k);
          o.corpus = eval.get();
          const Sample generated = generate_sample(task, o);
          for (int q = 0; q < pr.questions; ++q) {  // each question of a compress-once set
            const Sample s = pr.questions > 1 ? ask_question(generated, q) : generated;
            if (!done.insert(s.id).second) continue;  // quick's samples are heldout's too
            families.insert(task_info(task).family);
            const std::string text = s.prompt();
            ++n_eval, eval_bytes += text.size();
            if (const auto hit = index.first_shared(text))
              ADD_FAILURE() << s.id << " shares 64 bytes with training prompt "
                            << train_prompts[hit->text].id << " at offset " << hit->offset << ": \""
                            << text.substr(hit->offset, 64) << "\"";
          }
        }
  }
  EXPECT_GE(n_eval, 200u);
  EXPECT_GE(families.size(), 8u);
  std::printf("[ heldout  ] %zu training prompts (%.1f MB, %zu distinct windows, %.0f s), "
              "%zu evaluation prompts in %zu families (%.1f MB, %.0f s)\n",
              train_prompts.size(), train_bytes / 1e6, index.distinct_windows(), train_ms / 1e3,
              n_eval, families.size(), eval_bytes / 1e6, (sw.ms() - train_ms) / 1e3);
}

}  // namespace
}  // namespace glimpse::eval
