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
#include "runtime/specpc.h"
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
  static_assert(sizeof(KvPolicySettings) == 312, "KvPolicySettings changed: update settings_description");
  const KvPolicySettings& k = cfg.base;
  auto opt = [](auto v) { return v < 0 ? std::string("default") : fmt::format("{}", v); };
  // SpecKV's draft settings only when a draft is given (earlier keys stay as they were).
  const std::string draft =
      k.draft_model.empty() ? "" : fmt::format(" draft={} draft_max_new={} draft_query_mean={}",
                                               k.draft_model, opt(k.draft_max_new),
                                               k.draft_query_mean ? 1 : 0);
  // Prompt compression's draft settings only when a draft is given (speckv_pc / specpc rows).
  const std::string pc =
      k.pc_draft.empty() ? "" : fmt::format(" pc_draft={} pc_budget={} pc_kernel={} pc_window={} "
                                            "pc_lookahead={}", k.pc_draft, k.pc_budget, k.pc_kernel,
                                            k.pc_window, k.pc_lookahead);
  // The allocation only when asked for (earlier keys stay as they were).
  const std::string alloc =
      k.allocation ? fmt::format(" alloc={}", budget_allocation_name(*k.allocation)) : "";
  return draft + pc + alloc + fmt::format(
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

// An evicting (or budget-covers-all) branch ready to answer: the prompt cache copied and
// evicted, the suffix prefilled. answer_pos / answer_logits: where the answer starts and the
// logits it starts from (the teacher-forced pass goes back there after the greedy answer).
struct PreparedBranch {
  size_t slot = 0;  // index of its row in run_sample's result
  bool evicted = false;
  std::unique_ptr<Context> ctx;
  nlohmann::json row;  // base and evidence fields
  double score_ms = 0, evict_ms = 0, recall = 1.0;
  size_t kv_bytes = 0;
  int32_t answer_pos = 0;
  std::vector<float> answer_logits;
};

// Copies the prompt cache and evicts with the scores of the branch's scorer (or the
// oracle's), then prefills the suffix. Only this branch's full-size copy exists meanwhile.
PreparedBranch prepare_branch(const Context& ctx, const SampleRun& s, const std::string& p,
                              int64_t b, const PromptCompressor& plan, PromptCompressor* scorer) {
  PreparedBranch br;
  br.evicted = plan.evicts();
  br.row = base_row(s, p, b);
  br.ctx = ctx.fork();
  // finish_branch rolls the answer back, which may be longer than a sliding-window layer's
  // rollback slack: the branch keeps those layers' entries (it is dropped afterwards).
  br.ctx->cache().set_drop_out_of_window(false);
  const bool oracle_scores = kv_policy_info(p).answer_attention_scores;
  if (oracle_scores) br.score_ms = s.ref.answer.decode_ms;  // what the oracle costs: a generation
  if (plan.evicts()) {
    const KvScores* scores = &s.ref.oracle;
    if (!oracle_scores) {
      scores = &scorer->score(*br.ctx, s.context, s.suffix);
      br.score_ms = scorer->score_ms();
    }
    br.evict_ms = plan.evict(*br.ctx, *scores).evict_ms;
    br.recall = target_recall(br.ctx->cache(), s.ref.oracle, (int64_t)s.context.size());
  }
  // The cache holds the compressed entries only (the suffix comes next).
  add_evidence_fields(br.row,
                      s.evidence ? evidence_recall(br.ctx->cache(), *s.evidence) : std::nullopt);
  br.kv_bytes = br.ctx->cache().resident_bytes();
  if (!s.suffix.empty()) br.ctx->prefill(s.suffix, nullptr);
  br.answer_pos = br.ctx->n_past();
  br.answer_logits = br.ctx->logits();
  return br;
}

// SpecPC's draft scores of one sample, per branch kind: "specpc" (the draft reads the prompt,
// --pc-lookahead tokens) and "speckv_pc" (it also writes SpecKV's answer). One draft run
// serves every budget; each branch is charged its full time (a request pays it once).
using PcScoreMemo = std::map<std::string, SpecPcScores>;

// A prompt-compression branch (is_prompt_compression): SpecPC's selection at this budget,
// an empty context prefills the kept tokens (SpecKV-PC: then SpecKV evicts them with the
// draft's answer), then the suffix.
PreparedBranch prepare_pc_branch(const Context& ctx, const SampleRun& s, const std::string& p,
                                 int64_t b, const EvalSettings& cfg, PcScoreMemo& memo) {
  if (cfg.base.pc_draft.empty()) fail("eval: {} needs a draft model (--pc-draft FNAME)", p);
  PreparedBranch br;
  br.row = base_row(s, p, b);
  br.ctx = ctx.empty_like();
  const bool chained = p == "speckv_pc";
  KvPolicySettings k = cfg.base;
  k.prompt_compress = "none";  // done here
  k.query_agnostic = false;    // the tokens prefilled below are all there is to compress
  k.ratio = -1;
  k.name = chained ? "speckv" : "none";
  k.budget = b;
  k.draft_model = k.pc_draft;  // SpecKV-PC: the same draft, its answer from the one run
  if (k.draft_max_new < 0) k.draft_max_new = s.sample.max_new_tokens;
  const int64_t n = (int64_t)s.context.size();
  const int64_t pc_budget = chained ? std::max<int64_t>(4 * b, cfg.base.pc_budget) : b;
  // Query-aware: s.context is the whole prompt; agnostic: the context, the question after.
  const SpecPcScores* sc = nullptr;
  if (n > pc_budget || (chained && n > b)) {  // a draft is needed: selection or SpecKV's answer
    auto it = memo.find(p);
    if (it == memo.end())
      it = memo.emplace(p, specpc_score(s.context, ctx.tokenizer(), ctx.pool(), ctx.n_batch(), cfg.base,
                                        chained ? k.draft_max_new : 0)).first;
    sc = &it->second;
  }
  PromptCompression pc;
  if (n > pc_budget) {
    // The always-kept last tokens at most half the kept ones, as every policy's protection.
    pc = specpc_apply(s.context, *sc, pc_budget, k.pc_kernel,
                      std::min<int64_t>(k.pc_window, std::max<int64_t>(1, pc_budget / 2)));
  } else {
    pc.tokens = s.context;
    for (int64_t i = 0; i < n; ++i) pc.kept.push_back(i);
  }
  if (chained && sc) br.ctx->prepare_draft_answer(k.pc_draft, sc->answer);
  const KvCompressReport rep = prefill_with_eviction(*br.ctx, pc.tokens, -1, k);
  br.evicted = (int64_t)pc.tokens.size() < n || rep.evicted;
  br.score_ms = (sc ? sc->draft_ms : 0) + pc.select_ms + rep.score_ms;
  br.evict_ms = rep.evict_ms;
  br.recall = target_recall(br.ctx->cache(), s.ref.oracle, n, &pc.kept);
  add_evidence_fields(br.row, s.evidence ? evidence_recall(br.ctx->cache(), *s.evidence, &pc.kept)
                                         : std::nullopt);
  br.kv_bytes = br.ctx->cache().resident_bytes();
  br.row.update({{"pc_tokens", pc.tokens.size()}, {"pc_prefill_ms", rep.prefill_ms}});
  // As prepare_branch: the answer is rolled back later, past a sliding-window layer's slack
  // (set after the prompt, so the window layers dropped their old entries as usual).
  br.ctx->cache().set_drop_out_of_window(false);
  if (!s.suffix.empty()) br.ctx->prefill(s.suffix, nullptr);
  br.answer_pos = br.ctx->n_past();
  br.answer_logits = br.ctx->logits();
  return br;
}

// The greedy answer of every prepared branch: one batched decode over all of them, or
// (serial) one branch after another, each with its own measured decode speed.
std::vector<GreedyRun> answer_branches(std::vector<PreparedBranch>& branches, int max_new,
                                       bool serial) {
  GreedyOptions g;
  g.max_new = max_new;
  g.feed_last = false;
  std::vector<GreedyRun> runs;
  if (serial) {
    for (PreparedBranch& br : branches) runs.push_back(br.ctx->greedy(g, nullptr));
    return runs;
  }
  std::vector<Context*> ctxs;
  for (PreparedBranch& br : branches) ctxs.push_back(br.ctx.get());
  return greedy_contexts(ctxs, g);
}

// The branch's row from its greedy answer: back to the answer's start, teacher-force the
// reference answer, score. decode_tps is null when the answer was decoded in a batch (a
// per-branch speed is not measured there).
nlohmann::json finish_branch(PreparedBranch& br, const SampleRun& s, const GreedyRun& got,
                             bool decode_measured) {
  const std::string text = br.ctx->tokenizer().decode(got.tokens);
  br.ctx->truncate(br.answer_pos);
  br.ctx->set_logits(std::move(br.answer_logits));
  const auto [kl, top1] = teacher_forced_fidelity(*br.ctx, s.ref);
  const SequenceAgreement ag = greedy_agreement(s.ref.answer.tokens, got.tokens);
  nlohmann::json tps = nullptr;
  if (decode_measured) tps = got.steps > 0 ? got.steps * 1000.0 / got.decode_ms : 0.0;
  nlohmann::json row = std::move(br.row);
  row.update({{"prediction", text}, {"score", task_score(s, text)}, {"greedy_exact", ag.exact},
              {"prefix_fraction", ag.prefix_fraction}, {"kl", kl}, {"top1", top1},
              {"recall", br.recall}, {"score_ms", br.score_ms}, {"evict_ms", br.evict_ms},
              {"decode_tps", tps}, {"kv_bytes", br.kv_bytes}, {"n_answer", got.tokens.size()},
              {"evicted", br.evicted}});
  br.ctx.reset();
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

// The resolved settings of every branch still to run, and the scorers they share: the first
// branch of each scorer key scores for all of them (its observer watches the prefill); the
// other branches only evict with its scores.
struct BranchPlans {
  std::vector<std::pair<std::string, int64_t>> todo;     // (policy, budget)
  std::vector<std::unique_ptr<PromptCompressor>> plans;  // [todo]; null for "none"
  std::vector<PromptCompressor*> scorers;                // [todo]; null: no scoring pass
  ObserverList observers;                                // of the distinct scorers
  std::vector<PromptCompressor*> distinct;               // one per scorer key
};

void plan_branches(BranchPlans& bp, const EvalSettings& cfg, const ModelConfig& mc,
                   int64_t n_ctx_tok, int max_new) {
  std::map<std::string, PromptCompressor*> by_key;
  for (const auto& [p, b] : bp.todo) {
    KvPolicySettings k = cfg.base;
    k.name = p;
    k.budget = b;
    k.ratio = -1;
    k.query_agnostic = cfg.query_agnostic;
    if (k.draft_max_new < 0) k.draft_max_new = max_new;  // SpecKV: the sample's answer length
    bp.plans.push_back(!is_prompt_compression(p) && kv_policy_info(p).make
                           ? std::make_unique<PromptCompressor>(k, mc, n_ctx_tok)
                           : nullptr);
    PromptCompressor* plan = bp.plans.back().get();
    bp.scorers.push_back(nullptr);
    if (!plan || !plan->evicts() || kv_policy_info(p).answer_attention_scores) continue;
    const std::string key = kv_policy_info(p).budget_dependent_scores
                                ? p + "/" + std::to_string(b)
                                : p + "/w" + std::to_string(plan->resolved().observe_window);
    auto [it, fresh] = by_key.try_emplace(key, plan);
    if (fresh) {
      bp.observers.add(plan->observer());
      bp.distinct.push_back(plan);
    }
    bp.scorers.back() = it->second;
  }
}

}  // namespace

bool is_prompt_compression(std::string_view policy) {
  return policy == "specpc" || policy == "speckv_pc";
}

std::vector<BranchResult> run_sample(Context& ctx, const Sample& sample, const EvalSettings& cfg,
                                     const std::function<bool(const std::string&, int64_t)>& done) {
  // Which branches are still to run.
  BranchPlans bp;
  if (!done("none", 0)) bp.todo.push_back({"none", 0});
  for (const auto& p : cfg.policies)
    if (is_prompt_compression(p) || kv_policy_info(p).make)
      for (int64_t b : cfg.budgets)
        if (!done(p, b)) bp.todo.push_back({p, b});
  if (bp.todo.empty()) return {};

  const PromptTokens pt = ctx.engine().task_prompt(sample.context, sample.question);
  SampleRun s(sample);
  s.n_prompt = (int64_t)pt.tokens.size();
  const int64_t n_ctx_tok = cfg.query_agnostic ? pt.n_context : s.n_prompt;  // entries compressed
  s.context.assign(pt.tokens.begin(), pt.tokens.begin() + n_ctx_tok);
  s.suffix.assign(pt.tokens.begin() + n_ctx_tok, pt.tokens.end());
  if (s.n_prompt + sample.max_new_tokens + 1 > ctx.n_ctx())
    fail("sample {} needs {} positions; raise -c (now {})", sample.id,
         s.n_prompt + sample.max_new_tokens + 1, ctx.n_ctx());
  s.evidence = evidence_tokens(ctx.tokenizer(), pt.tokens, sample, n_ctx_tok);
  plan_branches(bp, cfg, ctx.model().config(), n_ctx_tok, sample.max_new_tokens);

  // Prefill once.
  ctx.reset();
  Stopwatch sw;
  ctx.prefill(s.context, bp.observers.empty() ? nullptr : &bp.observers);
  double observer_ms = 0;
  for (PromptCompressor* sc : bp.distinct) observer_ms += sc->observer_ms();
  s.prefill_ms = sw.ms() - observer_ms;
  s.ref = full_cache_reference(ctx, s.suffix, n_ctx_tok, sample.max_new_tokens, cfg.base.reduce);

  // 1: every branch copied, evicted and prefilled up to its answer; 2: their greedy answers
  // (one batched decode unless serial); 3: each branch's teacher-forced pass and row.
  std::vector<BranchResult> out;
  std::vector<PreparedBranch> branches;
  PcScoreMemo pc_memo;
  for (size_t bi = 0; bi < bp.todo.size(); ++bi) {
    const auto& [p, b] = bp.todo[bi];
    out.push_back({p, b, nlohmann::json()});
    if (is_prompt_compression(p)) {
      branches.push_back(prepare_pc_branch(ctx, s, p, b, cfg, pc_memo));
      branches.back().slot = bi;
      continue;
    }
    if (!bp.plans[bi]) {
      out.back().row = full_cache_row(s);
      continue;
    }
    branches.push_back(prepare_branch(ctx, s, p, b, *bp.plans[bi], bp.scorers[bi]));
    branches.back().slot = bi;
  }
  const std::vector<GreedyRun> answers =
      answer_branches(branches, sample.max_new_tokens, cfg.serial_decode);
  for (size_t i = 0; i < branches.size(); ++i)
    out[branches[i].slot].row = finish_branch(branches[i], s, answers[i], cfg.serial_decode);
  ctx.reset();
  return out;
}

}  // namespace glimpse::eval
