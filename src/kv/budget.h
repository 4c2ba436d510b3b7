// How many prompt entries each (layer, KV head) keeps. Budget C counts every kept entry,
// window and sinks included; allocators spread the scored part B = C - protected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_scores.h"

namespace glimpse {

// Uniform (every head B), Pyramid (PyramidKV, by layer), AdaHead (Ada-KV, across the heads of
// a layer), Global (Ada-KV's rule across every head of every scored layer: the layers'
// budgets follow the scores too, e.g. LookaheadKV's predicted attention).
enum class BudgetAllocation { Uniform, Pyramid, AdaHead, Global };
BudgetAllocation parse_budget_allocation(const std::string& s);  // uniform|pyramid|ada|global
const char* budget_allocation_name(BudgetAllocation a);

// keep[l * n_kv_head + h] = entries chosen by score (protected entries not included).
struct BudgetPlan {
  int n_layer = 0, n_kv_head = 0;
  std::vector<int64_t> keep;
  int64_t at(int l, int h) const { return keep[(size_t)l * n_kv_head + h]; }
};

// Every head picks B = min(scored, n_scored) entries.
BudgetPlan allocate_uniform(int n_layer, int n_kv_head, int64_t scored, int64_t n_scored);

// PyramidKV: per-layer counts falling linearly from layer 0 to L-1 around the mean B,
// min = B / beta, max = 2B - min (max clamped to n_scored, min recomputed); counts are
// rounded by largest remainder so the total is exactly L * B (budget-neutral).
BudgetPlan allocate_pyramid(int n_layer, int n_kv_head, int64_t scored, int64_t n_scored,
                            double beta);

// Ada-KV: within a layer, the top n_kv_head * B scores over all heads (outside protected
// entries, marked by is_protected[j]) give each head a share cnt_h; head budget =
// cnt_h * (1 - alpha) + alpha * B, rounded by largest remainder so the layer total is
// exactly n_kv_head * B, each clamped to n_scored.
BudgetPlan allocate_ada(const KvScores& scores, const std::vector<uint8_t>& is_protected,
                        int64_t scored, double alpha);

// Global: as allocate_ada, with the top (|scored layers| * n_kv_head * B) scores taken over
// every head of every layer with layer_scored[l] (empty: all), so a layer whose predicted
// attention is spread gets more than one whose attention is concentrated; each head keeps
// alpha * B before the split, the total is exactly |scored layers| * n_kv_head * B, and
// layers not scored get 0 (they are not evicted). Scores must be comparable across layers
// (attention probabilities, as every scoring policy here gives).
BudgetPlan allocate_global(const KvScores& scores, const std::vector<uint8_t>& is_protected,
                           int64_t scored, double alpha, const std::vector<uint8_t>& layer_scored);

// Splits `total` into parts proportional to the real-valued wants, each part <= cap,
// summing exactly to min(total, cap * n) (largest remainder, ties to the lower index).
std::vector<int64_t> round_shares(const std::vector<double>& wants, int64_t total, int64_t cap);

}  // namespace glimpse
