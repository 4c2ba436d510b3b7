// Kernel micro-benchmarks (Google Benchmark): matmul per weight type at decode (T = 1) and
// prefill (T = 64, 512) shapes of the default model, each int8 kernel level (AVX-512 VNNI,
// AVX2, none = the f32 path) on the same shapes, the int8 (VNNI) peak of one core,
// attention at growing depth (decode and prefill), and the streaming read bandwidth that
// bounds decode attention.
// Run: build/bin/glimpse_ops_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <vector>

#include "ops/attention.h"
#include "ops/isa.h"
#include "ops/matmul.h"
#include "ops/matmul_int8.h"
#include "ops/quant.h"
#include "util/fp16.h"
#include "util/stream_read.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

// Random blocks with small finite f16 scales at the start of every block (valid for
// Q4_0/Q4_1/Q8_0: d first, then m for Q4_1).
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols) {
  const GgmlTypeInfo* info = ggml_type_info((uint32_t)t);
  std::vector<uint8_t> w(ggml_row_bytes(t, cols) * rows);
  std::mt19937 rng(1);
  for (auto& b : w) b = (uint8_t)rng();
  for (size_t off = 0; off + info->block_bytes <= w.size(); off += info->block_bytes) {
    const uint16_t d = f32_to_fp16(0.01f), m = f32_to_fp16(-0.05f);
    __builtin_memcpy(&w[off], &d, 2);
    if (t == GgmlType::Q4_1) __builtin_memcpy(&w[off + 2], &m, 2);
  }
  return w;
}

void BM_Matmul(benchmark::State& st) {
  const auto type = (GgmlType)st.range(0);
  const int64_t rows = st.range(1), cols = st.range(2), T = st.range(3);
  const auto w = random_weights(type, rows, cols);
  // As the model loads them: interleaved for the int8 kernels where the CPU has them.
  const WeightView view = pack_weights(make_weight_view(type, w.data(), rows, cols), false);
  std::vector<float> x(T * cols), y(T * rows);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (auto& e : x) e = nd(rng);
  ThreadPool pool((int)st.range(4));
  for (auto _ : st) {
    matmul(view, x.data(), T, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * cols * T, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  st.counters["GB/s(weights)"] =
      benchmark::Counter((double)w.size(), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
// type, rows, cols, T, threads: the FFN up projection of SmolLM2-135M.
BENCHMARK(BM_Matmul)
    ->ArgsProduct({{(int)GgmlType::Q4_1, (int)GgmlType::Q8_0}, {1536}, {576}, {1, 64}, {1, 2}})
    ->UseRealTime();
// Prefill batch of 512 tokens through the SmolLM2-135M shapes: q/o (576 -> 576),
// gate/up (576 -> 1536), down (1536 -> 576).
BENCHMARK(BM_Matmul)
    ->ArgsProduct({{(int)GgmlType::Q4_1}, {576}, {576}, {512}, {1, 2}})
    ->ArgsProduct({{(int)GgmlType::Q4_1}, {1536}, {576}, {512}, {1, 2}})
    ->ArgsProduct({{(int)GgmlType::Q4_1}, {576}, {1536}, {512}, {1, 2}})
    ->ArgsProduct({{(int)GgmlType::Q8_0}, {1536}, {576}, {512}, {2}})
    ->UseRealTime();
// Decode through the tied Q8_0 output matrix (49152 x 576, 30 MB: streams from memory).
BENCHMARK(BM_Matmul)
    ->ArgsProduct({{(int)GgmlType::Q8_0}, {49152}, {576}, {1}, {1, 2}})
    ->UseRealTime();

// BM_Matmul at a forced level (ops/isa.h: 0 = scalar (the f32 path), 1 = sse4, 2 = avx2,
// 3 = avx512): type, rows, cols, T, threads, level.
void BM_MatmulIsa(benchmark::State& st) {
  const auto want = (IsaLevel)st.range(5);
  if (want > best_isa_level()) {
    st.SkipWithError("level not available on this CPU");
    return;
  }
  const IsaLevelScope scope(want);
  st.SetLabel(isa_level_name(want));
  BM_Matmul(st);
}
// The FFN up projection of SmolLM2-135M: decode (T = 1) and a 512-token prefill batch.
BENCHMARK(BM_MatmulIsa)
    ->ArgsProduct({{(int)GgmlType::Q4_1, (int)GgmlType::Q8_0}, {1536}, {576}, {1, 512}, {1},
                   {1, 2, 3}})
    ->UseRealTime();

#if defined(__x86_64__)
// Int8 roofline of one core: 12 independent chains of 512-bit vpdpbusd (u8 x s8, 64
// multiply-adds each, counted as 128 ops) with no loads, the most any int8 matmul kernel
// can issue. Named accumulators (no array) so that they stay in registers.
__attribute__((target("avx512f,avx512vnni"))) void vnni_peak_loop(int64_t iters, int32_t* out) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
  asm volatile("" : "+v"(u), "+v"(s));
  for (int64_t i = 0; i < iters; ++i) {
#define GLIMPSE_DP(a) a = _mm512_dpbusd_epi32(a, u, s)
    GLIMPSE_DP(a0); GLIMPSE_DP(a1); GLIMPSE_DP(a2); GLIMPSE_DP(a3); GLIMPSE_DP(a4);
    GLIMPSE_DP(a5); GLIMPSE_DP(a6); GLIMPSE_DP(a7); GLIMPSE_DP(a8); GLIMPSE_DP(a9);
    GLIMPSE_DP(a10); GLIMPSE_DP(a11);
#undef GLIMPSE_DP
    // Opaque to the compiler: the 12 identical chains must not be merged.
    asm volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
    asm volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
  }
  a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                        _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
  a0 = _mm512_add_epi32(a0, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
  _mm512_storeu_si512(out, a0);
}

void BM_VnniPeak(benchmark::State& st) {
  if (!__builtin_cpu_supports("avx512vnni")) {
    st.SkipWithError("no AVX-512 VNNI");
    return;
  }
  constexpr int64_t kIters = 1 << 16;
  alignas(64) int32_t out[16];
  for (auto _ : st) {
    vnni_peak_loop(kIters, out);
    benchmark::DoNotOptimize(out);
  }
  st.counters["GOPS"] = benchmark::Counter(kIters * 12.0 * 128,
                                           benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_VnniPeak);
#endif

// One layer's K/V stored as `type` at the default model's shape (3 KV heads x 64), one
// buffer per head.
struct KvLayer {
  std::vector<uint8_t> k[3], v[3];
  KvHeadView heads[3];
  KvLayer(int64_t n, KvType type, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    std::vector<float> x(n * 64);
    for (int g = 0; g < 3; ++g) {
      k[g].resize(n * kv_row_bytes(type, 64));
      v[g].resize(n * kv_row_bytes(type, 64));
      for (auto& e : x) e = nd(rng);
      kv_rows_from_f32(type, x.data(), n, 64, k[g].data());
      for (auto& e : x) e = nd(rng);
      kv_rows_from_f32(type, x.data(), n, 64, v[g].data());
    }
  }
};

constexpr KvType kBenchKvTypes[] = {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0};

// Attention of SmolLM2-135M (9 query heads over 3 KV heads of 64) for T new queries over
// `depth` cached entries. With cold = 1 the call cycles over enough layers (>= 128 MiB of
// K/V) that the cache comes from DRAM as in a real decode step; cold = 0 reuses one layer
// (L2/L3 resident). "KV GB/s" counts the K and V bytes one call must read once. The fifth
// argument picks the KV type (0 f32, 1 f16, 2 bf16, 3 q8_0).
void BM_Attention(benchmark::State& st) {
  const int64_t depth = st.range(0), T = st.range(1);
  const bool cold = st.range(3) != 0;
  const KvType type = kBenchKvTypes[st.range(4)];
  st.SetLabel(kv_type_name(type));
  const AttentionParams p{9, 3, 64, 0.125f, type, type};
  const int64_t n = depth + T;
  const double bytes = 3.0 * 2 * n * kv_row_bytes(type, 64);
  const int n_layers = cold ? (int)std::max(1.0, std::ceil(128e6 / bytes)) : 1;
  std::mt19937 rng(2);
  std::vector<std::unique_ptr<KvLayer>> layers;
  for (int l = 0; l < n_layers; ++l) {
    layers.push_back(std::make_unique<KvLayer>(n, type, rng));
    for (int g = 0; g < 3; ++g)
      layers.back()->heads[g] = {layers.back()->k[g].data(), layers.back()->v[g].data(), depth};
  }
  std::normal_distribution<float> nd;
  std::vector<float> q(T * 9 * 64), out(T * 9 * 64);
  for (auto& e : q) e = nd(rng);
  ThreadPool pool((int)st.range(2));
  int l = 0;
  for (auto _ : st) {
    attention(p, q.data(), T, layers[l]->heads, out.data(), pool);
    benchmark::DoNotOptimize(out.data());
    l = (l + 1) % n_layers;
  }
  st.counters["KV GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
// Decode: depth, T = 1, threads, cold, type (f16).
BENCHMARK(BM_Attention)
    ->Name("BM_AttentionDecode")
    ->ArgsProduct({{512, 2048, 4096, 8000}, {1}, {1, 2}, {0, 1}, {1}})
    ->UseRealTime();
// Speculative verification: T = 1..6 new tokens at depth 8000 (the target's forward over a
// draft), 2 threads, from DRAM, f16. Memory-bound attention would read K/V once for all rows.
BENCHMARK(BM_Attention)
    ->Name("BM_AttentionVerify")
    ->ArgsProduct({{8000}, {1, 2, 3, 4, 5, 6}, {2}, {1}, {1}})
    ->UseRealTime();
// Prefill: a 512-token batch at depth 0 and as the last chunk of a 4096 / 8000 prompt, and a
// 64-token batch at depth.
BENCHMARK(BM_Attention)
    ->Name("BM_AttentionPrefill")
    ->Args({0, 512, 2, 0, 1})
    ->Args({3584, 512, 2, 0, 1})
    ->Args({7488, 512, 2, 0, 1})
    ->Args({4096, 64, 2, 0, 1})
    ->Args({8000, 64, 2, 0, 1})
    ->UseRealTime();
// Every KV type, one thread: decode at 4096 (L3 and DRAM) and a 512-token prefill chunk.
BENCHMARK(BM_Attention)
    ->Name("BM_AttentionTypes")
    ->ArgsProduct({{4096}, {1}, {1}, {0, 1}, {0, 1, 2, 3}})
    ->Args({3584, 512, 1, 0, 0})
    ->Args({3584, 512, 1, 0, 1})
    ->Args({3584, 512, 1, 0, 2})
    ->Args({3584, 512, 1, 0, 3})
    ->UseRealTime();

// Streaming read of a 256 MiB buffer split across the threads (util/stream_read.h, the
// pass `glimpse bench` probes for its roofline): the DRAM bandwidth a memory-bound kernel can
// hope for (the roofline of decode attention at depth).
void BM_ReadBandwidth(benchmark::State& st) {
  const size_t bytes = size_t{256} << 20;
  std::vector<uint8_t> buf(bytes);
  for (size_t i = 0; i < bytes; ++i) buf[i] = (uint8_t)i;
  ThreadPool pool((int)st.range(0));
  for (auto _ : st) stream_read_pass(buf.data(), bytes, pool);
  st.counters["GB/s"] = benchmark::Counter((double)bytes,
                                           benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace glimpse

BENCHMARK_MAIN();
