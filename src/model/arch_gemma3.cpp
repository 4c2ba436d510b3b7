// Gemma 3: the llama block with these differences (all ModelConfig fields, so the shared
// forward in model.cpp runs it):
//   - token embeddings scaled by sqrt(n_embd);
//   - per-head RMSNorm of q and k (attn_q_norm / attn_k_norm, [head_dim]) before RoPE (neox);
//   - RMSNorm of the attention output (post_attention_norm) and of the FFN output
//     (post_ffw_norm) before each residual add;
//   - GeGLU feed-forward: gelu_tanh(gate) * up;
//   - five sliding-window layers (window gemma3.attention.sliding_window, RoPE base 10000,
//     no scaling) for every global one (layer l global when (l + 1) % 6 == 0; file's RoPE base
//     and scaling).
// The GGUF converter stores the norm weights as 1 + w, so they multiply as they are. The
// reference engine reads these constants from code, not from the file; so does this.
#include <cmath>

#include "model/model_config.h"
#include "util/error.h"

namespace glimpse {

namespace {
constexpr int kSwaPattern = 6;            // every 6th layer is global
constexpr float kSwaRopeBase = 10000.0f;  // RoPE base of the sliding-window layers
}  // namespace

void configure_gemma3(const GgufFile& f, ModelConfig& c) {
  const std::string p = c.arch + ".";
  c.embd_scale = std::sqrt((float)c.n_embd);
  c.qk_norm = true;
  c.post_norms = true;
  c.ffn_act = FfnActivation::GeluTanh;
  c.rms_eps = (float)f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-6);
  // q is scaled by 1/sqrt(query_pre_attn_scalar): head_dim for every size but 27B (62
  // layers), where it is n_embd / n_head.
  c.attn_scale = c.n_layer == 62 ? 1.0f / std::sqrt((float)(c.n_embd / c.n_head))
                                 : 1.0f / std::sqrt((float)c.head_dim);
  const int64_t window = f.get_int(p + "attention.sliding_window", 0);
  if (window < 0 || window > (1 << 24)) fail("{}: bad attention.sliding_window {}", f.source(), window);
  if (window > 0) {
    c.swa_window = (int)window;
    c.swa_layer.assign((size_t)c.n_layer, 0);
    for (int l = 0; l < c.n_layer; ++l) c.swa_layer[(size_t)l] = (l + 1) % kSwaPattern != 0;
    c.rope_swa = c.rope;
    c.rope_swa.freq_base = kSwaRopeBase;
    c.rope_swa.freq_scale = 1.0f;
    c.rope_swa.freq_factors = nullptr;
  } else {
    // Without sliding windows the reference applies the final logit soft-cap (with them it
    // does not, whatever the file says).
    c.final_softcap = (float)f.get_float(p + "final_logit_softcapping", 0.0);
    if (c.final_softcap < 0) fail("{}: bad final_logit_softcapping", f.source());
  }
}

}  // namespace glimpse
