#include "tools/bench_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "eval/text_corpus.h"
#include "ops/isa.h"
#include "runtime/context.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

namespace {

struct BenchRow {
  std::string label;               // "plain" or "spec=tabed(lookahead@256,ngram)"
  std::optional<SpecParams> spec;  // none: plain decoding
  std::vector<double> tps;
  SpecReport last;  // the last repetition's report
};

// Paragraphs of the depth text: the file's blocks between blank lines, or the evaluation
// side of the corpus.
std::vector<std::string> depth_paragraphs(const std::string& file) {
  if (file.empty()) return eval::TextCorpus::load_side(eval::CorpusSide::kEval).paragraphs();
  const std::string text = read_text_file(file);
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    if (end > at) out.push_back(text.substr(at, end - at));
    at = end + 2;
  }
  if (out.empty()) fail("-f {}: no text", file);
  return out;
}

// Paragraphs (cycling) until the prompt holds about `depth` tokens with the question.
std::vector<int32_t> depth_prompt(const Engine& e, const std::vector<std::string>& paras, int depth,
                                  const std::string& question) {
  std::string doc;
  int64_t n = 0;
  for (size_t i = 0; n < depth; ++i) {
    const std::string& p = paras[i % paras.size()];
    const int64_t add = (int64_t)e.tokenize_prompt(p, "", false).size() + 1;
    if (n + add > depth && !doc.empty()) break;
    doc += (doc.empty() ? "" : "\n\n") + p;
    n += add;
    if (i > paras.size() * 64) fail("bench --spec: the depth text is too short");
  }
  return e.task_prompt(doc, question).tokens;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

double sd(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

// One test (depth, n): every row, reps times interleaved; each spec row checked against the
// plain row's tokens.
void run_test(const std::shared_ptr<Engine>& engine, const std::vector<int32_t>& prompt, int n,
              int reps, std::vector<BenchRow>& rows) {
  GenerateParams g;
  g.n_predict = n;
  g.ignore_eos = true;  // n tokens in every row
  g.sampling.temp = 0;
  ContextParams cp = engine->context_defaults();
  const int limit = engine->resolve(cp).n_ctx;  // -c, or the model's context
  cp.n_ctx = (int)prompt.size() + n + 8;
  if (cp.n_ctx > limit)
    fail("bench --spec: a depth of {} tokens and {} new need {} positions but the context size "
         "is {} (raise -c, up to the model's)", prompt.size(), n, cp.n_ctx, limit);
  std::vector<int32_t> want;
  for (int r = 0; r < reps; ++r)
    for (BenchRow& row : rows) {
      Context ctx(engine, cp);
      const GenerateResult got = row.spec ? generate_speculative(ctx, prompt, g, *row.spec, nullptr)
                                          : generate(ctx, prompt, g, nullptr);
      if (!row.spec && want.empty()) {
        want = got.tokens;
        std::string text = engine->tokenizer().decode(want);
        for (char& ch : text) if (ch == '\n') ch = ' ';
        if (text.size() > 240) text = text.substr(0, 240) + "...";
        std::fprintf(stderr, "glimpse bench: answer at depth %zu: %s\n", prompt.size(), text.c_str());
      }
      if (got.tokens != want)
        fail("bench --spec: {} gave other tokens than plain decoding at depth {}", row.label,
             prompt.size());
      row.tps.push_back(got.timings.decode_tps());
      row.last = got.timings.spec;
      std::fprintf(stderr, "glimpse bench: tg%d @ d%zu %s: %.2f t/s\n", n, prompt.size(),
                   row.label.c_str(), row.tps.back());
    }
}

}  // namespace

namespace {

GenerateParams bench_generate_params(const SpecBenchPlan& plan) {
  GenerateParams g;
  g.sampling.temp = 0;
  g.kv = plan.kv;
  g.kv.name = "none";
  return g;
}

}  // namespace

void check_spec_bench(const SpecBenchPlan& plan) {
  parse_spec_rows(plan.rows, plan.flags, bench_generate_params(plan));
}

void run_spec_bench(const std::shared_ptr<Engine>& engine, const EngineParams& ep,
                    const SpecBenchPlan& plan) {
  std::vector<BenchRow> proto(1);
  proto[0].label = "plain";
  for (SpecRow& r : resolve_spec_rows(plan.rows, plan.flags, bench_generate_params(plan), ep)) {
    proto.emplace_back();
    proto.back().label = "spec=" + r.label;
    proto.back().spec = std::move(r.spec);
  }
  const std::vector<std::string> paras = depth_paragraphs(plan.text_file);
  const ModelConfig& c = engine->model().config();
  nlohmann::json js = nlohmann::json::array();
  std::string md = "| model | threads | isa | test | spec | t/s | vs plain | tokens per target forward | accepted / drafted |\n"
                   "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |\n";
  for (int d : plan.depths)
    for (int n : plan.n_gen) {
      const std::vector<int32_t> prompt = depth_prompt(*engine, paras, std::max(d, 1), plan.question);
      std::vector<BenchRow> rows = proto;
      run_test(engine, prompt, n, plan.reps, rows);
      const std::string test = fmt::format("tg{} @ d{}", n, prompt.size());
      const double base = mean(rows[0].tps);
      for (const BenchRow& row : rows) {
        const SpecReport& s = row.last;
        md += fmt::format("| {} {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {:.2f}× | {} | {} |\n", c.arch,
                          c.name, engine->n_threads(), isa_level_name(isa_level()), test, row.label,
                          mean(row.tps), sd(row.tps), base > 0 ? mean(row.tps) / base : 0.0,
                          row.spec ? fmt::format("{:.2f}", s.tokens_per_forward()) : "1.00",
                          row.spec ? fmt::format("{} / {}", s.accepted, s.drafted) : "");
        js.push_back({{"model", fmt::format("{} {}", c.arch, c.name)}, {"threads", engine->n_threads()},
                      {"isa", isa_level_name(isa_level())}, {"test", test}, {"n_depth", prompt.size()},
                      {"n_gen", n}, {"spec", row.label}, {"avg_ts", mean(row.tps)},
                      {"stddev_ts", sd(row.tps)}, {"samples_ts", row.tps},
                      {"speedup", base > 0 ? mean(row.tps) / base : 0.0},
                      {"spec_report", row.spec ? nlohmann::json::parse(s.to_json()) : nlohmann::json()}});
      }
    }
  std::puts(plan.output == "json" ? js.dump(2).c_str() : md.c_str());
}

}  // namespace glimpse
