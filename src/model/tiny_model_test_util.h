// Test helper: writes a tiny random llama-architecture GGUF (f32 weights) so model-level
// tests (KV eviction, lookahead modules, gradients) run in milliseconds without the real
// model. Deterministic for a seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"

namespace glimpse::testing {

struct TinyModelSpec {
  int n_layer = 2, n_embd = 32, n_head = 4, n_kv_head = 2, n_ff = 48, n_vocab = 64;
  int n_ctx = 512;
  float weight_scale = 1.0f;  // multiplies the 1/sqrt(fan_in) uniform range
  uint64_t seed = 1;
};

inline void write_tiny_llama(const std::string& path, const TinyModelSpec& s = {}) {
  std::mt19937_64 rng(s.seed);
  auto uni = [&](float a) { return ((float)(rng() >> 40) / (float)(1u << 24) * 2.0f - 1.0f) * a; };
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "tiny-test");
  w.add_u32("llama.block_count", s.n_layer);
  w.add_u32("llama.embedding_length", s.n_embd);
  w.add_u32("llama.feed_forward_length", s.n_ff);
  w.add_u32("llama.attention.head_count", s.n_head);
  w.add_u32("llama.attention.head_count_kv", s.n_kv_head);
  w.add_u32("llama.context_length", s.n_ctx);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  // A SentencePiece vocabulary of n_vocab pieces (0 <unk>, 1 <s>, 2 </s>, then "▁tN"), so an
  // Engine (model + tokenizer) loads the file.
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  while ((int)pieces.size() < s.n_vocab) {
    pieces.push_back("\xe2\x96\x81t" + std::to_string(pieces.size()));
    types.push_back(1);
  }
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", pieces);
  w.add_f32_array("tokenizer.ggml.scores", std::vector<float>(pieces.size(), 0.0f));
  w.add_i32_array("tokenizer.ggml.token_type", types);
  const int d = s.n_embd / s.n_head;
  auto mat = [&](const std::string& name, int64_t cols, int64_t rows) {
    std::vector<float> v((size_t)cols * rows);
    const float a = s.weight_scale * 1.7f / std::sqrt((float)cols);
    for (float& x : v) x = uni(a);
    w.add_tensor(name, GgmlType::F32, {cols, rows}, v.data(), v.size() * 4);
  };
  auto norm = [&](const std::string& name) {
    std::vector<float> v(s.n_embd);
    for (float& x : v) x = 1.0f + uni(0.2f);
    w.add_tensor(name, GgmlType::F32, {s.n_embd}, v.data(), v.size() * 4);
  };
  mat("token_embd.weight", s.n_embd, s.n_vocab);
  norm("output_norm.weight");
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    mat(p + "attn_q.weight", s.n_embd, (int64_t)s.n_head * d);
    mat(p + "attn_k.weight", s.n_embd, (int64_t)s.n_kv_head * d);
    mat(p + "attn_v.weight", s.n_embd, (int64_t)s.n_kv_head * d);
    mat(p + "attn_output.weight", (int64_t)s.n_head * d, s.n_embd);
    norm(p + "ffn_norm.weight");
    mat(p + "ffn_gate.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_up.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_down.weight", s.n_ff, s.n_embd);
  }
  w.write_file(path);
}

// Deterministic pseudo-random token ids in [0, n_vocab).
inline std::vector<int32_t> tiny_tokens(int64_t n, int n_vocab, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(rng() % (uint64_t)n_vocab);
  return t;
}

}  // namespace glimpse::testing
