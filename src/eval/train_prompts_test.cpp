// Training prompts: deterministic, on the training side of the corpus split only, and with
// names, word lists and value formats of their own (none of the evaluation's).
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "eval/text_corpus.h"
#include "eval/train_prompts.h"
#include "eval/train_words.h"
#include "eval/words.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

int64_t fake_count(std::string_view s) { return ((int64_t)s.size() + 3) / 4; }

TextCorpus synthetic(CorpusSide side) {
  std::vector<std::string> paras;
  for (int p = 0; p < 300; ++p)
    paras.push_back("Paragraph " + std::to_string(p) + " says that the archive keeps old "
                    "releases. It also explains how mirrors copy them every night.");
  return TextCorpus::from_paragraphs(std::move(paras), side, "synthetic");
}

TaskOptions opts(const TextCorpus& c) {
  TaskOptions o;
  o.seed = 1;
  o.count_tokens = fake_count;
  o.corpus = &c;
  return o;
}

TEST(TrainPrompts, WordListsShareNothingWithTheEvaluationKeys) {
  std::set<std::string> eval_words(adjectives().begin(), adjectives().end());
  eval_words.insert(nouns().begin(), nouns().end());
  for (const auto* list : {&train_given_names(), &train_family_names(), &train_shades(),
                           &train_objects(), &train_number_words(), &train_workshops(),
                           &train_weekdays(), &train_rooms(), &train_config_sections(),
                           &train_config_keys()}) {
    EXPECT_GE(list->size(), 7u);
    for (const std::string& w : *list) {
      std::string lower = w;
      for (char& c : lower) c = (char)std::tolower((unsigned char)c);
      EXPECT_EQ(eval_words.count(lower), 0u) << w;
    }
  }
}

TEST(TrainPrompts, RefuseTheEvaluationSide) {
  const TextCorpus train = synthetic(CorpusSide::kTrain), eval = synthetic(CorpusSide::kEval);
  EXPECT_NO_THROW(make_train_prompt(0, {512}, opts(train), &train));
  EXPECT_THROW(make_train_prompt(0, {512}, opts(eval), nullptr), Error);
  EXPECT_THROW(make_train_prompt(0, {512}, opts(train), &eval), Error);
}

TEST(TrainPrompts, OwnFactsAndRecords) {
  const TextCorpus train = synthetic(CorpusSide::kTrain);
  const std::regex eval_key("\\b[a-z]+-[a-z]+\\b");          // "quiet-harbor"
  const std::regex eval_value("\\b\\d{5,}\\b|\\d+\\.\\d+\\.\\d+");  // 7-digit, port, version, address
  std::set<std::string> families;
  for (size_t i = 0; i < 80; ++i) {
    const Sample a = make_train_prompt(i, {512, 1024}, opts(train), &train);
    EXPECT_EQ(a.to_json(), make_train_prompt(i, {512, 1024}, opts(train), &train).to_json());
    families.insert(a.task);
    if (a.task != "train_planted_facts" && a.task != "train_records") continue;
    const std::string text = a.context + "\n" + a.question;
    EXPECT_FALSE(std::regex_search(text, eval_key)) << a.id;
    EXPECT_FALSE(std::regex_search(text, eval_value)) << a.id;
    EXPECT_EQ(text.find("magic number"), std::string::npos);
  }
  EXPECT_EQ(families.size(), train_families().size());
}

TEST(TrainPrompts, SecondSetCoversElevenFamiliesAndKeepsTheFirstUnchanged) {
  const TextCorpus train = synthetic(CorpusSide::kTrain);
  const std::regex eval_key("\\b[a-z]+-[a-z]+\\b");
  const std::regex eval_value("\\b\\d{5,}\\b|\\d+\\.\\d+\\.\\d+");
  std::set<std::string> families;
  for (size_t i = 0; i < 200; ++i) {
    const Sample a = make_train_prompt(i, {512, 2048}, opts(train), &train, TrainSet::kV2);
    EXPECT_EQ(a.to_json(),
              make_train_prompt(i, {512, 2048}, opts(train), &train, TrainSet::kV2).to_json());
    families.insert(a.task);
    EXPECT_EQ(a.max_new_tokens, 256);
    // Several questions about the same document, the asked one first, no repeats.
    ASSERT_TRUE(a.meta.contains("questions")) << a.id;
    const auto& qs = a.meta["questions"];
    EXPECT_GE(qs.size(), a.task == "train_planted_facts" ? 1u : 2u) << a.id;
    EXPECT_EQ(qs[0].get<std::string>(), a.question);
    EXPECT_EQ(std::set<std::string>(qs.begin(), qs.end()).size(), qs.size()) << a.id;
    // Lengths are prompt lengths (the answer's 256 tokens come on top), filled to 80% at least.
    EXPECT_LE(fake_count(a.prompt()), a.target_tokens - 32 - 256) << a.id;
    EXPECT_GE(fake_count(a.prompt()), (a.target_tokens - 256) * 8 / 10) << a.id;
    if (a.task == "train_passage_instruct" || a.task == "train_passage_keyword" ||
        a.task == "train_fortune_pick")
      continue;  // handbook text may hold anything
    const std::string text = a.task == "train_dialogue" ? a.question : a.context + "\n" + a.question;
    EXPECT_FALSE(std::regex_search(text, eval_key)) << a.id;
    EXPECT_FALSE(std::regex_search(text, eval_value)) << a.id;
    EXPECT_EQ(text.find("magic number"), std::string::npos);
  }
  EXPECT_EQ(families.size(), 11u);
  EXPECT_EQ(families.size(), train_families(TrainSet::kV2).size());
  // The first set's samples do not depend on the second set.
  EXPECT_EQ(train_families(TrainSet::kV1).size(), 5u);
  EXPECT_THROW(parse_train_set("v3"), Error);
}

}  // namespace
}  // namespace glimpse::eval
