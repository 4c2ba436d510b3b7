#include "gguf/gguf_file.h"

#include <gtest/gtest.h>

#include <cstring>

#include "gguf/gguf_writer.h"
#include "util/error.h"

namespace glimpse {
namespace {

std::vector<uint8_t> sample_file() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 2);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "\xc4\xa0"});
  w.add_f32_array("tokenizer.ggml.scores", {0.5f, -1.0f, 2.0f});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 3, 1});
  std::vector<float> t(8 * 2);
  for (size_t i = 0; i < t.size(); ++i) t[i] = (float)i;
  w.add_tensor("w", GgmlType::F32, {8, 2}, t.data(), t.size() * 4);
  std::vector<uint8_t> q(2 * 20, 7);
  w.add_tensor("q", GgmlType::Q4_1, {64}, q.data(), q.size());
  return w.bytes();
}

TEST(GgufFile, ParsesMetadataAndTensors) {
  const auto b = sample_file();
  GgufFile f = GgufFile::parse(b.data(), b.size(), "mem");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(f.get_float("llama.rope.freq_base", 0), 10000.0f);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token", false));
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 3u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens")[2], "\xc4\xa0");
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores")[1], -1.0f);
  EXPECT_EQ(f.get_i32_array("tokenizer.ggml.token_type")[1], 3);
  EXPECT_EQ(f.get_int("missing.key", 42), 42);
  const GgufTensor* w = f.find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->ne[0], 8);
  EXPECT_EQ(w->ne[1], 2);
  EXPECT_EQ(w->nbytes, 64u);
  float x;
  std::memcpy(&x, w->data + 5 * 4, 4);
  EXPECT_EQ(x, 5.0f);
  const GgufTensor* q = f.find_tensor("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->nbytes, 40u);
  EXPECT_EQ(q->data[39], 7);
}

TEST(GgufFile, WrongTypeAndMissingKeyNameTheKey) {
  const auto b = sample_file();
  GgufFile f = GgufFile::parse(b.data(), b.size(), "mem");
  try {
    f.get_string("llama.block_count");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama.block_count"), std::string::npos);
  }
  EXPECT_THROW(f.get_int("nope"), Error);
}

TEST(GgufFile, EveryTruncationIsRejectedCleanly) {
  const auto b = sample_file();
  // Trailing alignment padding after the last tensor may be cut; anything before may not.
  const GgufFile whole = GgufFile::parse(b.data(), b.size(), "mem");
  const GgufTensor* last = whole.find_tensor("q");
  const size_t data_end = (size_t)(last->data + last->nbytes - b.data());
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + n);
    EXPECT_THROW(GgufFile::parse(cut.data(), cut.size(), "cut"), Error) << "length " << n;
  }
}

TEST(GgufFile, RejectsBadMagicAndVersion) {
  auto b = sample_file();
  b[0] = 'X';
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
  b = sample_file();
  b[4] = 1;
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
  b = sample_file();
  b[4] = 9;
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
}

TEST(GgufFile, HostileCountsDoNotAllocate) {
  auto b = sample_file();
  // tensor count at offset 8, kv count at 16.
  uint64_t huge = ~0ull;
  std::memcpy(b.data() + 8, &huge, 8);
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
  b = sample_file();
  std::memcpy(b.data() + 16, &huge, 8);
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
  // First key's length field at offset 24.
  b = sample_file();
  std::memcpy(b.data() + 24, &huge, 8);
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
}

TEST(GgufFile, RandomByteFlipsNeverCrash) {
  const auto good = sample_file();
  uint64_t state = 12345;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = good;
    for (int k = 0; k < 4; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      b[(state >> 33) % b.size()] = (uint8_t)(state >> 20);
    }
    try {
      GgufFile f = GgufFile::parse(b.data(), b.size(), "m");
      for (const auto& t : f.tensors()) ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
    } catch (const Error&) {
    }
  }
}

TEST(GgufFile, UnknownTensorTypeAndBadAlignment) {
  GgufWriter w(64);
  std::vector<uint8_t> d(64);
  w.add_tensor("x", (GgmlType)99, {16}, d.data(), d.size());
  auto b = w.bytes();
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
  GgufWriter w2;
  w2.add_u32("general.alignment", 3);
  b = w2.bytes();
  EXPECT_THROW(GgufFile::parse(b.data(), b.size(), "m"), Error);
}

TEST(GgufFile, OpenMissingAndNonGguf) {
  EXPECT_THROW(GgufFile::open("/nonexistent/model.gguf"), Error);
  EXPECT_THROW(GgufFile::open("/etc/hostname"), Error);
}

}  // namespace
}  // namespace glimpse
