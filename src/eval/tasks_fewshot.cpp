// Few-shot classification (in the spirit of the in-context-learning tasks of long-context
// suites): many labelled lines "Text: <sentence>\nLabel: <topic>", then one unlabelled
// line in the question. Sentences are synthetic: a subject and a predicate from the same
// topic's lexicon (written for this project), so the label is unambiguous. The label words
// are fixed and listed in the question. Answer: the topic word (match_part).
#include <fmt/format.h>

#include "eval/tasks_internal.h"

namespace glimpse::eval::detail {
namespace {

struct Topic {
  const char* label;
  std::vector<const char*> subjects;
  std::vector<const char*> predicates;
};

const std::vector<Topic>& topics() {
  static const std::vector<Topic> t = {
      {"sports",
       {"The striker", "The goalkeeper", "Our team", "The coach", "The referee", "The sprinter",
        "The tennis player", "The home side", "The captain", "The cyclist"},
       {"scored twice in the second half", "won the match on penalties",
        "broke the national record in the final", "trained hard before the championship",
        "was sent off after a rough tackle", "lifted the trophy in front of the fans",
        "signed a new contract with the club", "lost the semifinal by one point",
        "finished the marathon in record time", "celebrated a late goal"}},
      {"food",
       {"The chef", "My grandmother", "The bakery", "The new restaurant", "The waiter",
        "Our neighbour", "The pastry cook", "The street vendor", "The cookbook", "The kitchen"},
       {"baked fresh bread with rosemary", "served a spicy tomato soup",
        "roasted vegetables with garlic and olive oil", "made pancakes with maple syrup",
        "recommended the grilled salmon", "prepared a creamy mushroom risotto",
        "sold warm chestnuts and sweet pastries", "added too much salt to the stew",
        "explained how to fold dumplings", "whipped cream for the strawberry cake"}},
      {"weather",
       {"The forecast", "The storm", "The morning fog", "A cold front", "The heatwave",
        "The wind", "Heavy rain", "The thunderstorm", "The snowfall", "The meteorologist"},
       {"brought strong gusts along the coast", "is expected to clear by the afternoon",
        "left ten centimetres of snow on the roads", "pushed temperatures above thirty degrees",
        "caused flooding in the low valleys", "will bring showers over the weekend",
        "kept the sky grey and humid all day", "warned of hail in the north",
        "dropped the temperature below freezing overnight", "moved slowly across the plains"}},
      {"music",
       {"The orchestra", "The guitarist", "The band", "The pianist", "The choir",
        "The young composer", "The drummer", "The singer", "The violinist", "The jazz trio"},
       {"played a new symphony in the concert hall", "released an album of acoustic songs",
        "rehearsed the chorus all evening", "tuned the strings before the show",
        "performed a slow ballad in a minor key", "recorded the final track in the studio",
        "improvised a long solo on stage", "sang the melody an octave higher",
        "composed a sonata for piano and cello", "kept the rhythm steady through the encore"}},
      {"travel",
       {"The tourists", "Our flight", "The backpacker", "The train to the coast", "The ferry",
        "The tour guide", "My cousin", "The cruise ship", "The hotel", "The travel agent"},
       {"departed for the islands at dawn", "booked a room with a view of the harbour",
        "crossed the border after a long queue", "visited three museums in one afternoon",
        "was delayed by two hours at the airport", "explored the old town on foot",
        "arrived at the mountain village before sunset", "recommended a hostel near the station",
        "changed planes in a busy hub", "followed a scenic route along the cliffs"}},
  };
  return t;
}

std::string sentence(Rng& rng, const Topic& t) {
  return fmt::format("{} {}.", t.subjects[rng.below(t.subjects.size())],
                     t.predicates[rng.below(t.predicates.size())]);
}

}  // namespace

Sample gen_fewshot(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  const auto& ts = topics();
  const size_t query_topic = rng.below(ts.size());
  const std::string query = sentence(rng, ts[query_topic]);
  Rng ex_rng(rng.next());
  std::vector<std::string> examples;  // grows; example i is fixed once drawn

  std::string labels;
  for (size_t i = 0; i < ts.size(); ++i)
    labels += fmt::format("{}{}", i == 0 ? "" : i + 1 == ts.size() ? " or " : ", ", ts[i].label);
  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchPart;
  proto.max_new_tokens = 8;
  proto.answers = {ts[query_topic].label};
  proto.question = fmt::format("Text: {}\nWhat is the label of this text? Answer with one word: {}.",
                               query, labels);
  proto.meta = {{"query", query}};

  auto build = [&](size_t n, size_t) {
    while (examples.size() < n) {
      const Topic& t = ts[ex_rng.below(ts.size())];
      examples.push_back(fmt::format("Text: {}\nLabel: {}\n\n", sentence(ex_rng, t), t.label));
    }
    Sample s = proto;
    s.context = fmt::format("Each text below is labelled with its topic ({}).\n\n", labels);
    for (size_t i = 0; i < n; ++i) s.context += examples[i];
    while (!s.context.empty() && s.context.back() == '\n') s.context.pop_back();
    s.meta["n_examples"] = n;
    return s;
  };
  FitLimits lim;
  lim.n_probe = 16;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

}  // namespace glimpse::eval::detail
