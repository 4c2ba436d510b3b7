#include "runtime/specpc.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "kv/attention_scores.h"
#include "kv/kv_scores.h"
#include "runtime/draft_model.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {

int specpc_first_layer(int n_layer) { return std::min(8, n_layer / 2); }

std::vector<float> centered_max_pool(const std::vector<float>& s, int kernel) {
  if (kernel <= 1) return s;
  const int64_t n = (int64_t)s.size(), left = (kernel - 1) / 2, right = kernel - 1 - left;
  std::vector<float> out(s.size());
  for (int64_t i = 0; i < n; ++i) {
    // Zero padding: a window reaching past an end also sees 0.
    float m = (i - left < 0 || i + right >= n) ? 0.0f : -INFINITY;
    for (int64_t j = std::max<int64_t>(0, i - left); j <= std::min(n - 1, i + right); ++j)
      m = std::max(m, s[j]);
    out[i] = m;
  }
  return out;
}

std::vector<int64_t> specpc_select(const std::vector<float>& scores, int64_t budget, int kernel,
                                   int64_t window) {
  const int64_t n = (int64_t)scores.size();
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  if (budget >= n) return all;
  if (budget <= 0) return {};
  const std::vector<float> pooled = centered_max_pool(scores, kernel);
  // Top `budget` by pooled score, in rank order (a strict order: ties to the earlier token).
  std::vector<int64_t> top = all;
  auto key = [&](int64_t j) { return std::isnan(pooled[j]) ? -INFINITY : pooled[j]; };
  std::partial_sort(top.begin(), top.begin() + budget, top.end(), [&](int64_t a, int64_t b) {
    return key(a) != key(b) ? key(a) > key(b) : a < b;
  });
  top.resize((size_t)budget);
  // Offsets of a widened peak, nearest first (-1 before +1).
  const int k = std::max(1, kernel);
  std::vector<int64_t> offsets;
  for (int64_t o = -((k - 1) / 2); o <= k - 1 - (k - 1) / 2; ++o) offsets.push_back(o);
  std::stable_sort(offsets.begin(), offsets.end(),
                   [](int64_t a, int64_t b) { return std::llabs(a) < std::llabs(b); });
  std::vector<uint8_t> taken((size_t)n, 0);
  std::vector<int64_t> kept;
  auto take = [&](int64_t j) {
    if (!taken[(size_t)j] && (int64_t)kept.size() < budget) {
      taken[(size_t)j] = 1;
      kept.push_back(j);
    }
  };
  for (int64_t j = std::max<int64_t>(0, n - window); j < n; ++j) take(j);
  for (int64_t j : top)
    for (int64_t o : offsets) {
      if ((int64_t)kept.size() >= budget) break;
      take(std::clamp<int64_t>(j + o, 0, n - 1));
    }
  std::sort(kept.begin(), kept.end());
  return kept;
}

SpecPcScorer::SpecPcScorer(const ModelConfig& c, int64_t n_prompt, int64_t window)
    : c_(c), n_(n_prompt), w_(std::min(window, n_prompt)), first_layer_(specpc_first_layer(c.n_layer)),
      scale_(c.attn_scale > 0 ? c.attn_scale : 1.0f / std::sqrt((float)c.head_dim)),
      acc_((size_t)c.n_head * n_prompt, 0.0f) {}

void SpecPcScorer::on_queries(const LayerQueries& lq, ThreadPool& pool) {
  // Sliding-window layers see only their window: not counted (as in eviction, kv_scores.h).
  if (lq.layer < first_layer_ || !scored_layer(c_, lq.layer)) return;
  std::vector<int64_t> rows;  // batch rows that score: the prompt's last w, generated tokens
  std::vector<float> weight;
  for (int64_t t = 0; t < lq.n_tokens; ++t) {
    const int64_t p = lq.pos[t];
    if (p < n_ - w_) continue;
    rows.push_back(t);
    // linspace(0, 1) over the window, oldest -> newest; generated tokens 1.
    weight.push_back(p >= n_ || w_ <= 1 ? 1.0f : (float)(p - (n_ - w_)) / (float)(w_ - 1));
  }
  if (rows.empty()) return;
  Stopwatch sw;
  const int H = c_.n_head, G = c_.n_head / c_.n_kv_head, d = c_.head_dim;
  const int64_t nr = (int64_t)rows.size();
  pool.parallel_for_dynamic(H, [&](int64_t qh, int) {
    const KvHeadView& kh = lq.heads[qh / G];
    std::vector<ScoreQuery> qs;
    for (int64_t i = 0; i < nr; ++i)
      qs.push_back({lq.q + ((size_t)rows[i] * H + qh) * d, kh.n_base + rows[i] + 1, (int)i});
    std::vector<float> p((size_t)nr * n_, 0.0f);  // [rows][n]: one query per slot
    accumulate_attention(qs.data(), nr, lq.type_k, kh.k, kh.n_base + lq.n_tokens, d, scale_,
                         QueryReduce::Max, p.data(), n_, n_);
    float* acc = acc_.data() + (size_t)qh * n_;
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < n_; ++j) acc[j] = std::max(acc[j], weight[i] * p[(size_t)i * n_ + j]);
  });
  ms_ += sw.ms();
}

std::vector<float> SpecPcScorer::scores() const {
  std::vector<float> s((size_t)n_, 0.0f);
  for (int h = 0; h < c_.n_head; ++h)
    for (int64_t j = 0; j < n_; ++j) s[j] = std::max(s[j], acc_[(size_t)h * n_ + j]);
  return s;
}

SpecPcScores specpc_score(const std::vector<int32_t>& prompt, const Tokenizer& target,
                          ThreadPool& pool, int n_batch, const KvPolicySettings& s,
                          int answer_max_new) {
  SpecPcScores out;
  const std::shared_ptr<const Engine> draft = shared_draft_engine(s.pc_draft);
  Stopwatch sw_draft;
  DraftPrompt dp = draft_prompt(target, draft->tokenizer(), prompt);
  SpecPcScorer scorer(draft->model().config(), (int64_t)dp.tokens.size(), s.pc_window);
  const DraftRun run = run_draft(draft, pool, n_batch, target, std::move(dp),
                                 answer_max_new > 0 ? answer_max_new : s.pc_lookahead, &scorer);
  out.cross = run.prompt.cross;
  out.draft_ms = sw_draft.ms();
  out.score_ms = scorer.ms();
  out.answer = run.answer;
  Stopwatch sw;
  out.scores = scorer.scores();
  if (out.cross) out.scores = map_scores_by_bytes(run.prompt.draft, out.scores, run.prompt.target);
  out.map_ms = sw.ms();
  return out;
}

PromptCompression specpc_apply(const std::vector<int32_t>& prompt, const SpecPcScores& sc,
                               int64_t budget, int kernel, int64_t window) {
  PromptCompression pc;
  pc.n_before = (int64_t)prompt.size();
  pc.cross = sc.cross;
  pc.draft_ms = sc.draft_ms;
  pc.score_ms = sc.score_ms;
  pc.answer = sc.answer;
  Stopwatch sw;
  pc.kept = specpc_select(sc.scores, budget, kernel, window);
  for (int64_t j : pc.kept) pc.tokens.push_back(prompt[(size_t)j]);
  pc.select_ms = sc.map_ms + sw.ms();
  return pc;
}

PromptCompression specpc_compress(const std::vector<int32_t>& prompt, const Tokenizer& target,
                                  ThreadPool& pool, int n_batch, const KvPolicySettings& s,
                                  int answer_max_new) {
  if ((int64_t)prompt.size() <= s.pc_budget) {
    PromptCompression pc;
    pc.n_before = (int64_t)prompt.size();
    pc.tokens = prompt;
    pc.kept.resize(prompt.size());
    std::iota(pc.kept.begin(), pc.kept.end(), 0);
    return pc;
  }
  return specpc_apply(prompt, specpc_score(prompt, target, pool, n_batch, s, answer_max_new),
                      s.pc_budget, s.pc_kernel, s.pc_window);
}

}  // namespace glimpse
