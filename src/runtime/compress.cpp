#include "runtime/compress.h"

#include <algorithm>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/specpc.h"
#include "util/error.h"
#include "util/malloc_trim.h"
#include "util/proc_memory.h"
#include "util/timer.h"

namespace glimpse {

std::string KvCompressReport::report() const {
  std::string s;
  if (prompt_compress != "none")
    s += fmt::format("glimpse: prompt compression = {}{}, {} -> {} tokens, draft time = {:.2f} ms, "
                     "selection = {:.2f} ms\n",
                     prompt_compress, pc_cross ? " (draft of another vocabulary)" : "",
                     n_pc_before, n_pc_after, pc_draft_ms, pc_select_ms);
  if (policy == "none") return s;
  s += fmt::format("glimpse: kv policy = {}, {}", policy,
                              query_agnostic ? "query-agnostic" : "query-aware");
  if (!evicted)
    return s + fmt::format(", budget {} covers the {}-token prompt: nothing evicted\n", budget,
                           n_compressed);
  s += fmt::format(", budget {} of {} (window {}, sinks {})", budget, n_compressed, window, sinks);
  const int n_layer = (int)stats.kept_per_layer.size();
  if (stats.n_layers_evicted < n_layer)
    s += fmt::format(" on {} of {} layers (the sliding-window layers keep their window)",
                     stats.n_layers_evicted, n_layer);
  s += "\n";
  s += fmt::format("glimpse:   kv scoring time = {:10.2f} ms, eviction time = {:8.2f} ms "
                   "({:.2f}% of prefill)\n",
                   score_ms, evict_ms, prefill_ms > 0 ? 100.0 * (score_ms + evict_ms) / prefill_ms : 0.0);
  if (draft_ms > 0 || rows_ms > 0)
    s += fmt::format("glimpse:   of which draft answer = {:.2f} ms, target forward of its rows = "
                     "{:.2f} ms\n", draft_ms, rows_ms);
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
                      {"draft_ms", draft_ms},
                      {"rows_ms", rows_ms},
                      {"prompt_compress", prompt_compress},
                      {"n_pc_before", n_pc_before},
                      {"n_pc_after", n_pc_after},
                      {"pc_cross", pc_cross},
                      {"pc_draft_ms", pc_draft_ms},
                      {"pc_select_ms", pc_select_ms},
                      {"kv_bytes_before", stats.kv_bytes_before},
                      {"kv_bytes_after", stats.kv_bytes_after},
                      {"entries_before", stats.entries_before},
                      {"entries_after", stats.entries_after},
                      {"kept_per_layer", stats.kept_per_layer},
                      {"n_layers_evicted", stats.n_layers_evicted},
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
  std::vector<uint8_t> layer_scored;
  for (int l = 0; l < kc.n_layer(); ++l) layer_scored.push_back(kc.window(l) == 0);
  const BudgetPlan plan = plan_budget(r_, scores, prot, kc.n_layer(), kc.n_kv_head(), layer_scored);
  EvictionStats st = compact_cache(ctx.cache(), scores, plan, prot);
  release_free_memory();  // hand the freed KV buffers back to the OS
  st.evict_ms = sw.ms();
  return st;
}

std::vector<int32_t> compress_prompt(Context& ctx, const std::vector<int32_t>& tokens,
                                     int64_t& n_compress, const KvPolicySettings& settings,
                                     KvCompressReport& rep) {
  if (settings.prompt_compress == "none") return tokens;
  if (settings.prompt_compress != "specpc")
    fail("unknown prompt compression '{}'", settings.prompt_compress);
  // SpecKV-PC: one draft run writes SpecKV's answer too, from the full prompt.
  const bool chained = settings.name == "speckv" && settings.draft_model == settings.pc_draft;
  const PromptCompression pc =
      specpc_compress(tokens, ctx.tokenizer(), ctx.pool(), ctx.n_batch(), settings,
                      chained ? resolved_draft_max_new(settings) : 0);
  if (chained && pc.kept.size() < tokens.size()) ctx.prepare_draft_answer(settings.pc_draft, pc.answer);
  rep.prompt_compress = settings.prompt_compress;
  rep.n_pc_before = (int64_t)tokens.size();
  rep.n_pc_after = (int64_t)pc.tokens.size();
  rep.pc_cross = pc.cross;
  rep.pc_draft_ms = pc.draft_ms;
  rep.pc_select_ms = pc.select_ms;
  rep.pc_kept = pc.kept;
  if (n_compress >= 0) {  // query-agnostic: the context's kept tokens
    int64_t k = 0;
    for (int64_t j : pc.kept) k += j < n_compress;
    n_compress = k;
  }
  return pc.tokens;
}

StagedPrefill::StagedPrefill(Context& ctx, std::vector<int32_t> tokens, int64_t n_compress,
                             const KvPolicySettings& settings)
    : ctx_(ctx) {
  if (tokens.empty()) fail("empty prompt");
  tokens_ = compress_prompt(ctx, tokens, n_compress, settings, rep_);
  const int64_t n = (int64_t)tokens_.size();
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
  rep_.draft_ms = pc_->draft_ms();
  rep_.rows_ms = pc_->rows_ms();
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
