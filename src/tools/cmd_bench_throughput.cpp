// glimpse bench: llama-bench-style throughput tests. pp N = prefill of N tokens, tg N = N
// single-token decode steps, "@ dD" = measured after D tokens already sit in the cache.
// The depth is filled once per test; each repetition truncates the cache back to it.
// -ctk / -ctv take lists (as llama-bench): every test runs for each (K type, V type) pair,
// and the table gains type_k / type_v columns when a type other than f16 is asked for.
// Decode tests also get a roofline line: the bytes a generated token reads (weights + the KV
// entries attention walks) times t/s, against a streaming-read probe of the machine.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ops/isa.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "tools/bench_spec.h"
#include "tools/commands.h"
#include "util/malloc_trim.h"
#include "util/proc_memory.h"
#include "util/error.h"
#include "util/stream_read.h"
#include "util/timer.h"

namespace glimpse {

namespace {

struct BenchResult {
  std::string name;
  KvType type_k = KvType::F16, type_v = KvType::F16;
  std::string kv = "full";  // KV policy/budget the depth was compressed with
  int n_prompt = 0, n_gen = 0, depth = 0;
  int n_parallel = 1;     // contexts decoding together (-npl); tps is their aggregate
  double rss_mib = 0;     // process RSS at the end of the test
  double kv_mib = 0;      // KV bytes held by the test's contexts
  // Decode tests: bytes read per generated token, averaged over the run's tokens (roofline).
  double weight_bytes_per_token = 0, kv_bytes_per_token = 0;
  std::vector<double> tps;
  double bytes_per_token() const { return weight_bytes_per_token + kv_bytes_per_token; }
  double achieved_gbs() const { return bytes_per_token() * mean() / 1e9; }
  double mean() const {
    double s = 0;
    for (double x : tps) s += x;
    return tps.empty() ? 0 : s / tps.size();
  }
  double sd() const {
    if (tps.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double x : tps) s += (x - m) * (x - m);
    return std::sqrt(s / (tps.size() - 1));
  }
};

// What compressing the depth cost, once per (depth, policy).
struct DepthFill {
  int depth = 0;
  KvType type_k = KvType::F16, type_v = KvType::F16;
  std::string kv;
  double fill_ms = 0, score_ms = 0, evict_ms = 0;
  size_t kv_bytes_full = 0, kv_bytes = 0;
};

double peak_rss_mib() { return (double)peak_rss_bytes() / (1024.0 * 1024.0); }
double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

BenchResult bench_test(std::string name, KvType tk, KvType tv, std::string kv, int n_prompt,
                       int n_gen, int depth, int n_parallel) {
  BenchResult t;
  t.name = std::move(name);
  t.type_k = tk;
  t.type_v = tv;
  t.kv = std::move(kv);
  t.n_prompt = n_prompt;
  t.n_gen = n_gen;
  t.depth = depth;
  t.n_parallel = n_parallel;
  return t;
}

// KV bytes attention reads per decode step of a context whose cache holds what it holds now,
// averaged over the next n_gen steps: every layer's every KV head reads all its entries (K
// and V rows in the cache's types) once per step, the entry appended by that step included,
// so step i (1..n_gen) reads total_entries + i x (layers x KV heads) entries.
double kv_bytes_per_step(const KvCache& c, int n_gen) {
  const double per_step = (double)c.n_layer() * c.n_kv_head();
  const double entries = (double)c.total_entries() + per_step * (n_gen + 1) / 2.0;
  return entries * (double)(c.k_row_bytes() + c.v_row_bytes());
}

// What one bench invocation asks for.
struct BenchPlan {
  std::vector<int> n_prompt = {512}, n_gen = {128}, depths = {0}, n_parallel;
  int reps = 5;
  bool probe = true;  // streaming-read probe for the roofline lines
  std::string output = "md";
  KvTypeLists types;
  KvPolicySettings kv;
  std::vector<std::string> policies;
  SpecBenchPlan spec;  // rows non-empty: speculative rows (bench_spec.h) instead
};

// pp / tg on one context, the cache truncated back to the depth before each repetition.
void run_single_test(Context& s, BenchResult& t, const std::vector<int32_t>& prompt, int reps) {
  const int32_t n_vocab = s.model().config().n_vocab;
  // Each repetition rolls back to the depth, which may be deeper than a sliding-window
  // layer's rollback slack: those layers keep what the test appends (attention costs the same).
  KeepWindowEntries keep(s.cache());
  if (t.n_gen > 0) {
    s.truncate(t.depth);
    t.weight_bytes_per_token = (double)s.model().decode_weight_bytes();
    t.kv_bytes_per_token = kv_bytes_per_step(s.cache(), t.n_gen);
  }
  for (int r = -1; r < reps; ++r) {  // r = -1: warm-up, not recorded
    s.truncate(t.depth);
    Stopwatch sw;
    if (t.n_prompt > 0) {
      s.prefill(prompt, nullptr);
    } else {
      int32_t tok = prompt[0];
      for (int i = 0; i < t.n_gen; ++i) {
        s.decode(tok);
        tok = (tok + 1) % n_vocab;
      }
    }
    const double sec = sw.ms() / 1000.0;
    if (r >= 0) t.tps.push_back((t.n_prompt + t.n_gen) / sec);
  }
}

// llama.cpp's batched-bench: N contexts forked from `filled` (at the test's depth) decode n
// tokens together, one forward per step over all of them; t/s = aggregate (N x n / time).
// The tests' repetitions are interleaved (N = 1, 2, ..., then again) so that a noisy machine
// disturbs every N alike.
void run_parallel_tests(const Context& filled, std::vector<BenchResult*>& tests, int reps) {
  std::vector<std::vector<std::unique_ptr<Context>>> ctxs(tests.size());
  for (size_t k = 0; k < tests.size(); ++k)
    for (int i = 0; i < tests[k]->n_parallel; ++i) {
      ctxs[k].push_back(filled.fork());
      ctxs[k].back()->cache().set_drop_out_of_window(false);  // rolled back every repetition
    }
  const int32_t n_vocab = filled.model().config().n_vocab;
  for (size_t k = 0; k < tests.size(); ++k) {
    // One step reads the weights once for all N contexts and each context's own KV.
    BenchResult& t = *tests[k];
    ctxs[k][0]->truncate(t.depth);
    t.weight_bytes_per_token = (double)filled.model().decode_weight_bytes() / t.n_parallel;
    t.kv_bytes_per_token = kv_bytes_per_step(ctxs[k][0]->cache(), t.n_gen);
  }
  for (int r = -1; r < reps; ++r)  // r = -1: warm-up, not recorded
    for (size_t k = 0; k < tests.size(); ++k) {
      BenchResult& t = *tests[k];
      std::vector<ContextStep> steps;
      for (size_t i = 0; i < ctxs[k].size(); ++i) {
        ctxs[k][i]->truncate(t.depth);
        steps.push_back({ctxs[k][i].get(), {(int32_t)(1 + 7 * i)}});
      }
      Stopwatch sw;
      for (int j = 0; j < t.n_gen; ++j) {
        forward_contexts(steps);
        for (ContextStep& st : steps) st.tokens[0] = (st.tokens[0] + 1) % n_vocab;
      }
      const double sec = sw.ms() / 1000.0;
      if (r >= 0) t.tps.push_back((double)t.n_parallel * t.n_gen / sec);
    }
  // Memory: each N measured with its own contexts alone (fresh forks, one run of the test).
  ctxs.clear();
  for (BenchResult* t : tests) {
    release_free_memory();
    std::vector<std::unique_ptr<Context>> own;
    std::vector<ContextStep> steps;
    for (int i = 0; i < t->n_parallel; ++i) {
      own.push_back(filled.fork());
      steps.push_back({own.back().get(), {(int32_t)(1 + 7 * i)}});
    }
    for (int j = 0; j < t->n_gen; ++j) forward_contexts(steps);
    size_t kv = 0;
    for (auto& c : own) kv += c->resident_bytes();
    t->kv_mib = mib(kv);
    t->rss_mib = mib(current_rss_bytes());
  }
  release_free_memory();
}

// Flags into plan; false after --help.
bool parse_bench_args(int argc, char** argv, int first, EngineParams& sp, BenchPlan& plan) {
  ArgParser ap("bench", "Measure prompt processing (pp) and generation (tg) throughput.");
  add_model_args(ap, sp, &plan.types);
  ap.add({"-p", "--n-prompt"}, "N[,N...]", "prompt lengths (default: 512; 0 = none)",
         [&](const std::string& v) { plan.n_prompt = parse_int_list("-p", v); });
  ap.add({"-n", "--n-gen"}, "N[,N...]", "generation lengths (default: 128; 0 = none)",
         [&](const std::string& v) { plan.n_gen = parse_int_list("-n", v); });
  ap.add({"-d", "--n-depth"}, "N[,N...]", "tokens already in the cache (default: 0)",
         [&](const std::string& v) { plan.depths = parse_int_list("-d", v); });
  ap.add({"-npl", "--n-parallel"}, "N[,N...]",
         "parallel sequences: N contexts decode -n tokens together, aggregate t/s (as "
         "llama-batched-bench; the -p tests are skipped)",
         [&](const std::string& v) { plan.n_parallel = parse_int_list("-npl", v); });
  ap.add({"-r", "--repetitions"}, "N", "repetitions per test (default: 5)",
         [&](const std::string& v) { plan.reps = parse_int("-r", v, 1, 1000); });
  ap.add({"-o", "--output"}, "md|json", "output format (default: md)", [&](const std::string& v) {
    if (v != "md" && v != "json") fail("-o: expected md or json, got '{}'", v);
    plan.output = v;
  });
  ap.flag({"--no-probe"},
          "skip the streaming-read probe (1 GiB read by -t threads, < 1 s) that decode tests' "
          "roofline lines compare with",
          [&] { plan.probe = false; });
  add_kv_args(ap, plan.kv, /*allow_list=*/true);
  ap.add({"--spec"}, "ROWS",
         "speculative rows beside plain decoding at each -d and -n, ';'-separated "
         "MODE[:SOURCES] (e.g. 'views:snapkv@256;ngram;tabed:lookahead@256,snapkv@128,ngram'); "
         "the depth is real text (-f or the evaluation corpus) and outputs must match plain",
         [&](const std::string& v) { plan.spec.rows = v; });
  ap.add({"-f", "--file"}, "FNAME", "--spec: the depth text (paragraphs split at blank lines)",
         [&](const std::string& v) { plan.spec.text_file = v; });
  ap.add({"--question"}, "TEXT",
         "--spec: the question after the depth text (default: \"Summarize the text above.\")",
         [&](const std::string& v) { plan.spec.question = v; });
  add_spec_args(ap, plan.spec.flags, /*with_mode=*/false);
  if (!ap.parse(argc, argv, first)) return false;
  plan.spec.kv = plan.kv;
  if (plan.kv.prompt_compress != "none")
    fail("--prompt-compress changes the prompt, so the depth would not be the one asked: use "
         "glimpse run");
  plan.policies = split_list(plan.kv.name);
  for (const std::string& name : plan.policies) {
    KvPolicySettings one = plan.kv;
    one.name = name;
    validate_policy_settings(one);
  }
  for (int npl : plan.n_parallel)
    if (npl < 1 || npl > 256) fail("-npl: expected 1..256 sequences, got {}", npl);
  if (!plan.n_parallel.empty()) plan.n_prompt = {0};
  return true;
}

struct BenchOutcome {
  std::vector<BenchResult> results;
  std::vector<DepthFill> fills;
  std::vector<std::pair<KvType, KvType>> type_pairs;  // (K, V), K major as llama-bench
};

// Fills s to depth d (through the eviction path when a policy is set); what it cost.
DepthFill fill_depth(Context& s, int d, KvType tk, KvType tv, const std::string& kv_label,
                     const KvPolicySettings& one, const std::vector<int32_t>& tokens) {
  std::fprintf(stderr, "glimpse bench: filling the cache to depth %d (%s, K %s, V %s)\n", d,
               kv_label.c_str(), kv_type_name(tk), kv_type_name(tv));
  DepthFill f{d, tk, tv, kv_label};
  Stopwatch sw;
  const KvCompressReport rep = prefill_with_eviction(s, tokens, d, one);
  f.fill_ms = sw.ms();
  f.score_ms = rep.score_ms;
  f.evict_ms = rep.evict_ms;
  f.kv_bytes_full = rep.evicted ? rep.stats.kv_bytes_before : s.cache().resident_bytes();
  f.kv_bytes = s.cache().resident_bytes();
  return f;
}

BenchOutcome run_bench(Context& s, const BenchPlan& plan) {
  const ModelConfig& c = s.model().config();
  std::mt19937 rng(42);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    std::uniform_int_distribution<int32_t> dist(0, c.n_vocab - 1);
    for (auto& x : t) x = dist(rng);
    return t;
  };
  BenchOutcome out;
  for (const KvType tk : plan.types.k)
    for (const KvType tv : plan.types.v) out.type_pairs.push_back({tk, tv});
  const std::string budget_label =
      plan.kv.budget >= 0 ? std::to_string(plan.kv.budget) : fmt::format("r{}", plan.kv.ratio);
  for (const auto& [tk, tv] : out.type_pairs) {
    s.set_cache_types(tk, tv);
    for (int d : plan.depths)
      for (const std::string& policy : plan.policies) {
        KvPolicySettings one = plan.kv;
        one.name = policy;
        const bool evicting = policy != "none" && d > 0;
        const std::string kv_label = evicting ? fmt::format("{} {}", policy, budget_label) : "full";
        if (!evicting && policy != plan.policies.front() && plan.policies.front() == "none") continue;
        std::vector<BenchResult> tests;
        for (int p : plan.n_prompt)
          if (p > 0) tests.push_back(bench_test(fmt::format("pp{}", p), tk, tv, kv_label, p, 0, d, 1));
        for (int n : plan.n_gen)
          if (n > 0) {
            if (plan.n_parallel.empty())
              tests.push_back(bench_test(fmt::format("tg{}", n), tk, tv, kv_label, 0, n, d, 1));
            for (int npl : plan.n_parallel)
              tests.push_back(bench_test(fmt::format("tg{}", n), tk, tv, kv_label, 0, n, d, npl));
          }
        if (tests.empty()) continue;
        s.reset();
        release_free_memory();
        if (d > 0) out.fills.push_back(fill_depth(s, d, tk, tv, kv_label, one, random_tokens(d)));
        for (BenchResult& t : tests)
          if (d > 0) t.name += fmt::format(" @ d{}", d);
        if (!plan.n_parallel.empty()) {
          for (int n : plan.n_gen) {  // the N of one tg length, interleaved
            std::vector<BenchResult*> group;
            for (BenchResult& t : tests)
              if (t.n_gen == n) group.push_back(&t);
            run_parallel_tests(s, group, plan.reps);
          }
        } else {
          for (BenchResult& t : tests)
            run_single_test(s, t, random_tokens(std::max(t.n_prompt, 1)), plan.reps);
        }
        for (const BenchResult& t : tests) {
          std::fprintf(stderr, "glimpse bench: %s%s [%s, K %s, V %s] %.2f t/s\n", t.name.c_str(),
                       plan.n_parallel.empty() ? "" : fmt::format(" x{}", t.n_parallel).c_str(),
                       t.kv.c_str(), kv_type_name(tk), kv_type_name(tv), t.mean());
          out.results.push_back(t);
        }
      }
  }
  return out;
}

struct BenchColumns {
  std::string model_desc;
  double size_mib = 0;
  int threads = 0;
  std::string isa;  // the ISA level in use (ops/isa.h, GLIMPSE_ISA)
  bool show_kv = false, show_types = false, show_npl = false;
  double peak_rss_mib = 0;  // read before the probe, whose buffer is not the engine's
  std::optional<StreamReadProbe> probe;  // absent with --no-probe or without decode tests
};

// "roofline tg32 @ d8192 [K q8_0, V q8_0]: 184.3 MB/token (weights 90.1 + KV 94.2) x 45.1 t/s
// = 8.31 GB/s = 62% of 13.4 GB/s streaming read (probe, 2 threads)"; the bracket names what
// the table's extra columns tell apart. MB and GB are decimal (1e6, 1e9 bytes).
std::string roofline_line(const BenchColumns& col, const BenchResult& r) {
  std::vector<std::string> tags;
  if (col.show_types)
    tags.push_back(fmt::format("K {}, V {}", kv_type_name(r.type_k), kv_type_name(r.type_v)));
  if (col.show_kv) tags.push_back(r.kv);
  if (col.show_npl) tags.push_back(fmt::format("{} parallel", r.n_parallel));
  std::string tag;
  for (const std::string& x : tags) tag += (tag.empty() ? " [" : ", ") + x;
  if (!tag.empty()) tag += "]";
  std::string line = fmt::format(
      "roofline {}{}: {:.1f} MB/token (weights {:.1f} + KV {:.1f}) x {:.1f} t/s = {:.2f} GB/s",
      r.name, tag, r.bytes_per_token() / 1e6, r.weight_bytes_per_token / 1e6,
      r.kv_bytes_per_token / 1e6, r.mean(), r.achieved_gbs());
  if (col.probe)
    line += fmt::format(" = {:.0f}% of {:.1f} GB/s streaming read (probe, {} threads)",
                        100.0 * r.achieved_gbs() / col.probe->gbs, col.probe->gbs,
                        col.probe->threads);
  return line;
}

void print_bench_json(const BenchColumns& col, const BenchOutcome& out) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : out.results) {
    j.push_back({{"model", col.model_desc}, {"model_size_mib", col.size_mib}, {"threads", col.threads},
                 {"isa", col.isa}, {"type_k", kv_type_name(r.type_k)},
                 {"type_v", kv_type_name(r.type_v)},
                 {"test", r.name}, {"kv", r.kv}, {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen},
                 {"n_depth", r.depth}, {"n_parallel", r.n_parallel}, {"avg_ts", r.mean()},
                 {"stddev_ts", r.sd()}, {"samples_ts", r.tps}, {"peak_rss_mib", col.peak_rss_mib}});
    if (col.show_npl) {
      j.back()["rss_mib"] = r.rss_mib;
      j.back()["kv_mib"] = r.kv_mib;
    }
    if (r.n_gen > 0) {  // roofline: bytes per generated token, GB/s achieved and possible
      j.back()["weight_bytes_per_token"] = r.weight_bytes_per_token;
      j.back()["kv_bytes_per_token"] = r.kv_bytes_per_token;
      j.back()["bytes_per_token"] = r.bytes_per_token();
      j.back()["achieved_gbs"] = r.achieved_gbs();
      if (col.probe) {
        j.back()["stream_read_gbs"] = col.probe->gbs;
        j.back()["stream_read_threads"] = col.probe->threads;
      }
    }
  }
  if (!out.fills.empty()) {
    nlohmann::json o = {{"tests", j}, {"fills", nlohmann::json::array()}};
    for (const auto& f : out.fills)
      o["fills"].push_back({{"depth", f.depth}, {"type_k", kv_type_name(f.type_k)},
                            {"type_v", kv_type_name(f.type_v)}, {"kv", f.kv},
                            {"fill_ms", f.fill_ms}, {"score_ms", f.score_ms},
                            {"evict_ms", f.evict_ms}, {"kv_bytes_full", f.kv_bytes_full},
                            {"kv_bytes", f.kv_bytes}});
    if (col.show_kv || col.show_types) j = o;  // the KV bytes per depth are part of the answer
  }
  std::puts(j.dump(2).c_str());
}

void print_bench_md(const BenchColumns& col, const BenchOutcome& out) {
  auto type_cols = [&](KvType k, KvType v) {
    if (!col.show_types) return std::string();
    return fmt::format(" {} | {} |", kv_type_name(k), kv_type_name(v));
  };
  std::printf("| model | size | backend | threads | isa |%s%s%s test | t/s |%s\n",
              col.show_types ? " type_k | type_v |" : "", col.show_kv ? " kv |" : "",
              col.show_npl ? " n_parallel |" : "", col.show_npl ? " KV MiB | RSS MiB |" : "");
  std::printf("| --- | ---: | --- | ---: | --- |%s%s%s ---: | ---: |%s\n",
              col.show_types ? " --- | --- |" : "", col.show_kv ? " --- |" : "",
              col.show_npl ? " ---: |" : "", col.show_npl ? " ---: | ---: |" : "");
  for (const auto& r : out.results)
    std::printf("| %s | %.2f MiB | CPU | %d | %s |%s%s%s %s | %.2f ± %.2f |%s\n",
                col.model_desc.c_str(), col.size_mib, col.threads, col.isa.c_str(),
                type_cols(r.type_k, r.type_v).c_str(),
                col.show_kv ? fmt::format(" {} |", r.kv).c_str() : "",
                col.show_npl ? fmt::format(" {} |", r.n_parallel).c_str() : "", r.name.c_str(),
                r.mean(), r.sd(),
                col.show_npl ? fmt::format(" {:.1f} | {:.1f} |", r.kv_mib, r.rss_mib).c_str() : "");
  bool first_roofline = true;
  for (const auto& r : out.results)
    if (r.n_gen > 0) {
      std::printf("%s%s\n", first_roofline ? "\n" : "", roofline_line(col, r).c_str());
      first_roofline = false;
    }
  if ((col.show_kv || col.show_types) && !out.fills.empty()) {
    // What each depth holds: KV bytes per type, and with policies what compressing it cost.
    std::printf("\n| depth |%s%s KV cache | prefill ms |%s\n",
                col.show_types ? " type_k | type_v |" : "", col.show_kv ? " kv |" : "",
                col.show_kv ? " scoring ms | eviction ms | (scoring+eviction)/prefill |" : "");
    std::printf("| ---: |%s%s ---: | ---: |%s\n", col.show_types ? " --- | --- |" : "",
                col.show_kv ? " --- |" : "", col.show_kv ? " ---: | ---: | ---: |" : "");
    for (const auto& f : out.fills) {
      const double pre = f.fill_ms - f.score_ms - f.evict_ms;
      std::printf("| %d |%s%s %.2f MiB | %.0f |%s\n", f.depth, type_cols(f.type_k, f.type_v).c_str(),
                  col.show_kv ? fmt::format(" {} |", f.kv).c_str() : "", f.kv_bytes / 1048576.0, pre,
                  col.show_kv ? fmt::format(" {:.1f} | {:.1f} | {:.2f}% |", f.score_ms, f.evict_ms,
                                            pre > 0 ? 100.0 * (f.score_ms + f.evict_ms) / pre : 0.0)
                                    .c_str()
                              : "");
    }
  }
  std::printf("\npeak RSS: %.1f MiB\n", col.peak_rss_mib);
}

// The columns, then (decode tests only, once per process) the streaming-read probe for the
// roofline lines, peak RSS read before it, then the table or JSON.
void report_bench(const Engine& engine, const BenchPlan& plan, const BenchOutcome& out) {
  const ModelConfig& c = engine.model().config();
  BenchColumns col;
  col.model_desc = fmt::format("{} {}", c.arch, c.name);
  col.size_mib = (double)engine.model().gguf().file_size() / (1024.0 * 1024.0);
  col.threads = engine.n_threads();
  col.isa = isa_level_name(isa_level());
  col.show_kv = plan.policies.size() > 1 || plan.policies.front() != "none";
  // type_k / type_v columns as llama-bench shows them: when not the default alone.
  col.show_types = out.type_pairs.size() > 1 || plan.types.k.front() != KvType::F16 ||
                   plan.types.v.front() != KvType::F16;
  col.show_npl = !plan.n_parallel.empty();
  col.peak_rss_mib = peak_rss_mib();
  const bool decode = std::any_of(out.results.begin(), out.results.end(),
                                  [](const BenchResult& r) { return r.n_gen > 0; });
  if (plan.probe && decode) {
    col.probe = stream_read_probe(col.threads);
    std::fprintf(stderr,
                 "glimpse bench: streaming-read probe %.1f GB/s (%zu MiB, %d threads, best of "
                 "%d passes, %.0f ms)\n",
                 col.probe->gbs, col.probe->bytes >> 20, col.probe->threads, col.probe->passes,
                 col.probe->total_ms);
  }
  if (plan.output == "json")
    print_bench_json(col, out);
  else
    print_bench_md(col, out);
}

}  // namespace

int cmd_bench(int argc, char** argv, int first) {
  EngineParams sp;
  BenchPlan plan;
  if (!parse_bench_args(argc, argv, first, sp, plan)) return 0;
  int need = 1;
  for (int d : plan.depths)
    for (int p : plan.n_prompt) need = std::max(need, d + p);
  for (int d : plan.depths)
    for (int n : plan.n_gen) need = std::max(need, d + n);
  if (sp.context.n_ctx == 4096) sp.context.n_ctx = 0;  // default: the model's limit
  sp.context.type_k = plan.types.k.front();
  sp.context.type_v = plan.types.v.front();
  if (!plan.spec.rows.empty()) {  // speculative rows: their own tests and table
    plan.spec.depths = plan.depths;
    plan.spec.n_gen = plan.n_gen;
    plan.spec.reps = plan.reps;
    plan.spec.output = plan.output;
    check_spec_bench(plan.spec);  // errors before the model loads
    run_spec_bench(Engine::load(sp), sp, plan.spec);
    return 0;
  }
  const std::shared_ptr<Engine> engine = Engine::load(sp);
  preload_drafts(plan.kv, plan.policies);
  Context s(engine);
  if (need > s.n_ctx())
    fail("tests need {} positions but the context size is {} (raise -c)", need, s.n_ctx());
  const ModelConfig& c = s.model().config();
  for (KvType t : plan.types.k) check_kv_type(t, c.head_dim, "K (-ctk)");  // before any test runs
  for (KvType t : plan.types.v) check_kv_type(t, c.head_dim, "V (-ctv)");
  BenchOutcome out = run_bench(s, plan);
  report_bench(*engine, plan, out);
  return 0;
}

}  // namespace glimpse
