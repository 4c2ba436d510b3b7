#include "eval/retention.h"

#include <algorithm>
#include <unordered_set>

#include "eval/metrics.h"
#include "kv/kv_cache.h"
#include "kv/kv_scores.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace glimpse::eval {

std::vector<size_t> piece_offsets(const Tokenizer& tok, std::span<const int32_t> ids,
                                  std::string* text) {
  std::vector<size_t> off(ids.size() + 1, 0);
  std::string all;
  for (size_t i = 0; i < ids.size(); ++i) {
    all += tok.token_to_piece(ids[i]);
    off[i + 1] = all.size();
  }
  if (text) *text = std::move(all);
  return off;
}

std::vector<int64_t> tokens_overlapping(const std::vector<size_t>& offsets,
                                        const std::vector<std::pair<size_t, size_t>>& spans) {
  std::vector<int64_t> out;
  if (offsets.size() < 2) return out;
  const size_t n = offsets.size() - 1;
  for (const auto& [a, b] : spans) {
    if (a >= b) continue;
    // First token ending after a (offsets ascend; an empty piece ends where it starts).
    size_t i = (size_t)(std::upper_bound(offsets.begin() + 1, offsets.end(), a) - offsets.begin()) - 1;
    for (; i < n && offsets[i] < b; ++i)
      if (offsets[i + 1] > offsets[i]) out.push_back((int64_t)i);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<std::vector<int64_t>> evidence_tokens(const Tokenizer& tok,
                                                    std::span<const int32_t> prompt,
                                                    const Sample& sample, int64_t limit) {
  if (sample.evidence.empty()) return std::nullopt;
  std::string text;
  const std::vector<size_t> off = piece_offsets(tok, prompt, &text);
  const size_t at = text.find(sample.prompt());
  if (at == std::string::npos) return std::nullopt;
  std::vector<std::pair<size_t, size_t>> spans;
  for (const std::string& e : sample.evidence) {
    const size_t p = sample.context.find(e);
    if (p != std::string::npos && !e.empty()) spans.push_back({at + p, at + p + e.size()});
  }
  std::vector<int64_t> idx = tokens_overlapping(off, spans);
  idx.erase(std::lower_bound(idx.begin(), idx.end(), limit), idx.end());
  if (idx.empty()) return std::nullopt;
  return idx;
}

std::optional<EvidenceRecall> evidence_recall(const std::vector<std::vector<int32_t>>& kept,
                                              int n_layer, int n_kv_head,
                                              const std::vector<int64_t>& evidence) {
  if (n_layer <= 0 || n_kv_head <= 0 || kept.size() != (size_t)n_layer * n_kv_head)
    fail("evidence recall: {} kept lists for {} layers x {} KV heads", kept.size(), n_layer,
         n_kv_head);
  std::vector<int64_t> ev(evidence);
  std::sort(ev.begin(), ev.end());
  ev.erase(std::unique(ev.begin(), ev.end()), ev.end());
  if (ev.empty()) return std::nullopt;
  EvidenceRecall r;
  r.per_head.assign(kept.size(), 0.0);
  r.per_layer.assign((size_t)n_layer, 0.0);
  for (int l = 0; l < n_layer; ++l) {
    std::vector<char> in_layer(ev.size(), 0);
    for (int h = 0; h < n_kv_head; ++h) {
      const std::vector<int32_t>& k = kept[(size_t)l * n_kv_head + h];
      const std::unordered_set<int64_t> set(k.begin(), k.end());
      size_t hit = 0;
      for (size_t j = 0; j < ev.size(); ++j)
        if (set.count(ev[j])) ++hit, in_layer[j] = 1;
      r.per_head[(size_t)l * n_kv_head + h] = (double)hit / (double)ev.size();
      r.per_layer[l] += r.per_head[(size_t)l * n_kv_head + h] / n_kv_head;
    }
    const double covered = (double)std::count(in_layer.begin(), in_layer.end(), 1);
    r.any_head += covered / (double)ev.size() / n_layer;
  }
  for (double x : r.per_head) r.mean += x / (double)r.per_head.size();
  return r;
}

namespace {

// Prompt index of cache position p (identity without a map; -1 past the mapped region).
int64_t prompt_index(int32_t p, const std::vector<int64_t>* orig) {
  if (!orig) return p;
  return p >= 0 && (size_t)p < orig->size() ? (*orig)[(size_t)p] : -1;
}

}  // namespace

std::optional<EvidenceRecall> evidence_recall(const KvCache& kc, const std::vector<int64_t>& evidence,
                                              const std::vector<int64_t>* orig) {
  // Evicted layers only: a sliding-window layer holds its recent window whatever the policy.
  std::vector<std::vector<int32_t>> kept;
  int n_layer = 0;
  for (int l = 0; l < kc.n_layer(); ++l) {
    if (kc.window(l) > 0) continue;
    ++n_layer;
    for (int h = 0; h < kc.n_kv_head(); ++h) {
      kept.emplace_back();
      for (int32_t p : kc.head(l, h).pos) kept.back().push_back((int32_t)prompt_index(p, orig));
    }
  }
  return evidence_recall(kept, n_layer, kc.n_kv_head(), evidence);
}

double target_recall(const KvCache& kc, const KvScores& oracle, int64_t n_compressed,
                     const std::vector<int64_t>* orig) {
  const int64_t n_region = orig ? (int64_t)orig->size() : n_compressed;  // in cache positions
  double sum = 0;
  int n_layer = 0;  // evicted layers (sliding-window ones keep their window)
  for (int l = 0; l < kc.n_layer(); ++l) {
    if (kc.window(l) > 0) continue;
    ++n_layer;
    for (int h = 0; h < kc.n_kv_head(); ++h) {
      const KvHead& hd = kc.head(l, h);
      const size_t k = (size_t)std::min<int64_t>(hd.size(), n_region);
      const auto top = top_k_indices({oracle.at(l, h), (size_t)n_compressed}, k);
      std::vector<int64_t> kept;
      for (size_t i = 0; i < k; ++i) kept.push_back(prompt_index(hd.pos[i], orig));
      sum += recall_at_k(top, kept);
    }
  }
  return n_layer > 0 ? sum / (n_layer * kc.n_kv_head()) : 1.0;
}

}  // namespace glimpse::eval
