// Element types of the KV cache (llama.cpp's -ctk / -ctv): how one cached row of head_dim
// values is stored, and conversions of whole rows to and from f32.
//
// Row layouts (d = head_dim, little-endian, rows packed back to back, no padding):
//   f32   d x 4 bytes
//   f16   d x 2 bytes (IEEE half)
//   bf16  d x 2 bytes
//   q8_0  d / 32 blocks of {f16 scale, 32 x int8}, 34 bytes each, as GGUF Q8_0:
//         x = scale * q; only valid when d % 32 == 0.
//
// Scoring, knorm and lookahead read rows through kv_rows_to_f32 (one shared path), while
// the attention kernels read the stored bytes directly (src/ops/attention.cpp); both
// dequantize q8_0 the same way (f32(scale) * f32(q), one rounding), so they see the same
// values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace glimpse {

enum class KvType : uint8_t { F32, F16, BF16, Q8_0 };

constexpr int kKvQ8Block = 32;        // values per q8_0 block
constexpr int kKvQ8BlockBytes = 34;   // f16 scale + 32 int8

// "f32", "f16", "bf16", "q8_0".
const char* kv_type_name(KvType t);
// Parses a name (as kv_type_name); Error naming `flag` and the known types otherwise.
KvType parse_kv_type(const std::string& flag, std::string_view name);
// "f32, f16, bf16, q8_0" for help texts and errors.
std::string kv_type_list();

// Bytes of one row of d values. Throws unless kv_type_supports(t, d).
size_t kv_row_bytes(KvType t, int d);
// Whether rows of d values can be stored as t (q8_0 needs d % 32 == 0).
bool kv_type_supports(KvType t, int d);
// Error unless kv_type_supports(t, d); `what` names the side (e.g. "K (-ctk)").
void check_kv_type(KvType t, int d, const char* what);

// dst[n][d] = rows src[n] (stored as t) in f32. Vectorised (runtime dispatch).
void kv_rows_to_f32(KvType t, const void* src, int64_t n, int d, float* dst);
// dst rows (stored as t) = src[n][d]; f16/bf16 round to nearest even, q8_0 quantizes as
// ggml's reference (scale = amax / 127, q = round(x / scale)). Vectorised except bf16.
void kv_rows_from_f32(KvType t, const float* src, int64_t n, int d, void* dst);
// Rows of one type to another through f32 (a plain copy when the types match).
void kv_rows_convert(KvType from, const void* src, KvType to, void* dst, int64_t n, int d);

}  // namespace glimpse
