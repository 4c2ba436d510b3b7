// Gemma 3 (model/arch_gemma3.cpp) on a tiny random model: the configuration read from the
// file, the forward against a plain double-precision reference written from the block's
// definition, and the sliding-window cache (kv/kv_cache.h): dropping out-of-window entries
// gives bit-identical logits, rollback within kWindowRollback stays exact, deeper rollback is
// refused, eviction leaves sliding-window layers alone. The real 270M file, when present,
// checks the drop on a 4K-token prompt.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "gguf/gguf_file.h"
#include "kv/evict.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "model/tiny_model_test_util.h"
#include "ops/elementwise.h"
#include "runtime/context.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

constexpr int kWindow = 8;

testing::TinyModelSpec tiny_spec() {
  testing::TinyModelSpec s;
  s.n_layer = 7;  // layer 5 global, the others sliding-window layers
  s.n_embd = 32;
  s.n_head = 4;
  s.n_kv_head = 2;
  s.head_dim = 16;  // != n_embd / n_head, as Gemma's 256 vs 640 / 4
  s.n_ff = 48;
  s.n_vocab = 64;
  s.n_ctx = 4096;
  s.sliding_window = kWindow;
  s.seed = 3;
  return s;
}

const std::string& tiny_path() {
  static const std::string path = [] {
    const std::string p = (std::filesystem::temp_directory_path() / "glimpse_gemma3_tiny.gguf").string();
    testing::write_tiny_gemma3(p, tiny_spec());
    return p;
  }();
  return path;
}

const Model& tiny_model() {
  static const std::unique_ptr<Model> m = Model::load(tiny_path());
  return *m;
}

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

TEST(Gemma3, ConfigFromFile) {
  const ModelConfig& c = tiny_model().config();
  EXPECT_EQ(c.arch, "gemma3");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FLOAT_EQ(c.embd_scale, std::sqrt(32.0f));
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.post_norms);
  EXPECT_EQ(c.ffn_act, FfnActivation::GeluTanh);
  EXPECT_FLOAT_EQ(c.attn_scale, 0.25f);
  EXPECT_EQ(c.final_softcap, 0.0f);
  EXPECT_EQ(c.rope.style, RopeStyle::Neox);
  EXPECT_FLOAT_EQ(c.rope.freq_base, 1e6f);
  EXPECT_FLOAT_EQ(c.rope_swa.freq_base, 1e4f);
  for (int l = 0; l < c.n_layer; ++l) {
    EXPECT_EQ(c.is_swa(l), l != 5) << l;
    EXPECT_EQ(c.window_of(l), l == 5 ? 0 : kWindow) << l;
  }
  const KvCache cache = KvCache::for_model(c, 64);
  EXPECT_EQ(cache.window(0), kWindow);
  EXPECT_EQ(cache.window(5), 0);
}

// ---- double-precision reference of the Gemma 3 forward, from the file's f32 tensors ----

struct RefModel {
  const GgufFile& f;
  const ModelConfig& c;
  std::vector<double> vec(const std::string& name) const {
    const GgufTensor* t = f.find_tensor(name);
    EXPECT_TRUE(t && t->type == GgmlType::F32) << name;
    const float* p = reinterpret_cast<const float*>(t->data);
    return std::vector<double>(p, p + t->n_elements());
  }
  // y[rows] = W x, W stored [rows][cols].
  std::vector<double> matvec(const std::string& name, const std::vector<double>& x) const {
    const std::vector<double> w = vec(name);
    const size_t cols = x.size(), rows = w.size() / cols;
    std::vector<double> y(rows, 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (size_t k = 0; k < cols; ++k) y[r] += w[r * cols + k] * x[k];
    return y;
  }
  // RMSNorm of each of the x.size() / n rows of n values, times w.
  void rms(std::vector<double>& x, const std::vector<double>& w) const {
    const size_t n = w.size();
    for (size_t b = 0; b < x.size(); b += n) {
      double ss = 0;
      for (size_t i = 0; i < n; ++i) ss += x[b + i] * x[b + i];
      const double s = 1.0 / std::sqrt(ss / n + c.rms_eps);
      for (size_t i = 0; i < n; ++i) x[b + i] *= s * w[i];
    }
  }
  // Neox RoPE of n_heads rows of head_dim values at position p.
  void rope(std::vector<double>& x, int n_heads, int64_t p, double base) const {
    const int d = c.head_dim, half = d / 2;
    for (int h = 0; h < n_heads; ++h)
      for (int i = 0; i < half; ++i) {
        const double th = (double)p * std::pow(base, -2.0 * i / d);
        double& a = x[(size_t)h * d + i];
        double& b = x[(size_t)h * d + i + half];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(th) - b0 * std::sin(th);
        b = a0 * std::sin(th) + b0 * std::cos(th);
      }
  }

  // Logits [T][n_vocab] of tokens at positions 0..T-1.
  std::vector<std::vector<double>> logits(const std::vector<int32_t>& tok) const {
    const int64_t T = (int64_t)tok.size();
    const int E = c.n_embd, d = c.head_dim, H = c.n_head, KV = c.n_kv_head, G = H / KV;
    const std::vector<double> emb = vec("token_embd.weight");
    std::vector<std::vector<double>> x(T);
    for (int64_t t = 0; t < T; ++t) {
      x[t].assign(emb.begin() + (size_t)tok[t] * E, emb.begin() + (size_t)(tok[t] + 1) * E);
      for (double& v : x[t]) v *= std::sqrt((double)E);
    }
    for (int l = 0; l < c.n_layer; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const bool swa = l % 6 != 5;
      std::vector<std::vector<double>> q(T), k(T), v(T);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> h = x[t];
        rms(h, vec(p + "attn_norm.weight"));
        q[t] = matvec(p + "attn_q.weight", h);
        k[t] = matvec(p + "attn_k.weight", h);
        v[t] = matvec(p + "attn_v.weight", h);
        rms(q[t], vec(p + "attn_q_norm.weight"));
        rms(k[t], vec(p + "attn_k_norm.weight"));
        rope(q[t], H, t, swa ? 1e4 : 1e6);
        rope(k[t], KV, t, swa ? 1e4 : 1e6);
      }
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> att((size_t)H * d, 0.0);
        const int64_t j0 = swa ? std::max<int64_t>(0, t - kWindow + 1) : 0;
        for (int h = 0; h < H; ++h) {
          const int g = h / G;
          std::vector<double> s;
          double mx = -1e300;
          for (int64_t j = j0; j <= t; ++j) {
            double dot = 0;
            for (int i = 0; i < d; ++i) dot += q[t][(size_t)h * d + i] * k[j][(size_t)g * d + i];
            s.push_back(dot / std::sqrt((double)d));
            mx = std::max(mx, s.back());
          }
          double sum = 0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (int64_t j = j0; j <= t; ++j)
            for (int i = 0; i < d; ++i)
              att[(size_t)h * d + i] += s[j - j0] / sum * v[j][(size_t)g * d + i];
        }
        std::vector<double> o = matvec(p + "attn_output.weight", att);
        rms(o, vec(p + "post_attention_norm.weight"));
        for (int i = 0; i < E; ++i) x[t][i] += o[i];
        std::vector<double> h = x[t];
        rms(h, vec(p + "ffn_norm.weight"));
        const std::vector<double> gate = matvec(p + "ffn_gate.weight", h);
        const std::vector<double> up = matvec(p + "ffn_up.weight", h);
        std::vector<double> act(gate.size());
        for (size_t i = 0; i < gate.size(); ++i) {
          // GELU with the engine's f16 rounding (ops/elementwise.h, tested there).
          float g1 = (float)gate[i];
          const float one = 1.0f;
          gelu_tanh_mul_ref(&g1, &one, 1);
          act[i] = g1 * up[i];
        }
        std::vector<double> dn = matvec(p + "ffn_down.weight", act);
        rms(dn, vec(p + "post_ffw_norm.weight"));
        for (int i = 0; i < E; ++i) x[t][i] += dn[i];
      }
    }
    std::vector<std::vector<double>> out(T);
    for (int64_t t = 0; t < T; ++t) {
      rms(x[t], vec("output_norm.weight"));
      out[t] = matvec("token_embd.weight", x[t]);
    }
    return out;
  }
};

TEST(Gemma3, ForwardMatchesDoubleReference) {
  const Model& m = tiny_model();
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tok = testing::tiny_tokens(40, c.n_vocab, 11);
  const RefModel ref{m.gguf(), c};
  const auto want = ref.logits(tok);
  // f32 caches (no f16 rounding of q, k, v, p), in batches of 13 so that windows cross them.
  KvCache cache = KvCache::for_model(c, 64, KvType::F32, KvType::F32);
  std::vector<float> logits;
  double max_err = 0, max_ref = 0;
  for (size_t b = 0; b < tok.size(); b += 13) {
    const int64_t T = std::min<int64_t>(13, (int64_t)tok.size() - (int64_t)b);
    m.forward(tok.data() + b, T, cache, LogitsRows::All, logits, pool());
    for (int64_t t = 0; t < T; ++t)
      for (int i = 0; i < c.n_vocab; ++i) {
        const double r = want[b + t][i];
        max_err = std::max(max_err, std::fabs(logits[(size_t)t * c.n_vocab + i] - r));
        max_ref = std::max(max_ref, std::fabs(r));
      }
  }
  EXPECT_GT(max_ref, 1.0);
  EXPECT_LT(max_err, 2e-3 * max_ref) << "max |logit| " << max_ref;
}

// Prefills tokens in batches of `batch`, then decodes `extra` more; returns a hash of every
// row's logits. The cache keeps or drops out-of-window entries as it is set.
std::vector<uint64_t> run_hashes(const Model& m, KvCache& cache, const std::vector<int32_t>& tok,
                                 int64_t batch, int64_t n_prefill) {
  std::vector<uint64_t> h;
  std::vector<float> logits;
  const int64_t V = m.config().n_vocab;
  for (int64_t b = 0; b < (int64_t)tok.size();) {
    const int64_t T = b < n_prefill ? std::min(batch, n_prefill - b) : 1;
    m.forward(tok.data() + b, T, cache, LogitsRows::All, logits, pool());
    for (int64_t t = 0; t < T; ++t) h.push_back(fnv1a_bytes(logits.data() + t * V, V * sizeof(float)));
    b += T;
  }
  return h;
}

TEST(Gemma3, DroppingOutOfWindowEntriesKeepsLogitsBitIdentical) {
  const Model& m = tiny_model();
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tok = testing::tiny_tokens(1400, c.n_vocab, 12);
  for (int64_t batch : {300, 64, 1}) {
    SCOPED_TRACE(batch);
    KvCache keep = KvCache::for_model(c, 4096), drop = KvCache::for_model(c, 4096);
    keep.set_drop_out_of_window(false);
    const auto hk = run_hashes(m, keep, tok, batch, 1300);
    const auto hd = run_hashes(m, drop, tok, batch, 1300);
    EXPECT_EQ(hk, hd);
    // Global layer: everything; sliding-window layers: a bounded tail of consecutive positions.
    EXPECT_EQ(drop.head(5, 0).size(), 1400);
    for (int l : {0, 4, 6}) {
      const KvHead& hd0 = drop.head(l, 1);
      EXPECT_LE(hd0.size(), kWindow + KvCache::kWindowRollback + kAttentionChunk + batch);
      EXPECT_GE(hd0.size(), kWindow + KvCache::kWindowRollback);
      EXPECT_EQ(hd0.pos.back(), 1399);
      EXPECT_EQ(hd0.pos.back() - hd0.pos.front() + 1, hd0.size());
      EXPECT_EQ(keep.head(l, 1).size(), 1400);
    }
    EXPECT_LT(drop.resident_bytes(), keep.resident_bytes());
  }
}

TEST(Gemma3, RollbackWithinTheSlackIsExactAndDeeperIsRefused) {
  const Model& m = tiny_model();
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tok = testing::tiny_tokens(1200, c.n_vocab, 13);
  KvCache drop = KvCache::for_model(c, 4096), keep = KvCache::for_model(c, 4096);
  keep.set_drop_out_of_window(false);
  std::vector<float> ld, lk;
  for (int64_t b = 0; b < 1000; b += 100) {  // the drop happens as batches arrive
    m.forward(tok.data() + b, 100, drop, LogitsRows::Last, ld, pool());
    m.forward(tok.data() + b, 100, keep, LogitsRows::Last, lk, pool());
  }
  EXPECT_GT(drop.rollback_floor(), 0);
  EXPECT_LE(drop.rollback_floor(), 1000 - KvCache::kWindowRollback);
  EXPECT_EQ(keep.rollback_floor(), 0);
  // Back by kWindowRollback, then forward again over other tokens: same as the full cache.
  const int32_t back = 1000 - KvCache::kWindowRollback;
  drop.truncate_from(back);
  keep.truncate_from(back);
  m.forward(tok.data() + 1000, 200, drop, LogitsRows::All, ld, pool());
  m.forward(tok.data() + 1000, 200, keep, LogitsRows::All, lk, pool());
  EXPECT_EQ(ld, lk);
  EXPECT_THROW(drop.truncate_from(100), Error);
  keep.truncate_from(100);  // everything kept: any rollback
  EXPECT_EQ(keep.n_past(), 100);
}

TEST(Gemma3, EvictionLeavesSlidingWindowLayersAlone) {
  const Model& m = tiny_model();
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tok = testing::tiny_tokens(100, c.n_vocab, 14);
  KvCache cache = KvCache::for_model(c, 512);
  std::vector<float> logits;
  m.forward(tok.data(), 100, cache, LogitsRows::Last, logits, pool());
  KvScores scores(c.n_layer, c.n_kv_head, 100);
  BudgetPlan plan;
  plan.n_layer = c.n_layer;
  plan.n_kv_head = c.n_kv_head;
  plan.keep.assign((size_t)c.n_layer * c.n_kv_head, 10);
  const EvictionStats st = compact_cache(cache, scores, plan, std::vector<uint8_t>(100, 0));
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_kv_head; ++h)
      EXPECT_EQ(cache.head(l, h).size(), l == 5 ? 10 : 100) << l;
  EXPECT_EQ(st.kept_per_layer[5], 20);
}

// The real model: a 4K-token prompt in 512-token batches, then 8 decode steps, with and
// without the drop: every row's logits bit-identical.
TEST(Gemma3, RealModelDropOn4KPromptIsBitIdentical) {
  const std::string path = testing::source_dir() + "/models/gemma-3-270m-q4_k_m.gguf";
  if (!testing::exists(path)) GTEST_SKIP() << "not found: " << path;
  const std::unique_ptr<Model> m = Model::load(path);
  const int64_t V = m->config().n_vocab;
  std::vector<int32_t> tok = testing::tiny_tokens(4104, 200000, 15);
  tok[0] = 2;  // BOS
  std::vector<uint64_t> h[2];
  size_t bytes[2];
  for (int keep = 0; keep < 2; ++keep) {
    KvCache cache = KvCache::for_model(m->config(), 4200);
    cache.set_drop_out_of_window(!keep);
    std::vector<float> logits;
    for (int64_t b = 0; b < 4104;) {
      const int64_t T = b < 4096 ? 512 : 1;
      // Every row's logits of the prompt would be 4 GB: the last row of each batch, and
      // every decode step.
      m->forward(tok.data() + b, T, cache, LogitsRows::Last, logits, pool());
      h[keep].push_back(fnv1a_bytes(logits.data(), V * sizeof(float)));
      b += T;
    }
    bytes[keep] = cache.resident_bytes();
    std::printf("[ kv       ] %s: %lld entries, %.1f MiB\n", keep ? "all kept" : "window only",
                (long long)cache.total_entries(), bytes[keep] / 1048576.0);
  }
  EXPECT_EQ(h[0], h[1]);
  // 3 global layers of 18 hold all 4104 entries, the others at most 512 + 256 + 256 + 512.
  EXPECT_LT(bytes[0], bytes[1] * 0.6);
}

}  // namespace
}  // namespace glimpse
