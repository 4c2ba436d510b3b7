// glimpse eval: RULER-style long-context evaluation of KV policies (docs/eval.md). Each
// sample is prefilled once; every (policy, budget) branches from that cache. Results are
// cached per (task, length, seed, policy, budget, model) in OUT/cache.jsonl, so running the
// same command again resumes where it stopped.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "eval/report.h"
#include "eval/results.h"
#include "eval/runner.h"
#include "eval/tasks.h"
#include "eval/text_corpus.h"
#include "lookahead/policy_lookahead.h"
#include "runtime/context.h"
#include "tools/commands.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace glimpse {

namespace {

struct Preset {
  std::vector<std::string> tasks;
  std::vector<int> lengths;
  int seeds;
};

Preset preset(const std::string& name) {
  if (name == "quick")
    // Tasks the default 135M model can do at least partly with the full cache at 1-2K
    // (docs/results/fullcache): fewshot_cls, kv_retrieval and cwe sit at the floor.
    return {{"niah_single_noise", "niah_single_text", "niah_multiquery_noise", "niah_multiquery_text",
             "niah_multivalue_text", "vt", "fwe", "open_qa"},
            {1024, 2048},
            1};
  if (name == "full") {
    Preset p{{}, {1024, 2048, 4096, 8192}, 2};
    for (const auto& t : eval::all_tasks()) p.tasks.push_back(t.name);
    return p;
  }
  if (name == "tiny") return {{"niah_single_noise", "vt"}, {512}, 1};
  fail("unknown preset '{}' (tiny, quick, full)", name);
}

}  // namespace

int cmd_eval(int argc, char** argv, int first) {
  EngineParams sp;
  sp.context.n_ctx = 0;
  std::string preset_name = "quick", out_dir, corpus_name = "handbook";
  std::vector<std::string> tasks, policies = {"none", "streaming", "h2o", "snapkv", "pyramidkv", "adakv", "lookahead", "oracle"};
  std::vector<int> lengths, budgets = {32, 64, 128, 256, 512};
  int seeds = -1, seed0 = 1000;
  bool report_only = false;
  KvPolicySettings kv;
  eval::EvalSettings es;
  ArgParser ap("eval", "Evaluate KV policies on RULER-style long-context tasks.");
  add_model_args(ap, sp);
  ap.add({"--preset"}, "NAME", "tiny | quick (about 10 minutes on 2 cores) | full (default: quick)",
         [&](const std::string& v) { preset_name = v; preset(v); });
  ap.add({"--tasks"}, "LIST", "comma-separated tasks (default: the preset's)",
         [&](const std::string& v) {
           tasks = split_list(v);
           for (const auto& t : tasks) eval::task_info(t);
         });
  ap.add({"--lengths"}, "LIST", "prompt lengths in tokens (default: the preset's)",
         [&](const std::string& v) { lengths = parse_int_list("--lengths", v); });
  ap.add({"--seeds"}, "N", "samples per task and length (default: the preset's)",
         [&](const std::string& v) { seeds = parse_int("--seeds", v, 1, 100000); });
  ap.add({"--seed0"}, "N", "first sample seed (default: 1000; training uses other seeds)",
         [&](const std::string& v) { seed0 = parse_int("--seed0", v, 0, 1 << 30); });
  ap.add({"--policies"}, "LIST", "KV policies (default: none,streaming,h2o,snapkv,pyramidkv,adakv,lookahead,oracle)",
         [&](const std::string& v) {
           policies = split_list(v);
           for (const auto& p : policies) make_kv_policy(p);
         });
  ap.add({"--budgets"}, "LIST", "KV budgets per layer and KV head (default: 32,64,128,256,512)",
         [&](const std::string& v) { budgets = parse_int_list("--budgets", v); });
  ap.add({"-o", "--out"}, "DIR", "run directory (default: runs/eval-PRESET); reused to resume",
         [&](const std::string& v) { out_dir = v; });
  ap.add({"--corpus"}, "NAME", "natural text: handbook (debian-handbook) or fortunes",
         [&](const std::string& v) { corpus_name = v; });
  ap.flag({"--report-only"}, "rebuild the report from OUT/cache.jsonl without running",
          [&] { report_only = true; });
  add_kv_args(ap, kv);
  if (!ap.parse(argc, argv, first)) return 0;
  validate_policy_settings(kv);

  const Preset pr = preset(preset_name);
  if (tasks.empty()) tasks = pr.tasks;
  if (lengths.empty()) lengths = pr.lengths;
  if (seeds < 0) seeds = pr.seeds;
  es.query_agnostic = kv.query_agnostic;
  if (out_dir.empty()) out_dir = "runs/eval-" + preset_name + (es.query_agnostic ? "-agnostic" : "");
  es.policies = policies;
  for (int b : budgets) es.budgets.push_back(b);
  es.base = kv;

  std::string command = "glimpse eval";
  for (int i = first; i < argc; ++i) command += std::string(" ") + argv[i];
  if (sp.context.n_ctx == 0) sp.context.n_ctx = *std::max_element(lengths.begin(), lengths.end()) + 64;
  const std::shared_ptr<Engine> engine = Engine::load(sp);
  Context s(engine);
  const std::string model_path = engine->model_path();
  // Results with a non-default KV cache type (-ctk/-ctv) are cached under their own key.
  const bool f16_kv = sp.context.type_k == KvType::F16 && sp.context.type_v == KvType::F16;
  const std::string fp = eval::file_fingerprint(model_path) +
                         (f16_kv ? "" : fmt::format("/k-{}/v-{}", kv_type_name(sp.context.type_k),
                                                    kv_type_name(sp.context.type_v)));
  eval::RunDir dir(out_dir);
  eval::ResultCache cache(dir.path("cache.jsonl"));

  std::set<std::string> need_corpus_tasks;
  for (const auto& t : tasks)
    if (eval::task_info(t).needs_corpus) need_corpus_tasks.insert(t);
  std::optional<eval::TextCorpus> corpus;
  if (!need_corpus_tasks.empty())
    corpus = eval::TextCorpus::load(eval::parse_corpus_source(corpus_name == "handbook" ? "debian-handbook" : corpus_name));

  // Template overhead: tokens the chat template adds around an empty user turn.
  const int64_t reserve = (int64_t)engine->tokenize_prompt("", "", true).size() + 2;
  auto count = [&](std::string_view text) {
    return (int64_t)s.tokenizer().encode(text, false, false).size();
  };

  struct Job { std::string task; int length; uint64_t seed; };
  std::vector<Job> jobs;
  for (const auto& t : tasks)
    for (int len : lengths)
      for (int k = 0; k < seeds; ++k) jobs.push_back({t, len, (uint64_t)(seed0 + k)});

  nlohmann::json config = {{"command", command}, {"model", model_path}, {"model_fingerprint", fp},
                           {"preset", preset_name}, {"tasks", tasks}, {"lengths", lengths},
                           {"seeds", seeds}, {"seed0", seed0}, {"policies", policies},
                           {"budgets", budgets}, {"query_agnostic", es.query_agnostic},
                           {"threads", engine->n_threads()}, {"n_samples", jobs.size()},
                           {"type_k", kv_type_name(sp.context.type_k)}, {"type_v", kv_type_name(sp.context.type_v)},
                           {"corpus", corpus ? corpus->describe() : std::string("none")}};
  // A lookahead result also depends on the module file: its identity joins the model's, so a
  // retrained module is evaluated afresh instead of read back from the cache.
  std::string lookahead_fp;
  if (std::find(policies.begin(), policies.end(), "lookahead") != policies.end()) {
    const std::string module = resolve_lookahead_module_path(model_path, kv.lookahead_module);
    const std::string module_fp = eval::file_fingerprint(module);
    lookahead_fp = fp + "+lookahead:" + module_fp;
    config["lookahead_module"] = module;
    config["lookahead_module_fingerprint"] = module_fp;
  }
  auto key = [&](const Job& j, const std::string& pol, int64_t b) {
    return eval::CacheKey{j.task, j.length, j.seed, pol + (es.query_agnostic ? "/qa" : ""), b,
                          pol == "lookahead" ? lookahead_fp : fp};
  };
  dir.write_config(config);
  if (!report_only) {
    ProgressBar bar((int64_t)jobs.size(), "eval");
    for (const Job& j : jobs) {
      bar.set_status(fmt::format("{} {} #{}", j.task, j.length, j.seed));
      auto done = [&](const std::string& pol, int64_t b) { return cache.contains(key(j, pol, b)); };
      eval::TaskOptions opt;
      opt.target_tokens = j.length;
      opt.seed = j.seed;
      opt.reserve_tokens = reserve;
      opt.count_tokens = count;
      opt.corpus = corpus ? &*corpus : nullptr;
      bool all_done = done("none", 0);
      for (const auto& p : policies)
        if (p != "none")
          for (int b : budgets) all_done = all_done && done(p, b);
      if (!all_done) {
        const eval::Sample sample = eval::generate_sample(j.task, opt);
        for (const auto& r : eval::run_sample(s, sample, es, done)) cache.put(key(j, r.policy, r.budget), r.row);
      }
      bar.add(1);
    }
    bar.finish();
  }

  // Every cached row of this run's grid, in a stable order.
  std::vector<nlohmann::json> rows;
  std::remove(dir.path("predictions.jsonl").c_str());
  for (const Job& j : jobs) {
    std::vector<std::pair<std::string, int64_t>> branches = {{"none", 0}};
    for (const auto& p : policies)
      if (p != "none")
        for (int b : budgets) branches.push_back({p, b});
    for (const auto& [p, b] : branches)
      if (auto r = cache.find(key(j, p, b))) {
        rows.push_back(*r);
        dir.append_prediction(*r);
      }
  }
  const std::string md = eval::write_report(dir, rows, config);
  std::fputs(md.c_str(), stdout);
  std::fprintf(stderr, "glimpse eval: %zu records in %s\n", rows.size(), dir.dir().c_str());
  return 0;
}

}  // namespace glimpse
