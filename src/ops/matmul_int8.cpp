// Integer matmul for Q4_0 / Q4_1 / Q8_0 weights: the interleaved weight layout, the scalar
// reference, the choice of kernels (Isa) and the driver that rounds the activations and
// splits the row groups over the threads. The kernels are in matmul_int8_avx512.cpp (VNNI),
// matmul_int8_avx2.cpp and matmul_int8_sse4.cpp; see matmul_int8.h for the per-output
// definition they share (fused by the FMA levels, unfused at SSE4).
//
// Interleaved layout. Rows are taken in groups of 16 (one 512-bit vector of int32 lanes,
// lane = row; two 256-bit vectors of 8 rows for AVX2, four 128-bit vectors of 4 rows for
// SSE4); the last group is padded with zero
// rows. A group stores, for its 16 rows:
//   quants  [nb][QS]      block b, then for each 4-element slice of it a 64-byte vector
//                         holding that slice for the 16 rows (row i at bytes 4i..4i+3):
//                         Q4: QS = 256, vector j < 4 holds the packed bytes qs[4j..4j+3],
//                             low nibbles = elements 4j.., high nibbles = 16 + 4j..;
//                         Q8_0: QS = 512, vector j holds elements 4j..4j+3 as q + 128 (u8)
//   scales  [nb][16] f16  then, Q4_1 only, mins [nb][16] f16.
// That is 16 rows x the GGUF block size per block: the copy is as large as the blocks.
#include "ops/matmul_int8.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "ops/isa.h"
#include "ops/matmul_int8_impl.h"
#include "ops/quant.h"
#include "ops/transcode.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace int8mm {

using namespace impl;

namespace {

// 64-byte aligned, uninitialised bytes (grown on demand, never shrunk).
struct AlignedBuf {
  std::unique_ptr<uint8_t, decltype(&std::free)> p{nullptr, &std::free};
  size_t n = 0;
  uint8_t* get(size_t bytes) {
    if (bytes > n) {
      p.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
      n = bytes;
    }
    return p.get();
  }
};

// One token: the same rounding as the float path (d = amax/127, q = round(x/d)). Block b
// goes to q + b * qstride and d/s/c[b * mstride].
void quantize_row_scalar(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                         int32_t* c, int64_t qstride = 32, int64_t mstride = 1) {
  for (int64_t b = 0; b < K / 32; ++b, x += 32, q += qstride) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    int32_t asum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = (int8_t)std::round(x[j] * id);
      asum += q[j];
    }
    finish_block(kind, asum, dd, fp16_to_f32(f32_to_fp16(dd)), d + b * mstride, s + b * mstride,
                 c + b * mstride);
  }
}

// Weight quants of row r, block b, element j as the kernels multiply them (u8).
inline int weight_u8(Kind kind, const uint8_t* blk, int j) {
  if (kind == Kind::Q8_0) return (uint8_t)(blk[2 + j] ^ 0x80);
  const uint8_t* qs = blk + (kind == Kind::Q4_1 ? 4 : 2);
  return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
}

size_t block_bytes(Kind kind) {
  return kind == Kind::Q4_0 ? sizeof(BlockQ4_0)
         : kind == Kind::Q4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
}

// Groups [g0, g1) of w into dst (g1 - g0 groups of nb * group_block_bytes).
void pack_groups(const WeightView& w, int64_t g0, int64_t g1, uint8_t* dst) {
  const Kind kind = kind_of(w.type);
  const int64_t nb = w.cols / 32;
  const int QS = qs_bytes(kind);
  const size_t gbytes = (size_t)nb * group_block_bytes(kind), bb = block_bytes(kind);
  for (int64_t g = g0; g < g1; ++g, dst += gbytes) {
    if ((g + 1) * kGroup > w.rows) std::memset(dst, 0, gbytes);  // zero rows pad the last group
    uint8_t* scales = dst + nb * QS;
    uint8_t* mins = scales + nb * 32;
    for (int64_t i = 0; i < kGroup && g * kGroup + i < w.rows; ++i) {
      const uint8_t* blk = w.row(g * kGroup + i);
      for (int64_t b = 0; b < nb; ++b, blk += bb) {
        uint8_t* qd = dst + b * QS + 4 * i;
        if (kind == Kind::Q8_0) {
          for (int j = 0; j < 8; ++j) {  // q + 128 = q ^ 0x80, four bytes at a time
            uint32_t v;
            std::memcpy(&v, blk + 2 + 4 * j, 4);
            v ^= 0x80808080u;
            std::memcpy(qd + j * 64, &v, 4);
          }
        } else {
          const uint8_t* qs = blk + (kind == Kind::Q4_1 ? 4 : 2);
          for (int j = 0; j < 4; ++j) std::memcpy(qd + j * 64, qs + 4 * j, 4);
        }
        std::memcpy(scales + (b * kGroup + i) * 2, blk, 2);
        if (kind == Kind::Q4_1) std::memcpy(mins + (b * kGroup + i) * 2, blk + 2, 2);
      }
    }
  }
}

Isa detect_isa() {
#if GLIMPSE_INT8_KERNELS
  __builtin_cpu_init();
  const bool f16c_fma = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  if (f16c_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni"))
    return Isa::kAvx512;
  if (f16c_fma && __builtin_cpu_supports("avx2")) return Isa::kAvx2;
  if (__builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1")) return Isa::kSse4;
#endif
  return Isa::kScalar;
}

#if GLIMPSE_INT8_KERNELS
const Kernels* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return &kAvx512;
    case Isa::kAvx2:
      return &kAvx2;
    case Isa::kSse4:
      return &kSse4;
    case Isa::kScalar:
      break;
  }
  return nullptr;
}
#endif

}  // namespace

Isa best_isa() {
  static const Isa best = detect_isa();
  return best;
}

// The int8 kernels of the level in use (ops/isa.h): AVX-512 VNNI at avx512, vpmaddubsw at
// avx2, pmaddubsw on 128-bit vectors at sse4, none (the f32 path) at scalar; capped at what
// this CPU has.
Isa isa() {
  Isa want = Isa::kScalar;
  switch (isa_level()) {
    case IsaLevel::kAvx512:
      want = Isa::kAvx512;
      break;
    case IsaLevel::kAvx2:
      want = Isa::kAvx2;
      break;
    case IsaLevel::kSse4:
      want = Isa::kSse4;
      break;
    case IsaLevel::kScalar:
      break;
  }
  return std::min(want, best_isa());
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kSse4:
      return "sse4";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

bool cpu_has_kernels() { return isa() != Isa::kScalar; }

bool supports(const WeightView& w) {
  return (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q4_1 || w.type == GgmlType::Q8_0) &&
         w.cols % 32 == 0 && w.cols > 0 && w.rows > 0;
}

size_t packed_bytes(const WeightView& w) {
  return (size_t)((w.rows + kGroup - 1) / kGroup) * (w.cols / 32) *
         group_block_bytes(kind_of(w.type));
}

void pack(const WeightView& w, uint8_t* dst) {
  pack_groups(w, 0, (w.rows + kGroup - 1) / kGroup, dst);
}

#if GLIMPSE_INT8_KERNELS
namespace {
// Groups [g0, g1) of w against the rounded activations; y: [T][w.rows].
void run_weight_groups(const Kernels& kern, Kind kind, const WeightView& w, size_t gbytes,
                       int64_t g0, int64_t g1, const Acts& a, int64_t T, float* y) {
  if (w.packed) {
    kern.run_groups(kind, w.packed + g0 * gbytes, gbytes, g1 - g0, a, T, y, w.rows, g0 * kGroup);
    return;
  }
  // Blocks straight from the file: interleave a few groups at a time into scratch.
  thread_local AlignedBuf wbuf;
  constexpr int64_t kChunk = 4;
  uint8_t* scratch = wbuf.get(kChunk * gbytes);
  for (int64_t g = g0; g < g1; g += kChunk) {
    const int64_t n = std::min(kChunk, g1 - g);
    pack_groups(w, g, g + n, scratch);
    kern.run_groups(kind, scratch, gbytes, n, a, T, y, w.rows, g * kGroup);
  }
}
}  // namespace
#endif

void packed_row(const WeightView& w, int64_t r, float* out) {
  const Kind kind = kind_of(w.type);
  const int64_t nb = w.cols / 32, i = r % kGroup;
  const int QS = qs_bytes(kind);
  const uint8_t* g = w.packed + (size_t)(r / kGroup) * nb * group_block_bytes(kind);
  const uint8_t* scales = g + nb * QS;
  for (int64_t b = 0; b < nb; ++b, out += 32) {
    uint16_t h;
    std::memcpy(&h, scales + (b * kGroup + i) * 2, 2);
    const float d = fp16_to_f32(h);
    float m = -8.0f * d;  // Q4_0's offset, as dequant_row applies it: fma(q, d, -8d)
    if (kind == Kind::Q4_1) {
      std::memcpy(&h, scales + (nb + b) * 32 + i * 2, 2);
      m = fp16_to_f32(h);
    }
    for (int j = 0; j < 32; ++j) {
      if (kind == Kind::Q8_0) {
        out[j] = (float)(int8_t)(g[b * QS + (j / 4) * 64 + 4 * i + j % 4] ^ 0x80) * d;
      } else {
        const uint8_t byte = g[b * QS + (j % 16 / 4) * 64 + 4 * i + j % 4];
        out[j] = std::fma((float)(j < 16 ? byte & 0xF : byte >> 4), d, m);
      }
    }
  }
}

bool matmul(const WeightView& w, const float* x, int64_t T, float* y, ThreadPool& pool) {
  const WeightView* ws[] = {&w};
  float* ys[] = {y};
  return int8mm::matmul_multi(ws, 1, x, T, ys, pool);
}

bool matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t T, float* const* ys,
                  ThreadPool& pool) {
#if GLIMPSE_INT8_KERNELS
  const Kernels* kern = kernels_for(isa());
  if (!kern || n_w <= 0 || T <= 0) return false;
  const Kind kind = kind_of(ws[0]->type);
  for (int i = 0; i < n_w; ++i)
    if (!supports(*ws[i]) || kind_of(ws[i]->type) != kind || ws[i]->cols != ws[0]->cols) return false;
  const int64_t K = ws[0]->cols, nb = K / 32;
  // Activations (see Acts), rounded once for every weight, kept by the calling thread.
  const int64_t S = std::min<int64_t>(T, kern->slots), Tp = (T + S - 1) / S * S;
  thread_local AlignedBuf abuf;
  const size_t qbytes = (size_t)Tp * K, mbytes = (size_t)Tp * nb * 4;
  uint8_t* base = abuf.get(qbytes + 3 * mbytes + 64);
  Acts a{reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(base + (qbytes + 63) / 64 * 64),
         nullptr, nullptr, nb, S};
  a.s = a.d + Tp * nb;
  a.c = reinterpret_cast<int32_t*>(a.s + Tp * nb);
  auto quantize = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t tile = t / S * S * nb, slot = t % S;  // first (token, block) of the tile
      kern->quantize_row(kind, x + t * K, K, a.q + tile * 32 + slot * 32, a.d + tile + slot,
                         a.s + tile + slot, a.c + tile + slot, S * 32, S);
    }
  };
  if (T * K >= 16384) {
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) { quantize(b, e); });
  } else {
    quantize(0, T);
  }

  // The row groups of every weight, numbered back to back, split over the threads.
  std::vector<int64_t> first_group(n_w + 1, 0);
  for (int i = 0; i < n_w; ++i)
    first_group[i + 1] = first_group[i] + (ws[i]->rows + kGroup - 1) / kGroup;
  const size_t gbytes = (size_t)nb * group_block_bytes(kind);
  pool.parallel_for(first_group[n_w], [&](int64_t g_begin, int64_t g_end, int) {
    for (int i = 0; i < n_w; ++i) {
      const int64_t g0 = std::max(g_begin, first_group[i]) - first_group[i];
      const int64_t g1 = std::min(g_end, first_group[i + 1]) - first_group[i];
      if (g1 > g0) run_weight_groups(*kern, kind, *ws[i], gbytes, g0, g1, a, T, ys[i]);
    }
  });
  return true;
#else
  return false;
#endif
}

namespace {
// a + b * c with the product rounded to f32 first (the unfused form): the empty asm makes the
// product opaque, so that no compiler contracts it into an FMA (-ffp-contract=fast with FMA
// enabled would; the baseline x86-64 build has none, but the definition must not depend on it).
inline float add_product(float a, float b, float c) {
  float p = b * c;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(p));
#else
  volatile float vp = p;
  p = vp;
#endif
  return a + p;
}
}  // namespace

void matmul_ref(const WeightView& w, const float* x, int64_t T, float* y, bool fused) {
  const Kind kind = kind_of(w.type);
  const int64_t K = w.cols, nb = K / 32;
  const size_t bb = block_bytes(kind);
  std::vector<int8_t> q(K);
  std::vector<float> d(nb), s(nb);
  std::vector<int32_t> c(nb);
  for (int64_t t = 0; t < T; ++t) {
    quantize_row_scalar(kind, x + t * K, K, q.data(), d.data(), s.data(), c.data());
    for (int64_t r = 0; r < w.rows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = w.row(r) + b * bb;
        int32_t isum = c[b];
        for (int j = 0; j < 32; ++j) isum += weight_u8(kind, blk, j) * q[b * 32 + j];
        uint16_t h;
        std::memcpy(&h, blk, 2);
        const float p = fp16_to_f32(h) * d[b];
        acc = fused ? std::fma((float)isum, p, acc) : add_product(acc, (float)isum, p);
        if (kind == Kind::Q4_1) {
          std::memcpy(&h, blk + 2, 2);
          const float mw = fp16_to_f32(h);
          acc = fused ? std::fma(mw, s[b], acc) : add_product(acc, mw, s[b]);
        }
      }
      y[t * w.rows + r] = acc;
    }
  }
}

}  // namespace int8mm

namespace {
// Storage for a packed copy. Large ones are mapped in 2 MiB pages where the kernel allows
// (transparent huge pages on request): a few hundred page faults instead of tens of
// thousands at load, and few TLB misses when the decode GEMV streams all the weights.
std::shared_ptr<uint8_t> alloc_packed(size_t n) {
  constexpr size_t kHuge = 2u << 20;
  if (n >= 2 * kHuge) {
    const size_t len = (n + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED) {
      // Align to 2 MiB inside the mapping; the whole mapping is released together.
      uint8_t* base = static_cast<uint8_t*>(p);
      uint8_t* a = reinterpret_cast<uint8_t*>(((uintptr_t)base + kHuge - 1) / kHuge * kHuge);
      madvise(a, len, MADV_HUGEPAGE);
      return std::shared_ptr<uint8_t>(a, [p, len](uint8_t*) { munmap(p, len + kHuge); });
    }
  }
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)),
                                  &std::free);
}
}  // namespace

WeightView pack_weights(const WeightView& source, bool drop_source) {
  if (!int8mm::cpu_has_kernels()) return source;
  const WeightView w = transcode_for_int8(source);
  if (!int8mm::supports(w)) return source;
  const size_t n = int8mm::packed_bytes(w);
  std::shared_ptr<uint8_t> buf = alloc_packed(n);
  int8mm::pack(w, buf.get());
  WeightView v = w;
  v.packed = buf.get();
  v.packed_storage = std::move(buf);
  if (drop_source) {
    // The whole pages inside the blocks: clean pages of a read-only private file mapping,
    // dropped now and read from the file again only if something reads the blocks.
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t b = ((uintptr_t)source.data + page - 1) / page * page;
    const uintptr_t e = ((uintptr_t)source.data + source.rows * source.row_bytes) / page * page;
    if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
  }
  if (v.data_storage) {
    // Re-encoded blocks (ops/transcode.h) are not kept beside their interleaved copy: every
    // reader takes the rows from the copy (weight_row, the f32 path, matmul_ref).
    v.data = nullptr;
    v.data_storage.reset();
  }
  return v;
}

}  // namespace glimpse
