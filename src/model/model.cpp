#include "model/model.h"

#include <cmath>

#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/quant.h"
#include "ops/rope.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

namespace {

const GgufTensor& require(const GgufFile& f, const std::string& name) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) fail("{}: missing tensor '{}'", f.source(), name);
  return *t;
}

void check_shape(const GgufFile& f, const GgufTensor& t, int64_t ne0, int64_t ne1) {
  if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != 1 || t.ne[3] != 1)
    fail("{}: tensor '{}' has shape {}, expected [{}, {}]", f.source(), t.name, t.shape_string(),
         ne0, ne1);
}

WeightView matrix(const GgufFile& f, const std::string& name, int64_t cols, int64_t rows) {
  const GgufTensor& t = require(f, name);
  check_shape(f, t, cols, rows);
  if (!is_supported_weight_type(t.type))
    fail("{}: tensor '{}' has type {}, which glimpse cannot compute with", f.source(), name,
         ggml_type_name(t.type));
  // Interleaved once for the int8 kernels where they apply, replacing the mapped pages.
  return pack_weights(make_weight_view(t.type, t.data, rows, cols), /*drop_source=*/true);
}

std::vector<float> vector_f32(const GgufFile& f, const std::string& name, int64_t n,
                              bool optional = false) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) {
    if (optional) return {};
    fail("{}: missing tensor '{}'", f.source(), name);
  }
  if (t->n_elements() != n)
    fail("{}: tensor '{}' has {} elements, expected {}", f.source(), name, t->n_elements(), n);
  if (!is_supported_weight_type(t->type) || t->ne[0] % ggml_type_info((uint32_t)t->type)->block_elems)
    fail("{}: tensor '{}' has unsupported type {}", f.source(), name, ggml_type_name(t->type));
  std::vector<float> out(n);
  dequant_row_ref(t->type, t->data, out.data(), n);
  return out;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = GgufFile::open(path);
  const GgufFile& f = m->file_;
  m->cfg_ = ModelConfig::from_gguf(f);
  ModelConfig& c = m->cfg_;

  const GgufTensor& emb = require(f, "token_embd.weight");
  if (emb.ne[0] != c.n_embd || emb.n_dims != 2)
    fail("{}: token_embd.weight has shape {}, expected [{}, n_vocab]", f.source(),
         emb.shape_string(), c.n_embd);
  c.n_vocab = (int)emb.ne[1];
  m->tok_embd_ = matrix(f, "token_embd.weight", c.n_embd, c.n_vocab);
  m->output_norm_ = vector_f32(f, "output_norm.weight", c.n_embd);
  m->output_ = f.find_tensor("output.weight") ? matrix(f, "output.weight", c.n_embd, c.n_vocab)
                                              : m->tok_embd_;
  m->rope_freqs_ = vector_f32(f, "rope_freqs.weight", c.rope.n_rot / 2, /*optional=*/true);
  c.rope.freq_factors = m->rope_freqs_.empty() ? nullptr : m->rope_freqs_.data();

  const int64_t q_dim = (int64_t)c.n_head * c.head_dim;
  const int64_t kv_dim = (int64_t)c.n_kv_head * c.head_dim;
  m->layers_.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& w = m->layers_[l];
    w.attn_norm = vector_f32(f, p + "attn_norm.weight", c.n_embd);
    w.wq = matrix(f, p + "attn_q.weight", c.n_embd, q_dim);
    w.wk = matrix(f, p + "attn_k.weight", c.n_embd, kv_dim);
    w.wv = matrix(f, p + "attn_v.weight", c.n_embd, kv_dim);
    w.wo = matrix(f, p + "attn_output.weight", q_dim, c.n_embd);
    w.bq = vector_f32(f, p + "attn_q.bias", q_dim, !c.qkv_bias);
    w.bk = vector_f32(f, p + "attn_k.bias", kv_dim, !c.qkv_bias);
    w.bv = vector_f32(f, p + "attn_v.bias", kv_dim, !c.qkv_bias);
    w.ffn_norm = vector_f32(f, p + "ffn_norm.weight", c.n_embd);
    w.w_gate = matrix(f, p + "ffn_gate.weight", c.n_embd, c.n_ff);
    w.w_up = matrix(f, p + "ffn_up.weight", c.n_embd, c.n_ff);
    w.w_down = matrix(f, p + "ffn_down.weight", c.n_ff, c.n_embd);
  }
  return m;
}

KvCache Model::make_cache(int64_t n_ctx, KvType type_k, KvType type_v) const {
  return KvCache(cfg_.n_layer, cfg_.n_kv_head, cfg_.head_dim, n_ctx, type_k, type_v);
}

void Model::embed(int32_t token, float* out) const {
  if (token < 0 || token >= cfg_.n_vocab) fail("token id {} is outside the vocabulary", token);
  weight_row(tok_embd_, token, out);
}

void Model::forward(const int32_t* tokens, int64_t T, KvCache& cache, LogitsRows rows,
                    std::vector<float>& logits, ThreadPool& pool,
                    ForwardObserver* observer) const {
  const ModelConfig& c = cfg_;
  const int64_t E = c.n_embd, d = c.head_dim;
  const int64_t q_dim = (int64_t)c.n_head * d, kv_dim = (int64_t)c.n_kv_head * d;
  if (T <= 0) fail("forward: empty batch");
  const int32_t pos0 = cache.n_past();
  if (pos0 + T > cache.n_ctx())
    fail("context full: {} tokens already in the cache + {} new exceed the context size {}",
         pos0, T, cache.n_ctx());

  std::vector<float> x(T * E), xn(T * E);            // [T][E] residual stream, normed copy
  std::vector<float> q(T * q_dim), k(T * kv_dim), v(T * kv_dim), att(T * q_dim);
  std::vector<float> gate(T * c.n_ff), up(T * c.n_ff);
  std::vector<int32_t> pos(T);
  std::vector<float> cs(T * c.rope.n_rot);           // [T][n_rot] cos/sin pairs
  std::vector<KvHeadView> views(c.n_kv_head);
  for (int64_t t = 0; t < T; ++t) {
    pos[t] = pos0 + (int32_t)t;
    embed(tokens[t], x.data() + t * E);
    rope_cos_sin(c.rope, pos[t], cs.data() + t * c.rope.n_rot);
  }
  cache.reserve_more(T);
  AttentionParams ap{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt((float)d),
                     cache.type_k(), cache.type_v()};

  auto norm_rows = [&](const std::vector<float>& w) {
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) rms_norm(x.data() + t * E, w.data(), xn.data() + t * E, E, c.rms_eps);
    });
  };

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = layers_[l];
    norm_rows(w.attn_norm);
    matmul(w.wq, xn.data(), T, q.data(), pool);
    matmul(w.wk, xn.data(), T, k.data(), pool);
    matmul(w.wv, xn.data(), T, v.data(), pool);
    if (!w.bq.empty()) {
      add_bias_rows(q.data(), w.bq.data(), T, q_dim);
      add_bias_rows(k.data(), w.bk.data(), T, kv_dim);
      add_bias_rows(v.data(), w.bv.data(), T, kv_dim);
    }
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const float* cst = cs.data() + t * c.rope.n_rot;
        rope_apply(c.rope, cst, q.data() + t * q_dim, c.n_head, (int)d);
        rope_apply(c.rope, cst, k.data() + t * kv_dim, c.n_kv_head, (int)d);
      }
    });
    cache.append(l, k.data(), v.data(), pos.data(), T);
    cache.views(l, T, views.data());
    attention(ap, q.data(), T, views.data(), att.data(), pool);
    if (observer) observer->on_queries(LayerQueries{l, q.data(), pos.data(), T, c.n_head, c.head_dim, &cache}, pool);
    matmul(w.wo, att.data(), T, xn.data(), pool);
    add_inplace(x.data(), xn.data(), T * E);

    norm_rows(w.ffn_norm);
    matmul(w.w_gate, xn.data(), T, gate.data(), pool);
    matmul(w.w_up, xn.data(), T, up.data(), pool);
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
      silu_mul(gate.data() + b * c.n_ff, up.data() + b * c.n_ff, (e - b) * c.n_ff);
    });
    matmul(w.w_down, gate.data(), T, xn.data(), pool);
    add_inplace(x.data(), xn.data(), T * E);
  }

  const int64_t first = rows == LogitsRows::All ? 0 : T - 1;
  const int64_t n_out = T - first;
  for (int64_t t = first; t < T; ++t)
    rms_norm(x.data() + t * E, output_norm_.data(), xn.data() + (t - first) * E, E, c.rms_eps);
  logits.resize(n_out * c.n_vocab);
  matmul(output_, xn.data(), n_out, logits.data(), pool);
}

}  // namespace glimpse
