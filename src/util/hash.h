// FNV-1a (64-bit) and the splitmix64 finaliser: the one hash behind result-cache keys,
// task sample seeds, lookahead sample file names and model fingerprints.
//
// These values are stored: in result caches (eval), in sample file names (lookahead
// training) and in the shipped LookaheadKV module (base.fingerprint). They must never
// change; hash_test.cpp pins them. Values are hashed as their in-memory bytes, which are
// little-endian on every target this engine builds for (x86-64; see the static_assert).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace glimpse {

static_assert(std::endian::native == std::endian::little,
              "stored hashes are defined over little-endian bytes");

constexpr uint64_t kFnvOffset = 0xCBF29CE484222325ull;  // FNV-1a 64-bit offset basis
constexpr uint64_t kFnvPrime = 0x100000001B3ull;

// FNV-1a over n bytes, continuing from h (the offset basis for a fresh hash).
inline uint64_t fnv1a_bytes(const void* p, size_t n, uint64_t h = kFnvOffset) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * kFnvPrime;
  return h;
}

inline uint64_t fnv1a(std::string_view s, uint64_t h = kFnvOffset) {
  return fnv1a_bytes(s.data(), s.size(), h);
}

// splitmix64 finaliser: spreads nearby integers (and FNV states, whose high bits mix
// poorly) over the whole 64-bit range.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Incremental FNV-1a over a sequence of byte ranges and plain values.
class Fnv1a {
 public:
  explicit Fnv1a(uint64_t seed = kFnvOffset) : h_(seed) {}
  void bytes(const void* p, size_t n) { h_ = fnv1a_bytes(p, n, h_); }
  void str(std::string_view s) { h_ = fnv1a(s, h_); }
  // The value's bytes as laid out in memory (so the type's width matters).
  template <typename T>
  void value(T v) {
    static_assert(std::is_trivially_copyable_v<T> && std::has_unique_object_representations_v<T>);
    bytes(&v, sizeof v);
  }
  uint64_t state() const { return h_; }          // plain FNV-1a
  uint64_t digest() const { return mix64(h_); }  // FNV-1a, then the splitmix64 finaliser

 private:
  uint64_t h_;
};

}  // namespace glimpse
