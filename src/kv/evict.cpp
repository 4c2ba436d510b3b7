#include "kv/evict.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

std::vector<uint8_t> protected_mask(int64_t n, int64_t sinks, int64_t window) {
  std::vector<uint8_t> m((size_t)std::max<int64_t>(n, 0), 0);
  for (int64_t j = 0; j < std::min(n, sinks); ++j) m[j] = 1;
  for (int64_t j = std::max<int64_t>(0, n - window); j < n; ++j) m[j] = 1;
  return m;
}

std::vector<int32_t> select_keep(const float* scores, const std::vector<uint8_t>& is_protected,
                                 int64_t keep) {
  const int64_t n = (int64_t)is_protected.size();
  std::vector<int32_t> cand, out;
  for (int64_t j = 0; j < n; ++j) (is_protected[j] ? out : cand).push_back((int32_t)j);
  keep = std::clamp<int64_t>(keep, 0, (int64_t)cand.size());
  if (keep > 0 && keep < (int64_t)cand.size()) {
    auto key = [&](int32_t j) { return std::isnan(scores[j]) ? -INFINITY : scores[j]; };
    // Strict total order (score desc, index asc): the selection is deterministic.
    std::nth_element(cand.begin(), cand.begin() + (keep - 1), cand.end(), [&](int32_t a, int32_t b) {
      const float sa = key(a), sb = key(b);
      return sa != sb ? sa > sb : a < b;
    });
  }
  out.insert(out.end(), cand.begin(), cand.begin() + keep);
  std::sort(out.begin(), out.end());
  return out;
}

EvictionStats compact_cache(KvCache& cache, const KvScores& scores, const BudgetPlan& plan,
                            const std::vector<uint8_t>& is_protected) {
  Stopwatch sw;
  EvictionStats st;
  const int L = cache.n_layer(), H = cache.n_kv_head();
  const int64_t n = scores.n_tokens;
  if (scores.n_layer != L || scores.n_kv_head != H || plan.n_layer != L || plan.n_kv_head != H ||
      (int64_t)is_protected.size() != n)
    fail("eviction: scores/plan shapes do not match the cache");
  st.kv_bytes_before = cache.resident_bytes();
  st.entries_before = cache.total_entries();
  st.kept_per_layer.assign(L, 0);
  for (int l = 0; l < L; ++l) st.n_layers_evicted += cache.window(l) == 0;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const KvHead& hd = cache.head(l, h);
      // Sliding-window layers keep their own bounded window (kv/kv_cache.h): no eviction.
      if (cache.window(l) > 0) {
        st.kept_per_layer[l] += hd.size();
        continue;
      }
      if (hd.size() < n) fail("eviction: head holds {} entries, fewer than the {} scored", hd.size(), n);
      std::vector<int32_t> idx = select_keep(scores.at(l, h), is_protected, plan.at(l, h));
      for (int64_t j = n; j < hd.size(); ++j) idx.push_back((int32_t)j);
      if ((int64_t)idx.size() < hd.size()) cache.gather(l, h, idx.data(), (int64_t)idx.size());
      st.kept_per_layer[l] += cache.head(l, h).size();
    }
  st.kv_bytes_after = cache.resident_bytes();
  st.entries_after = cache.total_entries();
  st.evict_ms = sw.ms();
  return st;
}

}  // namespace glimpse
