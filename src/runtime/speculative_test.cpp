// Speculative decoding is lossless: for every draft source (compressed views under two
// policies, prompt lookup, a draft model) and every ensemble weight rule, on a long document
// with a question and on a copy-like prompt, at 1 and 2 threads, the output is token-identical
// to plain greedy decoding, and after the run the target's cache is bit-identical to that of a
// context that never drafted. A draft model with another vocabulary is refused. Sanitizer
// builds run a subset (2 threads; views, prompt lookup, the grid ensemble).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <fmt/format.h>

#include "kv/kv_cache_test_util.h"
#include "model/tiny_model_test_util.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "util/error.h"

namespace glimpse {
namespace {

// A shipping ledger of n lines and a question about it (~20 tokens a line).
std::string ledger(int n) {
  static const char* names[] = {"Ada", "Bruno", "Chen", "Dalia", "Emeka", "Freya", "Goran", "Hana", "Ivo"};
  static const char* cities[] = {"Oslo", "Lima", "Hanoi", "Accra", "Quito", "Perth", "Cork", "Riga", "Tunis"};
  static const char* goods[] = {"copper", "wool", "coffee", "glass", "salt", "timber", "rice", "tin"};
  std::string s = "Shipping ledger of the northern harbour.\n";
  for (int i = 0; i < n; ++i)
    s += fmt::format("Entry {}: {} shipped {} crates of {} from {} to {} on day {}.\n", i + 1,
                     names[(i * 7) % 9], 3 + (i * 13) % 40, goods[(i * 5) % 8], cities[(i * 4) % 9],
                     cities[(i * 2 + 3) % 9], 1 + (i * 11) % 28);
  return s;
}

// A list written out twice and begun a third time: greedy decoding copies it on.
std::string copy_prompt(int n) {
  static const char* w[] = {"amber", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor"};
  std::string list;
  for (int i = 0; i < n; ++i) list += fmt::format("{} {} {}\n", w[i % 8], (i * 37) % 101, w[(i * 3 + 1) % 8]);
  return "Inventory list:\n" + list + "\nInventory list (copy):\n" + list + "\nInventory list (copy):\n" +
         list.substr(0, list.size() / 5);
}

struct Prompts {
  std::vector<int32_t> document, copy;
};

// Sanitizer builds run the model ~10-30x slower: there the prompts are ~4x shorter.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kLedgerLines = 14, kCopyItems = 14;
constexpr bool kSanitized = true;  // the model runs ~10-30x slower: fewer cases (below)
#else
constexpr int kLedgerLines = 58, kCopyItems = 50;  // ~1.5K and ~0.8K tokens
constexpr bool kSanitized = false;
#endif

const Prompts& prompts(const Engine& e) {
  static const Prompts p = [&] {
    Prompts out;
    out.document =
        e.tokenize_prompt(ledger(kLedgerLines), "Which goods did Freya ship, and from where?", "", true).tokens;
    out.copy = e.tokenize_prompt(copy_prompt(kCopyItems), "", "", false).tokens;
    return out;
  }();
  return p;
}

std::shared_ptr<Engine> load(const std::string& path, int n_threads) {
  EngineParams p;
  p.model_path = path;
  p.n_threads = n_threads;
  return Engine::load(p);
}

GenerateParams greedy_params(int n) {
  GenerateParams g;
  g.n_predict = n;
  g.sampling.temp = 0;
  return g;
}

ContextParams ctx_params() {
  ContextParams c;
  c.n_ctx = 2048;
  return c;
}

// A configuration under test: the mode, its sources and weight rule.
struct SpecCase {
  std::string name, mode, sources, weights;
};

SpecParams spec_params(const SpecCase& c, const std::shared_ptr<const Engine>& draft) {
  SpecParams sp;
  sp.mode = c.mode;
  sp.draft.sources = parse_draft_specs(c.sources, KvPolicySettings());
  sp.draft.weights = parse_weight_rule(c.weights);
  sp.draft.draft_engine = draft;
  sp.draft.draft_path = "same model";
  return sp;
}

const SpecCase kCases[] = {
    {"views", "views", "snapkv@64,streaming@48", "kl"},
    {"ngram", "ngram", "ngram", "kl"},
    {"draft", "draft", "draft", "kl"},
    {"tabed_kl", "tabed", "snapkv@96,streaming@64,ngram", "kl"},
    {"tabed_tvd", "tabed", "snapkv@96,ngram", "tvd"},
    {"tabed_grid", "tabed", "snapkv@96,streaming@64,ngram", "grid"},
    {"tabed_uniform", "tabed", "snapkv@96,ngram,draft", "uniform"},
};

void expect_same_run(const GenerateResult& want, const GenerateResult& got) {
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.stop_reason, want.stop_reason);
  EXPECT_EQ(got.timings.n_gen, want.timings.n_gen);
}

void expect_consistent_report(const SpecReport& rep, const GenerateResult& got) {
  ASSERT_TRUE(rep.enabled);
  EXPECT_EQ(rep.generated, got.timings.n_gen - 1);
  EXPECT_LE(rep.accepted, rep.drafted);
  // Each round gives its accepted drafts and the target's own token, unless the run ended
  // on an accepted draft (end of generation, a stop string).
  EXPECT_LE(rep.generated, rep.rounds + rep.accepted);
  EXPECT_GE(rep.generated, rep.rounds + rep.accepted - 1);
  double wsum = 0;
  for (const SpecSourceStats& s : rep.sources) {
    wsum += s.weight;
    EXPECT_LE(s.agreed, s.positions);
  }
  EXPECT_NEAR(wsum, 1.0, 1e-9);
}

// Parameters: the prompt ("document": a 1.5K-token ledger with a question, chat template;
// "copy": a 0.8K-token list written out twice and begun again) and the thread count.
class SpeculativeTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override {
    const std::string path = default_model_path();
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not found";
    engine_ = load(path, 1);
    draft_ = load(path, 1);  // the model as its own draft: a second engine of the same file
  }
  std::shared_ptr<Engine> engine_, draft_;
};

// Every source and weight rule against one plain greedy run: the same tokens, text and stop
// reason; afterwards the target's cache (every head's K/V bytes and positions) equals the
// plain context's, and the next token's logits are the same bits, however many drafts were
// rolled back.
TEST_P(SpeculativeTest, LosslessAndRollbackExact) {
  const auto& [which, threads] = GetParam();
  // Sanitizer builds check memory, not every combination: 2 threads, three configurations
  // (views, prompt lookup, a grid ensemble); release builds run all of them.
  if (kSanitized && threads == 1) GTEST_SKIP() << "sanitizer build: 2 threads only";
  ThreadPool pool(threads);
  const std::vector<int32_t>& prompt = which == "document" ? prompts(*engine_).document : prompts(*engine_).copy;
  const GenerateParams g = greedy_params(32);
  Context plain(engine_, ctx_params(), &pool);
  const GenerateResult want = generate(plain, prompt, g, nullptr);
  ASSERT_FALSE(want.tokens.empty());
  std::unique_ptr<Context> plain_next = plain.fork();
  plain_next->decode(want.tokens.back());
  int64_t rolled_back = 0;
  for (const SpecCase& c : kCases) {
    if (kSanitized && c.name != "views" && c.name != "ngram" && c.name != "tabed_grid") continue;
    SCOPED_TRACE(c.name);
    Context target(engine_, ctx_params(), &pool);
    // Draft lengths from acceptance alone keep these runs deterministic; the grid ensemble
    // also falls back on measured cost, whose timing-dependent rounds must be lossless too.
    SpecParams sp = spec_params(c, draft_);
    sp.cost_aware = c.name == "tabed_grid";
    const GenerateResult got = generate_speculative(target, prompt, g, sp, nullptr);
    expect_same_run(want, got);
    expect_consistent_report(got.timings.spec, got);
    EXPECT_TRUE(testing::same_kv_cache(target.cache(), plain.cache()));
    target.decode(want.tokens.back());
    EXPECT_EQ(target.logits(), plain_next->logits());
    rolled_back += got.timings.spec.drafted - got.timings.spec.accepted;
    if (which == "copy" && !sp.cost_aware && c.sources.find("ngram") != std::string::npos) {
      EXPECT_GT(got.timings.spec.tokens_per_forward(), 1.5) << "prompt lookup should hit on a copy";
    }
    std::fprintf(stderr, "%s", got.timings.spec.report().c_str());
  }
  EXPECT_GT(rolled_back, 0);  // the rollback path ran
}

INSTANTIATE_TEST_SUITE_P(Prompts, SpeculativeTest,
                         ::testing::Combine(::testing::Values("document", "copy"), ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_t" + std::to_string(std::get<1>(info.param));
                         });

// Tiny random models: a draft with another vocabulary is refused by name; one with the same
// vocabulary (other weights) drafts losslessly, alone and beside a view and prompt lookup.
TEST(SpeculativeDraftModel, VocabularyMustMatch) {
  const auto tmp = std::filesystem::temp_directory_path();
  testing::TinyModelSpec ts;
  ts.n_layer = 2;
  ts.n_vocab = 64;
  testing::write_tiny_llama((tmp / "glimpse_spec_target.gguf").string(), ts);
  ts.seed = 7;
  testing::write_tiny_llama((tmp / "glimpse_spec_same_vocab.gguf").string(), ts);
  ts.n_vocab = 80;
  testing::write_tiny_llama((tmp / "glimpse_spec_other_vocab.gguf").string(), ts);
  const auto target = load((tmp / "glimpse_spec_target.gguf").string(), 2);
  const auto same = load((tmp / "glimpse_spec_same_vocab.gguf").string(), 1);
  const auto other = load((tmp / "glimpse_spec_other_vocab.gguf").string(), 1);
  const std::vector<int32_t> prompt = testing::tiny_tokens(120, 64, 3);
  const GenerateParams g = greedy_params(40);
  ContextParams cp;
  cp.n_ctx = 256;
  Context plain(target, cp);
  const GenerateResult want = generate(plain, prompt, g, nullptr);
  for (const char* sources : {"draft", "streaming@32,ngram,draft"}) {
    SCOPED_TRACE(sources);
    Context ctx(target, cp);
    SpecParams sp = spec_params({"", "tabed", sources, "grid"}, same);
    expect_same_run(want, generate_speculative(ctx, prompt, g, sp, nullptr));
    Context refused(target, cp);
    sp.draft.draft_engine = other;
    sp.draft.draft_path = "other.gguf";
    try {
      generate_speculative(refused, prompt, g, sp, nullptr);
      FAIL() << "a draft with another vocabulary was accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("vocabulary"), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find("other.gguf"), std::string::npos) << err.what();
    }
  }
  if (std::filesystem::exists(default_model_path())) {  // 64 tokens against 49152
    Context ctx(load(default_model_path(), 1), cp);
    SpecParams sp = spec_params({"", "draft", "draft", "kl"}, target);
    EXPECT_THROW(generate_speculative(ctx, {1, 2, 3}, g, sp, nullptr), Error);
  }
}

// Sampling with top-k 1 is greedy decoding by another road: through the speculative-sampling
// path (drafts drawn from the mixture, accept/residual draws) the output and the final cache
// must still equal plain greedy decoding's, token for token and bit for bit.
TEST_P(SpeculativeTest, SamplingWithTopK1IsGreedy) {
  const auto& [which, threads] = GetParam();
  if (which != "document" || (kSanitized && threads == 1)) GTEST_SKIP() << "one prompt is enough";
  ThreadPool pool(threads);
  const std::vector<int32_t>& prompt = prompts(*engine_).document;
  Context plain(engine_, ctx_params(), &pool);
  const GenerateResult want = generate(plain, prompt, greedy_params(24), nullptr);
  GenerateParams g = greedy_params(24);
  g.sampling.temp = 0.7f;
  g.sampling.top_k = 1;
  g.sampling.seed = 5;
  Context target(engine_, ctx_params(), &pool);
  const GenerateResult got =
      generate_speculative(target, prompt, g, spec_params(kCases[3], draft_), nullptr);
  expect_same_run(want, got);
  expect_consistent_report(got.timings.spec, got);
  EXPECT_TRUE(testing::same_kv_cache(target.cache(), plain.cache()));
  EXPECT_GT(got.timings.spec.accepted, 0);
}

// The exact distribution of the next `left` tokens under plain sampling from c with sampler s:
// every sequence's probability, enumerated with forks.
void enumerate_plain(const Context& c, const Sampler& s, int left, double prob,
                     std::vector<int32_t>& seq, std::map<std::vector<int32_t>, double>& out) {
  Sampler here = s;
  for (const auto& [t, p] : here.distribution(c.logits().data())) {
    seq.push_back(t);
    if (left == 1) {
      out[seq] += prob * p;
    } else {
      std::unique_ptr<Context> next = c.fork();
      next->decode(t);
      Sampler after = here;
      after.accept(t);
      enumerate_plain(*next, after, left - 1, prob * p, seq, out);
    }
    seq.pop_back();
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSamplingDraws = 1500;
#else
constexpr int kSamplingDraws = 12000;
#endif

// Speculative sampling end to end on a tiny model (64 tokens): 4 tokens at temperature 1 with
// top-k 3 and a repeat penalty, drafted by a view, prompt lookup and a draft model with other
// weights (so drafts are often rejected). Over kSamplingDraws seeds the 81 possible sequences
// occur as often as plain sampling's exact distribution says: chi-square, p = 1e-4 (cells
// expected < 5 pooled). Negative control: the same runs at temperature 1.5 fail the test.
TEST(SpeculativeSampling, MatchesPlainSamplingOnATinyModel) {
  const auto tmp = std::filesystem::temp_directory_path();
  testing::TinyModelSpec ts;
  ts.n_vocab = 64;
  ts.weight_scale = 3.0f;  // peakier distributions than uniform noise
  testing::write_tiny_llama((tmp / "glimpse_specs_target.gguf").string(), ts);
  ts.seed = 9;
  testing::write_tiny_llama((tmp / "glimpse_specs_draft.gguf").string(), ts);
  const auto target = load((tmp / "glimpse_specs_target.gguf").string(), 1);
  const auto draft = load((tmp / "glimpse_specs_draft.gguf").string(), 1);
  const std::vector<int32_t> prompt = testing::tiny_tokens(40, 64, 5);
  ContextParams cp;
  cp.n_ctx = 64;
  GenerateParams g;
  g.n_predict = 4;
  g.ignore_eos = true;
  g.sampling.temp = 1.0f;
  g.sampling.top_k = 3;
  g.sampling.top_p = 1.0f;
  g.sampling.min_p = 0.0f;
  g.sampling.repeat_penalty = 1.3f;

  std::map<std::vector<int32_t>, double> probs;
  {
    Context c(target, cp);
    c.prefill(prompt, nullptr);
    Sampler s(g.sampling, 64);
    for (int32_t t : prompt) s.accept(t);
    std::vector<int32_t> seq;
    enumerate_plain(c, s, g.n_predict, 1.0, seq, probs);
  }
  ASSERT_EQ(probs.size(), 81u);
  SpecParams sp = spec_params({"", "tabed", "streaming@32,ngram,draft", "kl"}, draft);
  sp.draft.p_min = 0;
  sp.draft_min = 1;
  for (float temp : {1.0f, 1.5f}) {
    g.sampling.temp = temp;
    std::map<std::vector<int32_t>, int> counts;
    int64_t drafted = 0, accepted = 0;
    for (int i = 0; i < kSamplingDraws; ++i) {
      g.sampling.seed = 1000 + i;
      Context c(target, cp);
      const GenerateResult r = generate_speculative(c, prompt, g, sp, nullptr);
      ++counts[r.tokens];
      drafted += r.timings.spec.drafted;
      accepted += r.timings.spec.accepted;
    }
    double stat = 0, pooled_e = 0, pooled_o = 0;
    int cells = 0;
    for (const auto& [seq, p] : probs) {
      const double e = p * kSamplingDraws, o = counts.count(seq) ? counts[seq] : 0;
      if (e < 5) {
        pooled_e += e;
        pooled_o += o;
      } else {
        stat += (o - e) * (o - e) / e;
        ++cells;
      }
    }
    if (pooled_e > 0) stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, ++cells;
    const int df = cells - 1;
    const double a = 2.0 / (9.0 * df), crit = df * std::pow(1 - a + 3.719 * std::sqrt(a), 3);
    std::fprintf(stderr, "temp %.1f: chi2 %.1f, df %d, p=1e-4 critical %.1f; accepted %lld of %lld drafts\n",
                 temp, stat, df, crit, (long long)accepted, (long long)drafted);
    EXPECT_GT(drafted, accepted);  // drafts were rejected: the residual path ran
    EXPECT_GT(accepted, 0);
    if (temp == 1.0f)
      EXPECT_LT(stat, crit);
    else
      EXPECT_GT(stat, crit) << "the negative control passed: the test has no power";
  }
}

}  // namespace
}  // namespace glimpse
