// Run directory files, the resumable result cache (including a cut-off last line), the
// file fingerprint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/results.h"
#include "eval/tables.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {
namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : p_(fs::temp_directory_path() / fmt::format("glimpse-{}-{}", name, getpid())) {
    fs::remove_all(p_);
    fs::create_directories(p_);
  }
  ~TempDir() { fs::remove_all(p_); }
  const fs::path& path() const { return p_; }

 private:
  fs::path p_;
};

CacheKey key(const std::string& policy, int64_t budget) {
  return {"niah_single_noise", 4096, 7, policy, budget, "98362432-00ff00ff00ff00ff",
          "v2-0123456789abcdef"};
}

TEST(EvalResults, RunDirWritesTheLayout) {
  TempDir t("rundir");
  RunDir r((t.path() / "runs" / "a").string());
  r.write_config({{"model", "m.gguf"}, {"lengths", {1024, 2048}}});
  r.append_prediction({{"id", "x/1024/0"}, {"prediction", "1234567"}});
  r.append_prediction({{"id", "x/1024/1"}, {"prediction", std::string("bad \xff utf8")}});
  r.write_metrics({{"accuracy", 0.5}});
  r.write_metrics_csv({"task", "acc"}, {{"niah, single", "0.5"}});
  r.write_text("plot.svg", "<svg/>");
  EXPECT_EQ(nlohmann::json::parse(read(r.path("config.json")))["lengths"][1], 2048);
  const std::string pred = read(r.path("predictions.jsonl"));
  EXPECT_EQ(std::count(pred.begin(), pred.end(), '\n'), 2);
  EXPECT_EQ(nlohmann::json::parse(pred.substr(0, pred.find('\n')))["prediction"], "1234567");
  EXPECT_EQ(nlohmann::json::parse(read(r.path("metrics.json")))["accuracy"], 0.5);
  EXPECT_EQ(read(r.path("metrics.csv")), "task,acc\n\"niah, single\",0.5\n");
  EXPECT_EQ(read(r.path("plot.svg")), "<svg/>");
  const std::string ts = RunDir::timestamped("runs", "eval");
  EXPECT_EQ(ts.rfind("runs/eval-", 0), 0u);
  EXPECT_EQ(ts.size(), std::string("runs/eval-20250101-120000").size());
}

TEST(EvalResults, CacheKeysSeparateEveryField) {
  CacheKey a = key("snapkv", 128), b = a;
  EXPECT_EQ(a.str(), b.str());
  b.budget = 256;
  EXPECT_NE(a.str(), b.str());
  b = a;
  b.model = "other";
  EXPECT_NE(a.str(), b.str());
  b = a;
  b.seed = 8;
  EXPECT_NE(a.str(), b.str());
  b = a;
  b.settings = "v2-fedcba9876543210";
  EXPECT_NE(a.str(), b.str());
  EXPECT_EQ(CacheKey::from_json(a.to_json()).str(), a.str());
}

// A cache written before keys had settings: its lines load, match no current key (so they
// are recomputed), and stay in the file next to the new ones.
TEST(EvalResults, OldCacheLinesLoadButDoNotMatch) {
  TempDir t("old-cache");
  const std::string file = (t.path() / "cache.jsonl").string();
  {
    std::ofstream out(file, std::ios::binary);
    out << R"({"key": {"task": "niah_single_noise", "length": 4096, "seed": 7, "policy": "snapkv", )"
           R"("budget": 128, "model": "98362432-00ff00ff00ff00ff"}, "result": {"score": 0.75}})" "\n";
  }
  ResultCache c(file);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.skipped_lines(), 0u);
  EXPECT_FALSE(c.contains(key("snapkv", 128)));
  CacheKey old = key("snapkv", 128);
  old.settings = "";
  ASSERT_TRUE(c.find(old).has_value());  // the old line itself is readable
  EXPECT_EQ((*c.find(old))["score"], 0.75);
  c.put(key("snapkv", 128), {{"score", 0.5}});
  ResultCache again(file);
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ((*again.find(key("snapkv", 128)))["score"], 0.5);
}

TEST(EvalResults, CacheResumesAndToleratesACutLastLine) {
  TempDir t("cache");
  const std::string file = (t.path() / "sub" / "cache.jsonl").string();
  {
    ResultCache c(file);
    EXPECT_EQ(c.size(), 0u);
    c.put(key("full", 0), {{"score", 1.0}});
    c.put(key("snapkv", 128), {{"score", 0.0}});
    c.put(key("snapkv", 128), {{"score", 0.5}});  // a later line wins
    ASSERT_TRUE(c.find(key("full", 0)).has_value());
    EXPECT_FALSE(c.find(key("full", 1)).has_value());
  }
  {
    ResultCache c(file);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_EQ((*c.find(key("snapkv", 128)))["score"], 0.5);
    EXPECT_FALSE(c.dropped_partial_line());
  }
  // A crash in the middle of a write, and a garbage line in the middle.
  {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << "not json\n{\"key\": {\"task\": \"vt\", \"len";
  }
  {
    ResultCache c(file);
    EXPECT_TRUE(c.dropped_partial_line());
    EXPECT_EQ(c.skipped_lines(), 1u);
    EXPECT_EQ(c.size(), 2u);
    c.put(key("h2o", 64), {{"score", 0.25}});
  }
  const std::string text = read(file);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("\"vt\""), std::string::npos);  // the cut line is gone
  ResultCache c(file);
  EXPECT_FALSE(c.dropped_partial_line());
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ((*c.find(key("h2o", 64)))["score"], 0.25);
}

TEST(EvalResults, ModelFingerprint) {
  TempDir t("fp");
  const fs::path a = t.path() / "a.bin", b = t.path() / "b.bin";
  std::string big(3 << 20, 'x');
  std::ofstream(a, std::ios::binary) << big;
  std::ofstream(b, std::ios::binary) << big;
  EXPECT_EQ(file_fingerprint(a.string()), file_fingerprint(b.string()));
  EXPECT_EQ(file_fingerprint(a.string()).rfind(std::to_string(big.size()) + "-", 0), 0u);
  big[big.size() - 10] = 'y';  // the tail is hashed
  std::ofstream(b, std::ios::binary | std::ios::trunc) << big;
  EXPECT_NE(file_fingerprint(a.string()), file_fingerprint(b.string()));
  std::ofstream(b, std::ios::binary | std::ios::trunc) << "tiny";
  EXPECT_NE(file_fingerprint(b.string()), "");
  EXPECT_THROW(file_fingerprint((t.path() / "missing").string()), Error);
}

TEST(EvalResults, ModelFingerprintIsPinned) {
  // Result caches are keyed by this string: the values must never change. Sizes: under one
  // MiB (head only), a tail shorter than a MiB, and head + last MiB.
  TempDir t("fp-pin");
  const fs::path f = t.path() / "f.bin";
  auto fp = [&](uint64_t n) {
    std::string s(n, 0);
    for (uint64_t i = 0; i < n; ++i) s[i] = (char)((i * 131 + i / 7) & 0xff);
    std::ofstream(f, std::ios::binary | std::ios::trunc) << s;
    return file_fingerprint(f.string());
  };
  EXPECT_EQ(fp(100), "100-9a30a29d74e87011");
  EXPECT_EQ(fp((1 << 20) + 300), "1048876-4bb78b67a7403f25");
  EXPECT_EQ(fp(3 << 20), "3145728-10879d2307ea98c9");
  // The default model, as recorded in docs/results/*/config.json.
  const char* env = std::getenv("GLIMPSE_MODEL");
  const std::string model =
      env && *env ? env : std::string(GLIMPSE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(model) || fs::file_size(model) != 98362432)
    GTEST_SKIP() << "default model (SmolLM2-135M-Instruct.Q4_1) not present";
  EXPECT_EQ(file_fingerprint(model), "98362432-ce3325056c8d7fcb");
}

}  // namespace
}  // namespace glimpse::eval
