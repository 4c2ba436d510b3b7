// The families the second training set adds (train_prompts.h, TrainSet::kV2): what users
// ask of long prompts beyond single lookups and summaries.
//
// train_multi_value:  one person's several values among other people's ("List every
//                     workshop X signed up for"), planted in a handbook passage.
// train_two_hop:      "A reports to B." ... "B works on floor seven." -> "On which floor does
//                     the person A reports to work?", the two hops in either order.
// train_count:        record tables with counting and aggregation questions.
// train_extract_list: reminders planted in a passage, to be gathered into a list.
// train_config:       an INI-style configuration mixed with small Python functions; a key of
//                     one section, or a constant of one function, is asked.
// train_dialogue:     a team chat log (chit-chat lines from the fortunes) with a few lines
//                     that matter; who said what, or where something was left.
// Everything is training side: handbook training half, fortunes, and the word lists of
// train_words.h; disjointness_test.cpp checks the set against the evaluation presets.
#include <fmt/format.h>

#include <algorithm>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "eval/train_prompts_internal.h"
#include "eval/train_words.h"
#include "util/error.h"

namespace glimpse::eval::detail {

const std::vector<std::string>& train_v2_new_families() {
  static const std::vector<std::string> f = {"train_multi_value", "train_two_hop",
                                             "train_count",       "train_extract_list",
                                             "train_config",      "train_dialogue"};
  return f;
}

namespace {

// A training-side passage (anywhere in a document) with the facts planted by depth, fitted.
Sample fit_planted(const TaskOptions& opt, Rng& rng, const Sample& proto,
                   const std::vector<std::string>& facts) {
  const int64_t budget = std::max<int64_t>(prompt_budget(opt, proto.max_new_tokens), 0);
  const Segments segs = corpus_segments(opt, rng.next(), (size_t)budget * 16 + 4096);
  const std::vector<double> depths = train_fact_depths(rng, facts.size());
  std::vector<Insert> ins;
  for (size_t i = 0; i < facts.size(); ++i) ins.push_back({depths[i], facts[i]});
  return fit_doc_passage(proto, segs, ins, opt, proto.task);
}

// The first n of a shuffled copy of a word list (n distinct words).
std::vector<std::string> draw_distinct(Rng& rng, const std::vector<std::string>& list, size_t n) {
  std::vector<std::string> v = list;
  rng.shuffle(v);
  v.resize(std::min(n, v.size()));
  return v;
}

Sample multi_value(const TaskOptions& opt, Rng& rng, Sample proto) {
  const bool workshops = rng.below(2) == 0;
  const std::vector<std::string> people = distinct_people(rng, (size_t)rng.range(2, 4));
  const std::vector<std::string> values =
      draw_distinct(rng, workshops ? train_workshops() : train_objects(), 12);
  std::vector<std::string> facts;
  size_t v = 0;
  for (size_t p = 0; p < people.size(); ++p) {
    const int64_t n = p == 0 ? rng.range(2, 4) : rng.range(1, 2);  // person 0 is asked about
    for (int64_t k = 0; k < n; ++k, ++v)
      facts.push_back(workshops
                          ? fmt::format("{} signed up for the {} workshop.", people[p], values[v])
                          : fmt::format("{} borrowed the {} from the tool shed.", people[p], values[v]));
  }
  rng.shuffle(facts);
  auto ask = [&](const std::string& who) {
    return workshops ? fmt::format("Which workshops did {} sign up for? List all of them.", who)
                     : fmt::format("List everything {} borrowed from the tool shed.", who);
  };
  proto.question = ask(people[0]);
  std::vector<std::string> asks;
  for (const std::string& p : people) asks.push_back(ask(p));
  proto.meta["questions"] = asks;
  return fit_planted(opt, rng, proto, facts);
}

Sample two_hop(const TaskOptions& opt, Rng& rng, Sample proto) {
  const size_t k = (size_t)rng.range(2, 3);
  const std::vector<std::string> people = distinct_people(rng, 2 * k);
  const std::vector<std::string> floors = draw_distinct(rng, train_number_words(), k);
  std::vector<std::string> facts;
  for (size_t i = 0; i < k; ++i) {
    facts.push_back(fmt::format("{} reports to {}.", people[i], people[k + i]));
    facts.push_back(fmt::format("{} works on floor {} of the east wing.", people[k + i], floors[i]));
  }
  rng.shuffle(facts);
  auto ask = [&](size_t i) {
    return fmt::format("On which floor does the person {} reports to work?", people[i]);
  };
  proto.question = ask(rng.below(k));
  std::vector<std::string> asks;
  for (size_t i = 0; i < k; ++i) asks.push_back(ask(i));
  proto.meta["questions"] = asks;
  return fit_planted(opt, rng, proto, facts);
}

Sample count_records(const TaskOptions& opt, Rng& rng, Rng& qrng, Sample proto) {
  const size_t n_max = 4000;
  const std::vector<std::string> recs = train_record_lines(rng, n_max);
  const uint64_t ask = rng.next();
  const bool heaviest = rng.below(2) == 0;
  const std::vector<uint64_t> more = {qrng.next(), qrng.next(), qrng.next()};
  // A counting or aggregation question about the record at draw a of n.
  auto question = [&](uint64_t draw, size_t n, bool by_weight) {
    const std::string& line = recs[n ? draw % n : 0];  // "Record 17: a crimson kayak, stored in aisle 42, ..."
    const size_t a = line.find("aisle ") + 6, of = line.find(": ") + 2;
    const std::string aisle = line.substr(a, line.find(',', a) - a);
    const size_t sh = line.find(' ', of) + 1;  // after the article
    const std::string shade = line.substr(sh, line.find(' ', sh) - sh);
    return by_weight
               ? fmt::format("Of the items stored in aisle {}, which one is the heaviest? "
                             "Give its record number.", aisle)
               : fmt::format("How many records above describe {} {} item? List their "
                             "record numbers.",
                             std::string_view("aeiou").find(shade[0]) != std::string_view::npos ? "an" : "a",
                             shade);
  };
  auto build = [&](size_t n, size_t) {
    Sample s = proto;
    s.context.clear();
    for (size_t i = 0; i < n; ++i) s.context += recs[i];
    s.question = question(ask, n, heaviest);
    s.meta["questions"] = {s.question, question(more[0], n, !heaviest), question(more[1], n, heaviest),
                           question(more[2], n, !heaviest)};
    return s;
  };
  return fit_to_budget(build, opt, proto.task, proto.max_new_tokens, FitLimits{n_max, 0, 32});
}

Sample extract_list(const TaskOptions& opt, Rng& rng, Sample proto) {
  const size_t k = (size_t)rng.range(3, 6);
  const std::vector<std::string> people = distinct_people(rng, k);
  const std::vector<std::string> items = draw_distinct(rng, train_objects(), k);
  std::vector<std::string> facts;
  for (size_t i = 0; i < k; ++i)
    facts.push_back(fmt::format("Reminder from {}: pack the {} before {}.", people[i], items[i],
                                rng.pick(train_weekdays())));
  proto.question = "Make a list of every item the reminders in the text above ask to pack, "
                   "and who asked for each.";
  proto.meta["questions"] = {proto.question,
                             fmt::format("Who asked for the {} to be packed?", items[0]),
                             fmt::format("Before which day should the {} be packed?", items[1]),
                             fmt::format("What did {} ask to pack?", people[2])};
  return fit_planted(opt, rng, proto, facts);
}

// One configuration section or one Python function, and what a question may ask of it.
struct ConfigUnit {
  std::string text, question;
};

ConfigUnit config_unit(Rng& rng, size_t index) {
  const std::string sec = fmt::format("{}_{}", rng.pick(train_config_sections()), index + 1);
  if (rng.below(4) == 0) {  // a function
    const int64_t limit = rng.range(3, 90);
    return {fmt::format("def refresh_{}(queue):\n    limit = {}\n    for item in queue[:limit]:\n"
                        "        item.touch()\n    return len(queue) - limit\n\n", sec, limit),
            fmt::format("What value does the function refresh_{} give to limit?", sec)};
  }
  const std::vector<std::string> keys = draw_distinct(rng, train_config_keys(), (size_t)rng.range(3, 7));
  std::string text = fmt::format("[{}]\n", sec);
  for (const std::string& key : keys) {
    std::string value;
    if (key == "log_level") value = rng.pick(std::vector<std::string>{"debug", "notice", "warning"});
    else if (key == "verify_checksums") value = rng.below(2) ? "yes" : "no";
    else if (key == "spool_dir") value = fmt::format("/srv/{}/spool", sec);
    else value = std::to_string(rng.range(1, 4096));
    text += fmt::format("{} = {}\n", key, value);
  }
  const std::string& asked = keys[rng.below(keys.size())];
  return {text + "\n", fmt::format("In the configuration above, what is {} set to in the [{}] "
                                   "section?", asked, sec)};
}

Sample config_file(const TaskOptions& opt, Rng& rng, Rng& qrng, Sample proto) {
  const size_t n_max = 1500;
  std::vector<ConfigUnit> units;
  for (size_t i = 0; i < n_max; ++i) units.push_back(config_unit(rng, i));
  const uint64_t ask = rng.next();
  const std::vector<uint64_t> more = {qrng.next(), qrng.next(), qrng.next()};
  auto build = [&](size_t n, size_t) {
    Sample s = proto;
    s.context = "# service configuration and helper functions\n\n";
    for (size_t i = 0; i < n; ++i) s.context += units[i].text;
    auto q = [&](uint64_t a) { return units[n ? a % n : 0].question; };
    s.question = q(ask);
    s.meta["questions"] = {s.question, q(more[0]), q(more[1]), q(more[2])};
    return s;
  };
  return fit_to_budget(build, opt, proto.task, proto.max_new_tokens, FitLimits{n_max, 0, 32});
}

Sample dialogue(const TaskOptions& opt, const TextCorpus* fortunes, Rng& rng, Sample proto) {
  const std::vector<std::string> names = draw_distinct(rng, train_given_names(), (size_t)rng.range(3, 5));
  TaskOptions co = opt;
  if (fortunes) co.corpus = fortunes;
  const int64_t budget = std::max<int64_t>(prompt_budget(opt, proto.max_new_tokens), 0);
  Segments chat = corpus_segments(co, rng.next(), (size_t)budget * 16 + 4096);
  std::vector<std::string> lines;  // "Name: one whole paragraph (a fortune) on one line\n"
  std::string para;
  for (const std::string& seg : chat) {
    para += seg;
    if (seg.size() < 2 || seg.compare(seg.size() - 2, 2, "\n\n") != 0) continue;
    while (!para.empty() && (para.back() == '\n' || para.back() == ' ')) para.pop_back();
    std::replace(para.begin(), para.end(), '\n', ' ');
    if (!para.empty()) lines.push_back(fmt::format("{}: {}\n", rng.pick(names), para));
    para.clear();
  }
  // The lines that matter, with their questions, at depths in reading order.
  const std::string day = rng.pick(train_weekdays()), item = rng.pick(train_objects()),
                    room = rng.pick(train_rooms());
  const std::vector<std::string> who = draw_distinct(rng, names, 3);
  const std::vector<std::pair<std::string, std::string>> key_lines = {
      {fmt::format("{}: I can cover the {} shift at the front desk.\n", who[0], day),
       fmt::format("Who offered to cover the {} shift?", day)},
      {fmt::format("{}: I left the {} in the {}.\n", who[1], item, room),
       fmt::format("Where did {} leave the {}?", who[1], item)},
      {fmt::format("{}: Could we move the planning meeting to {}?\n", who[2],
                   rng.pick(train_weekdays())),
       fmt::format("To which day did {} want to move the planning meeting?", who[2])}};
  const std::vector<double> depths = train_fact_depths(rng, key_lines.size());
  proto.question = key_lines[rng.below(key_lines.size())].second;
  proto.meta["questions"] = nlohmann::json::array();
  for (const auto& kl : key_lines) proto.meta["questions"].push_back(kl.second);
  auto build = [&](size_t n, size_t) {
    Sample s = proto;
    s.context = "Chat log of the volunteer team:\n";
    size_t next = 0;
    for (size_t i = 0; i <= n && i <= lines.size(); ++i) {
      for (; next < key_lines.size() && (size_t)(depths[next] * (double)n) <= i; ++next)
        s.context += key_lines[next].first;
      if (i < n && i < lines.size()) s.context += lines[i];
    }
    return s;
  };
  return fit_to_budget(build, opt, proto.task, proto.max_new_tokens,
                       FitLimits{lines.size(), 0, 32});
}

}  // namespace

Sample gen_train_v2(std::string_view family, const TaskOptions& opt, const TextCorpus* fortunes,
                    Rng& rng, Rng& qrng, const Sample& proto_in) {
  Sample proto = proto_in;
  proto.task = std::string(family);
  if (family == "train_multi_value") return multi_value(opt, rng, proto);
  if (family == "train_two_hop") return two_hop(opt, rng, proto);
  if (family == "train_count") return count_records(opt, rng, qrng, proto);
  if (family == "train_extract_list") return extract_list(opt, rng, proto);
  if (family == "train_config") return config_file(opt, rng, qrng, proto);
  if (family == "train_dialogue") return dialogue(opt, fortunes, rng, proto);
  fail("unknown training family '{}'", family);
}

}  // namespace glimpse::eval::detail
