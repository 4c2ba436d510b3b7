// Questions about a document, as a user asks them about text they pasted: a fact in
// natural phrasing is inserted at a seeded depth into a passage that opens an
// evaluation-side document (a handbook page or a Debian Reference section), and a plainly
// worded question asks for its value. No intro announces a hidden fact.
//   doc_fact:      one fact; the question asks for its value.
//   doc_multifact: two facts of the same kind about two subjects; the question asks one
//                  (the other is a distractor of the same shape).
//   doc_facts:     four facts, one of each kind, about four subjects; its question set asks
//                  each in turn (compress once, ask four: the `once` preset only).
// Kinds, with value formats that the training prompts never use (train_prompts.cpp):
//   port     "... the <name>d daemon listens on TCP port 48213 ..."         -> "48213"
//   version  "... holds version 3.17.2 of the <name> package."              -> "3.17.2"
//   date     "... audit of the <name> service took place on 14 March 2021." -> "14 March 2021"
//   address  "The <name> mirror is reachable at the address 10.41.7.203 ..." -> "10.41.7.203"
// Subjects are pronounceable made-up names (words.h), so no answer comes from prior
// knowledge; a value is redrawn while it occurs in the passage or overlaps the other one.
#include <fmt/format.h>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "eval/words.h"
#include "util/error.h"

namespace glimpse::eval::detail {
namespace {

struct FactKind {
  const char* name;
  const char* fact;      // {0} subject, {1} value
  const char* question;  // {0} subject
  const char* suffix;    // appended to the made-up subject name ("d" for daemons)
  std::string (*value)(Rng&);
};

std::string port_value(Rng& r) { return std::to_string(r.range(10000, 65535)); }
std::string version_value(Rng& r) {
  return fmt::format("{}.{}.{}", r.range(1, 9), r.range(10, 39), r.range(1, 29));
}
std::string date_value(Rng& r) {
  static const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                  "July",    "August",   "September", "October", "November", "December"};
  return fmt::format("{} {} {}", r.range(1, 28), kMonths[r.below(12)], r.range(2003, 2022));
}
std::string address_value(Rng& r) {
  return fmt::format("10.{}.{}.{}", r.range(16, 254), r.range(0, 255), r.range(2, 254));
}

const FactKind kKinds[] = {
    {"port", "On this system the {0} daemon listens on TCP port {1} instead of its default port.",
     "Which TCP port does the {0} daemon listen on? Answer with the port number only.", "d",
     port_value},
    {"version", "The local archive currently holds version {1} of the {0} package.",
     "Which version of the {0} package does the local archive hold? Answer with the version "
     "number only.", "", version_value},
    {"date", "The last security audit of the {0} service took place on {1}.",
     "On which date did the last security audit of the {0} service take place? Answer with the "
     "date only.", "", date_value},
    {"address", "The {0} mirror is reachable at the address {1} on the internal network.",
     "At which address is the {0} mirror reachable on the internal network? Answer with the "
     "address only.", "", address_value},
};

// n values of a kind, none inside `text` and none containing another.
std::vector<std::string> fresh_values(Rng& rng, const FactKind& kind, size_t n,
                                      const std::string& text) {
  std::vector<std::string> out;
  for (int tries = 0; out.size() < n; ++tries) {
    if (tries > 1000) fail("doc task: cannot draw a {} value absent from the passage", kind.name);
    std::string v = kind.value(rng);
    bool ok = text.find(v) == std::string::npos;
    for (const std::string& o : out) ok = ok && o.find(v) == std::string::npos && v.find(o) == std::string::npos;
    if (ok) out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

namespace {

// doc_facts: one fact of each kind, about four subjects, at four depths; the question set
// asks each in turn (kinds in a seeded order; the first is the sample's own question).
Sample gen_doc_facts(const TaskOptions& opt) {
  Rng rng(sample_seed("doc_facts", opt.target_tokens, opt.seed));
  Sample proto;
  proto.task = "doc_facts";
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 32;
  const DocPassage passage = doc_passage(opt, rng.next(), proto.max_new_tokens);
  std::string text;
  for (const std::string& seg : passage.segs) text += seg;

  std::vector<size_t> order(std::size(kKinds));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  rng.shuffle(order);
  std::vector<std::string> subjects = distinct_pseudo_words(rng, order.size(), 2, 3);
  std::vector<std::string> values, kinds;
  for (size_t i = 0; i < order.size(); ++i) {
    const FactKind& kind = kKinds[order[i]];
    subjects[i] += kind.suffix;
    kinds.push_back(kind.name);
    // Absent from the passage, and no value inside another (an address can hold a version).
    for (int tries = 0;; ++tries) {
      if (tries > 1000) fail("doc_facts: cannot draw a {} value absent from the passage", kind.name);
      std::string v = fresh_values(rng, kind, 1, text)[0];
      bool ok = true;
      for (const std::string& o : values)
        ok = ok && o.find(v) == std::string::npos && v.find(o) == std::string::npos;
      if (ok) {
        values.push_back(std::move(v));
        break;
      }
    }
  }
  const std::vector<double> depths = needle_depths(rng, order.size());
  std::vector<Insert> inserts;
  nlohmann::json set = nlohmann::json::array();
  for (size_t i = 0; i < order.size(); ++i) {
    const FactKind& kind = kKinds[order[i]];
    inserts.push_back({depths[i], fmt::format(fmt::runtime(kind.fact), subjects[i], values[i])});
    set.push_back(question_entry(fmt::format(fmt::runtime(kind.question), subjects[i]), {values[i]},
                                 {inserts[i].text}, proto.max_new_tokens, proto.scoring));
  }
  proto.question = set[0]["question"].get<std::string>();
  proto.answers = {values[0]};
  proto.evidence = {inserts[0].text};
  const CorpusDoc& doc = opt.corpus->doc_of(passage.paragraphs.at(0));
  proto.meta = {{"kinds", kinds},   {"subjects", subjects}, {"values", values},
                {"depths", depths}, {"doc", doc.name},      {"title", doc.title},
                {"corpus", opt.corpus->name()}, {"questions", std::move(set)}};
  return fit_doc_passage(proto, passage.segs, inserts, opt, "doc_facts");
}

}  // namespace

Sample gen_doc(std::string_view task, const TaskOptions& opt) {
  if (task == "doc_facts") return gen_doc_facts(opt);
  const bool multi = task == "doc_multifact";
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  const FactKind& kind = kKinds[rng.below(std::size(kKinds))];
  const size_t k = multi ? 2 : 1;
  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 32;

  const DocPassage passage = doc_passage(opt, rng.next(), proto.max_new_tokens);
  const Segments& segs = passage.segs;
  std::string text;
  for (const std::string& s : segs) text += s;

  std::vector<std::string> subjects = distinct_pseudo_words(rng, k, 2, 3);
  for (std::string& s : subjects) s += kind.suffix;
  const std::vector<std::string> values = fresh_values(rng, kind, k, text);
  const std::vector<double> depths = needle_depths(rng, k);
  const size_t asked = rng.below(k);
  std::vector<Insert> inserts;
  for (size_t i = 0; i < k; ++i)
    inserts.push_back({depths[i], fmt::format(fmt::runtime(kind.fact), subjects[i], values[i])});
  proto.question = fmt::format(fmt::runtime(kind.question), subjects[asked]);
  proto.answers = {values[asked]};
  const CorpusDoc& doc = opt.corpus->doc_of(passage.paragraphs.at(0));
  proto.meta = {{"kind", kind.name},  {"subjects", subjects}, {"values", values},
                {"depths", depths},   {"asked", asked},       {"doc", doc.name},
                {"title", doc.title}, {"corpus", opt.corpus->name()}};

  return fit_doc_passage(proto, segs, inserts, opt, task);
}

}  // namespace glimpse::eval::detail
