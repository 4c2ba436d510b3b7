// StreamingLLM: keep the first 4 entries (attention sinks) and the most recent C - 4; no
// scoring at all (the window fills the whole budget, so nothing is chosen by score).
#include "kv/policy.h"

namespace glimpse {
namespace {

class StreamingPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "streaming"; }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.sinks = 4;
    d.window_fills_budget = true;
    return d;
  }
  KvScores score(PolicyInput& in) override {
    return KvScores(in.cache.n_layer(), in.cache.n_kv_head(), in.cfg.n_prompt);
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_streaming_policy() { return std::make_unique<StreamingPolicy>(); }

}  // namespace glimpse
