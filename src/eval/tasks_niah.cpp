// Needle in a haystack (RULER's NIAH family).
//
// A needle is the sentence "One of the special magic numbers for <key> is: <value>." with
// key = "adjective-noun" and value = a 7-digit number. The haystack is either the repeated
// filler (…_noise) or sentences of the text corpus (…_text). Variants:
//   single:     1 needle; ask its value.
//   multikey:   4 needles with different keys; ask one (the others are distractors). Its
//               question set asks each needle in turn (compress once, ask four).
//   multivalue: 4 needles with the same key and different values; ask all values.
//   multiquery: 4 needles with different keys; ask all 4 values at once.
// Needles sit at depths drawn from the seed (spread over the haystack for several).
#include <fmt/format.h>

#include <algorithm>

#include "eval/tasks_internal.h"
#include "eval/words.h"
#include "util/error.h"

namespace glimpse::eval::detail {
namespace {

constexpr int kValueDigits = 7;
constexpr const char* kIntro =
    "Some special magic numbers are hidden within the following text. Make sure to memorize "
    "them. I will quiz you about the numbers afterwards.\n\n";

std::string needle(const std::string& key, const std::string& value) {
  return fmt::format("One of the special magic numbers for {} is: {}.", key, value);
}

std::string single_question(const std::string& key) {
  return fmt::format("What is the special magic number for {} mentioned in the text above? "
                     "Answer with the number only.", key);
}

std::string join_list(const std::vector<std::string>& v) {
  // "a", "a and b", "a, b and c"
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += i + 1 == v.size() ? " and " : ", ";
    out += v[i];
  }
  return out;
}

}  // namespace

Sample gen_niah(std::string_view task, const TaskOptions& opt) {
  const bool text = task.ends_with("_text");
  const std::string_view kind = task.substr(5, task.find('_', 5) - 5);  // after "niah_"
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));

  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  std::vector<std::string> keys, values;
  std::vector<std::string> needle_keys;  // key of each needle, in needle order
  std::vector<std::string> asked;
  if (kind == "single") {
    keys = distinct_keys(rng, 1);
    values = distinct_numbers(rng, 1, kValueDigits);
    needle_keys = keys;
    asked = {keys[0]};
    proto.answers = {values[0]};
    proto.max_new_tokens = 32;
  } else if (kind == "multikey") {
    keys = distinct_keys(rng, 4);
    values = distinct_numbers(rng, 4, kValueDigits);
    needle_keys = keys;
    asked = {keys[0]};
    proto.answers = {values[0]};
    proto.max_new_tokens = 32;
  } else if (kind == "multivalue") {
    keys = distinct_keys(rng, 1);
    values = distinct_numbers(rng, 4, kValueDigits);
    needle_keys.assign(4, keys[0]);
    asked = {keys[0]};
    proto.answers = values;
    proto.max_new_tokens = 64;
  } else if (kind == "multiquery") {
    keys = distinct_keys(rng, 4);
    values = distinct_numbers(rng, 4, kValueDigits);
    needle_keys = keys;
    asked = keys;
    proto.answers = values;
    proto.max_new_tokens = 64;
  } else {
    fail("unknown needle-in-a-haystack variant '{}'", task);
  }
  const std::vector<double> depths = needle_depths(rng, needle_keys.size());
  std::vector<Insert> inserts;
  for (size_t i = 0; i < needle_keys.size(); ++i) {
    inserts.push_back({depths[i], needle(needle_keys[i], values[i])});
    // The needles of the asked keys are the evidence (distractor needles are not).
    if (std::find(asked.begin(), asked.end(), needle_keys[i]) != asked.end())
      proto.evidence.push_back(inserts.back().text);
  }

  if (kind == "multivalue") {
    proto.question = fmt::format(
        "What are all the special magic numbers for {} mentioned in the text above? Answer with "
        "the numbers only, separated by commas.", keys[0]);
  } else if (kind == "multiquery") {
    proto.question = fmt::format(
        "What are the special magic numbers for {} mentioned in the text above? Answer with the "
        "numbers only, separated by commas.", join_list(asked));
  } else {
    proto.question = single_question(asked[0]);
  }
  proto.meta = {{"haystack", text ? "text" : "noise"},
                {"needle_keys", needle_keys},
                {"needle_values", values},
                {"needle_depths", depths},
                {"asked_keys", asked}};
  if (kind == "multikey") {  // each needle asked in turn (ask_question), the sample's own first
    nlohmann::json set = nlohmann::json::array();
    for (size_t i = 0; i < keys.size(); ++i)
      set.push_back(question_entry(single_question(keys[i]), {values[i]}, {inserts[i].text},
                                   proto.max_new_tokens, proto.scoring));
    proto.meta["questions"] = std::move(set);
  }

  Segments segs;
  FitLimits lim;
  lim.n_probe = 64;
  if (text) {
    const int64_t budget = prompt_budget(opt, proto.max_new_tokens);
    segs = corpus_segments(opt, rng.next(), (size_t)std::max<int64_t>(budget, 0) * 16 + 4096);
    lim.n_max = segs.size();
    lim.m_max = max_segment_words(segs);
  }
  auto build = [&](size_t n, size_t m) {
    Sample s = proto;
    if (!text && segs.size() < n)
      for (size_t i = segs.size(); i < n; ++i) segs.push_back(noise_segment(i));
    s.context = kIntro + join_with_inserts(segs, n, inserts, m);
    return s;
  };
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

}  // namespace glimpse::eval::detail
