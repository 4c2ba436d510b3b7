// Row conversions of the KV element types; the to-f32 direction is a Highway kernel
// (runtime dispatch) because scoring and lookahead convert every prompt row.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/kv_types.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kv/kv_types.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dst[0..n*d) = rows of src; see kv_rows_to_f32.
void KvRowsToF32(KvType t, const uint8_t* src, int64_t n, int d, float* dst) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  const int64_t total = n * d;
  switch (t) {
    case KvType::F32:
      std::memcpy(dst, src, (size_t)total * 4);
      return;
    case KvType::F16: {
      const hn::Rebind<hwy::float16_t, decltype(df)> dh;
      const auto* s = reinterpret_cast<const hwy::float16_t*>(src);
      int64_t i = 0;
      for (; i + N <= total; i += N)
        hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, s + i)), df, dst + i);
      for (; i < total; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
      }
      return;
    }
    case KvType::BF16: {
      const hn::Rebind<hwy::bfloat16_t, decltype(df)> db;
      const auto* s = reinterpret_cast<const hwy::bfloat16_t*>(src);
      int64_t i = 0;
      for (; i + N <= total; i += N)
        hn::StoreU(hn::PromoteTo(df, hn::LoadU(db, s + i)), df, dst + i);
      for (; i < total; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    }
    case KvType::Q8_0: {
      // 32 values per block; 32 is a multiple of every target's lane count.
      const hn::Rebind<int8_t, decltype(df)> di8;
      const hn::Rebind<int32_t, decltype(df)> di32;
      const int64_t nb = total / kKvQ8Block;
      for (int64_t b = 0; b < nb; ++b, src += kKvQ8BlockBytes, dst += kKvQ8Block) {
        uint16_t h;
        std::memcpy(&h, src, 2);
        const auto vd = hn::Set(df, fp16_to_f32(h));
        const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
        for (int64_t j = 0; j < kKvQ8Block; j += N)
          hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, q + j))), vd),
                     df, dst + j);
      }
      return;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "util/error.h"

namespace glimpse {

HWY_EXPORT(KvRowsToF32);

namespace {
constexpr KvType kAll[] = {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0};
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::BF16: return "bf16";
    case KvType::Q8_0: return "q8_0";
  }
  return "?";
}

std::string kv_type_list() {
  std::string s;
  for (KvType t : kAll) s += (s.empty() ? "" : ", ") + std::string(kv_type_name(t));
  return s;
}

KvType parse_kv_type(const std::string& flag, std::string_view name) {
  for (KvType t : kAll)
    if (name == kv_type_name(t)) return t;
  fail("{}: unknown KV cache type '{}' (known: {})", flag, name, kv_type_list());
}

bool kv_type_supports(KvType t, int d) {
  return d > 0 && (t != KvType::Q8_0 || d % kKvQ8Block == 0);
}

void check_kv_type(KvType t, int d, const char* what) {
  if (!kv_type_supports(t, d))
    fail("{} cache type {} needs the head dimension to be a multiple of {}, but it is {}", what,
         kv_type_name(t), kKvQ8Block, d);
}

size_t kv_row_bytes(KvType t, int d) {
  check_kv_type(t, d, "KV");
  switch (t) {
    case KvType::F32: return (size_t)d * 4;
    case KvType::F16:
    case KvType::BF16: return (size_t)d * 2;
    case KvType::Q8_0: return (size_t)d / kKvQ8Block * kKvQ8BlockBytes;
  }
  return 0;
}

void kv_rows_to_f32(KvType t, const void* src, int64_t n, int d, float* dst) {
  if (n <= 0) return;
  HWY_DYNAMIC_DISPATCH(KvRowsToF32)(t, static_cast<const uint8_t*>(src), n, d, dst);
}

void kv_rows_from_f32(KvType t, const float* src, int64_t n, int d, void* dst_v) {
  uint8_t* dst = static_cast<uint8_t*>(dst_v);
  const int64_t total = n * d;
  switch (t) {
    case KvType::F32:
      std::memcpy(dst, src, (size_t)total * 4);
      return;
    case KvType::F16:
      for (int64_t i = 0; i < total; ++i) {
        const uint16_t h = f32_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case KvType::BF16:
      for (int64_t i = 0; i < total; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case KvType::Q8_0:
      for (int64_t b = 0; b < total / kKvQ8Block; ++b, src += kKvQ8Block, dst += kKvQ8BlockBytes) {
        float amax = 0;
        for (int j = 0; j < kKvQ8Block; ++j) amax = std::max(amax, std::fabs(src[j]));
        const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
        const uint16_t h = f32_to_fp16(scale);
        std::memcpy(dst, &h, 2);
        for (int j = 0; j < kKvQ8Block; ++j) {
          // |x * inv| <= 127 up to the rounding of inv; the clamp keeps it in range and a
          // non-finite input (never produced by a finite model) stores 0.
          const float r = std::round(src[j] * inv);
          const float c = r >= 127.0f ? 127.0f : r <= -127.0f ? -127.0f : r == r ? r : 0.0f;
          dst[2 + j] = (uint8_t)(int8_t)c;
        }
      }
      return;
  }
}

void kv_rows_convert(KvType from, const void* src, KvType to, void* dst, int64_t n, int d) {
  if (n <= 0) return;
  if (from == to) {
    std::memcpy(dst, src, kv_row_bytes(from, d) * (size_t)n);
    return;
  }
  std::vector<float> tmp((size_t)d);
  const size_t bf = kv_row_bytes(from, d), bt = kv_row_bytes(to, d);
  for (int64_t r = 0; r < n; ++r) {
    kv_rows_to_f32(from, static_cast<const uint8_t*>(src) + r * bf, 1, d, tmp.data());
    kv_rows_from_f32(to, tmp.data(), 1, d, static_cast<uint8_t*>(dst) + r * bt);
  }
}

}  // namespace glimpse
#endif  // HWY_ONCE
