// The one selection path every policy shares: protected entries (sinks, recent window) +
// the top-scored rest per (layer, KV head) up to the plan's count, then compaction of the
// cache so evicted entries' memory is released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/budget.h"
#include "kv/kv_cache.h"
#include "kv/kv_scores.h"

namespace glimpse {

// mask[j] = 1 for the first `sinks` and the last `window` of n prompt entries.
std::vector<uint8_t> protected_mask(int64_t n, int64_t sinks, int64_t window);

// Entries one head keeps: every protected one plus the `keep` highest-scored others (ties
// go to the earlier entry; NaN counts as lowest), returned in ascending order.
std::vector<int32_t> select_keep(const float* scores, const std::vector<uint8_t>& is_protected,
                                 int64_t keep);

struct EvictionStats {
  size_t kv_bytes_before = 0, kv_bytes_after = 0;  // allocated cache buffers
  int64_t entries_before = 0, entries_after = 0;   // summed over layers and heads
  std::vector<int64_t> kept_per_layer;             // entries per layer, summed over heads
  int n_layers_evicted = 0;  // layers compacted to the budget (sliding-window ones are not)
  double evict_ms = 0;
};

// Every head's first scores.n_tokens entries are the prompt region being compressed;
// entries after it (none right after prefill) are kept as they are. Sliding-window layers
// (cache.window(l) > 0) are left as they are.
EvictionStats compact_cache(KvCache& cache, const KvScores& scores, const BudgetPlan& plan,
                            const std::vector<uint8_t>& is_protected);

}  // namespace glimpse
