#include "kv/kv_scores.h"

#include <algorithm>

#include "util/error.h"

namespace glimpse {

PoolKind parse_pool_kind(const std::string& s) {
  if (s == "none") return PoolKind::None;
  if (s == "max") return PoolKind::Max;
  if (s == "avg") return PoolKind::Avg;
  fail("unknown pooling '{}' (none, max, avg)", s);
}

GroupReduce parse_group_reduce(const std::string& s) {
  if (s == "mean") return GroupReduce::Mean;
  if (s == "max") return GroupReduce::Max;
  fail("unknown group reduction '{}' (mean, max)", s);
}

const char* pool_kind_name(PoolKind k) {
  return k == PoolKind::Max ? "max" : k == PoolKind::Avg ? "avg" : "none";
}

const char* group_reduce_name(GroupReduce r) { return r == GroupReduce::Max ? "max" : "mean"; }

void pool1d(const float* in, int64_t n, int kernel, PoolKind kind, float* out) {
  if (kind == PoolKind::None || kernel <= 1) {
    std::copy_n(in, n, out);
    return;
  }
  const int64_t r = kernel / 2;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t lo = std::max<int64_t>(0, j - r), hi = std::min<int64_t>(n - 1, j + r);
    if (kind == PoolKind::Max) {
      float m = in[lo];
      for (int64_t i = lo + 1; i <= hi; ++i) m = std::max(m, in[i]);
      out[j] = m;
    } else {
      double sum = 0;
      for (int64_t i = lo; i <= hi; ++i) sum += in[i];
      out[j] = (float)(sum / kernel);
    }
  }
}

KvScores reduce_query_heads(const std::vector<float>& per_qhead, int n_layer, int n_head,
                            int n_kv_head, int64_t n, int pool_kernel, PoolKind pool,
                            GroupReduce reduce, int64_t n_pooled) {
  if ((int64_t)per_qhead.size() != (int64_t)n_layer * n_head * n)
    fail("reduce_query_heads: {} scores for {} layers x {} heads x {} tokens", per_qhead.size(),
         n_layer, n_head, n);
  const int G = n_head / n_kv_head;
  const int64_t np = n_pooled < 0 ? n : std::clamp<int64_t>(n_pooled, 0, n);
  KvScores out(n_layer, n_kv_head, n);
  std::vector<float> pooled(n);
  for (int l = 0; l < n_layer; ++l)
    for (int h = 0; h < n_kv_head; ++h) {
      float* dst = out.at(l, h);
      for (int g = 0; g < G; ++g) {
        const float* row = per_qhead.data() + ((size_t)l * n_head + h * G + g) * n;
        pool1d(row, np, pool_kernel, pool, pooled.data());
        std::copy(row + np, row + n, pooled.data() + np);
        for (int64_t j = 0; j < n; ++j) {
          if (reduce == GroupReduce::Max)
            dst[j] = g == 0 ? pooled[j] : std::max(dst[j], pooled[j]);
          else
            dst[j] += pooled[j] / (float)G;
        }
      }
    }
  return out;
}

}  // namespace glimpse
