// The hash values below were computed with the code each caller used before util/hash.h
// existed; they are stored in files (result caches, sample names, module fingerprints), so
// any change here is a format break.
#include "util/hash.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace glimpse {
namespace {

TEST(Hash, Fnv1aKnownValues) {
  EXPECT_EQ(fnv1a(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a("a"), 0xaf63dc4c8601ec8cull);  // the published FNV-1a 64 test vector
  EXPECT_EQ(fnv1a("glimpse"), 0x9606271ed6fda86cull);
  EXPECT_EQ(fnv1a("glimpse", 12345), 0xa99e61bec3440858ull);
  EXPECT_EQ(fnv1a_bytes("glimpse", 7), fnv1a("glimpse"));
  // Continuing from a state is hashing the concatenation.
  EXPECT_EQ(fnv1a("pse", fnv1a("glim")), fnv1a("glimpse"));
}

TEST(Hash, Mix64KnownValues) {
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(mix64(42), 0xbdd732262feb6e95ull);
}

TEST(Hash, IncrementalKnownValues) {
  // As the LookaheadKV weights fingerprint feeds it: bytes, then fixed-width values.
  Fnv1a h;
  h.bytes("glimpse", 7);
  h.value((uint32_t)3);
  h.value((int64_t)-5);
  EXPECT_EQ(h.digest(), 0x3c7059bbe62dc210ull);
  EXPECT_EQ(h.digest(), mix64(h.state()));

  // As the lookahead sample key hashes a prompt: seeded state, every number as 8 bytes.
  Fnv1a t(kFnvOffset ^ 0x0123456789abcdefull);
  t.value((uint64_t)16);  // answer length
  t.value((uint64_t)5);   // token count
  for (int32_t x : {1, 2, 3, 50000, -1}) t.value((uint64_t)(uint32_t)x);
  EXPECT_EQ(t.state(), 0x7a8b239c9dcf74a6ull);
}

}  // namespace
}  // namespace glimpse
