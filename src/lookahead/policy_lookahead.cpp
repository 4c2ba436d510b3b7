// LookaheadKV: a trained module (lookahead embeddings + LoRA on those rows only, see
// src/lookahead/) runs 32 extra rows after the prefilled prompt; their mean attention per
// query head over the prompt keys is the score, reduced over each GQA group (mean by
// default). No window, sinks or pooling by default (all settable). The lookahead rows' KV
// never enters the cache and decoding continues at position N.
//
// Module file: --kv-lookahead-module FILE, or by default the model path with ".gguf"
// replaced by ".lookahead.gguf", else that file name under modules/ in the source tree. A
// module trained for another model is refused. With --query-agnostic the compress-once module
// (".lookahead-agnostic.gguf", trained with train-lookahead --agnostic) comes first.
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "kv/policy.h"
#include "lookahead/lookahead_forward.h"
#include "lookahead/policy_lookahead.h"
#include "lookahead/lookahead_module.h"
#include "util/error.h"

namespace glimpse {

std::string default_lookahead_module_path(const std::string& model_path, bool agnostic) {
  const std::string ext = ".gguf", suffix = agnostic ? ".lookahead-agnostic.gguf" : ".lookahead.gguf";
  if (model_path.size() > ext.size() && model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + suffix;
  return model_path + suffix;
}

namespace {

// The default module file beside the model, else under modules/ in the source tree; "" if
// neither exists. `tried` gets both paths for the error message.
std::string find_module(const std::string& model_path, bool agnostic, std::string& tried) {
  const std::string path = default_lookahead_module_path(model_path, agnostic);
  const std::string base = path.substr(path.find_last_of('/') + 1);
  const std::string shipped = std::string(GLIMPSE_SOURCE_DIR) + "/modules/" + base;
  tried = path + " or " + shipped;
  if (std::ifstream(path)) return path;
  if (std::ifstream(shipped)) return shipped;
  return "";
}

}  // namespace

std::string resolve_lookahead_module_path(const std::string& model_path, const std::string& given,
                                          bool agnostic) {
  if (!given.empty()) return given;
  std::string tried;
  if (agnostic)
    if (std::string p = find_module(model_path, true, tried); !p.empty()) return p;
  if (std::string p = find_module(model_path, false, tried); !p.empty()) return p;
  fail("KV policy 'lookahead' needs a trained module: --kv-lookahead-module FILE "
       "(none at the default {})", tried);
}

namespace {

// Modules stay loaded for the process (evaluation runs score many prompts).
std::shared_ptr<const LookaheadModule> cached_module(const std::string& path, const Model& m) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const LookaheadModule>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(path);
  if (it == cache.end())
    it = cache.emplace(path, std::make_shared<const LookaheadModule>(LookaheadModule::load(path))).first;
  it->second->check_compatible(m, path);
  return it->second;
}

class LookaheadPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "lookahead"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const std::string path = resolve_lookahead_module_path(
        in.model.gguf().source(), in.cfg.s.lookahead_module, in.cfg.s.query_agnostic);
    const std::shared_ptr<const LookaheadModule> mod = cached_module(path, in.model);
    const std::vector<float> s = lookahead_kv_scores(in.model, in.cache, *mod, in.pool);
    return reduce_query_heads(s, c.n_layer, c.n_head, c.n_kv_head, in.cfg.n_prompt,
                              in.cfg.pool_kernel, in.cfg.pool, in.cfg.s.reduce,
                              in.cfg.n_prompt - in.cfg.window);
  }
};

}  // namespace

void register_lookahead_policy() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_kv_policy({"lookahead", [] { return std::make_unique<LookaheadPolicy>(); }});
  });
}

}  // namespace glimpse
