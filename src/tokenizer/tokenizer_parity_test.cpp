// Exact-id parity with the reference implementation on the real model's vocabulary.
// Expected ids come from tests/parity/llama_tokenize_ref.py (committed JSON), so no Python
// is needed here.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/timer.h"

namespace glimpse {
namespace {

const Tokenizer* model_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    if (!testing::exists(testing::model_path())) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_gguf(GgufFile::open(testing::model_path())));
  }();
  return tok.get();
}

TEST(TokenizerParity, MatchesLlamaCpp) {
  const Tokenizer* tok = model_tokenizer();
  if (!tok) GTEST_SKIP() << "model not found: " << testing::model_path();
  const std::string path = testing::source_dir() + "/tests/parity/tokenizer_reference.json";
  ASSERT_TRUE(testing::exists(path)) << path;
  const auto cases = nlohmann::json::parse(testing::read_file(path));
  ASSERT_GE(cases.size(), 2000u);
  size_t pass = 0, n_special = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const bool special = c.at("special").get<bool>();
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    n_special += special;
    const auto got = tok->encode(text, false, special);
    if (got == want) {
      ++pass;
    } else {
      ADD_FAILURE() << "special=" << special << " text=" << ::testing::PrintToString(text)
                    << "\n got  " << ::testing::PrintToString(got)
                    << "\n want " << ::testing::PrintToString(want);
    }
    if (!special) EXPECT_EQ(tok->decode(got), text);
  }
  std::printf("[ parity   ] %zu/%zu cases match (%zu with parse_special)\n", pass, cases.size(),
              n_special);
}

TEST(TokenizerParity, SmolLM2SpecialTokens) {
  const Tokenizer* tok = model_tokenizer();
  if (!tok) GTEST_SKIP() << "model not found: " << testing::model_path();
  // Values the reference reports for this file.
  EXPECT_EQ(tok->n_vocab(), 49152);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_FALSE(tok->add_bos());  // tokenizer.ggml.add_bos_token = false in the file
  EXPECT_EQ(tok->eog_ids(), (std::vector<int32_t>{0, 2, 4}));  // endoftext, im_end, reponame
  EXPECT_EQ(tok->token_id("<|im_start|>"), 1);
  EXPECT_EQ(tok->token_id("<|im_end|>"), 2);
  EXPECT_EQ(tok->token_id("no such token"), -1);
  EXPECT_EQ(tok->token_to_piece(2), "<|im_end|>");
  EXPECT_EQ(tok->encode("<|im_start|>user\n", true, true)[0], 1);
}

TEST(TokenizerParity, EncodesLongPromptQuickly) {
  const Tokenizer* tok = model_tokenizer();
  if (!tok) GTEST_SKIP() << "model not found: " << testing::model_path();
  std::string text;
  for (int i = 0; text.size() < 200000; ++i)
    text += fmt::format("Line {}: the quick brown fox jumps over {} lazy dogs; café Привет 你好 🚀\n",
                        i, i * 7);
  Stopwatch sw;
  const auto ids = tok->encode(text, false, false);
  const double ms = sw.ms();
  std::printf("[ speed    ] %zu bytes -> %zu tokens in %.1f ms\n", text.size(), ids.size(), ms);
  EXPECT_GT(ids.size(), 8000u);
  EXPECT_EQ(tok->decode(ids), text);
}

}  // namespace
}  // namespace glimpse
