// Row conversions of the KV element types; the to-f32 direction is a Highway kernel
// (runtime dispatch) because scoring and lookahead convert every prompt row.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kv_types.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/kv_types.h"
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

// dst[0..n) = f16(src[0..n)), round to nearest even: F16C on AVX2 and better (the same
// bits as f32_to_fp16 for every non-NaN input), the scalar conversion elsewhere. Every
// appended key and value goes through here, so it is a visible part of prefill.
void F32ToF16(const float* src, int64_t n, uint8_t* dst) {
  int64_t i = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  auto* d16 = reinterpret_cast<hwy::float16_t*>(dst);
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, src + i)), dh, d16 + i);
#endif
  for (; i < n; ++i) {
    const uint16_t h = f32_to_fp16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

// nb q8_0 blocks from src[nb * 32]: ggml's rounding, scale = amax / 127 (stored as f16),
// q = round half away from zero of x * (1 / scale) with the unrounded scale, clamped to
// +-127 (a NaN product, from an infinite or NaN input, stores 0). Vectorised because every
// appended entry of a q8_0 cache goes through it.
void F32ToQ8(const float* src, int64_t nb, uint8_t* dst) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di32;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const int64_t N = (int64_t)hn::Lanes(df);
  const auto half = hn::Set(df, 0.5f), one = hn::Set(df, 1.0f);
  const auto lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
  for (int64_t b = 0; b < nb; ++b, src += kKvQ8Block, dst += kKvQ8BlockBytes) {
    auto vmax = hn::Zero(df);
    for (int64_t j = 0; j < kKvQ8Block; j += N) {  // NaN lanes count as 0
      const auto x = hn::LoadU(df, src + j);
      vmax = hn::Max(vmax, hn::IfThenElseZero(hn::Eq(x, x), hn::Abs(x)));
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    const uint16_t h = f32_to_fp16(scale);
    std::memcpy(dst, &h, 2);
    const auto vinv = hn::Set(df, inv);
    for (int64_t j = 0; j < kKvQ8Block; j += N) {
      const auto x = hn::Mul(hn::LoadU(df, src + j), vinv);
      const auto t = hn::Trunc(x);  // then one step away from zero if |x - t| >= 1/2
      auto r = hn::IfThenElse(hn::Ge(hn::Abs(hn::Sub(x, t)), half),
                              hn::Add(t, hn::CopySign(one, x)), t);
      r = hn::IfThenElseZero(hn::Eq(r, r), r);
      r = hn::Min(hn::Max(r, lo), hi);
      hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di32, r)), di8,
                 reinterpret_cast<int8_t*>(dst + 2 + j));
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
HWY_EXPORT(F32ToF16);
HWY_EXPORT(F32ToQ8);

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
      HWY_DYNAMIC_DISPATCH(F32ToF16)(src, total, dst);
      return;
    case KvType::BF16:
      for (int64_t i = 0; i < total; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case KvType::Q8_0:
      HWY_DYNAMIC_DISPATCH(F32ToQ8)(src, total / kKvQ8Block, dst);
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
