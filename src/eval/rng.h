// Portable deterministic randomness for the evaluation tasks.
//
// Samples must be identical on every machine and standard library, so nothing here uses
// std::uniform_*_distribution or std::shuffle (their algorithms are unspecified and differ
// between libstdc++ and libc++). std::mt19937_64's output sequence is fixed by the
// standard; the draws below are built on it with explicit algorithms.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "util/hash.h"

namespace glimpse::eval {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}

  uint64_t next() { return gen_(); }

  // Uniform in [0, n) by rejection (no modulo bias); n == 0 returns 0.
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // multiple of n
    uint64_t x;
    do x = gen_(); while (x >= limit);
    return x % n;
  }
  // Uniform in [lo, hi] (inclusive).
  int64_t range(int64_t lo, int64_t hi) {
    return lo + (int64_t)below((uint64_t)(hi - lo) + 1);
  }
  // Uniform in [0, 1) with 53 random bits.
  double unit() { return (double)(gen_() >> 11) * 0x1.0p-53; }

  // Fisher-Yates, drawing with below().
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  std::mt19937_64 gen_;
};

// Seed of one sample: task name, target length and user seed all change it (fnv1a, mix64:
// util/hash.h; result caches hold samples drawn from it, so the formula is fixed).
inline uint64_t sample_seed(std::string_view task, int64_t target_tokens, uint64_t seed) {
  return mix64(fnv1a(task) ^ mix64((uint64_t)target_tokens * kFnvPrime ^ mix64(seed)));
}

}  // namespace glimpse::eval
