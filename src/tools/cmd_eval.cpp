// glimpse eval: RULER-style long-context evaluation of KV policies (docs/eval.md), on
// generated tasks or on the user's own cases (--data FILE.jsonl). Each sample is prefilled
// once; every (policy, budget) branches from that cache. Results are cached per (task,
// length, seed, policy, budget, model, shared settings) in OUT/cache.jsonl, so running the
// same command again resumes where it stopped.
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <cstdio>
#include <set>

#include "eval/data_file.h"
#include "eval/presets.h"
#include "eval/report.h"
#include "eval/results.h"
#include "eval/runner.h"
#include "eval/spec_eval.h"
#include "eval/tasks.h"
#include "eval/text_corpus.h"
#include "lookahead/policy_lookahead.h"
#include "runtime/context.h"
#include "tools/commands.h"
#include "tools/spec_args.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace glimpse {

namespace {

using Preset = eval::EvalPreset;
Preset preset(const std::string& name) { return eval::eval_preset(name); }

// What one eval invocation asks for, defaults filled in from the preset.
struct EvalPlan {
  EngineParams engine;
  std::string preset_name = "quick", out_dir, corpus_name = "default", command = "glimpse eval";
  std::string data_path;                // --data: the user's cases instead of generated tasks
  std::vector<std::string> grid_flags;  // flags of the generated grid that were given
  std::vector<std::string> tasks, policies = {"none", "streaming", "h2o", "snapkv", "pyramidkv", "adakv", "tova", "knorm",
                                             "keydiff", "expected_attention", "pseudoquery", "lookahead", "oracle"};
  std::vector<int> lengths, budgets = {32, 64, 128, 256, 512};
  int seeds = -1, seed0 = eval::kDefaultEvalSeed0;
  int questions = -1;  // per context (ask_question); -1: the preset's
  bool report_only = false;
  KvPolicySettings kv;
  eval::EvalSettings es;
  std::string spec_rows;  // --spec: speculative configurations instead of KV policies
  SpecFlags spec_flags;
};

// Flags into plan; false after --help.
bool parse_eval_args(int argc, char** argv, int first, EvalPlan& plan) {
  plan.engine.context.n_ctx = 0;
  ArgParser ap("eval", "Evaluate KV policies on RULER-style long-context tasks.");
  add_model_args(ap, plan.engine);
  ap.add({"--preset"}, "NAME", "tiny | quick (about 10 minutes on 2 cores) | heldout | parallel (short list and grid tasks) | once (compress once, ask four; query-agnostic) | full (default: quick)",
         [&](const std::string& v) {
           plan.preset_name = v;
           preset(v);
           plan.grid_flags.push_back("--preset");
         });
  ap.add({"--tasks"}, "LIST", "comma-separated tasks (default: the preset's)",
         [&](const std::string& v) {
           plan.tasks = split_list(v);
           for (const auto& t : plan.tasks) eval::task_info(t);
           plan.grid_flags.push_back("--tasks");
         });
  ap.add({"--lengths"}, "LIST", "prompt lengths in tokens (default: the preset's)",
         [&](const std::string& v) {
           plan.lengths = parse_int_list("--lengths", v);
           plan.grid_flags.push_back("--lengths");
         });
  ap.add({"--seeds"}, "N", "samples per task and length (default: the preset's)",
         [&](const std::string& v) {
           plan.seeds = parse_int("--seeds", v, 1, 100000);
           plan.grid_flags.push_back("--seeds");
         });
  ap.add({"--questions"}, "N", "ask N different questions about each context, each its own run "
         "(tasks with a question set: niah_multikey_*, open_qa, doc_facts; default: the preset's)",
         [&](const std::string& v) {
           plan.questions = parse_int("--questions", v, 1, 4);
           plan.grid_flags.push_back("--questions");
         });
  ap.add({"--seed0"}, "N", "first sample seed (default: 1000; training uses other seeds)",
         [&](const std::string& v) {
           plan.seed0 = parse_int("--seed0", v, 0, 1 << 30);
           plan.grid_flags.push_back("--seed0");
         });
  ap.add({"--policies"}, "LIST", "KV policies (default: none,streaming,h2o,snapkv,pyramidkv,adakv,tova,knorm,keydiff,expected_attention,pseudoquery,lookahead,oracle; laq, speckv (--kv-draft), specpc and speckv_pc (--pc-draft) on request)",
         [&](const std::string& v) {
           plan.policies = split_list(v);
           for (const auto& p : plan.policies)
             if (!eval::is_prompt_compression(p)) make_kv_policy(p);
         });
  ap.add({"--budgets"}, "LIST", "KV budgets per layer and KV head (default: 32,64,128,256,512)",
         [&](const std::string& v) { plan.budgets = parse_int_list("--budgets", v); });
  ap.add({"-o", "--out"}, "DIR", "run directory (default: runs/eval-PRESET); reused to resume",
         [&](const std::string& v) { plan.out_dir = v; });
  ap.add({"--corpus"}, "NAME", "evaluation-side text: default (handbook+reference), handbook or reference",
         [&](const std::string& v) {
           plan.corpus_name = v;
           plan.grid_flags.push_back("--corpus");
         });
  ap.add({"--data"}, "FILE", "your own cases, one JSON object per line (docs/eval.md); "
         "replaces the generated tasks", [&](const std::string& v) { plan.data_path = v; });
  ap.flag({"--report-only"}, "rebuild the report from OUT/cache.jsonl without running",
          [&] { plan.report_only = true; });
  ap.flag({"--serial-decode"}, "answer one branch at a time, measuring each branch's decode "
          "speed (default: all branches of a sample decode together; same answers, no decode_tps)",
          [&] { plan.es.serial_decode = true; });
  add_kv_args(ap, plan.kv);
  ap.add({"--spec"}, "ROWS",
         "evaluate speculative decoding instead of KV policies: ';'-separated "
         "MODE[/WEIGHTS][:SOURCES] rows (e.g. 'views:snapkv@256;ngram;tabed:snapkv@256,ngram'); "
         "per task family: accuracy, tokens per target forward, speedup over plain decoding",
         [&](const std::string& v) { plan.spec_rows = v; });
  add_spec_args(ap, plan.spec_flags, /*with_mode=*/false);
  if (!ap.parse(argc, argv, first)) return false;
  validate_policy_settings(plan.kv);
  for (const std::string& p : plan.policies) {  // speckv's draft file, when it is listed
    KvPolicySettings one = plan.kv;
    one.name = p;
    one.budget = 1;  // each branch sets its own budget from --budgets
    if (p == "speckv") validate_policy_settings(one);
  }
  if (plan.kv.prompt_compress != "none")
    fail("eval evaluates prompt compression as branches: --policies specpc,speckv_pc with --pc-draft FNAME");
  for (const std::string& p : plan.policies)
    if (eval::is_prompt_compression(p) && plan.kv.pc_draft.empty())
      fail("--policies {} needs a draft model: --pc-draft FNAME", p);
  if (!plan.spec_rows.empty()) {  // checked before the model loads
    GenerateParams g;
    g.sampling.temp = 0;
    g.kv = plan.kv;
    parse_spec_rows(plan.spec_rows, plan.spec_flags, g);
  }
  if (!plan.data_path.empty() && !plan.grid_flags.empty())
    fail("--data replaces the generated tasks: drop {}", plan.grid_flags.front());

  if (plan.data_path.empty()) {
    const Preset pr = preset(plan.preset_name);
    if (plan.tasks.empty()) plan.tasks = pr.tasks;
    if (plan.lengths.empty()) plan.lengths = pr.lengths;
    if (plan.seeds < 0) plan.seeds = pr.seeds;
    if (plan.questions < 0) plan.questions = pr.questions;
    if (pr.query_agnostic) plan.kv.query_agnostic = true;
    for (const std::string& t : plan.tasks)
      if (eval::task_info(t).questions < plan.questions)
        fail("--questions {}: task {} asks {} question(s) per context", plan.questions, t,
             eval::task_info(t).questions);
  } else {
    plan.preset_name = "data";
    plan.seeds = 0;
    plan.questions = 1;
  }
  plan.es.query_agnostic = plan.kv.query_agnostic;
  if (plan.out_dir.empty())
    plan.out_dir = "runs/eval-" + plan.preset_name + (plan.es.query_agnostic ? "-agnostic" : "") +
                   (plan.spec_rows.empty() ? "" : "-spec");
  plan.es.policies = plan.policies;
  for (int b : plan.budgets) plan.es.budgets.push_back(b);
  plan.es.base = plan.kv;
  for (int i = first; i < argc; ++i) plan.command += std::string(" ") + argv[i];
  // Generated tasks know their lengths; --data cases are as long as their text (n_ctx 0:
  // the model's own context, allocated as it fills).
  if (plan.engine.context.n_ctx == 0 && plan.data_path.empty())
    plan.engine.context.n_ctx = *std::max_element(plan.lengths.begin(), plan.lengths.end()) + 64;
  return true;
}

// One sample to run: generated from (task, length, seed), or a --data case (given); with
// question >= 0, that question of the generated sample's question set.
struct Job {
  std::string task;
  int length;
  uint64_t seed;
  const eval::Sample* given = nullptr;
  int question = -1;
  // The task as results are cached: "<task>#q<question>" for one question of a set.
  std::string cache_task() const {
    return question < 0 ? task : fmt::format("{}#q{}", task, question);
  }
};

// Makes a job's sample: the --data case, or the generated task filled to the job's length
// with the chat template's overhead reserved.
class SampleMaker {
 public:
  SampleMaker(const Context& ctx, const eval::TextCorpus* corpus)
      : ctx_(ctx), corpus_(corpus),
        // Template overhead: tokens the chat template adds around an empty user turn.
        reserve_(ctx.engine().task_prompt_overhead() + 2) {}
  eval::Sample operator()(const Job& j) const {
    if (j.given) return *j.given;
    eval::TaskOptions opt;
    opt.target_tokens = j.length;
    opt.seed = j.seed;
    opt.reserve_tokens = reserve_;
    opt.count_tokens = [this](std::string_view text) {
      return (int64_t)ctx_.tokenizer().encode(text, false, false).size();
    };
    opt.corpus = corpus_;
    const eval::Sample s = eval::generate_sample(j.task, opt);
    return j.question < 0 ? s : eval::ask_question(s, j.question);
  }

 private:
  const Context& ctx_;
  const eval::TextCorpus* corpus_;
  int64_t reserve_;
};

// The (policy, budget) branches of one sample, the full cache first.
std::vector<std::pair<std::string, int64_t>> branches_of(const EvalPlan& plan) {
  std::vector<std::pair<std::string, int64_t>> b = {{"none", 0}};
  for (const auto& p : plan.policies)
    if (eval::is_prompt_compression(p) || kv_policy_info(p).make)
      for (int budget : plan.budgets) b.push_back({p, budget});
  return b;
}

// Runs every job whose branches are not all cached yet, storing each branch's row.
void run_jobs(Context& ctx, const EvalPlan& plan, const std::vector<Job>& jobs,
              const eval::TextCorpus* corpus, eval::ResultCache& cache,
              const std::function<eval::CacheKey(const Job&, const std::string&, int64_t)>& key) {
  const SampleMaker make_sample(ctx, corpus);
  ProgressBar bar((int64_t)jobs.size(), "eval");
  for (const Job& j : jobs) {
    bar.set_status(j.given ? j.given->id : fmt::format("{} {} #{}", j.cache_task(), j.length, j.seed));
    auto done = [&](const std::string& pol, int64_t b) { return cache.contains(key(j, pol, b)); };
    bool all_done = true;
    for (const auto& [p, b] : branches_of(plan)) all_done = all_done && done(p, b);
    if (!all_done) {
      const eval::Sample sample = make_sample(j);
      for (const auto& r : eval::run_sample(ctx, sample, plan.es, done))
        cache.put(key(j, r.policy, r.budget), r.row);
    }
    bar.add(1);
  }
  bar.finish();
}

// --spec: every configuration on every sample (eval/spec_eval.h); rows cached in
// OUT/spec-cache.jsonl by (sample, configuration, draft settings, model), so a rerun resumes.
void run_spec_eval(const EvalPlan& plan, const std::shared_ptr<Engine>& engine, const Context& ctx,
                   const std::vector<Job>& jobs, const eval::TextCorpus* corpus,
                   eval::RunDir& dir, const std::string& model_fp) {
  GenerateParams g;
  g.sampling.temp = 0;
  g.kv = plan.kv;
  std::vector<eval::SpecConfig> configs;
  for (SpecRow& r : resolve_spec_rows(plan.spec_rows, plan.spec_flags, g, plan.engine))
    configs.push_back({r.label, std::move(r.spec)});
  std::vector<std::string> labels = {"plain"};
  for (const eval::SpecConfig& c : configs) labels.push_back(c.label);
  const SpecFlags& f = plan.spec_flags;
  const std::string tag = fmt::format("draft {}..{} p-min {}{} model {}", f.draft_min, f.draft_max,
                                      f.p_min, f.cost_aware ? "" : " no-cost", model_fp);
  eval::ResultCache cache(dir.path("spec-cache.jsonl"));
  auto key = [&](const Job& j, const std::string& label) {
    return eval::CacheKey{j.cache_task(), j.length, j.seed, "spec:" + label, 0, model_fp, tag};
  };
  std::vector<nlohmann::json> rows;
  const SampleMaker make_sample(ctx, corpus);
  ProgressBar bar((int64_t)jobs.size(), "eval --spec");
  for (const Job& j : jobs) {
    const eval::Sample sample = make_sample(j);
    bar.set_status(sample.id);
    auto done = [&](const std::string&, const std::string& label) { return cache.contains(key(j, label)); };
    bool all = done(sample.id, "plain");
    for (const eval::SpecConfig& c : configs) all = all && done(sample.id, c.label);
    if (!all)
      for (const nlohmann::json& r : eval::run_spec_sample(engine, sample, configs, done))
        cache.put(key(j, r.at("label").get<std::string>()), r);
    for (const std::string& label : labels)
      if (auto r = cache.find(key(j, label))) rows.push_back(*r);
    bar.add(1);
  }
  bar.finish();
  const std::string md = eval::spec_report(rows, configs);
  dir.write_text("spec.md", md);
  std::fputs(md.c_str(), stdout);
  std::fprintf(stderr, "glimpse eval: %zu speculative rows in %s\n", rows.size(), dir.dir().c_str());
}

// The --data cases, each checked to fit the context with its answer (errors name the line).
std::vector<eval::Sample> load_cases(const Context& ctx, const std::string& path) {
  std::vector<eval::Sample> cases = eval::load_data_file(path);
  for (eval::Sample& s : cases) {
    s.prompt_tokens = (int64_t)ctx.engine().task_prompt(s.context, s.question).tokens.size();
    const int64_t need = s.prompt_tokens + s.max_new_tokens + 1;
    if (need > ctx.n_ctx())
      fail("{}:{}: case '{}' needs {} positions ({} prompt tokens, {} new), more than the "
           "context size {}; raise -c or shorten it", path, s.meta.value("line", 0), s.id, need,
           s.prompt_tokens, s.max_new_tokens, ctx.n_ctx());
  }
  return cases;
}

// Identity of the model for cache keys: the file, and the KV cache types when not f16
// (results with -ctk/-ctv are cached under their own key).
std::string model_fingerprint(const Engine& engine, const ContextParams& cp) {
  const bool f16_kv = cp.type_k == KvType::F16 && cp.type_v == KvType::F16;
  return eval::file_fingerprint(engine.model_path()) +
         (f16_kv ? "" : fmt::format("/k-{}/v-{}", kv_type_name(cp.type_k), kv_type_name(cp.type_v)));
}

}  // namespace

int cmd_eval(int argc, char** argv, int first) {
  EvalPlan plan;
  if (!parse_eval_args(argc, argv, first, plan)) return 0;
  const std::shared_ptr<Engine> engine = Engine::load(plan.engine);
  preload_drafts(plan.kv, plan.policies);
  Context ctx(engine);
  const std::string model_path = engine->model_path();
  const ContextParams& cp = plan.engine.context;
  const std::string fp = model_fingerprint(*engine, cp);
  std::vector<eval::Sample> cases;
  if (!plan.data_path.empty()) cases = load_cases(ctx, plan.data_path);
  eval::RunDir dir(plan.out_dir);
  eval::ResultCache cache(dir.path("cache.jsonl"));

  bool needs_corpus = false;
  for (const auto& t : plan.tasks) needs_corpus = needs_corpus || eval::task_info(t).needs_corpus;
  std::optional<eval::TextCorpus> corpus;
  if (needs_corpus)
    corpus = plan.corpus_name == "default"
                 ? eval::TextCorpus::load_side(eval::CorpusSide::kEval)
                 : eval::TextCorpus::load(eval::parse_corpus_source(plan.corpus_name), eval::CorpusSide::kEval);

  std::vector<Job> jobs;
  for (const auto& t : plan.tasks)
    for (int len : plan.lengths)
      for (int k = 0; k < plan.seeds; ++k)
        for (int q = 0; q < plan.questions; ++q)
          jobs.push_back({t, len, (uint64_t)(plan.seed0 + k), nullptr, plan.questions > 1 ? q : -1});
  for (const eval::Sample& s : cases) jobs.push_back({s.task, 0, s.seed, &s});

  nlohmann::json config = {{"command", plan.command}, {"model", model_path}, {"model_fingerprint", fp},
                           {"preset", plan.preset_name}, {"tasks", plan.tasks}, {"lengths", plan.lengths},
                           {"seeds", plan.seeds}, {"seed0", plan.seed0}, {"questions", plan.questions},
                           {"policies", plan.policies},
                           {"budgets", plan.budgets}, {"query_agnostic", plan.es.query_agnostic},
                           {"serial_decode", plan.es.serial_decode},
                           {"threads", engine->n_threads()}, {"n_samples", jobs.size()},
                           {"type_k", kv_type_name(cp.type_k)}, {"type_v", kv_type_name(cp.type_v)},
                           {"corpus", corpus ? corpus->describe() : std::string("none")},
                           {"settings", eval::settings_description(plan.es)},
                           {"settings_fingerprint", eval::settings_fingerprint(plan.es)}};
  if (!plan.data_path.empty()) config.update({{"data", plan.data_path}, {"n_ctx", ctx.n_ctx()}});
  // A lookahead result also depends on the module file: its identity joins the model's, so a
  // retrained module is evaluated afresh instead of read back from the cache.
  std::string lookahead_fp;
  if (std::find(plan.policies.begin(), plan.policies.end(), "lookahead") != plan.policies.end()) {
    const std::string module =
        resolve_lookahead_module_path(model_path, plan.kv.lookahead_module, plan.es.query_agnostic);
    const std::string module_fp = eval::file_fingerprint(module);
    lookahead_fp = fp + "+lookahead:" + module_fp;
    config["lookahead_module"] = module;
    config["lookahead_module_fingerprint"] = module_fp;
  }
  // Natural-text samples depend on the corpus (the split changed them): its name joins the key.
  const std::string corpus_tag = corpus ? "+corpus:" + corpus->name() : "";
  const std::string settings_fp = eval::settings_fingerprint(plan.es);
  auto key = [&](const Job& j, const std::string& pol, int64_t b) {
    const bool text_task = !j.given && eval::task_info(j.task).needs_corpus;
    return eval::CacheKey{j.cache_task(), j.length, j.seed, pol + (plan.es.query_agnostic ? "/qa" : ""), b,
                          (pol == "lookahead" ? lookahead_fp : fp) + (text_task ? corpus_tag : ""),
                          settings_fp};
  };
  if (!plan.spec_rows.empty()) {
    config["spec"] = plan.spec_rows;
    dir.write_config(config);
    run_spec_eval(plan, engine, ctx, jobs, corpus ? &*corpus : nullptr, dir, fp);
    return 0;
  }
  dir.write_config(config);
  if (!plan.report_only) run_jobs(ctx, plan, jobs, corpus ? &*corpus : nullptr, cache, key);

  // Every cached row of this run's grid, in a stable order.
  std::vector<nlohmann::json> rows;
  std::remove(dir.path("predictions.jsonl").c_str());
  for (const Job& j : jobs)
    for (const auto& [p, b] : branches_of(plan))
      if (auto r = cache.find(key(j, p, b))) {
        rows.push_back(*r);
        dir.append_prediction(*r);
      }
  const std::string md = eval::write_report(dir, rows, config);
  std::fputs(md.c_str(), stdout);
  std::fprintf(stderr, "glimpse eval: %zu records in %s\n", rows.size(), dir.dir().c_str());
  return 0;
}

}  // namespace glimpse
