#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/unicode_props.h"
#include "util/error.h"

namespace glimpse {
namespace {

using testing::fixture_dir;

// Vocabularies whose fixtures must match id for id.
const char* const kSupported[] = {"starcoder", "gpt-2", "refact", "falcon", "mpt",
                                  "deepseek-coder", "llama-spm", "phi-3"};

struct Fixture {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

Fixture load_fixture(const std::string& base) {
  Fixture fx;
  const std::string inp = testing::read_file(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  for (size_t k; (k = inp.find(sep, pos)) != std::string::npos; pos = k + sep.size())
    fx.inputs.push_back(inp.substr(pos, k - pos));
  std::istringstream out(testing::read_file(base + ".out"));
  std::string line;
  while (fx.expected.size() < fx.inputs.size() && std::getline(out, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    fx.expected.push_back(ids);
  }
  return fx;
}

std::map<std::string, Tokenizer>& cache() {
  static std::map<std::string, Tokenizer> m;
  return m;
}

const Tokenizer& fixture_tokenizer(const std::string& name) {
  auto it = cache().find(name);
  if (it == cache().end()) {
    GgufFile f = GgufFile::open(fixture_dir() + "/ggml-vocab-" + name + ".gguf");
    it = cache().emplace(name, Tokenizer::from_gguf(f)).first;
  }
  return it->second;
}

class TokenizerFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerFixture, MatchesExpectedIds) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP() << "no fixtures at " << fixture_dir();
  const std::string name = GetParam();
  const std::string base = fixture_dir() + "/ggml-vocab-" + name + ".gguf";
  const Fixture fx = load_fixture(base);
  ASSERT_EQ(fx.inputs.size(), fx.expected.size());
  ASSERT_GT(fx.inputs.size(), 40u);
  const Tokenizer& tok = fixture_tokenizer(name);
  size_t pass = 0;
  for (size_t i = 0; i < fx.inputs.size(); ++i) {
    const auto ids = tok.encode(fx.inputs[i], false, false);
    if (ids == fx.expected[i]) ++pass;
    else ADD_FAILURE() << name << " string #" << i << " '" << fx.inputs[i] << "': got "
                       << ::testing::PrintToString(ids) << " want "
                       << ::testing::PrintToString(fx.expected[i]);
  }
  RecordProperty("passed", static_cast<int>(pass));
  std::printf("[ fixture  ] %s: %zu/%zu strings match\n", name.c_str(), pass, fx.inputs.size());
}

INSTANTIATE_TEST_SUITE_P(TokenizerVocabs, TokenizerFixture, ::testing::ValuesIn(kSupported),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (c == '-') c = '_';
                           return s;
                         });

// Special tokens, BOS and the space prefix through SentencePiece vocabularies (including
// Phi-3's stripping of whitespace after its special tokens), against the reference.
TEST(TokenizerSpecial, SentencePieceMatchesReference) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  const std::string path = testing::source_dir() + "/tests/parity/tokenizer_reference_spm.json";
  ASSERT_TRUE(testing::exists(path)) << path;
  const auto cases = nlohmann::json::parse(testing::read_file(path));
  ASSERT_GE(cases.size(), 80u);
  for (const auto& c : cases) {
    const Tokenizer& tok = fixture_tokenizer(c.at("vocab").get<std::string>());
    const auto got = tok.encode(c.at("text").get<std::string>(), c.at("bos").get<bool>(),
                                c.at("special").get<bool>());
    EXPECT_EQ(got, c.at("ids").get<std::vector<int32_t>>()) << c.dump();
  }
}

TEST(TokenizerErrors, UnsupportedModelAndPreTokenizerAreNamed) {
  auto build = [](const char* model, const char* pre) {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", model);
    if (pre) w.add_string("tokenizer.ggml.pre", pre);
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.add_string_array("tokenizer.ggml.merges", {"a b"});
    return w.bytes();
  };
  auto expect_error = [](const std::vector<uint8_t>& b, const std::string& needle) {
    GgufFile f = GgufFile::parse(b.data(), b.size(), "mem");
    try {
      Tokenizer::from_gguf(f);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(build("bert", nullptr), "'bert'");
  expect_error(build("gpt2", "tiktoken-9000"), "'tiktoken-9000'");
}

TEST(TokenizerSpecial, ParseSpecialControlsControlTokens) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  const Tokenizer& tok = fixture_tokenizer("starcoder");
  const int32_t fim = tok.token_id("<fim_prefix>");
  ASSERT_GE(fim, 0);
  const auto with = tok.encode("a<fim_prefix>b", false, true);
  EXPECT_EQ(with.size(), 3u);
  EXPECT_EQ(with[1], fim);
  const auto without = tok.encode("a<fim_prefix>b", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), fim), 0);
  EXPECT_GT(without.size(), 3u);
  EXPECT_EQ(tok.decode(with), "a<fim_prefix>b");
  EXPECT_EQ(tok.decode(without), "a<fim_prefix>b");
  // Longest special text wins: "<pr_base_code>" is not "<pr_base>" + "_code>".
  const auto longest = tok.encode("<pr_base_code>", false, true);
  ASSERT_EQ(longest.size(), 1u);
  EXPECT_EQ(longest[0], tok.token_id("<pr_base_code>"));
}

TEST(TokenizerSpecial, EndOfGenerationSets) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  // As the reference decides: eos, end-of-turn texts, and FIM pad/repo tokens.
  EXPECT_EQ(fixture_tokenizer("starcoder").eog_ids(), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(fixture_tokenizer("refact").eog_ids(), (std::vector<int32_t>{0, 4, 18}));
  EXPECT_EQ(fixture_tokenizer("gpt-2").eog_ids(), (std::vector<int32_t>{50256}));
  EXPECT_EQ(fixture_tokenizer("deepseek-coder").eog_ids(), (std::vector<int32_t>{32014}));
  EXPECT_EQ(fixture_tokenizer("phi-3").eog_ids(), (std::vector<int32_t>{2, 32000, 32007}));
  EXPECT_EQ(fixture_tokenizer("llama-spm").eog_ids(), (std::vector<int32_t>{2}));
  EXPECT_TRUE(fixture_tokenizer("gpt-2").is_eog(50256));
  EXPECT_FALSE(fixture_tokenizer("gpt-2").is_eog(0));
  EXPECT_FALSE(fixture_tokenizer("gpt-2").is_eog(-1));
}

TEST(TokenizerSpecial, BosFollowsTheVocabulary) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  const Tokenizer& spm = fixture_tokenizer("llama-spm");
  EXPECT_TRUE(spm.add_bos());
  EXPECT_EQ(spm.encode("Hello", true, false).front(), 1);
  EXPECT_EQ(spm.encode("", true, false), (std::vector<int32_t>{1}));
  const Tokenizer& sc = fixture_tokenizer("starcoder");
  EXPECT_FALSE(sc.add_bos());
  EXPECT_EQ(sc.encode("Hello", true, false), sc.encode("Hello", false, false));
}

std::string random_utf8(std::mt19937& rng, size_t n_cp) {
  static const std::pair<uint32_t, uint32_t> ranges[] = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x370, 0x3FF}, {0x400, 0x4FF},
      {0x600, 0x6FF}, {0x900, 0x97F}, {0xE00, 0xE7F}, {0x3000, 0x30FF}, {0x4E00, 0x9FFF},
      {0xAC00, 0xD7A3}, {0x1F300, 0x1FAFF}, {0x200B, 0x206F}, {0x10000, 0x10FFFF}};
  std::string s;
  for (size_t i = 0; i < n_cp; ++i) {
    const auto& [lo, hi] = ranges[rng() % std::size(ranges)];
    uint32_t cp = lo + rng() % (hi - lo + 1);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) s += {static_cast<char>(0xC0 | cp >> 6), static_cast<char>(0x80 | (cp & 0x3F))};
    else if (cp < 0x10000)
      s += {static_cast<char>(0xE0 | cp >> 12), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
            static_cast<char>(0x80 | (cp & 0x3F))};
    else
      s += {static_cast<char>(0xF0 | cp >> 18), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
            static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
  }
  return s;
}

TEST(TokenizerRoundTrip, RandomUtf8AndRandomBytes) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  std::mt19937 rng(1234);
  for (const char* name : {"starcoder", "gpt-2", "falcon", "mpt", "refact"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    for (int iter = 0; iter < 300; ++iter) {
      std::string s;
      if (iter % 2 == 0) {
        s = random_utf8(rng, rng() % 60);
      } else {
        s.resize(rng() % 80);
        for (char& c : s) c = static_cast<char>(rng());
      }
      // Bytes the vocabulary has no token for are dropped (as the reference does).
      std::string want;
      for (char c : s)
        if (tok.can_encode_byte(static_cast<uint8_t>(c))) want += c;
      for (bool special : {false, true}) {
        const auto ids = tok.encode(s, false, special);
        ASSERT_EQ(tok.decode(ids), want) << name << " iter " << iter;
      }
    }
  }
  // deepseek-coder maps the bytes that never occur in UTF-8 to user-defined tokens that
  // decode to their own text, so only text made of encodable bytes round-trips.
  const Tokenizer& ds = fixture_tokenizer("deepseek-coder");
  for (int iter = 0; iter < 300; ++iter) {
    const std::string s = random_utf8(rng, rng() % 60);
    bool ok = true;
    for (char c : s) ok = ok && ds.can_encode_byte(static_cast<uint8_t>(c));
    if (!ok) continue;
    for (bool special : {false, true}) ASSERT_EQ(ds.decode(ds.encode(s, false, special)), s);
  }
}

TEST(TokenizerRoundTrip, GptTwoKeepsEveryByte) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  const Tokenizer& tok = fixture_tokenizer("gpt-2");
  for (int b = 0; b < 256; ++b) EXPECT_TRUE(tok.can_encode_byte(static_cast<uint8_t>(b))) << b;
  const Tokenizer& sc = fixture_tokenizer("starcoder");
  int missing = 0;
  for (int b = 0; b < 256; ++b) missing += !sc.can_encode_byte(static_cast<uint8_t>(b));
  EXPECT_EQ(missing, 14);  // 0xC0, 0xC1, 0xF1, 0xF5..0xFF
}

TEST(TokenizerRoundTrip, SentencePieceDropsItsSpacePrefix) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  std::mt19937 rng(99);
  const Tokenizer& tok = fixture_tokenizer("llama-spm");
  for (int iter = 0; iter < 200; ++iter) {
    const std::string s = random_utf8(rng, 1 + rng() % 40);
    EXPECT_EQ(tok.decode(tok.encode(s, false, false)), s);
  }
}

TEST(TokenizerStream, HoldsBackPartialUtf8) {
  if (!testing::exists(fixture_dir())) GTEST_SKIP();
  const Tokenizer& tok = fixture_tokenizer("gpt-2");
  // Four single-byte tokens of one emoji (F0 9F 98 80), then ASCII.
  const std::string emoji = "\xF0\x9F\x98\x80";
  std::vector<int32_t> ids;
  for (char c : emoji) {
    const auto one = tok.encode(std::string(1, c), false, false);
    ASSERT_EQ(one.size(), 1u);
    ids.push_back(one[0]);
  }
  const auto tail = tok.encode(" ok", false, false);
  ids.insert(ids.end(), tail.begin(), tail.end());
  StreamDecoder sd(tok);
  EXPECT_EQ(sd.push(ids[0]), "");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), emoji);
  std::string rest;
  for (size_t i = 4; i < ids.size(); ++i) rest += sd.push(ids[i]);
  EXPECT_EQ(rest, " ok");
  EXPECT_EQ(sd.flush(), "");

  // A truncated sequence comes out at flush; a byte that cannot start one is not held.
  StreamDecoder sd2(tok);
  EXPECT_EQ(sd2.push(ids[0]), "");
  EXPECT_EQ(sd2.push(ids[1]), "");
  EXPECT_EQ(sd2.flush(), emoji.substr(0, 2));
  StreamDecoder sd3(tok);
  EXPECT_EQ(sd3.push(ids[2]), emoji.substr(2, 1));

  // Concatenated pushes equal decode() for real text.
  std::mt19937 rng(7);
  for (int iter = 0; iter < 50; ++iter) {
    const std::string s = random_utf8(rng, 30);
    const auto t = tok.encode(s, false, false);
    StreamDecoder d(tok);
    std::string got;
    for (int32_t id : t) {
      const std::string part = d.push(id);
      EXPECT_EQ(unicode::complete_prefix(part), part.size());
      got += part;
    }
    got += d.flush();
    EXPECT_EQ(got, s);
  }
}

TEST(TokenizerUnicode, CompletePrefix) {
  EXPECT_EQ(unicode::complete_prefix("abc"), 3u);
  EXPECT_EQ(unicode::complete_prefix("a\xE2\x82"), 1u);
  EXPECT_EQ(unicode::complete_prefix("a\xE2\x82\xAC"), 4u);
  EXPECT_EQ(unicode::complete_prefix("a\xE2(" ), 3u);
  EXPECT_EQ(unicode::complete_prefix("\x80\x80"), 2u);
  EXPECT_EQ(unicode::complete_prefix("\xF0\x9F\x98"), 0u);
}

}  // namespace
}  // namespace glimpse
