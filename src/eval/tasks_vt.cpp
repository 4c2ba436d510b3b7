// Variable tracking (RULER's "vt"): chains of assignments hidden in the filler haystack,
//   VAR QXBTM = 48213.  ...  VAR LPRAZ = VAR QXBTM.  ...  VAR KDWUE = VAR LPRAZ.  ...
// The target chain binds kVarsPerChain variables to one value; a distractor chain binds as
// many others to another value. Statements of a chain appear in reading order (increasing
// depth), so a single pass over the text resolves them. Answer: every variable of the
// target chain (scored match_all).
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "eval/tasks_internal.h"
#include "eval/words.h"

namespace glimpse::eval::detail {
namespace {

constexpr int kChains = 2;        // target + distractor
constexpr int kVarsPerChain = 5;  // 4 hops after the first binding
constexpr const char* kIntro =
    "Memorize and track the chains of variable assignments hidden in the following text.\n\n";

std::string var_name(Rng& rng) {
  std::string s;
  for (int i = 0; i < 5; ++i) s += (char)('A' + rng.below(26));
  return s;
}

}  // namespace

Sample gen_vt(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  std::set<std::string> used;
  std::vector<std::vector<std::string>> chains(kChains);
  for (auto& c : chains)
    while (c.size() < (size_t)kVarsPerChain) {
      std::string v = var_name(rng);
      if (used.insert(v).second) c.push_back(std::move(v));
    }
  const std::vector<std::string> values = distinct_numbers(rng, kChains, 5);

  std::vector<Insert> inserts;
  std::vector<std::string> target_statements;  // the evidence: the target chain
  std::vector<std::vector<double>> chain_depths;
  for (int c = 0; c < kChains; ++c) {
    std::vector<double> d(kVarsPerChain);
    for (double& x : d) x = rng.unit();
    std::sort(d.begin(), d.end());
    chain_depths.push_back(d);
    for (int i = 0; i < kVarsPerChain; ++i) {
      const std::string rhs = i == 0 ? values[c] : "VAR " + chains[c][i - 1];
      inserts.push_back({d[i], fmt::format("VAR {} = {}.", chains[c][i], rhs)});
      if (c == 0) target_statements.push_back(inserts.back().text);
    }
  }
  // Inserts at one boundary keep their order: sort by depth, stable, so each chain stays in
  // order even where two of its statements round to the same boundary.
  std::stable_sort(inserts.begin(), inserts.end(),
                   [](const Insert& a, const Insert& b) { return a.depth < b.depth; });

  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 48;
  proto.answers = chains[0];
  proto.evidence = target_statements;
  proto.question = fmt::format(
      "Find all variables that are assigned the value {} in the text above, directly or "
      "through other variables. Answer with the variable names only, separated by spaces.",
      values[0]);
  proto.meta = {{"value", values[0]},
                {"chain", chains[0]},
                {"distractor_value", values[1]},
                {"distractor_chain", chains[1]},
                {"depths", chain_depths[0]}};

  Segments segs;
  auto build = [&](size_t n, size_t) {
    for (size_t i = segs.size(); i < n; ++i) segs.push_back(noise_segment(i));
    Sample s = proto;
    s.context = kIntro + join_with_inserts(segs, n, inserts);
    return s;
  };
  FitLimits lim;
  lim.n_probe = 64;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

}  // namespace glimpse::eval::detail
