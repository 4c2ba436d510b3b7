// Task registry, Sample serialisation, and the shared haystack/length machinery.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "util/error.h"

namespace glimpse::eval {

std::string_view scoring_name(Scoring s) {
  switch (s) {
    case Scoring::kMatchAll: return "match_all";
    case Scoring::kMatchPart: return "match_part";
    case Scoring::kOpenEnded: return "open_ended";
    case Scoring::kListExact: return "list_exact";
    case Scoring::kListShuffle: return "list_shuffle";
    case Scoring::kListInsertAny: return "list_insert_any";
    case Scoring::kListRemoveAny: return "list_remove_any";
    case Scoring::kListReplaceAny: return "list_replace_any";
    case Scoring::kLatinSquare: return "latin_square";
    case Scoring::kGridExact: return "grid_exact";
  }
  return "?";
}

Scoring parse_scoring(std::string_view name) {
  if (name == "match_all") return Scoring::kMatchAll;
  if (name == "match_part") return Scoring::kMatchPart;
  if (name == "open_ended") return Scoring::kOpenEnded;
  for (Scoring k : {Scoring::kListExact, Scoring::kListShuffle, Scoring::kListInsertAny,
                    Scoring::kListRemoveAny, Scoring::kListReplaceAny, Scoring::kLatinSquare,
                    Scoring::kGridExact})
    if (name == scoring_name(k)) return k;
  fail("unknown scoring kind '{}'", name);
}

nlohmann::json Sample::to_json() const {
  return {{"task", task},
          {"id", id},
          {"context", context},
          {"question", question},
          {"answers", answers},
          {"max_new_tokens", max_new_tokens},
          {"scoring", scoring_name(scoring)},
          {"target_tokens", target_tokens},
          {"seed", seed},
          {"prompt_tokens", prompt_tokens},
          {"meta", meta},
          {"evidence", evidence}};
}

Sample Sample::from_json(const nlohmann::json& j) {
  try {
    Sample s;
    s.task = j.at("task").get<std::string>();
    s.id = j.at("id").get<std::string>();
    s.context = j.at("context").get<std::string>();
    s.question = j.at("question").get<std::string>();
    s.answers = j.at("answers").get<std::vector<std::string>>();
    s.max_new_tokens = j.at("max_new_tokens").get<int>();
    s.scoring = parse_scoring(j.at("scoring").get<std::string>());
    s.target_tokens = j.at("target_tokens").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.prompt_tokens = j.value("prompt_tokens", (int64_t)0);
    s.meta = j.value("meta", nlohmann::json::object());
    s.evidence = j.value("evidence", std::vector<std::string>());
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("malformed sample JSON: {}", e.what());
  }
}

const std::vector<TaskInfo>& all_tasks() {
  static const std::vector<TaskInfo> v = [] {
    std::vector<TaskInfo> t;
    const std::pair<const char*, const char*> niah[] = {
        {"single", "one needle (key -> 7-digit number); retrieve its value"},
        {"multikey", "one needle among distractor needles with other keys"},
        {"multivalue", "one key with several values; return all of them"},
        {"multiquery", "several keys asked at once; return every value"}};
    for (const auto& [kind, summary] : niah) {
      // multikey: each of its 4 needles can be the asked one (ask_question).
      const int questions = std::string_view(kind) == "multikey" ? 4 : 1;
      t.push_back({fmt::format("niah_{}_noise", kind), "niah", false,
                   fmt::format("{} (repeated-filler haystack)", summary), false, questions});
      t.push_back({fmt::format("niah_{}_text", kind), "niah", true,
                   fmt::format("{} (natural-text haystack)", summary), false, questions});
    }
    t.push_back({"vt", "vt", false, "variable tracking: name every variable bound to a value"});
    t.push_back({"cwe", "cwe", false, "common words: the 10 most repeated words of a list"});
    t.push_back({"fwe", "fwe", false, "frequent words: the 3 most frequent coded words (Zipf)"});
    t.push_back({"kv_retrieval", "kv", false, "value of one UUID key in a JSON object"});
    t.push_back({"fewshot_cls", "fewshot", false, "topic label of a line after many examples"});
    t.push_back({"open_summary", "open", true, "summarise a natural-text passage"});
    t.push_back({"open_qa", "open", true, "answer a question about a natural-text passage",
                 false, 4});
    t.push_back({"doc_fact", "doc", true, "one fact (port, version, date, address) in a document"});
    t.push_back({"doc_multifact", "doc", true, "two facts of one kind in a document; one asked"});
    t.push_back({"doc_facts", "doc", true, "four facts of four kinds in a document; each asked "
                 "in turn (compress once, ask four)", false, 4, /*once_only=*/true});
    for (const auto& [op, summary] : detail::parallel_task_summaries())
      t.push_back({std::string(op), op.rfind("wl_", 0) == 0 ? "waiting_line" : "puzzle", false,
                   std::string(summary), /*fixed_length=*/true});
    return t;
  }();
  return v;
}

Sample ask_question(const Sample& s, int q) {
  const nlohmann::json* set = s.meta.contains("questions") ? &s.meta["questions"] : nullptr;
  if (!set || !set->is_array() || q < 0 || q >= (int)set->size())
    fail("eval sample {} has no question {} (its task asks {})", s.id, q,
         set && set->is_array() ? set->size() : 1);
  const nlohmann::json& j = (*set)[(size_t)q];
  Sample out = s;
  try {
    out.question = j.at("question").get<std::string>();
    out.answers = j.at("answers").get<std::vector<std::string>>();
    out.evidence = j.at("evidence").get<std::vector<std::string>>();
    out.max_new_tokens = j.at("max_new_tokens").get<int>();
    out.scoring = parse_scoring(j.at("scoring").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    fail("eval sample {}: malformed question {}: {}", s.id, q, e.what());
  }
  out.id = fmt::format("{}/q{}", s.id, q);
  out.meta["question_index"] = q;
  return out;
}

const TaskInfo& task_info(std::string_view name) {
  for (const TaskInfo& t : all_tasks())
    if (t.name == name) return t;
  std::string names;
  for (const TaskInfo& t : all_tasks()) names += (names.empty() ? "" : ", ") + t.name;
  fail("unknown eval task '{}' (known: {})", name, names);
}

Sample generate_sample(std::string_view task, const TaskOptions& opt) {
  const TaskInfo& info = task_info(task);
  if (!opt.count_tokens) fail("eval task {}: no token counter given", task);
  if (info.needs_corpus && !opt.corpus)
    fail("eval task {} needs an evaluation-side text corpus (debian-handbook, debian-reference)", task);
  if (info.needs_corpus && opt.corpus->side() != CorpusSide::kEval)
    fail("eval task {}: the text corpus {} is the training side's; evaluation needs its own "
         "(TextCorpus::load_side(CorpusSide::kEval))", task, opt.corpus->name());
  if (opt.target_tokens <= 0 || opt.reserve_tokens < 0)
    fail("eval task {}: bad target length {} / reserve {}", task, opt.target_tokens,
         opt.reserve_tokens);
  if (info.family == "niah") return detail::gen_niah(task, opt);
  if (info.family == "vt") return detail::gen_vt(task, opt);
  if (info.family == "cwe") return detail::gen_cwe(task, opt);
  if (info.family == "fwe") return detail::gen_fwe(task, opt);
  if (info.family == "kv") return detail::gen_kv(task, opt);
  if (info.family == "fewshot") return detail::gen_fewshot(task, opt);
  if (info.family == "doc") return detail::gen_doc(task, opt);
  if (info.fixed_length) return detail::gen_parallel(task, opt);
  return detail::gen_open(task, opt);
}

namespace detail {

const Segments& noise_sentences() {
  static const Segments s = {"The grass is green. ", "The sky is blue. ", "The sun is yellow. ",
                             "Here we go. ", "There and back again. "};
  return s;
}

std::string noise_segment(size_t i) { return noise_sentences()[i % noise_sentences().size()]; }

Segments split_sentences(const std::vector<std::string>& paragraphs) {
  Segments out;
  for (const std::string& p : paragraphs) {
    size_t start = 0;
    for (size_t i = 0; i + 2 < p.size(); ++i) {
      const char c = p[i];
      if ((c == '.' || c == '!' || c == '?') && p[i + 1] == ' ' &&
          !std::islower((unsigned char)p[i + 2])) {
        out.push_back(p.substr(start, i + 2 - start));  // keeps the space
        start = i + 2;
      }
    }
    if (start < p.size()) out.push_back(p.substr(start) + "\n\n");
    else if (!out.empty()) out.back().back() = '\n', out.back() += '\n';
  }
  return out;
}

Segments corpus_segments(const TaskOptions& opt, uint64_t seed, size_t min_bytes,
                         bool from_doc_start, std::vector<size_t>* paragraphs) {
  const std::vector<size_t> idx = opt.corpus->passage(seed, min_bytes, from_doc_start);
  std::vector<std::string> text;
  for (size_t i : idx) text.push_back(opt.corpus->paragraphs()[i]);
  if (paragraphs) *paragraphs = idx;
  return split_sentences(text);
}

std::string join_with_inserts(const Segments& segs, size_t n, const std::vector<Insert>& ins,
                              size_t partial_words) {
  n = std::min(n, segs.size());
  std::vector<std::vector<const std::string*>> at(n + 1);
  for (const Insert& x : ins) {
    const double d = std::clamp(x.depth, 0.0, 1.0);
    at[std::min(n, (size_t)std::llround(d * (double)n))].push_back(&x.text);
  }
  std::string out;
  for (size_t b = 0; b <= n; ++b) {
    for (const std::string* t : at[b]) {
      // After a paragraph break or at the start the needle opens a line of its own.
      out += *t;
      out += b == n ? "\n" : " ";
    }
    if (b < n) out += segs[b];
  }
  if (partial_words > 0 && n < segs.size()) {
    const std::string& s = segs[n];
    size_t end = 0;
    for (size_t w = 0; w < partial_words; ++w) {
      const size_t sp = s.find(' ', end + (w ? 1 : 0));
      if (sp == std::string::npos || sp + 1 >= s.size()) break;  // a whole segment is unit n+1
      end = sp;
    }
    if (end > 0) {
      if (!out.empty() && out.back() != ' ' && out.back() != '\n') out += ' ';
      out.append(s, 0, end);
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

size_t max_segment_words(const Segments& segs) {
  size_t m = 0;
  for (const std::string& s : segs) m = std::max(m, (size_t)std::count(s.begin(), s.end(), ' '));
  return m;
}

int64_t prompt_budget(const TaskOptions& opt, int max_new_tokens) {
  return opt.target_tokens - opt.reserve_tokens - max_new_tokens;
}

DocPassage doc_passage(const TaskOptions& opt, uint64_t seed, int max_new_tokens) {
  // ~16 bytes per token leaves room to spare at every budget.
  const int64_t budget = std::max<int64_t>(prompt_budget(opt, max_new_tokens), 0);
  DocPassage out;
  out.segs = corpus_segments(opt, seed, (size_t)budget * 16 + 4096, /*from_doc_start=*/true,
                             &out.paragraphs);
  return out;
}

Sample fit_doc_passage(const Sample& proto, const Segments& segs, const std::vector<Insert>& ins,
                       const TaskOptions& opt, std::string_view task) {
  auto build = [&](size_t n, size_t m) {
    Sample s = proto;
    s.context = join_with_inserts(segs, n, ins, m);
    return s;
  };
  FitLimits lim;
  lim.n_max = segs.size();
  lim.m_max = max_segment_words(segs);
  lim.n_probe = 32;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

nlohmann::json question_entry(const std::string& question, const std::vector<std::string>& answers,
                              const std::vector<std::string>& evidence, int max_new_tokens,
                              Scoring scoring) {
  return {{"question", question}, {"answers", answers}, {"evidence", evidence},
          {"max_new_tokens", max_new_tokens}, {"scoring", std::string(scoring_name(scoring))}};
}

std::vector<double> needle_depths(Rng& rng, size_t k) {
  std::vector<double> d(k);
  for (size_t i = 0; i < k; ++i) d[i] = ((double)i + rng.unit()) / (double)k;
  rng.shuffle(d);
  return d;
}

Sample fit_to_budget(const Builder& build, const TaskOptions& opt, std::string_view task,
                     int max_new_tokens, const FitLimits& lim) {
  const int64_t budget = prompt_budget(opt, max_new_tokens);
  std::map<std::pair<size_t, size_t>, int64_t> seen;
  Sample best;
  int64_t best_tokens = -1;
  auto measure = [&](size_t n, size_t m) {
    if (auto it = seen.find({n, m}); it != seen.end()) return it->second;
    Sample s = build(n, m);
    const int64_t t = opt.count_tokens(s.prompt());
    seen[{n, m}] = t;
    if (t <= budget && t > best_tokens) {
      best = std::move(s);
      best_tokens = t;
    }
    return t;
  };
  // Largest x in [0, x_max] with f(x) <= budget, given f(0) fits. Brackets by linear
  // extrapolation, then alternates interpolation and bisection (log-many steps at worst).
  auto search = [&](const std::function<int64_t(size_t)>& f, size_t x_max, size_t probe) {
    size_t lo = 0, hi = 0;  // f(lo) fits; f(hi) does not (when have_hi)
    bool have_hi = false;
    const int64_t t_zero = f(0);
    int64_t t_lo = t_zero, t_hi = 0;
    size_t x = std::min(std::max<size_t>(probe, 1), x_max);
    for (int step = 0; x > lo && t_lo < budget - budget / 400; ++step) {
      const int64_t t = f(x);
      if (t <= budget) {
        lo = x, t_lo = t;
      } else {
        hi = x, t_hi = t, have_hi = true;
      }
      if ((have_hi && hi - lo <= 1) || lo == x_max) break;
      double guess;
      if (!have_hi) {  // no upper bracket yet: extrapolate from the origin through lo
        const double per_unit = std::max(1e-3, (double)(t_lo - t_zero) / (double)lo);
        guess = (double)lo + (double)(budget - t_lo) / per_unit * 1.01 + 1;
      } else if (step % 2 == 0) {
        guess = (double)lo + (double)(hi - lo) * (double)(budget - t_lo) /
                                 (double)std::max<int64_t>(1, t_hi - t_lo);
      } else {
        guess = ((double)lo + (double)hi) / 2;
      }
      const double top = std::min(1e12, (double)(have_hi ? hi - 1 : x_max));
      x = (size_t)std::clamp(guess, (double)lo + 1, top);
    }
    return lo;
  };
  const int64_t t0 = measure(0, 0);
  if (t0 > budget)
    fail("eval task {}: target of {} tokens is too small (the fixed parts take {} of a "
         "{}-token prompt budget)", task, opt.target_tokens, t0, budget);
  const size_t n = search([&](size_t x) { return measure(x, 0); }, lim.n_max, lim.n_probe);
  if (n == lim.n_max && lim.n_max != SIZE_MAX && measure(n, 0) < budget * 98 / 100)
    fail("eval task {}: not enough text for {} tokens", task, opt.target_tokens);
  size_t m = 0;
  if (lim.m_max > 0 && measure(n, 0) < budget - budget / 400) {
    m = search([&](size_t y) { return measure(n, y); }, lim.m_max, 1);
  }
  measure(n, m);
  // The best-fitting build seen (the count may wobble: the largest n is not always it).
  best.target_tokens = opt.target_tokens;
  best.seed = opt.seed;
  best.prompt_tokens = best_tokens;
  best.id = fmt::format("{}/{}/{}", task, opt.target_tokens, opt.seed);
  return best;
}

}  // namespace detail
}  // namespace glimpse::eval
