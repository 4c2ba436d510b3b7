// The report's aggregation of decode speed: rows whose branch decoded in a batch carry
// decode_tps null (or lack the field), and only measured values are averaged; a group with
// none reads null in metrics.json and n/a in metrics.csv.
#include "eval/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <fstream>
#include <sstream>

#include "eval/results.h"
#include "tokenizer/tokenizer_test_util.h"

namespace glimpse::eval {
namespace {
namespace fs = std::filesystem;

// tps: the decode_tps field (nullopt: no such field).
nlohmann::json row(const std::string& policy, int64_t budget, std::optional<nlohmann::json> tps) {
  nlohmann::json r = {{"task", "vt"}, {"length", 512}, {"seed", 1000}, {"policy", policy},
                      {"budget", budget}, {"score", 1.0}, {"kl", 0.0}, {"prefill_ms", 10.0}};
  if (tps) r["decode_tps"] = *tps;
  return r;
}

TEST(EvalReport, DecodeSpeedAveragesMeasuredRowsOnly) {
  const fs::path dir = fs::temp_directory_path() / ("glimpse-report-" + std::to_string(getpid()));
  fs::remove_all(dir);
  {
    RunDir run(dir.string());
    const std::vector<nlohmann::json> rows = {
        row("none", 0, 40.0),
        row("snapkv", 64, nullptr),                             // batched: not measured
        row("snapkv", 128, 30.0), row("snapkv", 128, nullptr),  // mixed: the measured one
        row("tova", 64, std::nullopt)};                         // no field
    write_report(run, rows, {{"command", "glimpse eval"}});
  }
  const nlohmann::json m = nlohmann::json::parse(glimpse::testing::read_file((dir / "metrics.json").string()));
  std::map<std::string, nlohmann::json> tps;
  for (const auto& g : m["groups"])
    tps[g["policy"].get<std::string>() + "/" + std::to_string(g["budget"].get<int64_t>())] = g["decode_tps"];
  EXPECT_EQ(tps.at("none/0"), 40.0);
  EXPECT_TRUE(tps.at("snapkv/64").is_null());
  EXPECT_EQ(tps.at("snapkv/128"), 30.0);
  EXPECT_TRUE(tps.at("tova/64").is_null());
  // metrics.csv: the decode_tps column of each row (no field here is quoted).
  auto split = [](const std::string& line) {
    std::vector<std::string> f;
    std::istringstream in(line);
    for (std::string x; std::getline(in, x, ',');) f.push_back(x);
    return f;
  };
  std::istringstream csv(glimpse::testing::read_file((dir / "metrics.csv").string()));
  std::string line;
  std::getline(csv, line);
  const std::vector<std::string> header = split(line);
  const size_t col = std::find(header.begin(), header.end(), "decode_tps") - header.begin();
  ASSERT_LT(col, header.size());
  std::map<std::string, std::string> csv_tps;
  while (std::getline(csv, line)) {
    const std::vector<std::string> f = split(line);
    csv_tps[f.at(2) + "/" + f.at(3)] = f.at(col);
  }
  EXPECT_EQ(csv_tps.at("none/0"), "40.00");
  EXPECT_EQ(csv_tps.at("snapkv/64"), "n/a");
  EXPECT_EQ(csv_tps.at("snapkv/128"), "30.00");
  EXPECT_EQ(csv_tps.at("tova/64"), "n/a");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace glimpse::eval
