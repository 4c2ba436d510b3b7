// LookaheadKV module: gradient check against central finite differences (double path),
// float vs double agreement, the prompt KV and first answer token untouched, module file
// round trip and refusal of foreign, truncated and mis-shaped files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "lookahead/lookahead_backward.h"
#include "lookahead/lookahead_forward.h"
#include "lookahead/lookahead_module.h"
#include "model/model.h"
#include "model/tiny_model_test_util.h"
#include "kv/policy.h"
#include "lookahead/policy_lookahead.h"
#include "runtime/test_request_util.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace glimpse {
namespace {

namespace fs = std::filesystem;

class Lookahead : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_a_ = testing::temp_path("glimpse_la_tiny_a.gguf");
    path_b_ = testing::temp_path("glimpse_la_tiny_b.gguf");
    testing::TinyModelSpec spec;
    spec.n_layer = 3;
    spec.n_embd = 32;
    spec.n_head = 4;
    spec.n_kv_head = 2;
    spec.n_ff = 48;
    spec.weight_scale = 2.0f;  // peakier attention than the default
    testing::write_tiny_llama(path_a_, spec);
    spec.seed = 2;
    testing::write_tiny_llama(path_b_, spec);
    a_ = Model::load(path_a_).release();
    b_ = Model::load(path_b_).release();
    // Gemma 3: per-head q/k norms, post-norms, GeGLU, and five sliding-window layers (window
    // 12, shorter than the prompts below) before one global layer, the only scored one.
    path_g_ = testing::temp_path("glimpse_la_tiny_g.gguf");
    testing::TinyModelSpec gs = spec;  // the llama shape, with Gemma's own parts
    gs.n_layer = 6;
    gs.head_dim = 8;
    gs.sliding_window = 12;
    gs.seed = 3;
    testing::write_tiny_gemma3(path_g_, gs);
    g_ = Model::load(path_g_).release();
  }
  static void TearDownTestSuite() {
    delete a_;
    delete b_;
    delete g_;
    fs::remove(path_a_);
    fs::remove(path_b_);
    fs::remove(path_g_);
  }

  static KvCache prefill(const Model& m, int64_t n, std::vector<float>& logits, ThreadPool& pool) {
    KvCache cache = KvCache::for_model(m.config(), std::max<int64_t>(256, n + 64));
    const std::vector<int32_t> toks = testing::tiny_tokens(n, m.config().n_vocab, 11);
    for (int64_t b = 0; b < n; b += 10)
      m.forward(toks.data() + b, std::min<int64_t>(10, n - b), cache, LogitsRows::Last, logits, pool);
    return cache;
  }

  // A module with every parameter group non-trivial (B = 0 would zero the A gradients).
  static LookaheadModule random_module(const Model& m, int n, uint64_t seed) {
    LookaheadModule mod = LookaheadModule::create(m, LookaheadHyper{n, 4, 8.0f}, seed);
    std::mt19937_64 rng(seed + 100);
    std::uniform_real_distribution<float> u(-0.3f, 0.3f);
    for (int l = 0; l < m.config().n_layer; ++l)
      for (int s = 0; s < kLoraSlots; ++s)
        if (mod.has(l, s))
          for (float& x : mod.lora(l, s).B) x = u(rng);
    for (float& x : mod.P()) x += u(rng);
    return mod;
  }

  // A target on the scored layers (the sliding-window ones have none, as in training).
  static std::vector<float> random_gt(const Model& m, int64_t N, uint64_t seed) {
    const ModelConfig& c = m.config();
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> gt((size_t)c.n_layer * c.n_head * N);
    for (size_t i = 0; i < gt.size(); ++i) {
      const float x = std::pow(u(rng), 4.0f);  // peaky, like real attention
      gt[i] = c.is_swa((int)(i / ((size_t)c.n_head * N))) ? 0.0f : x;
    }
    return gt;
  }

  void gradient_check(const Model& m, int64_t N, int T);
  void float_matches_double(const Model& m, int64_t N, int T, double tol);

  static std::string path_a_, path_b_, path_g_;
  static Model* a_;
  static Model* b_;
  static Model* g_;
  ThreadPool pool_{2};
};
std::string Lookahead::path_a_, Lookahead::path_b_, Lookahead::path_g_;
Model* Lookahead::a_ = nullptr;
Model* Lookahead::b_ = nullptr;
Model* Lookahead::g_ = nullptr;

// Relative error per tensor: |g_analytic - g_fd| / max(|g_analytic|, |g_fd|) over sampled
// entries, with the finite difference taken over the step the f32 parameter really made.
void Lookahead::gradient_check(const Model& m, int64_t N, int T) {
  std::vector<float> logits;
  KvCache cache = prefill(m, N, logits, pool_);
  LookaheadModule mod = random_module(m, T, 3);
  const std::vector<float> gt = random_gt(m, N, 5);
  LookaheadModule grad = mod.zeros_like();
  const double loss = lookahead_loss_and_grad<double>(m, cache, mod, gt.data(), &grad, pool_);
  ASSERT_GT(loss, 0.01);

  const std::vector<std::string> names = mod.tensor_names();
  std::vector<std::vector<float>*> params = mod.tensors();
  std::vector<std::vector<float>*> grads = grad.tensors();
  // P, 7 adapters in every layer but the last, q/k there.
  ASSERT_EQ(params.size(), 1u + 2u * (7 * (m.config().n_layer - 1) + 2));
  double worst = 0;
  for (size_t ti = 0; ti < params.size(); ++ti) {
    std::vector<float>& p = *params[ti];
    const size_t n_check = std::min<size_t>(12, p.size());
    double diff2 = 0, ga2 = 0, gf2 = 0;
    for (size_t s = 0; s < n_check; ++s) {
      const size_t i = s * p.size() / n_check + (s * 7919) % std::max<size_t>(1, p.size() / n_check);
      const float orig = p[i];
      const float up = orig + 1e-3f, dn = orig - 1e-3f;
      p[i] = up;
      const double lp = lookahead_loss_and_grad<double>(m, cache, mod, gt.data(), nullptr, pool_);
      p[i] = dn;
      const double lm = lookahead_loss_and_grad<double>(m, cache, mod, gt.data(), nullptr, pool_);
      p[i] = orig;
      const double fd = (lp - lm) / ((double)up - (double)dn);
      const double ga = (*grads[ti])[i];
      diff2 += (ga - fd) * (ga - fd);
      ga2 += ga * ga;
      gf2 += fd * fd;
    }
    const double rel = std::sqrt(diff2) / std::max({std::sqrt(ga2), std::sqrt(gf2), 1e-300});
    std::printf("  %-22s |g| %.3e  rel err %.2e\n", names[ti].c_str(), std::sqrt(ga2), rel);
    EXPECT_GT(std::sqrt(ga2), 1e-8) << names[ti] << ": gradient vanishes, the check would be void";
    EXPECT_LE(rel, 1e-3) << names[ti];
    worst = std::max(worst, rel);
  }
  std::printf("  worst relative error %.2e (loss %.4f)\n", worst, loss);
}

TEST_F(Lookahead, GradientMatchesFiniteDifferences) { gradient_check(*a_, 24, 4); }

// Gemma 3's block: per-head q/k norms, post-norms, GeGLU, sliding-window layers whose cache
// holds only the window (the 24-token prompt is longer than the window of 12).
TEST_F(Lookahead, GemmaGradientMatchesFiniteDifferences) { gradient_check(*g_, 24, 4); }

// Relative difference ||f - d|| / ||d|| of a float vector against its double reference.
double rel_diff(const std::vector<float>& f, const std::vector<double>& d) {
  double diff2 = 0, n2 = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    diff2 += std::pow((double)f[i] - d[i], 2);
    n2 += d[i] * d[i];
  }
  return n2 > 0 ? std::sqrt(diff2 / n2) : std::sqrt(diff2);
}

// The engine's pass (float, the model's layer code with hooks) computes the same scores,
// trace and gradients as the double reference pass (a plain layer sequence).
void Lookahead::float_matches_double(const Model& m, int64_t N, int T, double tol) {
  std::vector<float> logits;
  KvCache cache = prefill(m, N, logits, pool_);
  LookaheadModule mod = random_module(m, T, 4);
  std::vector<float> sf;
  std::vector<double> sd;
  LookaheadTrace<float> tf;
  LookaheadTrace<double> td;
  lookahead_forward<float>(m, cache, mod, pool_, sf, &tf);
  lookahead_forward<double>(m, cache, mod, pool_, sd, &td);
  ASSERT_EQ(sf.size(), sd.size());
  ASSERT_EQ(sf.size(), (size_t)m.config().n_layer * m.config().n_head * N);
  // Per score: relative to the score, floored at 1e-6 of the largest (probabilities that
  // underflow in f32 carry no weight).
  double top = 0, worst = 0;
  for (double x : sd) top = std::max(top, std::abs(x));
  for (size_t i = 0; i < sf.size(); ++i)
    worst = std::max(worst, std::abs(sf[i] - sd[i]) / std::max(std::abs(sd[i]), 1e-6 * top));
  std::printf("  scores: worst relative difference %.2e\n", worst);
  EXPECT_LT(worst, tol);

  EXPECT_EQ(tf.n_prompt, td.n_prompt);
  EXPECT_EQ(tf.pos0, td.pos0);
  ASSERT_EQ(tf.layers.size(), td.layers.size());
  for (size_t l = 0; l < tf.layers.size(); ++l) {
    const LookaheadLayerTrace<float>& f = tf.layers[l];
    const LookaheadLayerTrace<double>& d = td.layers[l];
    EXPECT_EQ(f.n_prompt, d.n_prompt) << "layer " << l;
    auto check = [&](const char* name, const std::vector<float>& x, const std::vector<double>& y) {
      ASSERT_EQ(x.size(), y.size()) << "layer " << l << " " << name;
      EXPECT_LT(rel_diff(x, y), tol) << "layer " << l << " " << name;
    };
    check("x_in", f.x_in, d.x_in);
    check("rinv1", f.rinv1, d.rinv1);
    check("xn1", f.xn1, d.xn1);
    for (int s = 0; s < kLoraSlots; ++s) check(lora_slot_name(s), f.a[s], d.a[s]);
    check("q", f.q, d.q);
    check("k", f.k, d.k);
    check("v", f.v, d.v);
    check("prob", f.prob, d.prob);
    check("att", f.att, d.att);
    check("x_mid", f.x_mid, d.x_mid);
    check("rinv2", f.rinv2, d.rinv2);
    check("xn2", f.xn2, d.xn2);
    check("gate", f.gate, d.gate);
    check("up", f.up, d.up);
    check("hid", f.hid, d.hid);
    check("q_raw", f.q_raw, d.q_raw);
    check("k_raw", f.k_raw, d.k_raw);
    check("rinv_q", f.rinv_q, d.rinv_q);
    check("rinv_k", f.rinv_k, d.rinv_k);
    check("o_raw", f.o_raw, d.o_raw);
    check("rinv_o", f.rinv_o, d.rinv_o);
    check("f_raw", f.f_raw, d.f_raw);
    check("rinv_f", f.rinv_f, d.rinv_f);
  }

  const std::vector<float> gt = random_gt(m, N, 6);
  LookaheadModule gf = mod.zeros_like(), gd = mod.zeros_like();  // f32 backward from the hooked trace
  const double lf = lookahead_loss_and_grad<float>(m, cache, mod, gt.data(), &gf, pool_);
  const double ld = lookahead_loss_and_grad<double>(m, cache, mod, gt.data(), &gd, pool_);
  EXPECT_NEAR(lf, ld, tol * std::abs(ld));
  auto gtf = gf.tensors();
  auto gtd = gd.tensors();
  for (size_t t = 0; t < gtf.size(); ++t) {
    double diff2 = 0, n2 = 0;
    for (size_t i = 0; i < gtf[t]->size(); ++i) {
      diff2 += std::pow((double)(*gtf[t])[i] - (*gtd[t])[i], 2);
      n2 += std::pow((double)(*gtd[t])[i], 2);
    }
    EXPECT_LE(std::sqrt(diff2), 10 * tol * std::sqrt(n2)) << "tensor " << t;
  }
}

TEST_F(Lookahead, FloatPathMatchesDouble) { float_matches_double(*a_, 40, 8, 1e-4); }

// Gemma 3: the engine's GELU goes through an f16 table (ops/elementwise.h: relative error up
// to 2^-11 ~ 4.9e-4 per activation) where the reference computes it exactly, so the bound is
// 2e-3 instead of 1e-4 (and 2e-2 on gradients instead of 1e-3). A window of 12 with 8 rows
// after a 40-token prompt: the rows see different first keys.
TEST_F(Lookahead, GemmaFloatPathMatchesDouble) { float_matches_double(*g_, 40, 8, 2e-3); }

// On a sliding-window layer a lookahead row at position p gives probability 0 to the cached
// prompt keys at positions <= p - window and sums to 1 over the rest and the rows up to its
// own; scores exist for the global layer only. 600 prompt tokens: the window layers' caches
// have dropped their oldest entries (kv_cache.h), so they hold fewer than the global one.
TEST_F(Lookahead, GemmaRowsSeeOnlyTheirWindow) {
  const ModelConfig& c = g_->config();
  const int64_t N = 600;
  const int T = 8;
  std::vector<float> logits;
  KvCache cache = prefill(*g_, N, logits, pool_);
  LookaheadModule mod = random_module(*g_, T, 7);
  std::vector<float> sc;
  LookaheadTrace<float> tr;
  lookahead_forward<float>(*g_, cache, mod, pool_, sc, &tr);
  int64_t masked = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::vector<int32_t>& pos = cache.head(l, 0).pos;
    const int64_t N_l = (int64_t)pos.size(), n_keys = N_l + T;
    ASSERT_EQ(tr.layers[l].n_prompt, N_l);
    EXPECT_EQ(N_l < N, c.is_swa(l)) << "layer " << l;
    for (int h = 0; h < c.n_head; ++h) {
      for (int i = 0; i < T; ++i) {
        const float* p = tr.layers[l].prob.data() + ((size_t)h * T + i) * n_keys;
        double sum = 0;
        for (int64_t j = 0; j < N_l; ++j) {
          const bool outside = c.is_swa(l) && pos[j] <= tr.pos0 + i - c.swa_window;
          if (outside) {
            EXPECT_EQ(p[j], 0.0f) << "layer " << l << " row " << i << " key " << j;
            ++masked;
          }
          sum += p[j];
        }
        for (int t = 0; t < T; ++t) {
          if (t > i) {
            EXPECT_EQ(p[N_l + t], 0.0f);
          }
          sum += p[N_l + t];
        }
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
      double row_sum = 0;
      for (int64_t j = 0; j < N; ++j) row_sum += sc[((size_t)l * c.n_head + h) * N + j];
      if (c.is_swa(l)) {
        EXPECT_EQ(row_sum, 0.0) << "layer " << l;
      } else {
        EXPECT_GT(row_sum, 0.0) << "layer " << l;
      }
    }
  }
  EXPECT_GT(masked, 0) << "no key fell outside a window: the test would be void";
}

// Scores are a mean of softmax rows: non-negative, and each row sums to at most 1.
TEST_F(Lookahead, ScoresAreAttentionMass) {
  const int64_t N = 30;
  std::vector<float> logits;
  KvCache cache = prefill(*a_, N, logits, pool_);
  LookaheadModule mod = LookaheadModule::create(*a_, LookaheadHyper{32, 8, 32.0f}, 1);
  const std::vector<float> s = lookahead_kv_scores(*a_, cache, mod, pool_);
  for (int r = 0; r < 3 * 4; ++r) {
    double sum = 0;
    for (int64_t j = 0; j < N; ++j) {
      EXPECT_GE(s[r * N + j], 0.0f);
      sum += s[r * N + j];
    }
    EXPECT_GT(sum, 0.05);
    EXPECT_LE(sum, 1.0 + 1e-5);
  }
}

// The pass only reads the cache: prompt KV, positions and the next token's logits are
// bit-identical with and without it.
TEST_F(Lookahead, PromptKvAndFirstTokenUntouched) {
  const int64_t N = 33;
  std::vector<float> logits_plain, logits_la;
  KvCache plain = prefill(*a_, N, logits_plain, pool_);
  KvCache cache = prefill(*a_, N, logits_la, pool_);
  LookaheadModule mod = random_module(*a_, 32, 9);
  (void)lookahead_kv_scores(*a_, cache, mod, pool_);
  ASSERT_EQ(logits_plain, logits_la);
  ASSERT_EQ(cache.n_past(), plain.n_past());
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(cache.head(l, h).k, plain.head(l, h).k);
      EXPECT_EQ(cache.head(l, h).v, plain.head(l, h).v);
      EXPECT_EQ(cache.head(l, h).pos, plain.head(l, h).pos);
    }
  int32_t tok = 0;
  for (int i = 1; i < (int)logits_plain.size(); ++i)
    if (logits_plain[i] > logits_plain[tok]) tok = i;
  std::vector<float> next_plain, next_la;
  a_->forward(&tok, 1, plain, LogitsRows::Last, next_plain, pool_);
  a_->forward(&tok, 1, cache, LogitsRows::Last, next_la, pool_);
  EXPECT_EQ(next_plain, next_la);
}

TEST_F(Lookahead, SaveLoadRoundTrip) {
  const std::string path = testing::temp_path("glimpse_la_mod.gguf");
  LookaheadModule mod = random_module(*a_, 6, 12);
  mod.save(path);
  const LookaheadModule back = LookaheadModule::load(path, *a_);
  EXPECT_EQ(back.n_lookahead(), 6);
  EXPECT_EQ(back.rank(), 4);
  EXPECT_EQ(back.alpha(), 8.0f);
  EXPECT_EQ(back.base().fingerprint, weights_fingerprint(*a_));
  EXPECT_EQ(back.n_params(), mod.n_params());
  auto x = mod.tensors();
  auto y = back.tensors();
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(*x[i], *y[i]) << i;
  fs::remove(path);
}

TEST_F(Lookahead, WeightsFingerprintIsPinned) {
  // Stored in every module file (base.fingerprint) and sample file: must never change.
  EXPECT_EQ(weights_fingerprint(*a_), 0x11db77f5862fc1b4ull);
  EXPECT_EQ(weights_fingerprint(*b_), 0x700b7a067938acb9ull);
  // The module shipped for the default model stores this value as base.fingerprint.
  const std::string path = default_model_path();
  if (!fs::exists(path) || fs::file_size(path) != 98362432)
    GTEST_SKIP() << "default model (SmolLM2-135M-Instruct.Q4_1) not present";
  EXPECT_EQ(weights_fingerprint(*Model::load(path)), 0x61791dd76b49fecbull);
}

TEST_F(Lookahead, ForeignModelRefused) {
  const std::string path = testing::temp_path("glimpse_la_foreign.gguf");
  LookaheadModule::create(*a_, LookaheadHyper{}, 1).save(path);
  EXPECT_NE(weights_fingerprint(*a_), weights_fingerprint(*b_));
  try {
    LookaheadModule::load(path, *b_);
    FAIL() << "a module for model A loaded for model B";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST_F(Lookahead, TruncatedOrMisShapedFileRefused) {
  const std::string path = testing::temp_path("glimpse_la_cut.gguf");
  LookaheadModule::create(*a_, LookaheadHyper{4, 2, 4.0f}, 1).save(path);
  std::vector<char> bytes(fs::file_size(path));
  std::ifstream(path, std::ios::binary).read(bytes.data(), (std::streamsize)bytes.size());
  auto write = [&](const std::vector<char>& b) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(b.data(), (std::streamsize)b.size());
  };
  for (size_t n : {bytes.size() - 1, bytes.size() / 2, (size_t)100, (size_t)10}) {
    write(std::vector<char>(bytes.begin(), bytes.begin() + (std::ptrdiff_t)n));
    EXPECT_THROW(LookaheadModule::load(path, *a_), Error) << "truncated to " << n;
  }
  // Claim 5 lookahead rows while the tensor holds 4.
  const std::string key = "lookahead.n_lookahead";
  std::vector<char> bad = bytes;
  auto it = std::search(bad.begin(), bad.end(), key.begin(), key.end());
  ASSERT_NE(it, bad.end());
  const size_t at = (size_t)(it - bad.begin()) + key.size() + 4;  // after the type tag
  ASSERT_EQ(bad[at], 4);
  bad[at] = 5;
  write(bad);
  try {
    LookaheadModule::load(path, *a_);
    FAIL() << "mis-shaped module loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  write(bytes);
  EXPECT_NO_THROW(LookaheadModule::load(path, *a_));
  fs::remove(path);
}

// The default model's module has about 2.4 M parameters.
TEST_F(Lookahead, ParameterCountOfDefaultModel) {
  const std::string path = default_model_path();
  if (!fs::exists(path)) GTEST_SKIP() << "default model not present";
  std::unique_ptr<Model> m = Model::load(path);
  const LookaheadModule mod = LookaheadModule::create(*m, LookaheadHyper{}, 1);
  std::printf("  LookaheadKV module for %s: %lld parameters\n", m->config().name.c_str(),
              (long long)mod.n_params());
  EXPECT_GT(mod.n_params(), 2'300'000);
  EXPECT_LT(mod.n_params(), 2'500'000);
}

}  // namespace
}  // namespace glimpse

namespace glimpse {
namespace {

// Cost of the lookahead pass against the prefill it follows, on the default model.
// Run with --gtest_also_run_disabled_tests; GLIMPSE_LA_TIMING_N = "2000,4000" by default.
TEST(LookaheadTiming, DISABLED_ScoringVsPrefillOnDefaultModel) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not present";
  std::unique_ptr<Model> m = Model::load(path);
  ThreadPool pool(2);
  const LookaheadModule mod = LookaheadModule::create(*m, LookaheadHyper{}, 1);
  const char* env = std::getenv("GLIMPSE_LA_TIMING_N");
  std::vector<int64_t> ns;
  for (const std::string& s : {std::string(env ? env : "2000,4000")}) {
    size_t b = 0;
    while (b < s.size()) {
      const size_t e = std::min(s.find(',', b), s.size());
      ns.push_back(std::stoll(s.substr(b, e - b)));
      b = e + 1;
    }
  }
  for (int64_t N : ns) {
    KvCache cache = KvCache::for_model(m->config(), N + 64);
    const std::vector<int32_t> toks = testing::tiny_tokens(N, m->config().n_vocab, 3);
    std::vector<float> logits;
    Stopwatch sw;
    for (int64_t b = 0; b < N; b += 512)
      m->forward(toks.data() + b, std::min<int64_t>(512, N - b), cache, LogitsRows::Last, logits, pool);
    const double prefill = sw.ms();
    // Alternate the lookahead pass with a plain 32-token batch at the same depth (what
    // "~32 extra tokens" costs), best of 5 each, so machine noise hits both alike.
    double best = 1e300, best32 = 1e300;
    const std::vector<int32_t> extra = testing::tiny_tokens(32, m->config().n_vocab, 4);
    for (int r = 0; r < 5; ++r) {
      sw.reset();
      (void)lookahead_kv_scores(*m, cache, mod, pool);
      best = std::min(best, sw.ms());
      KvCache copy = cache;
      sw.reset();
      m->forward(extra.data(), 32, copy, LogitsRows::Last, logits, pool);
      best32 = std::min(best32, sw.ms());
    }
    std::vector<float> gt((size_t)m->config().n_layer * m->config().n_head * N, 1.0f);
    LookaheadModule grad = mod.zeros_like();
    sw.reset();
    (void)lookahead_loss_and_grad<float>(*m, cache, mod, gt.data(), &grad, pool);
    const double step = sw.ms();
    std::printf("  N=%lld  prefill %.0f ms  lookahead scores %.1f ms (%.2f%% of prefill; "
                "32-token batch at depth N: %.1f ms)  forward+backward %.0f ms\n",
                (long long)N, prefill, best, 100.0 * best / prefill, best32, step);
  }
}

}  // namespace
}  // namespace glimpse

namespace glimpse {
namespace {

class LookaheadPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = testing::temp_path("glimpse_la_pol.gguf");
    module_path_ = testing::temp_path("glimpse_la_pol.lookahead.gguf");
    testing::TinyModelSpec spec;
    spec.n_layer = 2;
    spec.n_head = 4;
    spec.n_kv_head = 2;
    spec.weight_scale = 2.0f;
    testing::write_tiny_llama(model_path_, spec);
    register_lookahead_policy();
    EngineParams ep;
    ep.model_path = model_path_;
    engine_ = Engine::load(ep);
    model_ = &engine_->model();
    LookaheadModule mod = LookaheadModule::create(*model_, LookaheadHyper{}, 5);
    for (float& x : mod.lora(0, (int)LoraSlot::Q).B) x = 0.05f;
    mod.save(module_path_);
  }
  void TearDown() override {
    std::filesystem::remove(model_path_);
    std::filesystem::remove(module_path_);
  }
  std::string model_path_, module_path_;
  std::shared_ptr<Engine> engine_;
  const Model* model_ = nullptr;
  ThreadPool pool_{2};
};

// Policy scores = the module's per-query-head scores, mean over each group, no pooling;
// eviction meets the budget and the first token's logits are the full-cache ones.
TEST_F(LookaheadPolicyTest, ScoresEvictionAndDefaultModulePath) {
  const int64_t N = 80, C = 24;
  const std::vector<int32_t> prompt = testing::tiny_tokens(N, 64, 21);
  KvCache plain = KvCache::for_model(model_->config(), 256);
  std::vector<float> logits_plain;
  model_->forward(prompt.data(), N, plain, LogitsRows::Last, logits_plain, pool_);

  const std::vector<float> per_q =
      lookahead_kv_scores(*model_, plain, LookaheadModule::load(module_path_, *model_), pool_);
  std::unique_ptr<KvPolicy> p = make_kv_policy("lookahead");
  KvPolicySettings s;
  s.name = "lookahead";
  s.budget = C;  // module path left empty: found next to the model
  const ResolvedPolicy r = resolve_policy(s, p->defaults(), N);
  EXPECT_EQ(r.window, 0);
  EXPECT_EQ(r.sinks, 0);
  EXPECT_EQ(r.pool, PoolKind::None);
  const std::vector<int32_t> none;
  auto req = testing::context_with(engine_, pool_, plain, logits_plain);
  PolicyInput in{*model_, *req, req->cache(), pool_, r, prompt, none, logits_plain};
  const KvScores ks = p->score(in);
  for (int l = 0; l < 2; ++l)
    for (int g = 0; g < 2; ++g)
      for (int64_t j = 0; j < N; ++j) {
        const float want = 0.5f * (per_q[((size_t)l * 4 + 2 * g) * N + j] +
                                   per_q[((size_t)l * 4 + 2 * g + 1) * N + j]);
        EXPECT_FLOAT_EQ(ks.at(l, g)[j], want);
      }

  KvCache cache = KvCache::for_model(model_->config(), 256);
  std::vector<float> logits;
  const KvCompressReport rep = testing::prefill_evict(engine_, pool_, 32, cache, prompt, -1, s, logits);
  ASSERT_TRUE(rep.evicted);
  EXPECT_EQ(logits, logits_plain);
  EXPECT_EQ(cache.n_past(), N);
  for (int l = 0; l < 2; ++l)
    for (int g = 0; g < 2; ++g) EXPECT_EQ(cache.head(l, g).size(), C);

  std::filesystem::remove(module_path_);
  KvCache cache2 = KvCache::for_model(model_->config(), 256);
  try {
    testing::prefill_evict(engine_, pool_, 32, cache2, prompt, -1, s, logits);
    FAIL() << "no module, yet the policy ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-lookahead-module"), std::string::npos) << e.what();
  }
}

// The top-k term's gradient against finite differences, on random scores (no model).
TEST(LookaheadLoss, TopKTermGradientMatchesFiniteDifferences) {
  const int L = 2, H = 3;
  const int64_t N = 40;
  std::mt19937 gen(7);
  std::uniform_real_distribution<double> u(0.01, 1.0);
  std::vector<double> sc(L * H * N);
  std::vector<float> gt(L * H * N);
  for (auto& x : sc) x = u(gen);
  for (auto& x : gt) x = (float)std::pow(u(gen), 4.0);  // peaked, as attention is
  const LookaheadLoss opt{0.7, 6};
  std::vector<double> ds;
  const double loss = lookahead_loss<double>(sc, gt.data(), L, H, N, &ds, opt);
  const double plain = lookahead_loss<double>(sc, gt.data(), L, H, N, nullptr);
  EXPECT_GT(loss, plain);  // the added term is a KL, positive here
  for (int64_t i = 0; i < (int64_t)sc.size(); i += 7) {
    std::vector<double> a = sc, b = sc;
    const double h = 1e-6;
    a[i] += h;
    b[i] -= h;
    const double fd = (lookahead_loss<double>(a, gt.data(), L, H, N, nullptr, opt) -
                       lookahead_loss<double>(b, gt.data(), L, H, N, nullptr, opt)) / (2 * h);
    EXPECT_NEAR(ds[i], fd, 1e-6 * std::max(1.0, std::abs(fd))) << i;
  }
  // Weight 0 is the plain KL, to the bit.
  EXPECT_EQ(lookahead_loss<double>(sc, gt.data(), L, H, N, nullptr, LookaheadLoss{0, 6}), plain);
}

}  // namespace
}  // namespace glimpse
