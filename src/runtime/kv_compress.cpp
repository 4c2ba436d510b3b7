#include "runtime/kv_compress.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/session.h"
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

namespace {

// Prompt tokens through the model in batches of n_batch; logits of the last token.
void prefill_tokens(const PrefillTarget& t, const std::vector<int32_t>& tokens,
                    std::vector<float>& last_logits, ForwardObserver* observer) {
  if (t.cache.n_past() + (int64_t)tokens.size() > t.cache.n_ctx())
    fail("prompt of {} tokens does not fit the context size {} ({} already used); raise -c",
         tokens.size(), t.cache.n_ctx(), t.cache.n_past());
  const int64_t n = (int64_t)tokens.size(), nb = std::max(1, t.n_batch);
  for (int64_t b = 0; b < n; b += nb)
    t.model.forward(tokens.data() + b, std::min<int64_t>(nb, n - b), t.cache, LogitsRows::Last,
                    last_logits, t.pool, observer);
}

}  // namespace

KvCompressReport prefill_with_eviction(Session& s, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings,
                                       std::vector<float>& last_logits) {
  PrefillTarget t{s.model(), s.cache(), s.pool(), s.n_batch(),
                  [&s](int32_t id) { return s.tokenizer().is_eog(id); }};
  return prefill_with_eviction(t, tokens, n_compress, settings, last_logits);
}

KvCompressReport prefill_with_eviction(const PrefillTarget& t, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings,
                                       std::vector<float>& last_logits) {
  KvCompressReport rep;
  rep.policy = settings.name;
  rep.query_agnostic = settings.query_agnostic;
  const int64_t n = (int64_t)tokens.size();
  if (!settings.query_agnostic || n_compress < 0 || n_compress > n) n_compress = n;
  std::unique_ptr<KvPolicy> policy = make_kv_policy(settings.name);
  Stopwatch sw;
  if (!policy) {
    prefill_tokens(t, tokens, last_logits, nullptr);
    rep.prefill_ms = sw.ms();
    return rep;
  }
  if (t.cache.total_entries() != 0)
    fail("KV eviction compresses a fresh prompt; the cache already holds {} entries",
         t.cache.total_entries());
  if (n_compress < 1) fail("query-agnostic mode found no context before the question");
  const std::vector<int32_t> context(tokens.begin(), tokens.begin() + n_compress);
  const std::vector<int32_t> suffix(tokens.begin() + n_compress, tokens.end());
  const ResolvedPolicy r = resolve_policy(settings, policy->defaults(), n_compress);
  rep.n_compressed = n_compress;
  rep.budget = r.budget;
  rep.window = r.window;
  rep.sinks = r.sinks;
  if (!r.evicts()) {  // nothing to drop: exactly the plain path
    prefill_tokens(t, tokens, last_logits, nullptr);
    rep.prefill_ms = sw.ms();
    return rep;
  }

  prefill_tokens(t, context, last_logits, policy->observer(t.model.config(), r));
  rep.prefill_ms = sw.ms() - policy->observer_ms();

  sw.reset();
  PolicyInput in{t.model, t.cache, t.pool, r, context, suffix, last_logits,
                 t.is_eog ? t.is_eog : [](int32_t) { return false; }};
  const KvScores scores = policy->score(in);
  rep.score_ms = sw.ms() + policy->observer_ms();

  rep.rss_before = current_rss_bytes();
  sw.reset();
  const std::vector<uint8_t> prot = protected_mask(n_compress, r.sinks, r.window);
  const BudgetPlan plan = plan_budget(r, scores, prot, t.cache.n_layer(), t.cache.n_kv_head());
  rep.stats = compact_cache(t.cache, scores, plan, prot);
  release_free_memory();  // hand the freed KV buffers back to the OS
  rep.stats.evict_ms = rep.evict_ms = sw.ms();
  rep.rss_after = current_rss_bytes();
  rep.evicted = true;

  if (!suffix.empty()) {
    sw.reset();
    prefill_tokens(t, suffix, last_logits, nullptr);
    rep.prefill_ms += sw.ms();
  }
  return rep;
}

}  // namespace glimpse
