// Test helper: writes a tiny random llama- (or gemma3-) architecture GGUF (f32 weights) so model-level
// tests (KV eviction, lookahead modules, gradients) run in milliseconds without the real
// model. Deterministic for a seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf_writer.h"

namespace glimpse::testing {

// A file name in the temp directory private to this process: ctest runs test processes side
// by side (the AVX2 rerun of the model tests runs the same suites), and one suite's teardown
// must not remove the file another process is reading.
inline std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_" + name)).string();
}

struct TinyModelSpec {
  int n_layer = 2, n_embd = 32, n_head = 4, n_kv_head = 2, n_ff = 48, n_vocab = 64;
  int n_ctx = 512;
  float weight_scale = 1.0f;  // multiplies the 1/sqrt(fan_in) uniform range
  uint64_t seed = 1;
  // write_tiny_gemma3 only: head_dim (key_length; 0 = n_embd / n_head) and sliding window.
  int head_dim = 0;
  int sliding_window = 0;
};

namespace detail {
// The llama file, or with gemma3 the Gemma 3 one: q/k norms ([head_dim]), post-attention and
// post-FFN norms, a sliding window; its own random draws come after the llama ones of each
// layer, so the llama file is the same for a seed whatever this helper learns.
inline void write_tiny(const std::string& path, const TinyModelSpec& s, bool gemma3) {
  std::mt19937_64 rng(s.seed);
  auto uni = [&](float a) { return ((float)(rng() >> 40) / (float)(1u << 24) * 2.0f - 1.0f) * a; };
  const std::string arch = gemma3 ? "gemma3" : "llama", a = arch + ".";
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.name", "tiny-test");
  w.add_u32(a + "block_count", s.n_layer);
  w.add_u32(a + "embedding_length", s.n_embd);
  w.add_u32(a + "feed_forward_length", s.n_ff);
  w.add_u32(a + "attention.head_count", s.n_head);
  w.add_u32(a + "attention.head_count_kv", s.n_kv_head);
  w.add_u32(a + "context_length", s.n_ctx);
  w.add_f32(a + "attention.layer_norm_rms_epsilon", gemma3 ? 1e-6f : 1e-5f);
  const int d = gemma3 && s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head;
  if (gemma3) {
    w.add_u32(a + "attention.key_length", d);
    w.add_u32(a + "attention.value_length", d);
    w.add_f32(a + "rope.freq_base", 1000000.0f);
    if (s.sliding_window > 0) w.add_u32(a + "attention.sliding_window", s.sliding_window);
  }
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
  auto mat = [&](const std::string& name, int64_t cols, int64_t rows) {
    std::vector<float> v((size_t)cols * rows);
    const float a = s.weight_scale * 1.7f / std::sqrt((float)cols);
    for (float& x : v) x = uni(a);
    w.add_tensor(name, GgmlType::F32, {cols, rows}, v.data(), v.size() * 4);
  };
  auto norm = [&](const std::string& name, int n = 0) {
    std::vector<float> v(n > 0 ? n : s.n_embd);
    for (float& x : v) x = 1.0f + uni(0.2f);
    w.add_tensor(name, GgmlType::F32, {(int64_t)v.size()}, v.data(), v.size() * 4);
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
    if (gemma3) {
      norm(p + "attn_q_norm.weight", d);
      norm(p + "attn_k_norm.weight", d);
      norm(p + "post_attention_norm.weight");
      norm(p + "post_ffw_norm.weight");
    }
  }
  w.write_file(path);
}
}  // namespace detail

inline void write_tiny_llama(const std::string& path, const TinyModelSpec& s = {}) {
  detail::write_tiny(path, s, false);
}

// A tiny Gemma 3 (model/arch_gemma3.cpp): every 6th layer global, the others sliding-window
// layers of s.sliding_window keys (none when 0).
inline void write_tiny_gemma3(const std::string& path, const TinyModelSpec& s) {
  detail::write_tiny(path, s, true);
}

// Deterministic pseudo-random token ids in [0, n_vocab).
inline std::vector<int32_t> tiny_tokens(int64_t n, int n_vocab, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(rng() % (uint64_t)n_vocab);
  return t;
}

}  // namespace glimpse::testing
