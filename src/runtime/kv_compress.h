// Prefill followed by one-shot KV eviction: the request path every frontend uses when a
// KV policy is set.
//
// Query-aware (default): the whole prompt, question included, is prefilled, scored and
// compressed; the first answer token comes from the full-cache prefill logits.
// Query-agnostic: only tokens[0, n_compress) (the context) are prefilled and compressed;
// the rest (the question) is prefilled afterwards over the compressed cache, as kvpress does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/evict.h"
#include "kv/policy.h"

namespace glimpse {

class Session;
class ThreadPool;

struct KvCompressReport {
  std::string policy = "none";
  bool evicted = false;
  bool query_agnostic = false;
  int64_t n_compressed = 0;  // prompt entries per head that were scored
  int64_t budget = 0, window = 0, sinks = 0;
  double prefill_ms = 0;  // forward passes over the prompt (both parts when agnostic)
  double score_ms = 0;    // scoring: observer work during prefill + the policy's own pass
  double evict_ms = 0;    // selection + compaction
  EvictionStats stats;
  size_t rss_before = 0, rss_after = 0;  // process resident bytes around the eviction

  // Lines for the stderr summary, and a JSON object for --timings-json.
  std::string report() const;
  std::string to_json() const;
};

// The pieces of a session the compression path needs (tests drive it on tiny models).
struct PrefillTarget {
  const Model& model;
  KvCache& cache;
  ThreadPool& pool;
  int n_batch = 512;
  std::function<bool(int32_t)> is_eog;
};

KvCompressReport prefill_with_eviction(const PrefillTarget& t, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings,
                                       std::vector<float>& last_logits);
KvCompressReport prefill_with_eviction(Session& s, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings,
                                       std::vector<float>& last_logits);

}  // namespace glimpse
