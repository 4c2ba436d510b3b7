#include "model/model_config.h"

#include <cmath>

#include <fmt/format.h>

#include "util/error.h"

namespace glimpse {

namespace {
struct ArchTraits {
  const char* name;
  RopeStyle rope_style;
  bool qkv_bias;
  void (*configure)(const GgufFile&, ModelConfig&);  // the architecture's own keys, or null
};
// What these architectures share: pre-norm RMSNorm blocks, GQA attention with RoPE, a gated
// feed-forward, optional separate output matrix. Their differences are ModelConfig fields
// set by the configure function of the architecture's file (model/arch_*.cpp).
constexpr ArchTraits kArchs[] = {
    {"llama", RopeStyle::Norm, false, nullptr},
    {"qwen2", RopeStyle::Neox, true, nullptr},
    {"gemma3", RopeStyle::Neox, false, &configure_gemma3},
};
}  // namespace

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  c.arch = std::string(f.get_string("general.architecture"));
  const ArchTraits* traits = nullptr;
  for (const auto& a : kArchs)
    if (c.arch == a.name) traits = &a;
  if (!traits)
    fail("{}: unsupported model architecture '{}' (supported: llama, qwen2, gemma3)", f.source(),
         c.arch);
  c.name = std::string(f.get_string_opt("general.name").value_or(""));
  const std::string p = c.arch + ".";
  c.n_layer = (int)f.get_int(p + "block_count");
  c.n_embd = (int)f.get_int(p + "embedding_length");
  c.n_ff = (int)f.get_int(p + "feed_forward_length");
  c.n_head = (int)f.get_int(p + "attention.head_count");
  c.n_kv_head = (int)f.get_int(p + "attention.head_count_kv", c.n_head);
  c.n_ctx_train = (int)f.get_int(p + "context_length", 2048);
  c.rms_eps = (float)f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5);
  if (c.n_layer <= 0 || c.n_layer > 1024 || c.n_embd <= 0 || c.n_embd > (1 << 16) ||
      c.n_head <= 0 || c.n_head > 1024 || c.n_kv_head <= 0 || c.n_ff <= 0 ||
      c.n_ff > (1 << 20) || c.n_ctx_train <= 0)
    fail("{}: implausible hyperparameters (layers {}, embd {}, heads {}/{}, ff {})", f.source(),
         c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.n_ff);
  if (c.n_head % c.n_kv_head != 0)
    fail("{}: head_count {} is not a multiple of head_count_kv {}", f.source(), c.n_head,
         c.n_kv_head);
  c.head_dim = (int)f.get_int(p + "attention.key_length", c.n_embd / c.n_head);
  if (c.head_dim <= 0 || c.head_dim > 1024 ||
      f.get_int(p + "attention.value_length", c.head_dim) != c.head_dim)
    fail("{}: unsupported head dimensions", f.source());
  c.qkv_bias = traits->qkv_bias;
  c.rope.style = traits->rope_style;
  c.rope.n_rot = (int)f.get_int(p + "rope.dimension_count", c.head_dim);
  if (c.rope.n_rot <= 0 || c.rope.n_rot > c.head_dim || c.rope.n_rot % 2 != 0)
    fail("{}: bad rope.dimension_count {}", f.source(), c.rope.n_rot);
  c.rope.freq_base = (float)f.get_float(p + "rope.freq_base", 10000.0);
  const std::string scaling(f.get_string_opt(p + "rope.scaling.type").value_or("none"));
  if (scaling == "linear") {
    const double factor = f.get_float(p + "rope.scaling.factor", 1.0);
    if (factor <= 0) fail("{}: bad rope.scaling.factor", f.source());
    c.rope.freq_scale = (float)(1.0 / factor);
  } else if (scaling != "none") {
    fail("{}: rope scaling '{}' is not supported (none, linear)", f.source(), scaling);
  }
  if (const GgufValue* fs = f.find(p + "rope.scale_linear")) c.rope.freq_scale = 1.0f / (float)fs->as_float();
  c.attn_scale = 1.0f / std::sqrt((float)c.head_dim);
  if (traits->configure) traits->configure(f, c);
  return c;
}

std::string ModelConfig::summary() const {
  std::string s =
      fmt::format("{} '{}': {} layers, d_model {}, heads {}/{} x {}, ff {}, vocab {}, ctx {}",
                  arch, name, n_layer, n_embd, n_head, n_kv_head, head_dim, n_ff, n_vocab,
                  n_ctx_train);
  if (!swa_layer.empty()) {
    int n_swa = 0;
    for (uint8_t x : swa_layer) n_swa += x;
    s += fmt::format(", sliding window {} on {} of {} layers", swa_window, n_swa, n_layer);
  }
  return s;
}

}  // namespace glimpse
