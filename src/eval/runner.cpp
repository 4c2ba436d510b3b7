#include "eval/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "eval/metrics.h"
#include "eval/retention.h"
#include "kv/attention_scores.h"
#include "kv/evict.h"
#include "kv/policy_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/timer.h"

namespace glimpse::eval {

namespace {

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> w;
  std::istringstream in(normalize_answer(text));
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

}  // namespace

double token_f1(std::string_view prediction, std::string_view reference) {
  const auto p = words(prediction), r = words(reference);
  if (p.empty() && r.empty()) return 1.0;
  if (p.empty() || r.empty()) return 0.0;
  std::map<std::string, int> cnt;
  for (const auto& x : r) ++cnt[x];
  int common = 0;
  for (const auto& x : p)
    if (cnt[x]-- > 0) ++common;
  if (common == 0) return 0.0;
  const double prec = (double)common / p.size(), rec = (double)common / r.size();
  return 2 * prec * rec / (prec + rec);
}

std::string settings_description(const EvalSettings& cfg) {
  // A new field of KvPolicySettings must be added here (or said to be per branch), and
  // kEvalSemanticsVersion bumped if it changes what existing keys mean.
  static_assert(sizeof(KvPolicySettings) == 168, "KvPolicySettings changed: update settings_description");
  const KvPolicySettings& k = cfg.base;
  auto opt = [](auto v) { return v < 0 ? std::string("default") : fmt::format("{}", v); };
  return fmt::format(
      "window={} sinks={} pool_kernel={} pool={} reduce={} query_agnostic={} ada_alpha={} "
      "pyramid_beta={} seed={} oracle_max_new={} laq_pseudo={} ea_future={} ea_covariance={} "
      "ea_vnorm={} ea_epsilon={}",
      opt(k.window), opt(k.sinks), opt(k.pool_kernel),
      k.pool ? pool_kind_name(*k.pool) : "default", group_reduce_name(k.reduce),
      cfg.query_agnostic ? 1 : 0, k.ada_alpha, k.pyramid_beta, k.seed, k.oracle_max_new,
      k.laq_pseudo, k.ea_future, k.ea_covariance ? 1 : 0, k.ea_vnorm ? 1 : 0, k.ea_epsilon);
}

std::string settings_fingerprint(const EvalSettings& cfg) {
  return fmt::format("v{}-{:016x}", kEvalSemanticsVersion, fnv1a(settings_description(cfg)));
}

namespace {

// The full-cache reference of a sample: the greedy answer, the logits it was chosen from and
// its attention over the compressed region (the oracle's scores).
struct Reference {
  GreedyRun answer;
  std::string text;
  KvScores oracle;
  size_t kv_bytes = 0;
  double decode_tps = 0;
};

Reference full_cache_reference(const Context& base, const std::vector<int32_t>& suffix,
                               int64_t n_compressed, int max_new, GroupReduce reduce) {
  const ModelConfig& mc = base.model().config();
  std::unique_ptr<Context> full = base.fork();
  if (!suffix.empty()) full->prefill(suffix, nullptr);
  AttentionRecorder rec(mc, n_compressed, full->n_past(), INT32_MAX, QueryReduce::Sum);
  Reference ref;
  GreedyOptions g;
  g.max_new = max_new;
  g.feed_last = false;
  g.keep_rows = true;
  ref.answer = full->greedy(g, &rec);
  ref.text = base.tokenizer().decode(ref.answer.tokens);
  std::vector<float> acc = rec.acc();
  const int n_queries = std::max(1, ref.answer.steps);
  for (float& x : acc) x /= (float)n_queries;
  ref.oracle = reduce_query_heads(acc, mc.n_layer, mc.n_head, mc.n_kv_head, n_compressed, 1,
                                  PoolKind::None, reduce);
  ref.kv_bytes = full->cache().resident_bytes();
  // The recorder's scoring time is the oracle's cost, not the full cache's decode time.
  const double decode_ms = std::max(1e-3, ref.answer.decode_ms - rec.ms());
  ref.decode_tps = ref.answer.steps > 0 ? ref.answer.steps * 1000.0 / decode_ms : 0;
  return ref;
}

// Teacher-forced along the reference answer from ctx (the branch right before the answer):
// mean KL and top-1 agreement of each next-token distribution.
std::pair<double, double> teacher_forced_fidelity(Context& ctx, const Reference& ref) {
  const std::vector<std::vector<float>>& rows = ref.answer.rows;
  if (rows.empty()) return {0.0, 0.0};
  FidelityMean fid;
  fid.add(rows[0], ctx.logits());
  if (rows.size() > 1) {
    const std::vector<int32_t> forced(ref.answer.tokens.begin(),
                                      ref.answer.tokens.begin() + (rows.size() - 1));
    const size_t V = (size_t)ctx.model().config().n_vocab;
    ctx.prefill(forced, [&](int64_t first, const float* l, int64_t n) {
      for (int64_t i = 0; i < n; ++i) fid.add(rows[first + i + 1], std::span<const float>(l + i * V, V));
    });
  }
  return {fid.kl(), fid.top1()};
}

// What every branch of one sample shares: the token split, the prefill's cost, the
// full-cache reference and the evidence tokens.
struct SampleRun {
  explicit SampleRun(const Sample& s) : sample(s) {}
  const Sample& sample;
  std::vector<int32_t> context, suffix;  // compressed entries / the rest of the prompt
  int64_t n_prompt = 0;
  double prefill_ms = 0;
  Reference ref;
  std::optional<std::vector<int64_t>> evidence;  // nullopt: n/a
};

// The row fields every branch shares.
nlohmann::json base_row(const SampleRun& s, const std::string& policy, int64_t budget) {
  return {{"task", s.sample.task}, {"id", s.sample.id}, {"length", s.sample.target_tokens},
          {"seed", s.sample.seed}, {"policy", policy}, {"budget", budget},
          {"n_prompt", s.n_prompt}, {"n_compressed", s.context.size()},
          {"prefill_ms", s.prefill_ms}, {"kv_bytes_full", s.ref.kv_bytes},
          {"n_evidence", s.evidence ? s.evidence->size() : 0}};
}

// Evidence recall fields of a row: null when the sample has no evidence.
void add_evidence_fields(nlohmann::json& row, const std::optional<EvidenceRecall>& er) {
  if (!er) {
    row.update({{"evidence_recall", nullptr}, {"evidence_recall_any_head", nullptr}});
    return;
  }
  std::vector<double> layers;
  for (double x : er->per_layer) layers.push_back(std::round(x * 1e4) / 1e4);
  row.update({{"evidence_recall", er->mean}, {"evidence_recall_any_head", er->any_head},
              {"evidence_recall_layers", layers}});
}

double task_score(const SampleRun& s, const std::string& text) {
  return s.sample.scoring == Scoring::kOpenEnded
             ? token_f1(text, s.ref.text)
             : score_prediction(s.sample.scoring, text, s.sample.answers);
}

// One evicting (or budget-covers-all) branch: copy the prompt cache, evict with the
// scores of its scorer (or the oracle's), answer greedily, then teacher-force the
// reference answer.
nlohmann::json run_branch(const Context& ctx, const SampleRun& s, const std::string& p,
                          int64_t b, const PromptCompressor& plan, PromptCompressor* scorer) {
  nlohmann::json row = base_row(s, p, b);
  std::unique_ptr<Context> branch = ctx.fork();
  double score_ms = 0, evict_ms = 0, recall = 1.0;
  const bool oracle_scores = kv_policy_info(p).answer_attention_scores;
  if (oracle_scores) score_ms = s.ref.answer.decode_ms;  // what the oracle costs: a generation
  if (plan.evicts()) {
    const KvScores* scores = &s.ref.oracle;
    if (!oracle_scores) {
      scores = &scorer->score(*branch, s.context, s.suffix);
      score_ms = scorer->score_ms();
    }
    evict_ms = plan.evict(*branch, *scores).evict_ms;
    recall = target_recall(branch->cache(), s.ref.oracle, (int64_t)s.context.size());
  }
  // The cache holds the compressed entries only (the suffix comes next).
  add_evidence_fields(row, s.evidence ? evidence_recall(branch->cache(), *s.evidence) : std::nullopt);
  const size_t kv_bytes = branch->cache().resident_bytes();
  if (!s.suffix.empty()) branch->prefill(s.suffix, nullptr);
  const int32_t answer_pos = branch->n_past();
  const std::vector<float> answer_logits = branch->logits();
  GreedyOptions g;
  g.max_new = s.sample.max_new_tokens;
  g.feed_last = false;
  const GreedyRun got = branch->greedy(g, nullptr);
  const std::string text = ctx.tokenizer().decode(got.tokens);
  branch->truncate(answer_pos);  // back to the answer's start for the teacher-forced pass
  branch->set_logits(answer_logits);
  const auto [kl, top1] = teacher_forced_fidelity(*branch, s.ref);
  const SequenceAgreement ag = greedy_agreement(s.ref.answer.tokens, got.tokens);
  row.update({{"prediction", text}, {"score", task_score(s, text)}, {"greedy_exact", ag.exact},
              {"prefix_fraction", ag.prefix_fraction}, {"kl", kl}, {"top1", top1},
              {"recall", recall}, {"score_ms", score_ms}, {"evict_ms", evict_ms},
              {"decode_tps", got.steps > 0 ? got.steps * 1000.0 / got.decode_ms : 0.0},
              {"kv_bytes", kv_bytes}, {"n_answer", got.tokens.size()},
              {"evicted", plan.evicts()}});
  return row;
}

// The full cache's row: the reference itself.
nlohmann::json full_cache_row(const SampleRun& s) {
  nlohmann::json row = base_row(s, "none", 0);
  const Reference& ref = s.ref;
  row.update({{"prediction", ref.text}, {"score", task_score(s, ref.text)}, {"greedy_exact", true},
              {"prefix_fraction", 1.0}, {"kl", 0.0}, {"top1", 1.0}, {"recall", 1.0},
              {"score_ms", 0.0}, {"evict_ms", 0.0}, {"decode_tps", ref.decode_tps},
              {"kv_bytes", ref.kv_bytes}, {"n_answer", ref.answer.tokens.size()}});
  if (s.evidence) {
    row.update({{"evidence_recall", 1.0}, {"evidence_recall_any_head", 1.0}});
  } else {
    add_evidence_fields(row, std::nullopt);
  }
  return row;
}

}  // namespace

std::vector<BranchResult> run_sample(Context& ctx, const Sample& sample, const EvalSettings& cfg,
                                     const std::function<bool(const std::string&, int64_t)>& done) {
  // Which branches are still to run.
  std::vector<std::pair<std::string, int64_t>> todo;
  if (!done("none", 0)) todo.push_back({"none", 0});
  for (const auto& p : cfg.policies)
    if (kv_policy_info(p).make)
      for (int64_t b : cfg.budgets)
        if (!done(p, b)) todo.push_back({p, b});
  std::vector<BranchResult> out;
  if (todo.empty()) return out;

  const ModelConfig& mc = ctx.model().config();
  const PromptTokens pt = ctx.engine().tokenize_prompt(sample.context, sample.question, "", true);
  SampleRun s(sample);
  s.n_prompt = (int64_t)pt.tokens.size();
  const int64_t n_ctx_tok = cfg.query_agnostic ? pt.n_context : s.n_prompt;  // entries compressed
  s.context.assign(pt.tokens.begin(), pt.tokens.begin() + n_ctx_tok);
  s.suffix.assign(pt.tokens.begin() + n_ctx_tok, pt.tokens.end());
  if (s.n_prompt + sample.max_new_tokens + 1 > ctx.n_ctx())
    fail("sample {} needs {} positions; raise -c (now {})", sample.id,
         s.n_prompt + sample.max_new_tokens + 1, ctx.n_ctx());
  s.evidence = evidence_tokens(ctx.tokenizer(), pt.tokens, sample, n_ctx_tok);

  // One compressor per observer configuration, shared by the budgets whose scores agree.
  auto settings_for = [&](const std::string& p, int64_t b) {
    KvPolicySettings k = cfg.base;
    k.name = p;
    k.budget = b;
    k.ratio = -1;
    k.query_agnostic = cfg.query_agnostic;
    return k;
  };
  // The first branch of each scorer key scores for all of them (its observer watches the
  // prefill); the other branches only evict with its scores.
  std::map<std::string, PromptCompressor*> scorers;
  auto scorer_key = [&](const std::string& p, int64_t b, const ResolvedPolicy& r) {
    return kv_policy_info(p).budget_dependent_scores ? p + "/" + std::to_string(b)
                                                     : p + "/w" + std::to_string(r.observe_window);
  };
  ObserverList observers;
  std::vector<std::unique_ptr<PromptCompressor>> branch_plans;  // [todo] resolved settings
  for (const auto& [p, b] : todo) {
    branch_plans.push_back(kv_policy_info(p).make
                               ? std::make_unique<PromptCompressor>(settings_for(p, b), mc, n_ctx_tok)
                               : nullptr);
    PromptCompressor* plan = branch_plans.back().get();
    if (!plan || !plan->evicts() || kv_policy_info(p).answer_attention_scores) continue;
    const std::string key = scorer_key(p, b, plan->resolved());
    if (scorers.count(key)) continue;
    observers.add(plan->observer());
    scorers[key] = plan;
  }

  // Prefill once.
  ctx.reset();
  Stopwatch sw;
  ctx.prefill(s.context, observers.empty() ? nullptr : &observers);
  double observer_ms = 0;
  for (auto& [k, sc] : scorers) observer_ms += sc->observer_ms();
  s.prefill_ms = sw.ms() - observer_ms;
  s.ref = full_cache_reference(ctx, s.suffix, n_ctx_tok, sample.max_new_tokens, cfg.base.reduce);

  for (size_t bi = 0; bi < todo.size(); ++bi) {
    const auto& [p, b] = todo[bi];
    if (!branch_plans[bi]) {
      out.push_back({p, b, full_cache_row(s)});
      continue;
    }
    const PromptCompressor& plan = *branch_plans[bi];
    PromptCompressor* scorer = nullptr;
    if (plan.evicts() && !kv_policy_info(p).answer_attention_scores)
      scorer = scorers.at(scorer_key(p, b, plan.resolved()));
    out.push_back({p, b, run_branch(ctx, s, p, b, plan, scorer)});
  }
  ctx.reset();
  return out;
}

}  // namespace glimpse::eval
