// The LookaheadKV eviction policy (policy_lookahead.cpp) and where its module is found.
#pragma once

#include <string>

namespace glimpse {

// Adds "lookahead" to the KV policy table (kv/policy.h); idempotent. The runtime calls it
// before any policy is looked up.
void register_lookahead_policy();

// Default LookaheadKV module of a model file: X.gguf -> X.lookahead.gguf, or with agnostic
// the compress-once module X.lookahead-agnostic.gguf (train-lookahead --agnostic).
std::string default_lookahead_module_path(const std::string& model_path, bool agnostic = false);
// The module the lookahead policy uses: `given` if set, else the default beside the model,
// else the module shipped under modules/ in the source tree; fails if none exists. With
// agnostic (--query-agnostic) the compress-once module is looked for first, and the
// query-aware one is used where there is none.
std::string resolve_lookahead_module_path(const std::string& model_path, const std::string& given,
                                          bool agnostic = false);

}  // namespace glimpse
