// The instruction-set level the kernels run at: one notion for the int8 matmul kernels
// (ops/matmul_int8.h) and every Highway HWY_DYNAMIC_DISPATCH kernel (attention, scoring,
// elementwise, KV conversions, the f32 matmul panels, LookaheadKV).
//
// The level is the CPU's best unless the environment variable GLIMPSE_ISA
// (avx512 | avx2 | sse4 | scalar, read once at first use) lowers it. A lowered level
// restricts Highway to the targets at or below it (avx2: HWY_AVX2 and below, sse4: HWY_SSE4
// and below, scalar: HWY_EMU128 / HWY_SCALAR; AVX3_DL only at avx512) and picks the int8
// kernels of that level (sse4: 128-bit pmaddubsw without FMA, scalar: none, the f32 path).
// At the best level Highway is left alone, so the default path is exactly Highway's own
// choice.
#pragma once

#include <cstdint>
#include <vector>

namespace glimpse {

// Lowest first.
enum class IsaLevel { kScalar, kSse4, kAvx2, kAvx512 };

// The best level this CPU has (from Highway's supported targets).
IsaLevel best_isa_level();
// The level in use. The first call (at the latest at static initialisation of the ops
// library, or at the first kernel) reads GLIMPSE_ISA and applies the Highway restriction.
IsaLevel isa_level();
const char* isa_level_name(IsaLevel level);
// Parses "avx512" | "avx2" | "sse4" | "scalar"; false for anything else.
bool parse_isa_level(const char* name, IsaLevel* level);

// Forces the level in use (tests, benchmarks), capped at best_isa_level(), and re-applies the
// Highway restriction; returns the previous level. Not while kernels run.
IsaLevel set_isa_level_for_testing(IsaLevel level);

// Levels this CPU can run, lowest first (scalar .. best_isa_level()).
std::vector<IsaLevel> available_isa_levels();

// The Highway targets allowed at a level (a mask for hwy::SetSupportedTargetsForTest;
// 0 at the best level: no restriction).
int64_t hwy_targets_for(IsaLevel level);

// Sets the level for a scope (tests, benchmarks).
struct IsaLevelScope {
  IsaLevel prev;
  explicit IsaLevelScope(IsaLevel level) : prev(set_isa_level_for_testing(level)) {}
  ~IsaLevelScope() { set_isa_level_for_testing(prev); }
  IsaLevelScope(const IsaLevelScope&) = delete;
  IsaLevelScope& operator=(const IsaLevelScope&) = delete;
};

}  // namespace glimpse
