// Weight block formats and their dequantization to f32.
//
// A row of a quantized matrix is a sequence of blocks; dequant_row expands n elements
// (a multiple of the block size) into f32. dequant_row_ref is the plain scalar reference
// that every fast path is tested against; dequant_row picks the fastest path for the CPU.
#pragma once

#include <cstdint>

#include "gguf/ggml_types.h"

namespace glimpse {

// Block layouts (little-endian, packed), as stored in GGUF files.
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };               // x = (q - 8) * d
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };            // x = q * d + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };  // 5th bit in qh
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };                // x = q * d
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Types the engine can compute with (weights and embeddings).
bool is_supported_weight_type(GgmlType t);

// src: row of n elements in type t; dst: [n] f32. n must be a multiple of the block size.
void dequant_row_ref(GgmlType t, const void* src, float* dst, int64_t n);
void dequant_row(GgmlType t, const void* src, float* dst, int64_t n);

}  // namespace glimpse
