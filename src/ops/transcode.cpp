#include "ops/transcode.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "ops/quant.h"
#include "util/fp16.h"

namespace glimpse {

namespace {

// Q5_0 block -> Q8_0 block: the 5-bit values minus 16, the same scale.
void q5_0_to_q8_0(const BlockQ5_0& b, BlockQ8_0& out) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  out.d = b.d;
  for (int j = 0; j < 16; ++j) {
    out.qs[j] = (int8_t)(((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
    out.qs[j + 16] = (int8_t)(((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
  }
}

// 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block (12 packed bytes).
void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K super-block (256 values) -> 8 Q4_1 blocks. Q4_K keeps each 64 values as 32 bytes:
// low nibbles are values 0..31, high nibbles 32..63; Q4_1 byte i holds values i and i + 16.
void q4_k_to_q4_1(const BlockQ4_K& b, BlockQ4_1* out) {
  const float d = fp16_to_f32(b.d), dmin = fp16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    k4_scale_min(j, b.scales, &sc, &m);
    out[j].d = f32_to_fp16(d * (float)sc);
    out[j].m = f32_to_fp16(-(dmin * (float)m));
    const uint8_t* q = b.qs + (j / 2) * 32;
    const int shift = (j % 2) * 4;
    for (int i = 0; i < 16; ++i) {
      const int lo = (q[i] >> shift) & 0xF, hi = (q[i + 16] >> shift) & 0xF;
      out[j].qs[i] = (uint8_t)(lo | (hi << 4));
    }
  }
}

// 32 f32 values -> a Q8_0 block (llama.cpp's quantize_row_q8_0 rule).
void f32_to_q8_0(const float* x, BlockQ8_0& out) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out.d = f32_to_fp16(d);
  for (int j = 0; j < 32; ++j) out.qs[j] = (int8_t)std::lround(x[j] * id);
}

}  // namespace

GgmlType int8_transcode_type(GgmlType t) {
  switch (t) {
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return GgmlType::Q8_0;
    case GgmlType::Q4_K: return GgmlType::Q4_1;
    default: return t;
  }
}

WeightView transcode_for_int8(const WeightView& w) {
  const GgmlType to = int8_transcode_type(w.type);
  if (to == w.type || w.cols % 32 != 0) return w;
  const int64_t nb = w.cols / 32;  // 32-value blocks per row
  const size_t row_bytes = ggml_row_bytes(to, w.cols);
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[(size_t)w.rows * row_bytes]);
  std::vector<float> vals(w.type == GgmlType::Q4_K || w.type == GgmlType::Q5_0 ? 0 : w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* src = w.row(r);
    uint8_t* dst = buf.get() + (size_t)r * row_bytes;
    if (w.type == GgmlType::Q5_0) {
      for (int64_t b = 0; b < nb; ++b)
        q5_0_to_q8_0(reinterpret_cast<const BlockQ5_0*>(src)[b],
                     reinterpret_cast<BlockQ8_0*>(dst)[b]);
    } else if (w.type == GgmlType::Q4_K) {
      for (int64_t b = 0; b < nb / 8; ++b)
        q4_k_to_q4_1(reinterpret_cast<const BlockQ4_K*>(src)[b],
                     reinterpret_cast<BlockQ4_1*>(dst) + 8 * b);
    } else {
      dequant_row_ref(w.type, src, vals.data(), w.cols);
      for (int64_t b = 0; b < nb; ++b)
        f32_to_q8_0(vals.data() + 32 * b, reinterpret_cast<BlockQ8_0*>(dst)[b]);
    }
  }
  WeightView v = make_weight_view(to, buf.get(), w.rows, w.cols);
  v.data_storage = std::shared_ptr<const void>(buf, buf.get());
  return v;
}

}  // namespace glimpse
