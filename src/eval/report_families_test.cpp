#include "eval/report_families.h"

#include <gtest/gtest.h>

namespace glimpse::eval {
namespace {

nlohmann::json row(const std::string& task, const std::string& pol, int64_t b, double score) {
  return {{"task", task}, {"policy", pol}, {"budget", b}, {"score", score}, {"length", 1024}};
}

TEST(EvalFamilies, FamilyOfKnownAndOwnTasks) {
  EXPECT_EQ(family_of("niah_single_noise"), "niah");
  EXPECT_EQ(family_of("doc_multifact"), "doc");
  EXPECT_EQ(family_of("my_contracts"), "my_contracts");
}

TEST(EvalFamilies, FloorBoldAndWinsLosses) {
  std::vector<nlohmann::json> rows = {
      // niah: solvable (full 1.0); lookahead 0.8 beats snapkv 0.5 at 64, ties at 128.
      row("niah_single_noise", "none", 0, 1.0), row("niah_single_text", "none", 0, 1.0),
      row("niah_single_noise", "lookahead", 64, 1.0), row("niah_single_text", "lookahead", 64, 0.6),
      row("niah_single_noise", "snapkv", 64, 0.5), row("niah_single_text", "snapkv", 64, 0.5),
      row("niah_single_noise", "lookahead", 128, 1.0), row("niah_single_noise", "snapkv", 128, 1.0),
      // kv: solvable; lookahead loses at 64.
      row("kv_retrieval", "none", 0, 0.5), row("kv_retrieval", "lookahead", 64, 0.0),
      row("kv_retrieval", "snapkv", 64, 0.25), row("kv_retrieval", "lookahead", 128, 0.5),
      row("kv_retrieval", "snapkv", 128, 0.5),
      // cwe: below the floor (0.2 < 1/3): not counted.
      row("cwe", "none", 0, 0.2), row("cwe", "lookahead", 64, 0.0), row("cwe", "snapkv", 64, 0.2),
      row("cwe", "lookahead", 128, 0.0), row("cwe", "snapkv", 128, 0.2),
      row("niah_single_noise", "oracle", 64, 1.0),
  };
  const std::string md = family_tables(rows);
  EXPECT_NE(md.find("| cwe    | 1       | 0.200            | no"), std::string::npos) << md;
  EXPECT_NE(md.find("| niah   | 2       | 1.000            | yes"), std::string::npos) << md;
  EXPECT_NE(md.find("cwe (floor)"), std::string::npos);
  // Budget 64: niah lookahead 0.8 in bold over snapkv 0.5; kv snapkv 0.25 in bold.
  EXPECT_NE(md.find("| niah                 | 1.000 | **0.800** | 0.500"), std::string::npos) << md;
  EXPECT_NE(md.find("| kv                   | 0.500 | 0.000     | **0.250**"), std::string::npos) << md;
  // Mean above the floor at 64: lookahead (0.8 + 0) / 2 = 0.4, snapkv (0.5 + 0.25) / 2.
  EXPECT_NE(md.find("**0.400**"), std::string::npos) << md;
  // Against snapkv: at 64 niah won (+0.3), kv lost (-0.25): mean +0.025; at 128 two ties.
  EXPECT_NE(md.find("+0.025 (1W 0T 1L)"), std::string::npos) << md;
  EXPECT_NE(md.find("+0.000 (0W 2T 0L)"), std::string::npos) << md;
  // The oracle is a column (never bold) and a row of the comparison.
  EXPECT_NE(md.find("| niah                 | 1.000 | **0.800** | 0.500     | 1.000  |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| oracle            | -0.200 (0W 0T 1L) |"), std::string::npos) << md;
}

TEST(EvalFamilies, NoRowsNoTables) { EXPECT_EQ(family_tables({}), ""); }

}  // namespace
}  // namespace glimpse::eval
