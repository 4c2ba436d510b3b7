#include "runtime/prefix_cache.h"

#include <algorithm>

#include <fmt/format.h>

#include "util/error.h"
#include "util/malloc_trim.h"

namespace glimpse {

std::string policy_key(const KvPolicySettings& s) {
  return fmt::format(
      "{}|b{}|r{}|w{}|s{}|pk{}|p{}|g{}|qa{}|a{}|pb{}|seed{}|om{}|lp{}|m{}|ea{},{},{},{}|d{},{},{}|pc{},{},{},{},{},{}",
      s.name,
      s.budget, s.ratio, s.window, s.sinks, s.pool_kernel, s.pool ? (int)*s.pool : -1,
      (int)s.reduce, s.query_agnostic, s.ada_alpha, s.pyramid_beta, s.seed, s.oracle_max_new,
      s.laq_pseudo, s.lookahead_module, s.ea_future, s.ea_covariance, s.ea_vnorm, s.ea_epsilon,
      s.draft_model, s.draft_max_new, s.draft_query_mean, s.prompt_compress, s.pc_draft,
      s.pc_budget, s.pc_kernel, s.pc_window, s.pc_lookahead) +
         (s.allocation ? fmt::format("|al{}", budget_allocation_name(*s.allocation)) : "");
}

namespace {

int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return ia - a.begin();
}

}  // namespace

PrefixCache::Hit PrefixCache::take_fork(std::list<Entry>::iterator it, int64_t n_tokens) {
  Hit h;
  h.ctx = it->ctx->fork();
  if (h.ctx->n_past() > n_tokens) h.ctx->truncate((int32_t)n_tokens);
  h.n_tokens = n_tokens;
  h.compressed = it->report;
  entries_.splice(entries_.begin(), entries_, it);  // most recently used
  ++stats_.hits;
  stats_.tokens_reused += n_tokens;
  return h;
}

std::optional<PrefixCache::Hit> PrefixCache::find_prefix(const std::vector<int32_t>& prompt,
                                                         int64_t min_tokens) {
  const std::lock_guard<std::mutex> lock(m_);
  ++stats_.lookups;
  auto best = entries_.end();
  int64_t best_n = 0;
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!it->key.empty()) continue;
    const int64_t n = std::min<int64_t>(common_prefix(it->tokens, prompt), (int64_t)prompt.size() - 1);
    // A fork rolled back below what sliding-window layers still hold would not be exact.
    if (n < it->ctx->n_past() && n < it->ctx->cache().rollback_floor()) continue;
    if (n > best_n) best = it, best_n = n;
  }
  if (best == entries_.end() || best_n < std::max<int64_t>(min_tokens, 1)) return std::nullopt;
  return take_fork(best, best_n);
}

std::optional<PrefixCache::Hit> PrefixCache::find_compressed(const std::vector<int32_t>& document,
                                                             const std::string& key) {
  const std::lock_guard<std::mutex> lock(m_);
  ++stats_.lookups;
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->key == key && it->tokens == document) return take_fork(it, (int64_t)document.size());
  return std::nullopt;
}

void PrefixCache::put_full(std::vector<int32_t> tokens, std::unique_ptr<Context> ctx) {
  if (tokens.empty() || ctx->n_past() != (int32_t)tokens.size() ||
      ctx->cache().total_entries() !=
          (int64_t)tokens.size() * ctx->cache().n_layer() * ctx->cache().n_kv_head())
    fail("PrefixCache::put_full: the context does not hold exactly these {} tokens", tokens.size());
  Entry e;
  e.tokens = std::move(tokens);
  e.ctx = std::move(ctx);
  const std::lock_guard<std::mutex> lock(m_);
  std::erase_if(entries_, [&](const Entry& old) {
    return old.key.empty() && old.tokens.size() <= e.tokens.size() &&
           std::equal(old.tokens.begin(), old.tokens.end(), e.tokens.begin());
  });
  insert(std::move(e));
}

void PrefixCache::put_compressed(std::vector<int32_t> document, std::string key,
                                 std::unique_ptr<Context> ctx, const KvCompressReport& report) {
  if (key.empty()) fail("PrefixCache::put_compressed: an empty settings key");
  Entry e;
  e.key = std::move(key);
  e.tokens = std::move(document);
  e.ctx = std::move(ctx);
  e.report = report;
  const std::lock_guard<std::mutex> lock(m_);
  std::erase_if(entries_, [&](const Entry& old) { return old.key == e.key && old.tokens == e.tokens; });
  insert(std::move(e));
}

void PrefixCache::insert(Entry e) {
  e.bytes = e.ctx->resident_bytes();
  entries_.push_front(std::move(e));
  bool evicted = false;
  size_t total = 0;
  for (const Entry& x : entries_) total += x.bytes;
  while (total > max_bytes_ && !entries_.empty()) {  // the new entry too, if it alone is over
    total -= entries_.back().bytes;
    entries_.pop_back();
    ++stats_.evictions;
    evicted = true;
  }
  if (evicted) release_free_memory();
}

PrefixCache::Stats PrefixCache::stats() const {
  const std::lock_guard<std::mutex> lock(m_);
  Stats s = stats_;
  s.entries = (int64_t)entries_.size();
  s.max_bytes = max_bytes_;
  for (const Entry& x : entries_) s.bytes += x.bytes;
  return s;
}

}  // namespace glimpse
