// spec_report on hand-made rows: per family, tokens per target forward, speedup against the
// plain runs of the same samples, identical counts, and the ensemble-vs-best-single table.
#include <gtest/gtest.h>

#include "eval/spec_eval.h"
#include "runtime/spec_sources.h"

namespace glimpse::eval {
namespace {

nlohmann::json row(const std::string& task, const std::string& label, int64_t generated,
                   int64_t rounds, double ms, double plain_ms, bool identical = true) {
  nlohmann::json r = {{"id", task + "/1"}, {"task", task},       {"label", label},
                      {"score", 1.0},       {"rounds", rounds},   {"generated", generated},
                      {"drafted", generated}, {"accepted", generated - rounds},
                      {"decode_ms", ms}};
  if (label != "plain") {
    r["identical"] = identical;
    r["plain_decode_ms"] = plain_ms;
  }
  return r;
}

SpecConfig config(const std::string& label, const std::string& sources) {
  SpecConfig c;
  c.label = label;
  c.spec.draft.sources = parse_draft_specs(sources, KvPolicySettings());
  return c;
}

TEST(SpecEval, ReportsPerFamilyRatesAndEnsemblesAgainstTheBestSingleSource) {
  const std::vector<SpecConfig> configs = {config("views(snapkv@64)", "snapkv@64"),
                                           config("ngram(ngram)", "ngram"),
                                           config("tabed/kl(snapkv@64,ngram)", "snapkv@64,ngram")};
  const std::vector<nlohmann::json> rows = {
      row("copy", "plain", 40, 40, 400, 0),
      row("copy", "views(snapkv@64)", 40, 20, 200, 400),
      row("copy", "ngram(ngram)", 40, 10, 100, 400),
      row("copy", "tabed/kl(snapkv@64,ngram)", 40, 16, 250, 400, false),
      row("sort", "plain", 30, 30, 300, 0),
      row("sort", "views(snapkv@64)", 30, 15, 150, 300),
      row("sort", "ngram(ngram)", 30, 30, 330, 300),
      row("sort", "tabed/kl(snapkv@64,ngram)", 30, 10, 100, 300)};
  const std::string md = spec_report(rows, configs);
  // copy: views 2.00 tokens per forward at 2x; ngram 4.00 at 4x; tabed 2.50 at 1.6x, not identical
  EXPECT_NE(md.find("| copy | 1 | 1.000 | 2.00 / 2.00× / 1/1 | 4.00 / 4.00× / 1/1 | 2.50 / 1.60× / 0/1 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| sort | 1 | 1.000 | 2.00 / 2.00× / 1/1 | 1.00 / 0.91× / 1/1 | 3.00 / 3.00× / 1/1 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| copy | ngram(ngram) 4.00 | 2.50 (-1.50) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| sort | views(snapkv@64) 2.00 | 3.00 (+1.00) |"), std::string::npos) << md;
}

}  // namespace
}  // namespace glimpse::eval
