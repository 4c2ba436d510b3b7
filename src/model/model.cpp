#include "model/model.h"

#include <algorithm>
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
    if (c.qk_norm) {
      w.q_norm = vector_f32(f, p + "attn_q_norm.weight", c.head_dim);
      w.k_norm = vector_f32(f, p + "attn_k_norm.weight", c.head_dim);
    }
    if (c.post_norms) {
      w.attn_post_norm = vector_f32(f, p + "post_attention_norm.weight", c.n_embd);
      w.ffn_post_norm = vector_f32(f, p + "post_ffw_norm.weight", c.n_embd);
    }
  }
  return m;
}

size_t Model::decode_weight_bytes() const {
  auto matrix = [](const WeightView& w) { return (size_t)w.rows * w.row_bytes; };
  auto vec = [](const std::vector<float>& v) { return v.size() * sizeof(float); };
  size_t b = tok_embd_.row_bytes + matrix(output_) + vec(output_norm_) + vec(rope_freqs_);
  for (const LayerWeights& w : layers_) {
    b += matrix(w.wq) + matrix(w.wk) + matrix(w.wv) + matrix(w.wo);
    b += matrix(w.w_gate) + matrix(w.w_up) + matrix(w.w_down);
    b += vec(w.attn_norm) + vec(w.ffn_norm) + vec(w.bq) + vec(w.bk) + vec(w.bv);
    b += vec(w.q_norm) + vec(w.k_norm) + vec(w.attn_post_norm) + vec(w.ffn_post_norm);
  }
  return b;
}

void Model::embed(int32_t token, float* out) const {
  if (token < 0 || token >= cfg_.n_vocab) fail("token id {} is outside the vocabulary", token);
  weight_row(tok_embd_, token, out);
}

// Buffers of one batched forward. Rows of every sequence are packed back to back: sequence i
// owns rows [off[i], off[i] + n_tokens), R rows in all.
struct Model::Scratch {
  std::vector<int64_t> off;                 // [n_seq + 1] first row of each sequence
  std::vector<float> x, xn;                 // [R][E] residual stream, normed copy
  std::vector<float> q, k, v, att;          // [R][n_head*d], [R][n_kv*d] x2, [R][n_head*d]
  std::vector<float> gate, up;              // [R][n_ff]
  std::vector<int32_t> pos;                 // [R] position of each row in its sequence
  std::vector<float> cs;                    // [R][n_rot] RoPE cos/sin pairs
  std::vector<float> cs_swa;                // [R][n_rot] the same for sliding-window layers
                                            // (rope_swa), empty without them
  std::vector<KvHeadView> views;            // [n_seq][n_kv_head] each sequence's heads of a layer
  LayerHooks* hooks = nullptr;              // set by the hooked forward only
  bool stop_after_last_attention = false;
};

void Model::forward(const int32_t* tokens, int64_t T, KvStore& cache, LogitsRows rows,
                    std::vector<float>& logits, ThreadPool& pool,
                    ForwardObserver* observer) const {
  std::vector<SequenceBatch> one{{tokens, T, &cache, rows, &logits, observer}};
  forward(one, pool);
}

// Sizes the buffers for the R = s.off.back() rows.
void Model::prepare(Scratch& s) const {
  const ModelConfig& c = cfg_;
  const int64_t E = c.n_embd, d = c.head_dim, R = s.off.back();
  const int64_t q_dim = (int64_t)c.n_head * d, kv_dim = (int64_t)c.n_kv_head * d;
  s.x.resize(R * E);
  s.xn.resize(R * E);
  s.q.resize(R * q_dim);
  s.k.resize(R * kv_dim);
  s.v.resize(R * kv_dim);
  s.att.resize(R * q_dim);
  s.gate.resize(R * c.n_ff);
  s.up.resize(R * c.n_ff);
  s.pos.resize(R);
  s.cs.resize(R * c.rope.n_rot);
  if (!c.swa_layer.empty()) s.cs_swa.resize(R * c.rope_swa.n_rot);
}

// RoPE angles of row r at its position, for global and (if any) sliding-window layers.
void Model::rope_row(Scratch& s, int64_t r) const {
  const ModelConfig& c = cfg_;
  rope_cos_sin(c.rope, s.pos[r], s.cs.data() + r * c.rope.n_rot);
  if (!s.cs_swa.empty()) rope_cos_sin(c.rope_swa, s.pos[r], s.cs_swa.data() + r * c.rope_swa.n_rot);
}

void Model::forward(const HookedRows& rows, ThreadPool& pool) const {
  const ModelConfig& c = cfg_;
  if (rows.n_rows <= 0 || !rows.x || !rows.hooks) fail("hooked forward: no rows or no hooks");
  Scratch s;
  s.off = {0, rows.n_rows};
  s.hooks = rows.hooks;
  s.stop_after_last_attention = rows.stop_after_last_attention;
  prepare(s);
  std::copy(rows.x, rows.x + rows.n_rows * c.n_embd, s.x.begin());
  for (int64_t r = 0; r < rows.n_rows; ++r) {
    s.pos[r] = rows.pos0 + (int32_t)r;
    rope_row(s, r);
  }
  std::vector<SequenceBatch> none;  // attention is the hooks'
  for (int l = 0; l < c.n_layer; ++l) layer_forward(l, none, s, pool);
}

void Model::forward(std::vector<SequenceBatch>& batch, ThreadPool& pool) const {
  const ModelConfig& c = cfg_;
  const int64_t E = c.n_embd;
  if (batch.empty()) fail("forward: empty batch");
  Scratch s;
  s.off.assign(1, 0);
  for (const SequenceBatch& b : batch) {
    if (b.n_tokens <= 0 || !b.tokens || !b.cache || !b.logits) fail("forward: empty sequence in a batch");
    const int32_t pos0 = b.cache->n_past();
    if (pos0 + b.n_tokens > b.cache->n_ctx())
      fail("context full: {} tokens already in the cache + {} new exceed the context size {}",
           pos0, b.n_tokens, b.cache->n_ctx());
    for (size_t o = 0; o + 1 < s.off.size(); ++o)
      if (batch[o].cache == b.cache) fail("forward: a KV store appears twice in one batch");
    s.off.push_back(s.off.back() + b.n_tokens);
  }
  prepare(s);
  for (size_t i = 0; i < batch.size(); ++i) {
    const int32_t pos0 = batch[i].cache->n_past();
    for (int64_t t = 0; t < batch[i].n_tokens; ++t) {
      const int64_t r = s.off[i] + t;
      s.pos[r] = pos0 + (int32_t)t;
      embed(batch[i].tokens[t], s.x.data() + r * E);
      if (c.embd_scale != 1.0f)
        for (int64_t e = 0; e < E; ++e) s.x[r * E + e] *= c.embd_scale;
      rope_row(s, r);
    }
    batch[i].cache->reserve_more(batch[i].n_tokens);
  }
  for (int l = 0; l < c.n_layer; ++l) layer_forward(l, batch, s, pool);
  output_logits(batch, s, pool);
}

// With s.hooks set (hooked forward), each op is followed by one hook call over all rows and
// the hooks' attend replaces the store and attention; without, one null test per op.
void Model::layer_forward(int l, std::vector<SequenceBatch>& batch, Scratch& s,
                          ThreadPool& pool) const {
  const ModelConfig& c = cfg_;
  const Backend& be = *backend_;
  const int64_t E = c.n_embd, d = c.head_dim, R = s.off.back();
  const int64_t q_dim = (int64_t)c.n_head * d, kv_dim = (int64_t)c.n_kv_head * d;
  const LayerWeights& w = layers_[l];
  LayerHooks* hk = s.hooks;

  // Attention block: projections over all rows, then attention per sequence over its store.
  if (hk) hk->on_activation(l, LayerTap::Input, s.x.data(), R);
  be.rms_norm_rows(s.x.data(), w.attn_norm.data(), s.xn.data(), R, E, c.rms_eps, pool);
  if (hk) hk->on_activation(l, LayerTap::AttnNormed, s.xn.data(), R);
  const WeightView* qkv[] = {&w.wq, &w.wk, &w.wv};
  float* qkv_out[] = {s.q.data(), s.k.data(), s.v.data()};
  be.matmul_multi(qkv, 3, s.xn.data(), R, qkv_out, pool);
  if (!w.bq.empty()) {
    be.add_bias_rows(s.q.data(), w.bq.data(), R, q_dim);
    be.add_bias_rows(s.k.data(), w.bk.data(), R, kv_dim);
    be.add_bias_rows(s.v.data(), w.bv.data(), R, kv_dim);
  }
  if (hk)
    for (int i = 0; i < 3; ++i) hk->after_linear(l, (LinearSlot)i, s.xn.data(), R, qkv_out[i]);
  if (!w.q_norm.empty()) {  // per-head RMSNorm: rows of head_dim values
    if (hk) {
      hk->on_activation(l, LayerTap::QProj, s.q.data(), R);
      hk->on_activation(l, LayerTap::KProj, s.k.data(), R);
    }
    be.rms_norm_rows(s.q.data(), w.q_norm.data(), s.q.data(), R * c.n_head, d, c.rms_eps, pool);
    be.rms_norm_rows(s.k.data(), w.k_norm.data(), s.k.data(), R * c.n_kv_head, d, c.rms_eps, pool);
  }
  const bool swa = c.is_swa(l);
  be.rope_rows(c.rope_of(l), (swa ? s.cs_swa : s.cs).data(), s.q.data(), c.n_head, s.k.data(),
               c.n_kv_head, (int)d, R, pool);
  if (hk) {
    hk->attend(l, s.q.data(), s.k.data(), s.v.data(), R, s.att.data(), pool);
    if (s.stop_after_last_attention && l == c.n_layer - 1) return;
  } else {
    attend(l, batch, s, pool);
  }
  be.matmul(w.wo, s.att.data(), R, s.xn.data(), pool);
  if (hk) hk->after_linear(l, LinearSlot::O, s.att.data(), R, s.xn.data());
  if (!w.attn_post_norm.empty()) {
    if (hk) hk->on_activation(l, LayerTap::AttnOut, s.xn.data(), R);
    be.rms_norm_rows(s.xn.data(), w.attn_post_norm.data(), s.xn.data(), R, E, c.rms_eps, pool);
  }
  be.add(s.x.data(), s.xn.data(), R * E);

  // Feed-forward block over all rows.
  if (hk) hk->on_activation(l, LayerTap::Mid, s.x.data(), R);
  be.rms_norm_rows(s.x.data(), w.ffn_norm.data(), s.xn.data(), R, E, c.rms_eps, pool);
  if (hk) hk->on_activation(l, LayerTap::FfnNormed, s.xn.data(), R);
  const WeightView* gate_up[] = {&w.w_gate, &w.w_up};
  float* gate_up_out[] = {s.gate.data(), s.up.data()};
  be.matmul_multi(gate_up, 2, s.xn.data(), R, gate_up_out, pool);
  if (hk) {
    hk->after_linear(l, LinearSlot::Gate, s.xn.data(), R, s.gate.data());
    hk->after_linear(l, LinearSlot::Up, s.xn.data(), R, s.up.data());
    hk->on_activation(l, LayerTap::Gate, s.gate.data(), R);
    hk->on_activation(l, LayerTap::Up, s.up.data(), R);
  }
  if (c.ffn_act == FfnActivation::GeluTanh) {
    be.gelu_mul_rows(s.gate.data(), s.up.data(), R, c.n_ff, pool);
  } else {
    be.silu_mul_rows(s.gate.data(), s.up.data(), R, c.n_ff, pool);
  }
  if (hk) hk->on_activation(l, LayerTap::Hidden, s.gate.data(), R);
  be.matmul(w.w_down, s.gate.data(), R, s.xn.data(), pool);
  if (hk) hk->after_linear(l, LinearSlot::Down, s.gate.data(), R, s.xn.data());
  if (!w.ffn_post_norm.empty()) {
    if (hk) hk->on_activation(l, LayerTap::FfnOut, s.xn.data(), R);
    be.rms_norm_rows(s.xn.data(), w.ffn_post_norm.data(), s.xn.data(), R, E, c.rms_eps, pool);
  }
  be.add(s.x.data(), s.xn.data(), R * E);
}

void Model::attend(int l, std::vector<SequenceBatch>& batch, Scratch& s, ThreadPool& pool) const {
  const ModelConfig& c = cfg_;
  const int64_t d = c.head_dim;
  const int64_t q_dim = (int64_t)c.n_head * d, kv_dim = (int64_t)c.n_kv_head * d;
  const size_t n_seq = batch.size();
  s.views.resize(n_seq * c.n_kv_head);
  int64_t max_rows = 0;
  for (size_t i = 0; i < n_seq; ++i) {
    SequenceBatch& b = batch[i];
    const int64_t r0 = s.off[i];
    b.cache->append(l, s.k.data() + r0 * kv_dim, s.v.data() + r0 * kv_dim, s.pos.data() + r0, b.n_tokens);
    b.cache->views(l, b.n_tokens, s.views.data() + i * c.n_kv_head);
    max_rows = std::max(max_rows, b.n_tokens);
  }
  auto attend_one = [&](size_t i, ThreadPool& p) {
    const SequenceBatch& b = batch[i];
    const AttentionParams ap{c.n_head,           c.n_kv_head,        c.head_dim,   c.attn_scale,
                             b.cache->type_k(),  b.cache->type_v(),  c.window_of(l)};
    const int64_t r0 = s.off[i];
    backend_->attention(ap, s.q.data() + r0 * q_dim, b.n_tokens, s.views.data() + i * c.n_kv_head,
                        s.att.data() + r0 * q_dim, p);
  };
  // Several short sequences (batched decode): one sequence per thread, each attending on the
  // calling thread alone. Otherwise one sequence after another, each over the whole pool.
  // Attention results do not depend on the threads that compute them (fixed key chunks,
  // merged in order), so both give the same bits.
  if (n_seq >= 2 && max_rows <= kShortSequenceRows) {
    pool.parallel_for_dynamic((int64_t)n_seq, [&](int64_t i, int) {
      thread_local ThreadPool inline_pool(1);
      attend_one((size_t)i, inline_pool);
    });
  } else {
    for (size_t i = 0; i < n_seq; ++i) attend_one(i, pool);
  }
  for (size_t i = 0; i < n_seq; ++i)
    if (batch[i].observer) {
      const int64_t r0 = s.off[i];
      batch[i].observer->on_queries(
          LayerQueries{l, s.q.data() + r0 * q_dim, s.pos.data() + r0, batch[i].n_tokens, c.n_head,
                       c.head_dim, s.views.data() + i * c.n_kv_head, batch[i].cache->type_k()},
          pool);
    }
}

void Model::output_logits(std::vector<SequenceBatch>& batch, Scratch& s, ThreadPool& pool) const {
  const ModelConfig& c = cfg_;
  const int64_t E = c.n_embd, V = c.n_vocab;
  // The rows that need logits, packed: all of a sequence's rows or its last one.
  std::vector<int64_t> first_out(batch.size() + 1, 0);
  for (size_t i = 0; i < batch.size(); ++i) {
    const int64_t n_out = batch[i].rows == LogitsRows::All ? batch[i].n_tokens : 1;
    const int64_t r_first = s.off[i + 1] - n_out;
    first_out[i + 1] = first_out[i] + n_out;
    backend_->rms_norm_rows(s.x.data() + r_first * E, output_norm_.data(),
                            s.xn.data() + first_out[i] * E, n_out, E, c.rms_eps, pool);
  }
  // logits = c * tanh(logits / c) with a final soft-cap c.
  auto softcap = [&](float* y, int64_t n) {
    if (c.final_softcap <= 0) return;
    for (int64_t i = 0; i < n; ++i) y[i] = c.final_softcap * std::tanh(y[i] / c.final_softcap);
  };
  if (batch.size() == 1) {  // straight into the caller's buffer (no copy of T x V rows)
    batch[0].logits->resize(first_out.back() * V);
    backend_->matmul(output_, s.xn.data(), first_out.back(), batch[0].logits->data(), pool);
    softcap(batch[0].logits->data(), first_out.back() * V);
    return;
  }
  std::vector<float> logits(first_out.back() * V);
  backend_->matmul(output_, s.xn.data(), first_out.back(), logits.data(), pool);
  softcap(logits.data(), first_out.back() * V);
  for (size_t i = 0; i < batch.size(); ++i)
    batch[i].logits->assign(logits.begin() + first_out[i] * V, logits.begin() + first_out[i + 1] * V);
}

}  // namespace glimpse
