#include "kv/policy.h"

#include <cmath>
#include <fstream>
#include <mutex>

#include "util/error.h"

namespace glimpse {

// Factories, one per policy file.
std::unique_ptr<KvPolicy> make_streaming_policy();
std::unique_ptr<KvPolicy> make_snapkv_policy(BudgetAllocation a);
std::unique_ptr<KvPolicy> make_h2o_policy();
std::unique_ptr<KvPolicy> make_tova_policy();
std::unique_ptr<KvPolicy> make_knorm_policy();
std::unique_ptr<KvPolicy> make_random_policy();
std::unique_ptr<KvPolicy> make_oracle_policy();
std::unique_ptr<KvPolicy> make_laq_policy();
std::unique_ptr<KvPolicy> make_pseudoquery_policy();
std::unique_ptr<KvPolicy> make_keydiff_policy();
std::unique_ptr<KvPolicy> make_expected_attention_policy();
std::unique_ptr<KvPolicy> make_speckv_policy();

namespace {

std::mutex& table_mutex() {
  static std::mutex mu;
  return mu;
}

std::vector<PolicyInfo>& table() {
  static std::vector<PolicyInfo> t = {
      {"none", nullptr},
      {"streaming", make_streaming_policy},
      {"h2o", make_h2o_policy},
      {"snapkv", [] { return make_snapkv_policy(BudgetAllocation::Uniform); }},
      {"pyramidkv", [] { return make_snapkv_policy(BudgetAllocation::Pyramid); }},
      {"adakv", [] { return make_snapkv_policy(BudgetAllocation::AdaHead); }},
      {"tova", make_tova_policy},
      {"knorm", make_knorm_policy},
      {"keydiff", make_keydiff_policy},
      {"expected_attention", make_expected_attention_policy},
      {"pseudoquery", make_pseudoquery_policy},
      {"random", make_random_policy},
      {"oracle", make_oracle_policy, /*generates=*/true, false, /*answer_attention_scores=*/true},
      {"laq", make_laq_policy, /*generates=*/true, /*budget_dependent_scores=*/true},
      {"speckv", make_speckv_policy, /*generates=*/true},
  };
  return t;
}

}  // namespace

const std::vector<PolicyInfo>& kv_policy_table() { return table(); }

void register_kv_policy(PolicyInfo info) {
  std::lock_guard<std::mutex> lock(table_mutex());
  for (PolicyInfo& p : table())
    if (p.name == info.name) {
      p = std::move(info);
      return;
    }
  table().push_back(std::move(info));
}

const PolicyInfo& kv_policy_info(const std::string& name) {
  for (const PolicyInfo& p : kv_policy_table())
    if (p.name == name) return p;
  std::string all;
  for (const auto& n : kv_policy_names()) all += (all.empty() ? "" : ", ") + n;
  fail("unknown KV policy '{}' (one of: {})", name, all);
}

std::unique_ptr<KvPolicy> make_kv_policy(const std::string& name) {
  const PolicyInfo& p = kv_policy_info(name);
  return p.make ? p.make() : nullptr;
}

std::vector<std::string> kv_policy_names() {
  std::vector<std::string> names;
  for (const PolicyInfo& p : kv_policy_table()) names.push_back(p.name);
  return names;
}

void validate_policy_settings(const KvPolicySettings& s) {
  make_kv_policy(s.name);
  if (s.prompt_compress != "none") {
    if (s.prompt_compress != "specpc")
      fail("unknown prompt compression '{}' (one of: none, specpc)", s.prompt_compress);
    if (s.pc_draft.empty()) fail("--prompt-compress specpc needs a draft model (--pc-draft FNAME)");
    if (!std::ifstream(s.pc_draft)) fail("cannot read draft model '{}'", s.pc_draft);
    if (s.pc_budget < 1) fail("--prompt-compress specpc needs --pc-budget N (N >= 1)");
    if (s.pc_kernel < 1) fail("--pc-kernel must be >= 1");
    if (s.pc_window < 0 || s.pc_window > s.pc_budget)
      fail("--pc-window must be in [0, --pc-budget]");
    if (s.pc_lookahead < 1) fail("--pc-lookahead must be >= 1");
  }
  // ratio: -1 = not given; else the fraction removed, so 1 (remove everything) is out.
  if (s.ratio != -1 && !(s.ratio >= 0 && s.ratio < 1)) fail("--kv-ratio must be in [0, 1)");
  if (s.name == "none") return;
  if (s.budget < 0 && s.ratio < 0) fail("KV policy '{}' needs --kv-budget N or --kv-ratio R", s.name);
  if (s.pool_kernel > 1 && s.pool_kernel % 2 == 0) fail("--kv-pool-kernel must be odd");
  if (!(s.ada_alpha >= 0 && s.ada_alpha <= 1)) fail("--kv-ada-alpha must be in [0, 1]");
  if (s.name == "lookahead" && !s.lookahead_module.empty() && !std::ifstream(s.lookahead_module))
    fail("cannot read LookaheadKV module '{}'", s.lookahead_module);
  if (s.name == "speckv") {
    if (s.draft_model.empty()) fail("KV policy 'speckv' needs a draft model (--kv-draft FNAME)");
    if (!std::ifstream(s.draft_model)) fail("cannot read draft model '{}'", s.draft_model);
    if (s.draft_max_new == 0 || s.draft_max_new < -1) fail("--kv-draft-n must be >= 1");
  }
}

int resolved_draft_max_new(const KvPolicySettings& s) {
  return s.draft_max_new > 0 ? s.draft_max_new : 128;
}

ResolvedPolicy resolve_policy(const KvPolicySettings& s, const PolicyDefaults& d, int64_t n_prompt) {
  validate_policy_settings(s);
  ResolvedPolicy r;
  r.s = s;
  r.n_prompt = n_prompt;
  if (s.budget >= 0) {
    r.budget = s.budget;
  } else if (s.ratio >= 0) {
    r.budget = (int64_t)std::llround((double)n_prompt * (1.0 - s.ratio));
  } else {
    fail("KV policy '{}' needs --kv-budget N or --kv-ratio R", s.name);
  }
  if (r.budget < 1) fail("KV budget must keep at least one entry per head");
  r.budget = std::min(r.budget, n_prompt);
  // Fair at every budget: a default window or sink count never protects more than half
  // the budget, so at least half of it is chosen by score (at C = 32, SnapKV's default
  // 32-entry window would otherwise keep the recent entries and nothing else). A value the
  // user sets is taken as given. The observation window keeps its size whatever the budget.
  r.sinks = s.sinks >= 0 ? std::min(s.sinks, r.budget) : std::min(d.sinks, r.budget / 2);
  if (d.window_fills_budget && s.window < 0) {
    r.window = r.budget - r.sinks;
  } else {
    const int64_t win = s.window >= 0 ? s.window : std::min(d.window, r.budget / 2);
    r.window = std::min(win, r.budget - r.sinks);
  }
  r.observe_window = std::min(s.window >= 0 ? s.window : d.window, n_prompt);
  // Odd: a given kernel was checked by validate_policy_settings, defaults are odd.
  r.pool_kernel = s.pool_kernel >= 0 ? s.pool_kernel : d.pool_kernel;
  r.pool = s.pool.value_or(d.pool);
  r.allocation = s.allocation.value_or(d.allocation);
  return r;
}

BudgetPlan plan_budget(const ResolvedPolicy& r, const KvScores& scores,
                       const std::vector<uint8_t>& is_protected, int n_layer, int n_kv_head,
                       const std::vector<uint8_t>& layer_scored) {
  int64_t n_free = 0;
  for (uint8_t x : is_protected) n_free += !x;
  switch (r.allocation) {
    case BudgetAllocation::Pyramid: {
      std::vector<int> layers;  // the evicted ones, in order
      for (int l = 0; l < n_layer; ++l)
        if (layer_scored.empty() || layer_scored[(size_t)l]) layers.push_back(l);
      if (layers.empty()) return allocate_uniform(n_layer, n_kv_head, 0, n_free);
      const BudgetPlan p = allocate_pyramid((int)layers.size(), n_kv_head, r.scored(), n_free,
                                            r.s.pyramid_beta);
      BudgetPlan out = allocate_uniform(n_layer, n_kv_head, 0, n_free);
      for (size_t i = 0; i < layers.size(); ++i)
        for (int h = 0; h < n_kv_head; ++h)
          out.keep[(size_t)layers[i] * n_kv_head + h] = p.at((int)i, h);
      return out;
    }
    case BudgetAllocation::AdaHead:
      return allocate_ada(scores, is_protected, r.scored(), r.s.ada_alpha);
    case BudgetAllocation::Global:
      return allocate_global(scores, is_protected, r.scored(), r.s.ada_alpha, layer_scored);
    case BudgetAllocation::Uniform:
      break;
  }
  return allocate_uniform(n_layer, n_kv_head, r.scored(), n_free);
}

}  // namespace glimpse
