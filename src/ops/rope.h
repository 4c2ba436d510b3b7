// Rotary position embedding as GGUF models expect it.
//
// Norm style (llama): rotates adjacent pairs (x[2i], x[2i+1]) — GGUF llama conversions
// permute q/k weights so this is equivalent to the HF "half" layout. Neox style (qwen2):
// rotates (x[i], x[i + n_rot/2]). Angles follow GGML exactly: theta starts at the position
// and is multiplied by base^(-2/n_rot) per pair in f32, divided by an optional per-pair
// frequency factor (llama 3.1 rope_freqs) and scaled by freq_scale (linear scaling).
#pragma once

#include <cstdint>

namespace glimpse {

enum class RopeStyle { Norm, Neox };

struct RopeParams {
  int n_rot = 0;  // rotated dims per head (<= head_dim); the rest pass through
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // [n_rot / 2] or null
  RopeStyle style = RopeStyle::Norm;
};

// cs: [n_rot] as (cos, sin) pairs for position pos.
void rope_cos_sin(const RopeParams& p, int64_t pos, float* cs);

// x: [n_heads][head_dim], rotated in place with the (cos, sin) pairs of one position.
// inverse: by the opposite angles (the transposed rotation), which is also RoPE's backward
// pass (lookahead training). The double overload serves the lookahead gradient check; both
// compute the same expressions in their own precision.
void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim,
                bool inverse = false);
void rope_apply(const RopeParams& p, const float* cs, double* x, int n_heads, int head_dim,
                bool inverse = false);

}  // namespace glimpse
