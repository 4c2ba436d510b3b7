// Exact-id parity with the reference implementation on the real model's vocabulary.
// Expected ids come from tests/parity/llama_tokenize_ref.py (committed JSON), so no Python
// is needed here.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <map>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
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
    if (!special) {
      EXPECT_EQ(tok->decode(got), text);
    }
  }
  std::printf("[ parity   ] %zu/%zu cases match (%zu with parse_special)\n", pass, cases.size(),
              n_special);
}

// The model's vocabulary relabelled with other pre-tokenizers, which have no conformance
// fixture of their own (reference: tokenizer_reference_pre.json).
std::vector<uint8_t> relabelled_vocab(const GgufFile& f, const std::string& pre) {
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", f.get_string("tokenizer.ggml.model"));
  w.add_string("tokenizer.ggml.pre", pre);
  std::vector<std::string> toks, merges;
  for (auto s : f.get_string_array("tokenizer.ggml.tokens")) toks.emplace_back(s);
  for (auto s : f.get_string_array("tokenizer.ggml.merges")) merges.emplace_back(s);
  w.add_string_array("tokenizer.ggml.tokens", toks);
  w.add_string_array("tokenizer.ggml.merges", merges);
  w.add_i32_array("tokenizer.ggml.token_type", f.get_i32_array("tokenizer.ggml.token_type"));
  w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(f.get_int("tokenizer.ggml.bos_token_id")));
  w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(f.get_int("tokenizer.ggml.eos_token_id")));
  return w.bytes();
}

TEST(TokenizerParity, OtherPreTokenizersMatchLlamaCpp) {
  if (!testing::exists(testing::model_path())) GTEST_SKIP() << "model not found";
  const std::string path = testing::source_dir() + "/tests/parity/tokenizer_reference_pre.json";
  ASSERT_TRUE(testing::exists(path)) << path;
  const auto cases = nlohmann::json::parse(testing::read_file(path));
  const GgufFile model = GgufFile::open(testing::model_path());
  std::map<std::string, std::pair<std::vector<uint8_t>, std::unique_ptr<Tokenizer>>> toks;
  std::map<std::string, std::pair<size_t, size_t>> score;  // pre -> (pass, total)
  for (const auto& c : cases) {
    const std::string pre = c.at("pre").get<std::string>();
    auto& slot = toks[pre];
    if (!slot.second) {
      slot.first = relabelled_vocab(model, pre);
      const GgufFile f = GgufFile::parse(slot.first.data(), slot.first.size(), pre);
      slot.second = std::make_unique<Tokenizer>(Tokenizer::from_gguf(f));
    }
    const std::string text = c.at("text").get<std::string>();
    const bool special = c.at("special").get<bool>();
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    const auto got = slot.second->encode(text, false, special);
    auto& [pass, total] = score[pre];
    ++total;
    if (got == want) ++pass;
    else ADD_FAILURE() << pre << " special=" << special << " text=" << ::testing::PrintToString(text)
                       << "\n got  " << ::testing::PrintToString(got)
                       << "\n want " << ::testing::PrintToString(want);
  }
  EXPECT_GE(score.size(), 5u);
  for (const auto& [pre, s] : score)
    std::printf("[ parity   ] pre=%s: %zu/%zu cases match\n", pre.c_str(), s.first, s.second);
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
