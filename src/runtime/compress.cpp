#include "runtime/compress.h"

#include <algorithm>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/malloc_trim.h"
#include "util/proc_memory.h"
#include "util/timer.h"

namespace glimpse {

std::string KvCompressReport::report() const {
  if (policy == "none") return "";
  std::string s = fmt::format("glimpse: kv policy = {}, {}", policy,
                              query_agnostic ? "query-agnostic" : "query-aware");
  if (!evicted)
    return s + fmt::format(", budget {} covers the {}-token prompt: nothing evicted\n", budget,
                           n_compressed);
  s += fmt::format(", budget {} of {} (window {}, sinks {})\n", budget, n_compressed, window, sinks);
  s += fmt::format("glimpse:   kv scoring time = {:10.2f} ms, eviction time = {:8.2f} ms "
                   "({:.2f}% of prefill)\n",
                   score_ms, evict_ms, prefill_ms > 0 ? 100.0 * (score_ms + evict_ms) / prefill_ms : 0.0);
  s += fmt::format("glimpse:   kv cache {:.2f} MiB -> {:.2f} MiB ({} -> {} entries), process RSS "
                   "{:.1f} -> {:.1f} MiB\n",
                   stats.kv_bytes_before / 1048576.0, stats.kv_bytes_after / 1048576.0,
                   stats.entries_before, stats.entries_after, rss_before / 1048576.0,
                   rss_after / 1048576.0);
  std::string per_layer;
  for (size_t l = 0; l < stats.kept_per_layer.size(); ++l)
    per_layer += fmt::format("{}{}", l ? " " : "", stats.kept_per_layer[l]);
  s += "glimpse:   kept entries per layer (all heads): " + per_layer + "\n";
  return s;
}

std::string KvCompressReport::to_json() const {
  nlohmann::json j = {{"policy", policy},
                      {"evicted", evicted},
                      {"query_agnostic", query_agnostic},
                      {"n_compressed", n_compressed},
                      {"budget", budget},
                      {"window", window},
                      {"sinks", sinks},
                      {"prefill_ms", prefill_ms},
                      {"score_ms", score_ms},
                      {"evict_ms", evict_ms},
                      {"kv_bytes_before", stats.kv_bytes_before},
                      {"kv_bytes_after", stats.kv_bytes_after},
                      {"entries_before", stats.entries_before},
                      {"entries_after", stats.entries_after},
                      {"kept_per_layer", stats.kept_per_layer},
                      {"rss_before", rss_before},
                      {"rss_after", rss_after}};
  return j.dump();
}

PromptCompressor::PromptCompressor(const KvPolicySettings& settings, const ModelConfig& c,
                                   int64_t n_prompt)
    : policy_(make_kv_policy(settings.name)), config_(c) {
  if (!policy_) return;
  if (n_prompt < 1) fail("query-agnostic mode found no context before the question");
  r_ = resolve_policy(settings, policy_->defaults(), n_prompt);
}

ForwardObserver* PromptCompressor::observer() {
  if (!observing_ && evicts()) observer_ = policy_->observer(config_, r_);
  observing_ = true;
  return observer_;
}

const KvScores& PromptCompressor::score(Context& ctx, const std::vector<int32_t>& prompt,
                                        const std::vector<int32_t>& suffix) {
  if (scored_) return scores_;
  if (!evicts()) fail("PromptCompressor::score: nothing to evict");
  Stopwatch sw;
  const std::vector<float> prompt_logits = ctx.logits();
  PolicyInput in{ctx.model(), ctx, ctx.cache(), ctx.pool(), r_, prompt, suffix, prompt_logits};
  scores_ = policy_->score(in);
  ctx.set_logits(prompt_logits);  // a generating policy (oracle) decoded on ctx
  score_ms_ = sw.ms() + policy_->observer_ms();
  scored_ = true;
  return scores_;
}

EvictionStats PromptCompressor::evict(Context& ctx, const KvScores& scores) const {
  Stopwatch sw;
  const KvCache& kc = ctx.cache();
  const std::vector<uint8_t> prot = protected_mask(r_.n_prompt, r_.sinks, r_.window);
  const BudgetPlan plan = plan_budget(r_, scores, prot, kc.n_layer(), kc.n_kv_head());
  EvictionStats st = compact_cache(ctx.cache(), scores, plan, prot);
  release_free_memory();  // hand the freed KV buffers back to the OS
  st.evict_ms = sw.ms();
  return st;
}

StagedPrefill::StagedPrefill(Context& ctx, std::vector<int32_t> tokens, int64_t n_compress,
                             const KvPolicySettings& settings)
    : ctx_(ctx), tokens_(std::move(tokens)) {
  const int64_t n = (int64_t)tokens_.size();
  if (n == 0) fail("empty prompt");
  rep_.policy = settings.name;
  rep_.query_agnostic = settings.query_agnostic;
  if (!settings.query_agnostic || n_compress < 0 || n_compress > n) n_compress = n;
  n_compress_ = n;
  if (!kv_policy_info(settings.name).make) return;  // "none": the plain path
  if (ctx.cache().total_entries() != 0)
    fail("KV eviction compresses a fresh prompt; the cache already holds {} entries",
         ctx.cache().total_entries());
  auto pc = std::make_unique<PromptCompressor>(settings, ctx.model().config(), n_compress);
  rep_.n_compressed = n_compress;
  rep_.budget = pc->resolved().budget;
  rep_.window = pc->resolved().window;
  rep_.sinks = pc->resolved().sinks;
  if (!pc->evicts()) return;  // nothing to drop: exactly the plain path
  n_compress_ = n_compress;
  pc_ = std::move(pc);
}

ContextStep StagedPrefill::next(int64_t max_tokens) {
  if (done()) fail("StagedPrefill::next: the prompt is already in");
  const bool compressing = pc_ && next_ < n_compress_;
  const int64_t end = compressing ? n_compress_ : (int64_t)tokens_.size();
  const int64_t n = std::min<int64_t>(std::max<int64_t>(max_tokens, 1), end - next_);
  return ContextStep{&ctx_, std::vector<int32_t>(tokens_.begin() + next_, tokens_.begin() + next_ + n),
                     compressing ? pc_->observer() : nullptr};
}

void StagedPrefill::ran(const ContextStep& chunk, double forward_ms) {
  const bool compressing = pc_ && next_ < n_compress_;
  next_ += (int64_t)chunk.tokens.size();
  rep_.prefill_ms += forward_ms;
  if (!compressing || next_ < n_compress_) return;
  // The compressed part is in: the observer's time moves from prefill to scoring.
  rep_.prefill_ms -= pc_->observer_ms();
  const std::vector<int32_t> context(tokens_.begin(), tokens_.begin() + n_compress_);
  const std::vector<int32_t> suffix(tokens_.begin() + n_compress_, tokens_.end());
  const KvScores& scores = pc_->score(ctx_, context, suffix);
  rep_.score_ms = pc_->score_ms();
  rep_.rss_before = current_rss_bytes();
  rep_.stats = pc_->evict(ctx_, scores);
  rep_.evict_ms = rep_.stats.evict_ms;
  rep_.rss_after = current_rss_bytes();
  rep_.evicted = true;
}

void StagedPrefill::run_all() {
  while (!done()) {
    const ContextStep chunk = next(ctx_.n_batch());
    Stopwatch sw;
    ctx_.prefill(chunk.tokens, chunk.observer);
    ran(chunk, sw.ms());
  }
}

KvCompressReport prefill_with_eviction(Context& ctx, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings) {
  StagedPrefill sp(ctx, tokens, n_compress, settings);
  sp.run_all();
  return sp.report();
}

std::string kept_positions_json(const KvCache& cache, const std::vector<int32_t>& prompt,
                                const KvCompressReport& rep) {
  const int32_t n = (int32_t)prompt.size();
  nlohmann::json kept = nlohmann::json::array();
  for (int l = 0; l < cache.n_layer(); ++l) {
    nlohmann::json layer = nlohmann::json::array();
    for (int h = 0; h < cache.n_kv_head(); ++h) {
      std::vector<int32_t> pos;
      for (int32_t p : cache.head(l, h).pos)
        if (p < n) pos.push_back(p);
      std::sort(pos.begin(), pos.end());  // compaction keeps order; sorted by contract anyway
      layer.push_back(pos);
    }
    kept.push_back(std::move(layer));
  }
  nlohmann::json j = {{"policy", rep.policy},
                      {"evicted", rep.evicted},
                      {"query_agnostic", rep.query_agnostic},
                      {"n_prompt", n},
                      {"n_compressed", rep.evicted ? rep.n_compressed : 0},
                      {"budget", rep.budget},
                      {"window", rep.window},
                      {"sinks", rep.sinks},
                      {"n_layer", cache.n_layer()},
                      {"n_kv_head", cache.n_kv_head()},
                      {"tokens", prompt},
                      {"kept", std::move(kept)}};
  return j.dump();
}

}  // namespace glimpse
