// Training prompts for LookaheadKV (see train_prompts.h). The model answers each prompt
// itself during training, so the prompts only need to make it read the context in varied
// ways: whole-passage instructions, keyword lookups, planted facts, picking among quotes,
// and record tables. None of the phrasings, word lists or value formats below appears in
// the evaluation tasks, and the text comes from the training side of the corpus split
// (text_corpus.h); disjointness_test.cpp checks that no 64-byte span is shared.
#include "eval/train_prompts.h"

#include <fmt/format.h>

#include <algorithm>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "eval/train_prompts_internal.h"
#include "eval/train_words.h"
#include "util/error.h"

namespace glimpse::eval {

using namespace detail;

namespace detail {

std::vector<std::string> distinct_people(Rng& rng, size_t n) {
  std::vector<std::string> given = train_given_names(), family = train_family_names();
  rng.shuffle(given);
  rng.shuffle(family);
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(given.at(i) + " " + family.at(i));
  return out;
}

std::vector<double> train_fact_depths(Rng& rng, size_t k) {
  std::vector<double> d(k);
  for (double& x : d) x = 0.05 + 0.9 * rng.unit();
  std::sort(d.begin(), d.end());
  return d;
}

std::vector<std::string> train_record_lines(Rng& rng, size_t n) {
  std::vector<std::string> recs;
  for (size_t k = 0; k < n; ++k) {
    const std::string& shade = rng.pick(train_shades());
    const char* article = std::string_view("aeiou").find(shade[0]) != std::string_view::npos ? "an" : "a";
    recs.push_back(fmt::format("Record {}: {} {} {}, stored in aisle {}, weight {} grams.\n", k + 1, article,
                               shade, rng.pick(train_objects()), rng.range(1, 99), rng.range(10, 999)));
  }
  return recs;
}

}  // namespace detail

TrainSet parse_train_set(const std::string& name) {
  if (name == "v1") return TrainSet::kV1;
  if (name == "v2") return TrainSet::kV2;
  fail("unknown training set '{}' (v1, v2)", name);
}

const std::vector<std::string>& train_families(TrainSet set) {
  static const std::vector<std::string> v1 = {"train_passage_instruct", "train_passage_keyword",
                                              "train_planted_facts", "train_fortune_pick",
                                              "train_records"};
  static const std::vector<std::string> v2 = [] {
    std::vector<std::string> f = v1;
    for (const std::string& x : train_v2_new_families()) f.push_back(x);
    return f;
  }();
  return set == TrainSet::kV1 ? v1 : v2;
}

namespace {

const std::vector<std::string> kInstructions = {
    "Give the text above a short, descriptive title.",
    "Write three bullet points with the most important information from the text above.",
    "What problem does the text above help the reader solve? Explain briefly.",
    "Rewrite the first two sentences of the text above in plain, simple English.",
    "Which commands, programs or files are mentioned in the text above? List them.",
    "Explain the text above to a beginner in four sentences.",
    "What would be a good follow-up question to ask after reading the text above?",
    "Describe the structure of the text above: what comes first, what comes next, and how it ends.",
    "Pick the most surprising statement in the text above and say why it is surprising.",
    "Write a one-sentence summary of the last paragraph of the text above.",
};

const std::vector<std::string> kKeywordQuestions = {
    "How does the text above describe {}? Use your own words.",
    "Quote the sentence of the text above that first mentions {}.",
    "Why does the text above bring up {}?",
    "What should the reader remember about {} after reading the text above?",
};

// Planted facts, with the training side's own people, phrasings, value formats and
// depths: evaluation needles use "adjective-noun" keys, "special magic number" sentences
// with 7-digit values at one depth per band (tasks_niah.cpp), and document facts use
// ports, dotted versions, dates and addresses (tasks_doc.cpp); none of those here.
struct FactForm {
  const char* fact;      // {0} person, {1} value
  const char* question;  // {0} person
  std::string (*value)(Rng&);
};
std::string locker_code(Rng& r) {  // "K27"
  return fmt::format("{}{}", (char)('A' + r.below(26)), r.range(10, 99));
}
std::string level_word(Rng& r) { return r.pick(train_number_words()); }      // "seven"
std::string sugar_grams(Rng& r) { return std::to_string(5 * r.range(21, 199)); }  // "385"
std::string gate_code(Rng& r) {  // "C14"
  return fmt::format("{}{}", "ABCDEFGH"[r.below(8)], r.range(1, 40));
}
const std::vector<FactForm> kFactForms = {
    {"Note for later: the locker assigned to {0} is {1}.", "Which locker was assigned to {0}?", locker_code},
    {"{0} parked the delivery van on level {1} of the garage.", "On which level did {0} park the delivery van?", level_word},
    {"The recipe that {0} keeps secret needs exactly {1} grams of sugar.", "How many grams of sugar does {0}'s secret recipe need?", sugar_grams},
    {"According to the logbook, {0} arrived at gate {1}.", "At which gate did {0} arrive, according to the logbook?", gate_code},
};

// The planted facts of one prompt, the question asking one of them and (into all) one
// question per fact.
std::vector<Insert> plant_facts(Rng& rng, std::string& question, std::vector<std::string>& all) {
  const size_t k = (size_t)rng.range(1, 4);
  const std::vector<std::string> people = distinct_people(rng, k);
  const FactForm& form = kFactForms[rng.below(kFactForms.size())];
  const std::vector<double> depths = train_fact_depths(rng, k);
  std::vector<Insert> inserts;
  for (size_t j = 0; j < k; ++j)
    inserts.push_back({depths[j], fmt::format(fmt::runtime(form.fact), people[j], form.value(rng))});
  const size_t asked = rng.below(k);
  question = fmt::format(fmt::runtime(form.question), people[asked]);
  all = {question};
  for (size_t j = 0; j < k; ++j)
    if (j != asked) all.push_back(fmt::format(fmt::runtime(form.question), people[j]));
  return inserts;
}

Sample finish(Sample s, const std::string& family, size_t i, uint64_t seed) {
  if (s.meta.contains("questions")) {  // the asked one first, no repeats
    std::vector<std::string> qs = {s.question};
    for (const auto& q : s.meta["questions"])
      if (std::find(qs.begin(), qs.end(), q.get<std::string>()) == qs.end()) qs.push_back(q);
    s.meta["questions"] = qs;
  }
  s.task = family;
  s.seed = seed;
  s.id = fmt::format("{}/{}/{}", family, s.target_tokens, i);
  s.scoring = Scoring::kOpenEnded;
  s.answers.clear();
  return s;
}

}  // namespace

Sample make_train_prompt(size_t i, const std::vector<int64_t>& lengths, const TaskOptions& base,
                         const TextCorpus* fortunes, TrainSet set) {
  if (lengths.empty()) fail("training prompts need at least one length");
  if (!base.corpus) fail("training prompts need the natural-text corpus");
  // Training reads only its own side of the split (text_corpus.h).
  for (const TextCorpus* c : {base.corpus, fortunes})
    if (c && c->side() != CorpusSide::kTrain)
      fail("training prompts: the text corpus {} is the evaluation side's; training needs "
           "TextCorpus::load(..., CorpusSide::kTrain)", c->name());
  Rng pick(mix64(kTrainSeedBase + base.seed * 1'000'003ull + i));
  const std::vector<std::string>& families = train_families(set);
  const std::string family = families[pick.below(families.size())];
  TaskOptions opt = base;
  opt.target_tokens = lengths[pick.below(lengths.size())];
  opt.seed = kTrainSeedBase + pick.next() % kTrainSeedBase;
  Rng rng(sample_seed(family, opt.target_tokens, opt.seed));
  Sample proto;
  proto.max_new_tokens = set == TrainSet::kV1 ? 128 : 256;
  // The second set's lengths are prompt lengths: its answers get room on top.
  if (set == TrainSet::kV2) opt.target_tokens += proto.max_new_tokens;
  // More questions about the same document (meta "questions", the second set only) come
  // from their own generator, so the document and the first question do not depend on them.
  const bool more_questions = set == TrainSet::kV2;
  Rng qrng(mix64(sample_seed(family, opt.target_tokens, opt.seed) ^ 0x7175657374696f6eull));
  auto add_questions = [&](Sample& s, const std::vector<std::string>& qs) {
    if (more_questions) s.meta["questions"] = qs;
  };
  const auto& added = train_v2_new_families();
  if (std::find(added.begin(), added.end(), family) != added.end())
    return finish(gen_train_v2(family, opt, fortunes, rng, qrng, proto), family, i, opt.seed);
  const int64_t budget = prompt_budget(opt, proto.max_new_tokens);
  const size_t min_bytes = (size_t)std::max<int64_t>(budget, 0) * 16 + 4096;

  if (family == "train_fortune_pick" && fortunes) {
    TaskOptions fo = opt;
    fo.corpus = fortunes;
    const Segments segs = corpus_segments(fo, rng.next(), min_bytes);
    const std::vector<std::string> asks = {
        "Which of the sayings above do you find the wisest? Quote it and explain why.",
        "Find a saying above that is about work or money and explain what it means.",
        "Which saying above is the funniest? Repeat it exactly.",
        "Summarize the general mood of the sayings above in two sentences."};
    proto.question = rng.pick(asks);
    add_questions(proto, asks);
    auto build = [&](size_t n, size_t m) {
      Sample s = proto;
      s.context = join_with_inserts(segs, n, {}, m);
      return s;
    };
    FitLimits lim{segs.size(), max_segment_words(segs), 32};
    return finish(fit_to_budget(build, fo, family, proto.max_new_tokens, lim), family, i, opt.seed);
  }

  if (family == "train_records") {
    // "Record 17: a crimson kayak, stored in aisle 42, weight 310 grams." x n
    const size_t n_max = 4000;
    const std::vector<std::string> recs = train_record_lines(rng, n_max);
    const uint64_t ask = rng.next();
    const std::vector<uint64_t> more = {qrng.next(), qrng.next(), qrng.next()};
    auto build = [&](size_t n, size_t) {
      Sample s = proto;
      s.context.clear();
      for (size_t k = 0; k < n; ++k) s.context += recs[k];
      auto q = [&](uint64_t a) {
        return fmt::format("In which aisle is the item of record {} stored, and how much does it weigh?",
                           (n ? (size_t)(a % n) : 0) + 1);
      };
      s.question = q(ask);
      add_questions(s, {s.question, q(more[0]), q(more[1]), q(more[2])});
      return s;
    };
    FitLimits lim{n_max, 0, 32};
    return finish(fit_to_budget(build, opt, family, proto.max_new_tokens, lim), family, i, opt.seed);
  }

  std::vector<size_t> paras;
  const bool from_start = family != "train_planted_facts";
  const Segments segs = corpus_segments(opt, rng.next(), min_bytes, from_start, &paras);
  std::vector<Insert> inserts;
  std::vector<std::string> asks;
  if (family == "train_planted_facts") {
    inserts = plant_facts(rng, proto.question, asks);
  } else if (family == "train_passage_keyword") {
    const CorpusDoc& doc = opt.corpus->doc_of(paras.at(0));
    std::string kw = doc.keywords.empty() ? std::string() : rng.pick(doc.keywords);
    if (kw.empty()) kw = doc.title.empty() ? "the main topic" : doc.title;
    proto.question = fmt::format(fmt::runtime(rng.pick(kKeywordQuestions)), kw);
    asks = {proto.question};
    for (int k = 0; k < 3; ++k)
      asks.push_back(fmt::format(fmt::runtime(qrng.pick(kKeywordQuestions)),
                                 doc.keywords.empty() ? kw : qrng.pick(doc.keywords)));
  } else {
    proto.question = rng.pick(kInstructions);
    asks = {proto.question};
    for (int k = 0; k < 3; ++k) asks.push_back(qrng.pick(kInstructions));
  }
  add_questions(proto, asks);
  auto build = [&](size_t n, size_t m) {
    Sample s = proto;
    s.context = join_with_inserts(segs, n, inserts, m);
    return s;
  };
  FitLimits lim{segs.size(), max_segment_words(segs), 32};
  return finish(fit_to_budget(build, opt, family, proto.max_new_tokens, lim), family, i, opt.seed);
}

}  // namespace glimpse::eval
