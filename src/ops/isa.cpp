#include "ops/isa.h"

#include <hwy/targets.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>

namespace glimpse {
namespace {

// Highway's targets on this CPU, read before any restriction of ours.
int64_t cpu_targets() {
  static const int64_t t = hwy::SupportedTargets();
  return t;
}

IsaLevel detect_level() {
  const int64_t t = cpu_targets();
  if (t & (HWY_AVX3 | HWY_AVX3_DL)) return IsaLevel::kAvx512;
  if (t & HWY_AVX2) return IsaLevel::kAvx2;
  if (t & HWY_SSE4) return IsaLevel::kSse4;
  return IsaLevel::kScalar;
}

std::mutex& apply_mutex() {
  static std::mutex m;
  return m;
}

// Restricts Highway's dispatch to the level (or lifts the restriction at the best level).
void apply_to_highway(IsaLevel level) {
  const std::lock_guard<std::mutex> lock(apply_mutex());
  hwy::SetSupportedTargetsForTest(hwy_targets_for(level));
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
}

// best_isa_level(), lowered by GLIMPSE_ISA; applied to Highway when lowered.
IsaLevel initial_level() {
  const IsaLevel best = best_isa_level();
  const char* env = std::getenv("GLIMPSE_ISA");
  if (!env || !*env) return best;
  IsaLevel want;
  if (!parse_isa_level(env, &want)) {
    std::fprintf(stderr,
                 "glimpse: ignoring GLIMPSE_ISA=%s (expected avx512, avx2, sse4 or scalar)\n", env);
    return best;
  }
  if (want > best)
    std::fprintf(stderr, "glimpse: GLIMPSE_ISA=%s: not available here, using %s\n", env,
                 isa_level_name(best));
  const IsaLevel level = std::min(want, best);
  if (level != best) apply_to_highway(level);
  return level;
}

std::atomic<IsaLevel>& current_level() {
  static std::atomic<IsaLevel> level{initial_level()};  // thread-safe static initialisation
  return level;
}

// Applies GLIMPSE_ISA before main, so that no kernel runs before the restriction.
[[maybe_unused]] const IsaLevel kInitialLevel = isa_level();

}  // namespace

IsaLevel best_isa_level() {
  static const IsaLevel best = detect_level();
  return best;
}

IsaLevel isa_level() {
  return current_level().load(std::memory_order_relaxed);
}

const char* isa_level_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kAvx512:
      return "avx512";
    case IsaLevel::kAvx2:
      return "avx2";
    case IsaLevel::kSse4:
      return "sse4";
    case IsaLevel::kScalar:
      break;
  }
  return "scalar";
}

bool parse_isa_level(const char* name, IsaLevel* level) {
  const std::string_view v = name ? name : "";
  for (IsaLevel l : {IsaLevel::kAvx512, IsaLevel::kAvx2, IsaLevel::kSse4, IsaLevel::kScalar})
    if (v == isa_level_name(l)) {
      *level = l;
      return true;
    }
  return false;
}

IsaLevel set_isa_level_for_testing(IsaLevel level) {
  level = std::min(level, best_isa_level());
  const IsaLevel prev = current_level().exchange(level, std::memory_order_relaxed);
  apply_to_highway(level);
  return prev;
}

std::vector<IsaLevel> available_isa_levels() {
  std::vector<IsaLevel> v;
  for (int l = 0; l <= (int)best_isa_level(); ++l) v.push_back((IsaLevel)l);
  return v;
}

int64_t hwy_targets_for(IsaLevel level) {
  if (level >= best_isa_level()) return 0;
  const int64_t cpu = cpu_targets();
  int64_t allowed;  // lower bits are better targets
  switch (level) {
    case IsaLevel::kAvx2:
      allowed = ~(HWY_AVX2 - 1);
      break;
    case IsaLevel::kSse4:
      allowed = ~(HWY_SSE4 - 1);
      break;
    default:
      allowed = HWY_EMU128 | HWY_SCALAR;
      break;
  }
  const int64_t t = cpu & allowed;
  return t ? t : HWY_SCALAR;
}

}  // namespace glimpse
