#include "kv/budget.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace glimpse {

std::vector<int64_t> round_shares(const std::vector<double>& wants, int64_t total, int64_t cap) {
  const size_t n = wants.size();
  std::vector<int64_t> out(n, 0);
  if (n == 0 || total <= 0 || cap <= 0) return out;
  total = std::min<int64_t>(total, cap * (int64_t)n);
  // Scale the wants to the total, then cap and redistribute until everything fits.
  std::vector<double> w(wants);
  for (auto& x : w) x = std::max(0.0, x);
  std::vector<bool> capped(n, false);
  int64_t remaining = total;
  for (int iter = 0; iter < (int)n + 1; ++iter) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) if (!capped[i]) sum += w[i];
    std::vector<double> share(n, 0.0);
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      if (capped[i]) continue;
      size_t n_free = 0;
      for (size_t k = 0; k < n; ++k) n_free += !capped[k];
      share[i] = sum > 0 ? w[i] / sum * remaining : (double)remaining / n_free;
      if (share[i] > cap) {
        capped[i] = true;
        out[i] = cap;
        remaining -= cap;
        changed = true;
      }
    }
    if (changed) continue;
    // Largest remainder among the uncapped parts.
    int64_t given = 0;
    std::vector<std::pair<double, size_t>> rem;
    for (size_t i = 0; i < n; ++i) {
      if (capped[i]) continue;
      out[i] = (int64_t)std::floor(share[i]);
      given += out[i];
      rem.push_back({share[i] - std::floor(share[i]), i});
    }
    std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (size_t k = 0; given < remaining && k < rem.size(); ++k, ++given) ++out[rem[k].second];
    // Rare: floor+1 could not place everything because parts hit the cap; fill in order.
    for (size_t i = 0; given < remaining && i < n; ++i)
      while (given < remaining && out[i] < cap) ++out[i], ++given;
    break;
  }
  return out;
}

BudgetPlan allocate_uniform(int n_layer, int n_kv_head, int64_t scored, int64_t n_scored) {
  BudgetPlan p{n_layer, n_kv_head, {}};
  p.keep.assign((size_t)n_layer * n_kv_head, std::clamp<int64_t>(scored, 0, n_scored));
  return p;
}

BudgetPlan allocate_pyramid(int n_layer, int n_kv_head, int64_t scored, int64_t n_scored,
                            double beta) {
  BudgetPlan p{n_layer, n_kv_head, {}};
  const int64_t B = std::clamp<int64_t>(scored, 0, n_scored);
  if (n_layer == 1 || B == 0 || B == n_scored) return allocate_uniform(n_layer, n_kv_head, B, n_scored);
  double mn = (double)B / beta, mx = 2.0 * B - mn;
  if (mx > n_scored) {
    mx = (double)n_scored;
    mn = 2.0 * B - mx;
  }
  std::vector<double> wants(n_layer);
  for (int l = 0; l < n_layer; ++l) wants[l] = mx - l * (mx - mn) / (n_layer - 1);
  const std::vector<int64_t> per_layer = round_shares(wants, B * n_layer, n_scored);
  for (int l = 0; l < n_layer; ++l)
    for (int h = 0; h < n_kv_head; ++h) p.keep.push_back(per_layer[l]);
  return p;
}

BudgetPlan allocate_ada(const KvScores& scores, const std::vector<uint8_t>& is_protected,
                        int64_t scored, double alpha) {
  const int L = scores.n_layer, H = scores.n_kv_head;
  const int64_t n = scores.n_tokens;
  if ((int64_t)is_protected.size() != n) fail("allocate_ada: protection mask size");
  int64_t n_scored = 0;
  for (uint8_t x : is_protected) n_scored += !x;
  const int64_t B = std::clamp<int64_t>(scored, 0, n_scored);
  BudgetPlan p{L, H, {}};
  if (B == 0 || B == n_scored) return allocate_uniform(L, H, B, n_scored);
  std::vector<std::pair<float, int>> all;  // (score, head) of unprotected entries
  all.reserve((size_t)H * n_scored);
  for (int l = 0; l < L; ++l) {
    all.clear();
    for (int h = 0; h < H; ++h) {
      const float* s = scores.at(l, h);
      for (int64_t j = 0; j < n; ++j)
        if (!is_protected[j]) all.push_back({s[j], h});
    }
    const int64_t top = B * H;
    std::nth_element(all.begin(), all.begin() + (top - 1), all.end(),
                     [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<double> wants(H, alpha * B);
    for (int64_t i = 0; i < top; ++i) wants[all[i].second] += (1.0 - alpha);
    const std::vector<int64_t> per_head = round_shares(wants, top, n_scored);
    for (int h = 0; h < H; ++h) p.keep.push_back(per_head[h]);
  }
  return p;
}

BudgetPlan allocate_global(const KvScores& scores, const std::vector<uint8_t>& is_protected,
                           int64_t scored, double alpha, const std::vector<uint8_t>& layer_scored) {
  const int L = scores.n_layer, H = scores.n_kv_head;
  const int64_t n = scores.n_tokens;
  if ((int64_t)is_protected.size() != n) fail("allocate_global: protection mask size");
  if (!layer_scored.empty() && (int)layer_scored.size() != L) fail("allocate_global: layer mask size");
  int64_t n_scored = 0;
  for (uint8_t x : is_protected) n_scored += !x;
  const int64_t B = std::clamp<int64_t>(scored, 0, n_scored);
  std::vector<int> layers;
  for (int l = 0; l < L; ++l)
    if (layer_scored.empty() || layer_scored[(size_t)l]) layers.push_back(l);
  BudgetPlan p = allocate_uniform(L, H, 0, n_scored);
  if (layers.empty()) return p;
  if (B == 0 || B == n_scored) {
    for (int l : layers)
      for (int h = 0; h < H; ++h) p.keep[(size_t)l * H + h] = B;
    return p;
  }
  // (score, slot) of every unprotected entry; slot = index into layers x heads.
  std::vector<std::pair<float, int>> all;
  all.reserve(layers.size() * H * (size_t)n_scored);
  for (size_t i = 0; i < layers.size(); ++i)
    for (int h = 0; h < H; ++h) {
      const float* s = scores.at(layers[i], h);
      for (int64_t j = 0; j < n; ++j)
        if (!is_protected[j]) all.push_back({s[j], (int)(i * H + h)});
    }
  const int64_t top = B * H * (int64_t)layers.size();
  std::nth_element(all.begin(), all.begin() + (top - 1), all.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<double> wants(layers.size() * H, alpha * B);
  for (int64_t i = 0; i < top; ++i) wants[all[i].second] += (1.0 - alpha);
  const std::vector<int64_t> per_head = round_shares(wants, top, n_scored);
  for (size_t i = 0; i < layers.size(); ++i)
    for (int h = 0; h < H; ++h) p.keep[(size_t)layers[i] * H + h] = per_head[i * H + h];
  return p;
}

BudgetAllocation parse_budget_allocation(const std::string& s) {
  if (s == "uniform") return BudgetAllocation::Uniform;
  if (s == "pyramid") return BudgetAllocation::Pyramid;
  if (s == "ada") return BudgetAllocation::AdaHead;
  if (s == "global") return BudgetAllocation::Global;
  fail("unknown budget allocation '{}' (uniform, pyramid, ada, global)", s);
}

const char* budget_allocation_name(BudgetAllocation a) {
  switch (a) {
    case BudgetAllocation::Pyramid: return "pyramid";
    case BudgetAllocation::AdaHead: return "ada";
    case BudgetAllocation::Global: return "global";
    case BudgetAllocation::Uniform: break;
  }
  return "uniform";
}

}  // namespace glimpse
