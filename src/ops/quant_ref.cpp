// Scalar reference dequantizers: the definition of each format, written for clarity.
#include "ops/quant.h"
#include "util/error.h"
#include "util/fp16.h"

namespace glimpse {

namespace {

// K-quant 6-bit scale and min for sub-block j (0..7) packed in 12 bytes.
inline void k4_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = ((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = (b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = (b[i].qs[j] >> 4) * d + m;
    }
  }
}

template <bool kHasMin, typename Block>
void deq_q5(const Block* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    float m = 0.0f;
    if constexpr (kHasMin) m = fp16_to_f32(b[i].m);
    uint32_t qh;
    __builtin_memcpy(&qh, b[i].qh, 4);
    const int offset = kHasMin ? 0 : 16;
    for (int j = 0; j < 16; ++j) {
      const int hi0 = ((qh >> j) & 1) << 4;
      const int hi1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = (((b[i].qs[j] & 0xF) | hi0) - offset) * d + m;
      y[j + 16] = (((b[i].qs[j] >> 4) | hi1) - offset) * d + m;
    }
  }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = b[i].qs[j] * d;
  }
}

void deq_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int c = 0; c < 4; ++c) {  // 4 chunks of 64: low nibbles then high nibbles of 32 bytes
      uint8_t sc1, m1, sc2, m2;
      k4_scale_min(2 * c, b[i].scales, &sc1, &m1);
      k4_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
      for (int l = 0; l < 32; ++l) *y++ = d * sc1 * (q[l] & 0xF) - dmin * m1;
      for (int l = 0; l < 32; ++l) *y++ = d * sc2 * (q[l] >> 4) - dmin * m2;
      q += 32;
    }
  }
}

void deq_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc1, m1, sc2, m2;
      k4_scale_min(2 * c, b[i].scales, &sc1, &m1);
      k4_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
      const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
      for (int l = 0; l < 32; ++l)
        *y++ = d * sc1 * ((ql[l] & 0xF) + ((b[i].qh[l] & u1) ? 16 : 0)) - dmin * m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d * sc2 * ((ql[l] >> 4) + ((b[i].qh[l] & u2) ? 16 : 0)) - dmin * m2;
      ql += 32;
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int half = 0; half < 2; ++half) {  // two halves of 128 elements
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

}  // namespace

bool is_supported_weight_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q4_0:
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequant_row_ref(GgmlType t, const void* src, float* y, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info((uint32_t)t);
  if (!info || !is_supported_weight_type(t)) fail("no dequantizer for type {}", ggml_type_name(t));
  if (n % info->block_elems != 0) fail("row length {} is not a multiple of the block size", n);
  const int64_t nb = n / info->block_elems;
  switch (t) {
    case GgmlType::F32: {
      const float* x = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
      return;
    }
    case GgmlType::F16: {
      const uint16_t* x = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
      return;
    }
    case GgmlType::BF16: {
      const uint16_t* x = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
      return;
    }
    case GgmlType::Q4_0: return deq_q4_0(static_cast<const BlockQ4_0*>(src), y, nb);
    case GgmlType::Q4_1: return deq_q4_1(static_cast<const BlockQ4_1*>(src), y, nb);
    case GgmlType::Q5_0: return deq_q5<false>(static_cast<const BlockQ5_0*>(src), y, nb);
    case GgmlType::Q5_1: return deq_q5<true>(static_cast<const BlockQ5_1*>(src), y, nb);
    case GgmlType::Q8_0: return deq_q8_0(static_cast<const BlockQ8_0*>(src), y, nb);
    case GgmlType::Q4_K: return deq_q4_k(static_cast<const BlockQ4_K*>(src), y, nb);
    case GgmlType::Q5_K: return deq_q5_k(static_cast<const BlockQ5_K*>(src), y, nb);
    case GgmlType::Q6_K: return deq_q6_k(static_cast<const BlockQ6_K*>(src), y, nb);
    default: fail("no dequantizer for type {}", ggml_type_name(t));
  }
}

}  // namespace glimpse
