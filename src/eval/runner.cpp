#include "eval/runner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <sstream>

#include "eval/metrics.h"
#include "kv/attention_scores.h"
#include "kv/evict.h"
#include "kv/policy_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "util/error.h"
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

// recall@budget: the oracle's top entries of each head among the kept ones.
double oracle_recall(const KvCache& kc, const KvScores& oracle, int64_t n_compressed) {
  double sum = 0;
  for (int l = 0; l < kc.n_layer(); ++l)
    for (int h = 0; h < kc.n_kv_head(); ++h) {
      const KvHead& hd = kc.head(l, h);
      const size_t k = (size_t)std::min<int64_t>(hd.size(), n_compressed);
      const auto top = top_k_indices({oracle.at(l, h), (size_t)n_compressed}, k);
      std::vector<int64_t> kept(hd.pos.begin(), hd.pos.begin() + k);
      sum += recall_at_k(top, kept);
    }
  return sum / (kc.n_layer() * kc.n_kv_head());
}

// Teacher-forced along the reference answer from ctx (the branch right before the answer):
// mean KL and top-1 agreement of each next-token distribution.
std::pair<double, double> teacher_forced_fidelity(Context& ctx, const Reference& ref) {
  const std::vector<std::vector<float>>& rows = ref.answer.rows;
  if (rows.empty()) return {0.0, 0.0};
  double kl = kl_divergence(rows[0], ctx.logits()), top1 = top1_agree(rows[0], ctx.logits());
  if (rows.size() > 1) {
    const std::vector<int32_t> forced(ref.answer.tokens.begin(),
                                      ref.answer.tokens.begin() + (rows.size() - 1));
    const size_t V = (size_t)ctx.model().config().n_vocab;
    ctx.prefill(forced, [&](int64_t first, const float* l, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        std::span<const float> row(l + i * V, V);
        kl += kl_divergence(rows[first + i + 1], row);
        top1 += top1_agree(rows[first + i + 1], row);
      }
    });
  }
  return {kl / (double)rows.size(), top1 / (double)rows.size()};
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
  const int64_t N = (int64_t)pt.tokens.size();
  const int64_t n_ctx_tok = cfg.query_agnostic ? pt.n_context : N;  // entries compressed
  const std::vector<int32_t> context(pt.tokens.begin(), pt.tokens.begin() + n_ctx_tok);
  const std::vector<int32_t> suffix(pt.tokens.begin() + n_ctx_tok, pt.tokens.end());
  if (N + sample.max_new_tokens + 1 > ctx.n_ctx())
    fail("sample {} needs {} positions; raise -c (now {})", sample.id,
         N + sample.max_new_tokens + 1, ctx.n_ctx());

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
  ctx.prefill(context, observers.empty() ? nullptr : &observers);
  double observer_ms = 0;
  for (auto& [k, sc] : scorers) observer_ms += sc->observer_ms();
  const double prefill_ms = sw.ms() - observer_ms;
  const Reference ref = full_cache_reference(ctx, suffix, n_ctx_tok, sample.max_new_tokens, cfg.base.reduce);

  auto task_score = [&](const std::string& text) {
    return sample.scoring == Scoring::kOpenEnded ? token_f1(text, ref.text)
                                                 : score_prediction(sample.scoring, text, sample.answers);
  };
  for (size_t bi = 0; bi < todo.size(); ++bi) {
    const auto& [p, b] = todo[bi];
    nlohmann::json row = {{"task", sample.task}, {"id", sample.id},
                          {"length", sample.target_tokens}, {"seed", sample.seed},
                          {"policy", p}, {"budget", b}, {"n_prompt", N},
                          {"n_compressed", n_ctx_tok}, {"prefill_ms", prefill_ms},
                          {"kv_bytes_full", ref.kv_bytes}};
    if (!branch_plans[bi]) {  // the full cache
      row.update({{"prediction", ref.text}, {"score", task_score(ref.text)}, {"greedy_exact", true},
                  {"prefix_fraction", 1.0}, {"kl", 0.0}, {"top1", 1.0}, {"recall", 1.0},
                  {"score_ms", 0.0}, {"evict_ms", 0.0}, {"decode_tps", ref.decode_tps},
                  {"kv_bytes", ref.kv_bytes}, {"n_answer", ref.answer.tokens.size()}});
      out.push_back({p, b, row});
      continue;
    }
    const PromptCompressor& plan = *branch_plans[bi];
    std::unique_ptr<Context> branch = ctx.fork();
    double score_ms = 0, evict_ms = 0, recall = 1.0;
    const bool oracle_scores = kv_policy_info(p).answer_attention_scores;
    if (oracle_scores) score_ms = ref.answer.decode_ms;  // what the oracle costs: a generation
    if (plan.evicts()) {
      const KvScores* scores = &ref.oracle;
      if (!oracle_scores) {
        PromptCompressor& sc = *scorers.at(scorer_key(p, b, plan.resolved()));
        scores = &sc.score(*branch, context, suffix);
        score_ms = sc.score_ms();
      }
      evict_ms = plan.evict(*branch, *scores).evict_ms;
      recall = oracle_recall(branch->cache(), ref.oracle, n_ctx_tok);
    }
    const size_t kv_bytes = branch->cache().resident_bytes();
    if (!suffix.empty()) branch->prefill(suffix, nullptr);
    const int32_t answer_pos = branch->n_past();
    const std::vector<float> answer_logits = branch->logits();
    GreedyOptions g;
    g.max_new = sample.max_new_tokens;
    g.feed_last = false;
    const GreedyRun got = branch->greedy(g, nullptr);
    const std::string text = ctx.tokenizer().decode(got.tokens);
    branch->truncate(answer_pos);  // back to the answer's start for the teacher-forced pass
    branch->set_logits(answer_logits);
    const auto [kl, top1] = teacher_forced_fidelity(*branch, ref);
    const SequenceAgreement ag = greedy_agreement(ref.answer.tokens, got.tokens);
    row.update({{"prediction", text}, {"score", task_score(text)}, {"greedy_exact", ag.exact},
                {"prefix_fraction", ag.prefix_fraction}, {"kl", kl}, {"top1", top1},
                {"recall", recall}, {"score_ms", score_ms}, {"evict_ms", evict_ms},
                {"decode_tps", got.steps > 0 ? got.steps * 1000.0 / got.decode_ms : 0.0},
                {"kv_bytes", kv_bytes}, {"n_answer", got.tokens.size()},
                {"evicted", plan.evicts()}});
    out.push_back({p, b, row});
  }
  ctx.reset();
  return out;
}

}  // namespace glimpse::eval
