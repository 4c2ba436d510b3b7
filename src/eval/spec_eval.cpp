#include "eval/spec_eval.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "eval/metrics.h"
#include "runtime/context.h"
#include "runtime/generate.h"
#include "util/error.h"

namespace glimpse::eval {

namespace {

nlohmann::json row_of(const Sample& s, const std::string& label, const GenerateResult& r) {
  const SpecReport& rep = r.timings.spec;
  nlohmann::json sources = nlohmann::json::array();
  for (const SpecSourceStats& st : rep.sources)
    sources.push_back({{"name", st.name}, {"positions", st.positions}, {"agreed", st.agreed}});
  return {{"id", s.id},
          {"task", s.task},
          {"label", label},
          {"prompt_tokens", r.timings.n_prompt},
          {"n_gen", r.timings.n_gen},
          {"tokens", r.tokens},
          {"prediction", r.text},
          {"score", score_prediction(s.scoring, r.text, s.answers)},
          {"decode_ms", r.timings.decode_ms},
          // plain decoding: one target forward per token after the first
          {"rounds", rep.enabled ? rep.rounds : std::max<int64_t>(0, r.timings.n_gen - 1)},
          {"generated", rep.enabled ? rep.generated : std::max<int64_t>(0, r.timings.n_gen - 1)},
          {"drafted", rep.drafted},
          {"accepted", rep.accepted},
          {"sources", sources}};
}

// Sums over one (family, label) group.
struct Totals {
  int n = 0, identical = 0;
  double score = 0, decode_ms = 0;
  int64_t rounds = 0, generated = 0, drafted = 0, accepted = 0;
  double per_forward() const { return rounds ? (double)generated / rounds : 0; }
};

}  // namespace

std::vector<nlohmann::json> run_spec_sample(
    const std::shared_ptr<const Engine>& engine, const Sample& s,
    const std::vector<SpecConfig>& configs,
    const std::function<bool(const std::string&, const std::string&)>& done) {
  const std::vector<int32_t> prompt = engine->task_prompt(s.context, s.question).tokens;
  GenerateParams g;
  g.n_predict = s.max_new_tokens;
  g.sampling.temp = 0;
  ContextParams cp = engine->context_defaults();
  cp.n_ctx = (int)prompt.size() + s.max_new_tokens + 8;
  Context plain_ctx(engine, cp);
  const GenerateResult plain = generate(plain_ctx, prompt, g, nullptr);
  std::vector<nlohmann::json> rows;
  if (!done(s.id, "plain")) rows.push_back(row_of(s, "plain", plain));
  for (const SpecConfig& c : configs) {
    if (done(s.id, c.label)) continue;
    Context ctx(engine, cp);
    const GenerateResult r = generate_speculative(ctx, prompt, g, c.spec, nullptr);
    nlohmann::json row = row_of(s, c.label, r);
    row["identical"] = r.tokens == plain.tokens;
    row["plain_decode_ms"] = plain.timings.decode_ms;  // interleaved peer of this row
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string spec_report(const std::vector<nlohmann::json>& rows,
                        const std::vector<SpecConfig>& configs) {
  std::vector<std::string> families, labels = {"plain"};
  for (const SpecConfig& c : configs) labels.push_back(c.label);
  std::map<std::pair<std::string, std::string>, Totals> t;  // (family, label)
  // (family, label): decode time of the plain runs of the samples that label ran on
  std::map<std::pair<std::string, std::string>, double> plain_ms;
  for (const nlohmann::json& r : rows) {
    const std::string fam = r.at("task"), label = r.at("label");
    if (std::find(families.begin(), families.end(), fam) == families.end()) families.push_back(fam);
    Totals& x = t[{fam, label}];
    ++x.n;
    x.identical += r.value("identical", true);
    x.score += r.at("score").get<double>();
    x.rounds += r.at("rounds").get<int64_t>();
    x.generated += r.at("generated").get<int64_t>();
    x.drafted += r.at("drafted").get<int64_t>();
    x.accepted += r.at("accepted").get<int64_t>();
    // A spec row's speedup is against the plain run of the same sample: sum both sides.
    x.decode_ms += r.at("decode_ms").get<double>();
    if (label != "plain") plain_ms[{fam, label}] += r.value("plain_decode_ms", 0.0);
  }
  std::string md = "## Speculative decoding per task family\n\n"
                   "Each cell: accepted tokens per target forward / wall-time decode speedup over "
                   "plain greedy decoding of the same samples / outputs identical to plain.\n\n";
  md += "| family | n | plain score |";
  for (size_t i = 1; i < labels.size(); ++i) md += fmt::format(" {} |", labels[i]);
  md += "\n|---|---:|---:|";
  for (size_t i = 1; i < labels.size(); ++i) md += "---:|";
  md += "\n";
  for (const std::string& fam : families) {
    const Totals& p = t[{fam, "plain"}];
    md += fmt::format("| {} | {} | {:.3f} |", fam, p.n, p.n ? p.score / p.n : 0.0);
    for (size_t i = 1; i < labels.size(); ++i) {
      const Totals& x = t[{fam, labels[i]}];
      const double base = plain_ms[{fam, labels[i]}];
      md += fmt::format(" {:.2f} / {:.2f}× / {}/{} |", x.per_forward(),
                        x.decode_ms > 0 ? base / x.decode_ms : 0.0, x.identical, x.n);
    }
    md += "\n";
  }
  // Ensembles (several sources) against the best single-source configuration per family.
  std::vector<const SpecConfig*> singles, ensembles;
  for (const SpecConfig& c : configs) (c.single_source() ? singles : ensembles).push_back(&c);
  if (!singles.empty() && !ensembles.empty()) {
    md += "\n## Ensembles against the best single source (accepted tokens per target forward)\n\n";
    md += "| family | best single source |";
    for (const SpecConfig* e : ensembles) md += fmt::format(" {} |", e->label);
    md += "\n|---|---|";
    for (size_t i = 0; i < ensembles.size(); ++i) md += "---:|";
    md += "\n";
    for (const std::string& fam : families) {
      const SpecConfig* best = singles[0];
      for (const SpecConfig* c : singles)
        if (t[{fam, c->label}].per_forward() > t[{fam, best->label}].per_forward()) best = c;
      const double b = t[{fam, best->label}].per_forward();
      md += fmt::format("| {} | {} {:.2f} |", fam, best->label, b);
      for (const SpecConfig* e : ensembles) {
        const double v = t[{fam, e->label}].per_forward();
        md += fmt::format(" {:.2f} ({}{:.2f}) |", v, v >= b ? "+" : "", v - b);
      }
      md += "\n";
    }
  }
  return md;
}

}  // namespace glimpse::eval
