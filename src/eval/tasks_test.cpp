// Task generators: determinism, answers really present / derivable from the context, and
// lengths within 2% of the budget (with a fake counter everywhere, with the real tokenizer
// when the model file is present).
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "eval/rng.h"
#include "eval/metrics.h"
#include "eval/tasks.h"
#include "eval/text_corpus.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse::eval {
namespace {

int64_t fake_count(std::string_view s) { return ((int64_t)s.size() + 3) / 4; }

// A corpus that needs no package: sentences of varied length in paragraphs.
const TextCorpus& synthetic_corpus() {
  static const TextCorpus c = [] {
    std::vector<std::string> paras;
    Rng rng(7);
    const char* words[] = {"river", "stone", "market", "engine", "garden", "letter", "winter",
                           "harbor", "signal", "orchard", "copper", "lantern"};
    for (int p = 0; p < 400; ++p) {
      std::string text;
      const int ns = 2 + (int)rng.below(6);
      for (int s = 0; s < ns; ++s) {
        const int nw = 5 + (int)rng.below(20);
        std::string sent = "The";
        for (int w = 0; w < nw; ++w) sent += std::string(" ") + words[rng.below(12)];
        text += (s ? " " : "") + sent + ".";
      }
      paras.push_back(text);
    }
    return TextCorpus::from_paragraphs(std::move(paras), CorpusSide::kEval, "synthetic");
  }();
  return c;
}

const TextCorpus* real_corpus() {
  static std::unique_ptr<TextCorpus> c = []() -> std::unique_ptr<TextCorpus> {
    try {
      return std::make_unique<TextCorpus>(TextCorpus::load_side(CorpusSide::kEval));
    } catch (const Error&) {
      return nullptr;
    }
  }();
  return c.get();
}

TaskOptions fake_opts(int64_t target, uint64_t seed) {
  TaskOptions o;
  o.target_tokens = target;
  o.seed = seed;
  o.count_tokens = fake_count;
  o.corpus = &synthetic_corpus();
  return o;
}

int64_t budget_of(const Sample& s, const TaskOptions& o) {
  return o.target_tokens - o.reserve_tokens - s.max_new_tokens;
}

void expect_length(const Sample& s, const TaskOptions& o, const TokenCounter& count) {
  const int64_t b = budget_of(s, o), t = count(s.prompt());
  EXPECT_EQ(t, s.prompt_tokens) << s.id;
  EXPECT_LE(t, b) << s.id;
  // Within 2% of the target length below the budget.
  EXPECT_GE(t, b - o.target_tokens * 2 / 100) << s.id << " budget " << b;
}

TEST(EvalTasks, RngIsTheStandardEngineWithPortableDraws) {
  std::mt19937_64 ref(5489u);
  ref.discard(9999);
  EXPECT_EQ(ref(), 9981545732273789042ull);  // fixed by the C++ standard
  Rng r(1);
  std::map<uint64_t, int> hist;
  for (int i = 0; i < 6000; ++i) ++hist[r.below(6)];
  ASSERT_EQ(hist.size(), 6u);
  for (auto [k, n] : hist) EXPECT_NEAR(n, 1000, 150) << k;
  Rng a(99), b(99);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.below(1000003), b.below(1000003));
}

TEST(EvalTasks, SampleSeedIsPinned) {
  // Result caches are keyed by the samples these seeds draw: the value must never change.
  EXPECT_EQ(sample_seed("niah_single_text", 4096, 7), 0xb98c5cc19a859562ull);
}

TEST(EvalTasks, EveryTaskIsDeterministicAndSeedDependent) {
  for (const TaskInfo& t : all_tasks()) {
    const Sample a = generate_sample(t.name, fake_opts(1024, 3));
    const Sample b = generate_sample(t.name, fake_opts(1024, 3));
    const Sample c = generate_sample(t.name, fake_opts(1024, 4));
    EXPECT_EQ(a.to_json(), b.to_json()) << t.name;
    EXPECT_NE(a.context + a.question, c.context + c.question) << t.name;
    EXPECT_EQ(a.task, t.name);
    EXPECT_EQ(a.id, t.name + "/1024/3");
    EXPECT_EQ(Sample::from_json(a.to_json()).to_json(), a.to_json());
    if (t.family == "open") {
      EXPECT_TRUE(a.answers.empty());
      EXPECT_EQ(a.scoring, Scoring::kOpenEnded);
    } else {
      EXPECT_FALSE(a.answers.empty()) << t.name;
      EXPECT_NE(a.scoring, Scoring::kOpenEnded);
    }
  }
}

// Evidence: the needles the answer needs, verbatim in the context, once; tasks with nothing
// to point at (counting tasks, few-shot, open-ended) have none.
TEST(EvalTasks, EvidenceIsTheNeededNeedlesVerbatim) {
  const std::map<std::string, size_t> expected = {
      {"niah_single_noise", 1}, {"niah_single_text", 1}, {"niah_multikey_noise", 1},
      {"niah_multikey_text", 1}, {"niah_multivalue_noise", 4}, {"niah_multivalue_text", 4},
      {"niah_multiquery_noise", 4}, {"niah_multiquery_text", 4}, {"vt", 5}, {"kv_retrieval", 1},
      {"doc_facts", 1}};
  for (const TaskInfo& t : all_tasks()) {
    const Sample s = generate_sample(t.name, fake_opts(1024, 5));
    const auto it = expected.find(t.name);
    ASSERT_EQ(s.evidence.size(), it == expected.end() ? 0u : it->second) << t.name;
    for (const std::string& e : s.evidence) {
      const size_t at = s.context.find(e);
      ASSERT_NE(at, std::string::npos) << t.name << ": " << e;
      EXPECT_EQ(s.context.find(e, at + 1), std::string::npos) << t.name << ": " << e;
    }
  }
  // multikey: the asked needle only, not the distractors; vt: the target chain only.
  const Sample mk = generate_sample("niah_multikey_noise", fake_opts(1024, 5));
  EXPECT_NE(mk.evidence[0].find(mk.meta.at("asked_keys")[0].get<std::string>()), std::string::npos);
  EXPECT_NE(mk.evidence[0].find(mk.answers[0]), std::string::npos);
  const Sample vt = generate_sample("vt", fake_opts(1024, 5));
  for (size_t i = 0; i < vt.evidence.size(); ++i)
    EXPECT_EQ(vt.evidence[i].rfind("VAR " + vt.answers[i] + " = ", 0), 0u) << vt.evidence[i];
  const Sample kv = generate_sample("kv_retrieval", fake_opts(1024, 5));
  EXPECT_NE(kv.evidence[0].find(kv.answers[0]), std::string::npos);
}

TEST(EvalTasks, LengthsHitTheBudgetWithAFakeCounter) {
  for (const TaskInfo& t : all_tasks())
    for (int64_t len : {1024, 2048, 4096, 8192})
      for (uint64_t seed : {0, 1}) {
        const TaskOptions o = fake_opts(len, seed);
        if (!t.fixed_length) expect_length(generate_sample(t.name, o), o, fake_count);
      }
}

TEST(EvalTasks, RetrievalAnswersOccurInTheContext) {
  for (const TaskInfo& t : all_tasks()) {
    if (t.family != "niah" && t.family != "kv") continue;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const Sample s = generate_sample(t.name, fake_opts(2048, seed));
      for (const auto& a : s.answers) {
        const size_t at = s.context.find(a);
        ASSERT_NE(at, std::string::npos) << s.id << " " << a;
        EXPECT_EQ(s.context.find(a, at + 1), std::string::npos) << "answer twice: " << a;
      }
      if (t.family == "niah") {
        const auto keys = s.meta.at("needle_keys").get<std::vector<std::string>>();
        const auto vals = s.meta.at("needle_values").get<std::vector<std::string>>();
        for (size_t i = 0; i < keys.size(); ++i)
          EXPECT_NE(s.context.find("special magic numbers for " + keys[i] + " is: " + vals[i]),
                    std::string::npos) << s.id;
        for (const auto& k : s.meta.at("asked_keys")) EXPECT_NE(s.question.find(k.get<std::string>()), std::string::npos);
      } else {
        EXPECT_NE(s.context.find("\"" + s.meta.at("key").get<std::string>() + "\": \"" +
                                 s.answers[0] + "\""), std::string::npos);
      }
    }
  }
}

TEST(EvalTasks, NeedleDepthFollowsTheSeed) {
  std::set<int> tenths;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Sample s = generate_sample("niah_single_noise", fake_opts(2048, seed));
    const size_t at = s.context.find("One of the special magic numbers");
    const double pos = (double)at / (double)s.context.size();
    const double depth = s.meta.at("needle_depths")[0].get<double>();
    EXPECT_NEAR(pos, depth, 0.05) << s.id;
    tenths.insert((int)(depth * 10));
  }
  EXPECT_GE(tenths.size(), 8u);  // the seeds spread the needle over the haystack
}

TEST(EvalTasks, VariableChainIsResolvable) {
  const std::regex stmt(R"(VAR ([A-Z]{5}) = (VAR ([A-Z]{5})|(\d+))\.)");
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Sample s = generate_sample("vt", fake_opts(1024 << (seed % 3), seed));
    std::map<std::string, std::string> value;
    int n = 0;
    for (std::sregex_iterator it(s.context.begin(), s.context.end(), stmt), end; it != end; ++it) {
      const std::smatch& m = *it;
      ASSERT_TRUE(m[4].matched || value.count(m[3])) << "used before assignment: " << m[3];
      value[m[1]] = m[4].matched ? m[4].str() : value[m[3]];
      ++n;
    }
    EXPECT_EQ(n, 10);
    const std::string target = s.meta.at("value");
    EXPECT_NE(s.question.find(target), std::string::npos);
    std::set<std::string> got, want(s.answers.begin(), s.answers.end());
    for (const auto& [var, v] : value)
      if (v == target) got.insert(var);
    EXPECT_EQ(got, want) << s.id;
  }
}

// Counts of whitespace-separated words after the intro (skipping "N." list numbers).
std::vector<std::pair<int, std::string>> word_counts(const std::string& body) {
  std::map<std::string, int> c;
  std::istringstream in(body);
  for (std::string w; in >> w;)
    if (!std::isdigit((unsigned char)w[0])) ++c[w];
  std::vector<std::pair<int, std::string>> v;
  for (auto& [w, n] : c) v.push_back({n, w});
  std::sort(v.rbegin(), v.rend());
  return v;
}

TEST(EvalTasks, PlantedWordsAreTheMostFrequent) {
  for (const char* task : {"cwe", "fwe"})
    for (uint64_t seed = 0; seed < 4; ++seed)
      for (int64_t len : {1024, 8192}) {
        const Sample s = generate_sample(task, fake_opts(len, seed));
        const std::string body = s.context.substr(s.context.find("\n\n") + 2);
        const auto counts = word_counts(body);
        const size_t k = s.answers.size();
        ASSERT_GT(counts.size(), k);
        std::set<std::string> top, want(s.answers.begin(), s.answers.end());
        for (size_t i = 0; i < k; ++i) top.insert(counts[i].second);
        EXPECT_EQ(top, want) << s.id;
        EXPECT_GT(counts[k - 1].first, counts[k].first) << s.id;  // strictly separated
      }
}

TEST(EvalTasks, FewShotLabelIsOneOfTheExampleLabels) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Sample s = generate_sample("fewshot_cls", fake_opts(1024, seed));
    ASSERT_EQ(s.answers.size(), 1u);
    EXPECT_NE(s.context.find("Label: " + s.answers[0] + "\n"), std::string::npos);
    EXPECT_NE(s.question.find(s.meta.at("query").get<std::string>()), std::string::npos);
    EXPECT_GT(s.meta.at("n_examples").get<int>(), 20);
  }
}

TEST(EvalTasks, DocumentFactsAreAskedInPlainWords) {
  std::set<std::string> kinds;
  for (const char* task : {"doc_fact", "doc_multifact"})
    for (uint64_t seed = 0; seed < 12; ++seed) {
      const Sample s = generate_sample(task, fake_opts(2048, seed));
      ASSERT_EQ(s.answers.size(), 1u);
      const auto subjects = s.meta.at("subjects").get<std::vector<std::string>>();
      const auto values = s.meta.at("values").get<std::vector<std::string>>();
      const size_t asked = s.meta.at("asked").get<size_t>();
      ASSERT_EQ(values.size(), std::string(task) == "doc_fact" ? 1u : 2u);
      EXPECT_EQ(s.answers[0], values.at(asked));
      EXPECT_NE(s.question.find(subjects.at(asked) + " "), std::string::npos) << s.question;
      for (size_t i = 0; i < values.size(); ++i) {
        // Each value occurs once, in its fact sentence next to its subject.
        const size_t at = s.context.find(values[i]);
        ASSERT_NE(at, std::string::npos) << s.id;
        EXPECT_EQ(s.context.find(values[i], at + 1), std::string::npos) << s.id;
        EXPECT_NE(s.context.find(subjects[i] + " "), std::string::npos) << s.id;
        if (i != asked) {
          EXPECT_EQ(values[i].find(s.answers[0]), std::string::npos) << s.id;
        }
      }
      EXPECT_EQ(s.context.find("magic number"), std::string::npos);
      kinds.insert(s.meta.at("kind").get<std::string>());
    }
  EXPECT_EQ(kinds.size(), 4u);  // port, version, date, address
}

// Compress once, ask four: every question of a set reads the same context bytes, the first
// is the sample's own, the others differ, and each has its own answer and evidence in the
// context (the four facts of doc_facts are four kinds, each value once).
TEST(EvalTasks, QuestionSetsAskAboutOneContext) {
  for (const TaskInfo& t : all_tasks()) {
    if (t.questions == 1) {
      if (t.fixed_length) continue;
      const Sample s = generate_sample(t.name, fake_opts(2048, 3));
      EXPECT_FALSE(s.meta.contains("questions")) << t.name;
      EXPECT_THROW(ask_question(s, 1), Error) << t.name;
      continue;
    }
    for (uint64_t seed = 0; seed < 6; ++seed) {
      const Sample s = generate_sample(t.name, fake_opts(2048, seed));
      std::set<std::string> questions;
      for (int q = 0; q < t.questions; ++q) {
        const Sample a = ask_question(s, q);
        EXPECT_EQ(a.context, s.context) << a.id;
        EXPECT_EQ(a.id, s.id + "/q" + std::to_string(q));
        EXPECT_LE(a.max_new_tokens, s.max_new_tokens) << a.id;  // the context was fitted for it
        questions.insert(a.question);
        if (q == 0) {
          EXPECT_EQ(a.question, s.question) << a.id;
          EXPECT_EQ(a.answers, s.answers) << a.id;
          EXPECT_EQ(a.evidence, s.evidence) << a.id;
        }
        for (const std::string& ans : a.answers)
          EXPECT_NE(a.context.find(ans), std::string::npos) << a.id << " " << ans;
        for (const std::string& ev : a.evidence)
          EXPECT_NE(a.context.find(ev), std::string::npos) << a.id;
        EXPECT_EQ(Sample::from_json(a.to_json()).to_json(), a.to_json());
      }
      EXPECT_EQ(questions.size(), (size_t)t.questions) << s.id;
      EXPECT_THROW(ask_question(s, t.questions), Error);
      EXPECT_THROW(ask_question(s, -1), Error);
    }
  }
  const Sample d = generate_sample("doc_facts", fake_opts(4096, 5));
  const auto kinds = d.meta.at("kinds").get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(kinds.begin(), kinds.end()).size(), 4u);
  for (const std::string& v : d.meta.at("values").get<std::vector<std::string>>()) {
    const size_t at = d.context.find(v);
    ASSERT_NE(at, std::string::npos) << v;
    EXPECT_EQ(d.context.find(v, at + 1), std::string::npos) << v;
  }
  EXPECT_TRUE(task_info("doc_facts").once_only);
}

TEST(EvalTasks, RefuseATrainingSideCorpus) {
  const TextCorpus train = TextCorpus::from_paragraphs({"Some training text."}, CorpusSide::kTrain);
  TaskOptions o = fake_opts(1024, 0);
  o.corpus = &train;
  for (const char* task : {"niah_single_text", "open_qa", "doc_fact"})
    EXPECT_THROW(generate_sample(task, o), Error) << task;
  EXPECT_NO_THROW(generate_sample("niah_single_noise", o));  // no corpus used
}

TEST(EvalTasks, RejectsBadRequests) {
  EXPECT_THROW(generate_sample("nope", fake_opts(1024, 0)), Error);
  EXPECT_THROW(generate_sample("niah_single_noise", fake_opts(64, 0)), Error);
  TaskOptions o = fake_opts(1024, 0);
  o.corpus = nullptr;
  EXPECT_THROW(generate_sample("niah_single_text", o), Error);
  EXPECT_NO_THROW(generate_sample("niah_single_noise", o));
  o.count_tokens = nullptr;
  EXPECT_THROW(generate_sample("niah_single_noise", o), Error);
}

TEST(EvalTasks, NaturalTextTasksOnTheEvaluationCorpus) {
  const TextCorpus* c = real_corpus();
  if (!c) GTEST_SKIP() << "corpus packages not installed (scripts/setup-deps.sh)";
  for (const char* task : {"niah_multikey_text", "open_summary", "open_qa", "doc_fact", "doc_multifact", "doc_facts"}) {
    TaskOptions o = fake_opts(4096, 2);
    o.corpus = c;
    const Sample s = generate_sample(task, o);
    expect_length(s, o, fake_count);
    EXPECT_EQ(s.to_json(), generate_sample(task, o).to_json());
    if (std::string(task) == "open_qa" && !s.meta.at("keyword").get<std::string>().empty()) {
      EXPECT_NE(s.context.find(s.meta.at("keyword").get<std::string>()), std::string::npos);
    }
  }
}

TEST(EvalTasks, LengthsHitTheBudgetWithTheRealTokenizer) {
  const std::string path = testing::model_path();
  if (!testing::exists(path)) GTEST_SKIP() << "model not found: " << path;
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(path));
  int64_t calls = 0;
  const TokenCounter count = [&](std::string_view s) {
    ++calls;
    return (int64_t)tok.encode(s, false, false).size();
  };
  Stopwatch sw;
  int n = 0;
  for (const TaskInfo& t : all_tasks())
    for (int64_t len : {1024, 4096}) {
      TaskOptions o;
      o.target_tokens = len;
      o.seed = 11;
      o.count_tokens = count;
      o.corpus = real_corpus() ? real_corpus() : &synthetic_corpus();
      if (t.fixed_length) continue;  // short prompts of their own size (tasks_parallel.cpp)
      expect_length(generate_sample(t.name, o), o, count);
      ++n;
    }
  std::printf("[ eval     ] %d samples, %lld token counts, %.0f ms\n", n, (long long)calls, sw.ms());
}

// ParallelBench-style tasks: a correct answer scores 1 under each task's check, a wrong one
// 0; Sudoku puzzles have one solution; prompts do not depend on the target length.
TEST(EvalTasks, ParallelTasksScoreTheirOwnAnswers) {
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "Final line: [";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
    return s + "]";
  };
  int n = 0;
  for (const TaskInfo& t : all_tasks()) {
    if (!t.fixed_length) continue;
    for (uint64_t seed : {1, 2, 3}) {
      const Sample s = generate_sample(t.name, fake_opts(1024, seed));
      EXPECT_EQ(s.context + s.question, generate_sample(t.name, fake_opts(8192, seed)).context +
                                            generate_sample(t.name, fake_opts(8192, seed)).question);
      std::string right, wrong = "Final line: []";
      if (s.scoring == Scoring::kListExact) {
        right = list(s.answers);
        std::vector<std::string> w = s.answers;
        std::swap(w.front(), w.back());
        wrong = list(w);
      } else if (s.scoring == Scoring::kListShuffle) {
        std::vector<std::string> w = s.answers;
        std::rotate(w.begin(), w.begin() + 1, w.end());
        right = list(w);
        wrong = list(s.answers);  // the same order is not a shuffle
      } else if (s.scoring == Scoring::kListInsertAny) {
        std::vector<std::string> w = s.answers;  // input + item: the item at the end
        right = list(w);
        w.pop_back();
        wrong = list(w);
      } else if (s.scoring == Scoring::kListRemoveAny) {
        right = list(std::vector<std::string>(s.answers.begin() + 1, s.answers.end()));
        wrong = list(s.answers);
      } else if (s.scoring == Scoring::kListReplaceAny) {
        std::vector<std::string> w(s.answers.begin(), s.answers.end() - 1);
        w.back() = s.answers.back();
        right = list(w);
        w.front() = s.answers.back();  // two positions changed
        wrong = list(w);
      } else if (s.scoring == Scoring::kGridExact) {
        for (const auto& r : s.answers) right += r + "\n";
        wrong = right;
        std::swap(wrong[0], wrong[2]);
        // Exactly one solution: every filling of the 4 blanks (4^4) checked, one is valid.
        const auto grid = last_grid(s.context);
        ASSERT_TRUE(grid) << s.id;
        std::vector<int> blanks;
        for (int i = 0; i < 16; ++i)
          if ((*grid)[i / 4][2 * (i % 4)] == '.') blanks.push_back(i);
        ASSERT_EQ(blanks.size(), 4u) << s.id;
        int solutions = 0;
        for (int code = 0; code < 256; ++code) {
          std::vector<std::string> g = *grid;
          for (int b = 0; b < 4; ++b) g[blanks[b] / 4][2 * (blanks[b] % 4)] = (char)('1' + (code >> (2 * b)) % 4);
          bool ok = true;
          for (int i = 0; i < 4 && ok; ++i) {
            std::string row, col, box;
            for (int j = 0; j < 4; ++j) {
              row += g[i][2 * j];
              col += g[j][2 * i];
              box += g[i / 2 * 2 + j / 2][2 * (i % 2 * 2 + j % 2)];
            }
            for (std::string* x : {&row, &col, &box}) std::sort(x->begin(), x->end());
            ok = row == "1234" && col == "1234" && box == "1234";
          }
          solutions += ok;
        }
        EXPECT_EQ(solutions, 1) << s.id;
      } else {
        ASSERT_EQ(s.scoring, Scoring::kLatinSquare);
        // A Latin square that keeps the givens: complete by brute force over the 4! rows.
        std::vector<std::string> perms;
        std::string p = "ABCD";
        do perms.push_back(p); while (std::next_permutation(p.begin(), p.end()));
        std::string best;
        for (const auto& a : perms)
          for (const auto& b : perms)
            for (const auto& c : perms)
              for (const auto& d : perms) {
                if (!best.empty()) break;
                const std::string rows[4] = {a, b, c, d};
                bool ok = true;
                for (int j = 0; j < 4 && ok; ++j) {
                  std::string col;
                  for (int i = 0; i < 4; ++i) col += rows[i][j];
                  std::sort(col.begin(), col.end());
                  ok = col == "ABCD";
                  for (int i = 0; i < 4 && ok; ++i)
                    ok = s.answers[i][2 * j] == '.' || s.answers[i][2 * j] == rows[i][j];
                }
                if (ok)
                  for (const auto& r : rows) best += std::string{r[0], ',', r[1], ',', r[2], ',', r[3], '\n'};
              }
        ASSERT_FALSE(best.empty()) << s.id;
        right = best;
        wrong = "A,A,A,A\nB,B,B,B\nC,C,C,C\nD,D,D,D\n";
      }
      EXPECT_EQ(score_prediction(s.scoring, right, s.answers), 1.0) << s.id << "\n" << right;
      EXPECT_EQ(score_prediction(s.scoring, wrong, s.answers), 0.0) << s.id << "\n" << wrong;
      ++n;
    }
  }
  EXPECT_EQ(n, 12 * 3);
}

}  // namespace
}  // namespace glimpse::eval
