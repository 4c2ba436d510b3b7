// Small helpers shared by policies that run the model themselves (oracle, LAQ).
#pragma once

#include <cstdint>
#include <climits>
#include <vector>

#include "model/model.h"

namespace glimpse {

// Greedy pick: the highest logit, ties to the lower id.
int32_t argmax_token(const std::vector<float>& logits);

// Keeps a copy of every layer's queries (post-RoPE, as LayerQueries holds them) whose
// position lies in [pos_lo, pos_hi): q[layer] = rows of [n_head][head_dim] floats and
// pos[layer] their positions, in the order the tokens were run.
class QueryCapture : public ForwardObserver {
 public:
  explicit QueryCapture(int n_layer, int32_t pos_lo = INT32_MIN, int32_t pos_hi = INT32_MAX)
      : q(n_layer), pos(n_layer), pos_lo_(pos_lo), pos_hi_(pos_hi) {}
  void on_queries(const LayerQueries& lq, ThreadPool&) override;
  std::vector<std::vector<float>> q;
  std::vector<std::vector<int32_t>> pos;

 private:
  int32_t pos_lo_, pos_hi_;
};

// Feeds several observers from one forward pass.
class ObserverList : public ForwardObserver {
 public:
  void add(ForwardObserver* o) { if (o) list_.push_back(o); }
  void on_queries(const LayerQueries& lq, ThreadPool& pool) override {
    for (ForwardObserver* o : list_) o->on_queries(lq, pool);
  }
  bool empty() const { return list_.empty(); }

 private:
  std::vector<ForwardObserver*> list_;
};

}  // namespace glimpse
