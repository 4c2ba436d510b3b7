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
#include "runtime/session.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse::eval {

namespace {

struct Greedy {
  std::vector<int32_t> tokens;           // without the end-of-generation token
  std::vector<std::vector<float>> rows;  // logits before each step (tokens.size() + 1 if EOG)
  double decode_ms = 0;
  int steps = 0;  // forward passes
};

// Greedy answer from `logits` (the prompt's last row) on `cache`.
Greedy greedy(Session& s, KvCache& cache, std::vector<float> logits, int max_new,
              ForwardObserver* obs, bool keep_rows) {
  Greedy g;
  Stopwatch sw;
  for (int i = 0; i < max_new; ++i) {
    if (keep_rows) g.rows.push_back(logits);
    const int32_t tok = argmax_token(logits);
    if (s.tokenizer().is_eog(tok)) break;
    g.tokens.push_back(tok);
    if (i + 1 == max_new || cache.n_past() >= cache.n_ctx()) break;
    s.model().forward(&tok, 1, cache, LogitsRows::Last, logits, s.pool(), obs);
    ++g.steps;
  }
  g.decode_ms = sw.ms();
  return g;
}

void prefill(Session& s, KvCache& cache, const std::vector<int32_t>& toks, std::vector<float>& logits,
             ForwardObserver* obs) {
  const int64_t n = (int64_t)toks.size(), nb = s.n_batch();
  for (int64_t b = 0; b < n; b += nb)
    s.model().forward(toks.data() + b, std::min(nb, n - b), cache, LogitsRows::Last, logits,
                      s.pool(), obs);
}

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

std::vector<BranchResult> run_sample(Session& s, const Sample& sample, const EvalSettings& cfg,
                                     const std::function<bool(const std::string&, int64_t)>& done) {
  // Which branches are still to run.
  std::vector<std::pair<std::string, int64_t>> todo;
  if (!done("none", 0)) todo.push_back({"none", 0});
  for (const auto& p : cfg.policies)
    if (p != "none")
      for (int64_t b : cfg.budgets)
        if (!done(p, b)) todo.push_back({p, b});
  std::vector<BranchResult> out;
  if (todo.empty()) return out;

  const ModelConfig& mc = s.model().config();
  const PromptTokens pt = s.tokenize_prompt(sample.context, sample.question, "", true);
  const int64_t N = (int64_t)pt.tokens.size();
  const int64_t n_ctx_tok = cfg.query_agnostic ? pt.n_context : N;  // entries compressed
  const std::vector<int32_t> context(pt.tokens.begin(), pt.tokens.begin() + n_ctx_tok);
  const std::vector<int32_t> suffix(pt.tokens.begin() + n_ctx_tok, pt.tokens.end());
  if (N + sample.max_new_tokens + 1 > s.n_ctx())
    fail("sample {} needs {} positions; raise -c (now {})", sample.id,
         N + sample.max_new_tokens + 1, s.n_ctx());

  // One policy object per observer configuration; LAQ's scores depend on the budget.
  struct Scorer {
    std::unique_ptr<KvPolicy> policy;
    ResolvedPolicy r;
    bool scored = false;
    KvScores scores;
    double score_ms = 0;
  };
  std::map<std::string, Scorer> scorers;
  auto settings_for = [&](const std::string& p, int64_t b) {
    KvPolicySettings k = cfg.base;
    k.name = p;
    k.budget = b;
    k.ratio = -1;
    k.query_agnostic = cfg.query_agnostic;
    return k;
  };
  auto scorer_key = [&](const std::string& p, int64_t b, const ResolvedPolicy& r) {
    return p == "laq" ? p + "/" + std::to_string(b) : p + "/w" + std::to_string(r.window);
  };
  ObserverList observers;
  for (const auto& [p, b] : todo) {
    if (p == "none" || p == "oracle") continue;
    std::unique_ptr<KvPolicy> pol = make_kv_policy(p);
    const ResolvedPolicy r = resolve_policy(settings_for(p, b), pol->defaults(), n_ctx_tok);
    if (!r.evicts()) continue;
    const std::string key = scorer_key(p, b, r);
    if (scorers.count(key)) continue;
    Scorer& sc = scorers[key];
    sc.policy = std::move(pol);
    sc.r = r;
    observers.add(sc.policy->observer(mc, r));
  }

  // Prefill once.
  s.reset();
  KvCache& base = s.cache();
  std::vector<float> logits;
  Stopwatch sw;
  prefill(s, base, context, logits, observers.empty() ? nullptr : &observers);
  double observer_ms = 0;
  for (auto& [k, sc] : scorers) observer_ms += sc.policy->observer_ms();
  const double prefill_ms = sw.ms() - observer_ms;
  const std::vector<float> context_logits = logits;

  // Full cache: question (query-agnostic), answer with the oracle recorder attached.
  KvCache full = base;
  std::vector<float> full_logits = logits;
  if (!suffix.empty()) prefill(s, full, suffix, full_logits, nullptr);
  const int32_t answer_pos = full.n_past();
  AttentionRecorder oracle_rec(mc, n_ctx_tok, answer_pos, INT32_MAX, QueryReduce::Sum);
  const Greedy ref = greedy(s, full, full_logits, sample.max_new_tokens, &oracle_rec, true);
  const std::string ref_text = s.tokenizer().decode(ref.tokens);
  std::vector<float> oracle_acc = oracle_rec.acc();
  const int n_ans_q = std::max(1, ref.steps);
  for (float& x : oracle_acc) x /= (float)n_ans_q;
  const KvScores oracle = reduce_query_heads(oracle_acc, mc.n_layer, mc.n_head, mc.n_kv_head,
                                             n_ctx_tok, 1, PoolKind::None, cfg.base.reduce);
  const size_t full_bytes = full.resident_bytes();
  full = KvCache(1, 1, 1, 1);  // free it

  auto task_score = [&](const std::string& text) {
    return sample.scoring == Scoring::kOpenEnded ? token_f1(text, ref_text)
                                                 : score_prediction(sample.scoring, text, sample.answers);
  };
  auto base_row = [&](const std::string& p, int64_t b) {
    return nlohmann::json{{"task", sample.task}, {"id", sample.id},
                          {"length", sample.target_tokens}, {"seed", sample.seed},
                          {"policy", p}, {"budget", b}, {"n_prompt", N},
                          {"n_compressed", n_ctx_tok}, {"prefill_ms", prefill_ms},
                          {"kv_bytes_full", full_bytes}};
  };
  // The recorder's scoring time is the oracle's cost, not the full cache's decode time.
  const double ref_decode_ms = std::max(1e-3, ref.decode_ms - oracle_rec.ms());
  const double ref_tps = ref.steps > 0 ? ref.steps * 1000.0 / ref_decode_ms : 0;

  for (const auto& [p, b] : todo) {
    nlohmann::json row = base_row(p, b);
    if (p == "none") {
      row.update({{"prediction", ref_text}, {"score", task_score(ref_text)}, {"greedy_exact", true},
                  {"prefix_fraction", 1.0}, {"kl", 0.0}, {"top1", 1.0}, {"recall", 1.0},
                  {"score_ms", 0.0}, {"evict_ms", 0.0}, {"decode_tps", ref_tps},
                  {"kv_bytes", full_bytes}, {"n_answer", ref.tokens.size()}});
      out.push_back({p, b, row});
      continue;
    }
    std::unique_ptr<KvPolicy> probe = make_kv_policy(p);
    const ResolvedPolicy r = resolve_policy(settings_for(p, b), probe->defaults(), n_ctx_tok);
    KvCache branch = base;
    double score_ms = 0;
    const KvScores* scores = &oracle;
    if (r.evicts() && p != "oracle") {
      Scorer& sc = scorers.at(scorer_key(p, b, r));
      if (!sc.scored) {
        Stopwatch t;
        PolicyInput in{s.model(), branch, s.pool(), sc.r, context, suffix, context_logits,
                       [&](int32_t id) { return s.tokenizer().is_eog(id); }};
        sc.scores = sc.policy->score(in);
        sc.score_ms = t.ms() + sc.policy->observer_ms();
        sc.scored = true;
      }
      scores = &sc.scores;
      score_ms = sc.score_ms;
    } else if (p == "oracle") {
      score_ms = ref.decode_ms;  // what the oracle costs: a full-cache generation
    }
    double evict_ms = 0, recall = 1.0;
    if (r.evicts()) {
      const std::vector<uint8_t> prot = protected_mask(n_ctx_tok, r.sinks, r.window);
      const BudgetPlan plan = plan_budget(r, *scores, prot, mc.n_layer, mc.n_kv_head);
      evict_ms = compact_cache(branch, *scores, plan, prot).evict_ms;
      // recall@budget: the oracle's top entries of each head among the kept ones.
      double sum = 0;
      for (int l = 0; l < mc.n_layer; ++l)
        for (int h = 0; h < mc.n_kv_head; ++h) {
          const KvHead& hd = branch.head(l, h);
          const size_t k = (size_t)std::min<int64_t>(hd.size(), n_ctx_tok);
          const auto top = top_k_indices({oracle.at(l, h), (size_t)n_ctx_tok}, k);
          std::vector<int64_t> kept(hd.pos.begin(), hd.pos.begin() + k);
          sum += recall_at_k(top, kept);
        }
      recall = sum / (mc.n_layer * mc.n_kv_head);
    }
    const size_t kv_bytes = branch.resident_bytes();
    std::vector<float> blog = context_logits;
    if (!suffix.empty()) prefill(s, branch, suffix, blog, nullptr);
    const int32_t bpos = branch.n_past();
    const Greedy got = greedy(s, branch, blog, sample.max_new_tokens, nullptr, false);
    const std::string text = s.tokenizer().decode(got.tokens);
    // Teacher-forced along the full-cache answer: same prefix, compare next-token rows.
    branch.truncate_from(bpos);
    double kl = 0, top1 = 0;
    const size_t n_rows = ref.rows.size();
    if (n_rows > 0) {
      std::vector<float> tf = blog;  // row 0: the first answer token's distribution
      kl += kl_divergence(ref.rows[0], tf);
      top1 += top1_agree(ref.rows[0], tf);
      if (n_rows > 1) {
        std::vector<float> all;
        s.model().forward(ref.tokens.data(), (int64_t)n_rows - 1, branch, LogitsRows::All, all, s.pool());
        const size_t V = (size_t)mc.n_vocab;
        for (size_t i = 1; i < n_rows; ++i) {
          std::span<const float> row(all.data() + (i - 1) * V, V);
          kl += kl_divergence(ref.rows[i], row);
          top1 += top1_agree(ref.rows[i], row);
        }
      }
      kl /= (double)n_rows;
      top1 /= (double)n_rows;
    }
    const SequenceAgreement ag = greedy_agreement(ref.tokens, got.tokens);
    row.update({{"prediction", text}, {"score", task_score(text)}, {"greedy_exact", ag.exact},
                {"prefix_fraction", ag.prefix_fraction}, {"kl", kl}, {"top1", top1},
                {"recall", recall}, {"score_ms", score_ms}, {"evict_ms", evict_ms},
                {"decode_tps", got.steps > 0 ? got.steps * 1000.0 / got.decode_ms : 0.0},
                {"kv_bytes", kv_bytes}, {"n_answer", got.tokens.size()},
                {"evicted", r.evicts()}});
    out.push_back({p, b, row});
  }
  s.reset();
  return out;
}

}  // namespace glimpse::eval
