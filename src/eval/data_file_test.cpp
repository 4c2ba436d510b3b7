// --data files: the fields, their defaults, and an error naming the line for every bad
// input.
#include "eval/data_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace glimpse::eval {
namespace {
namespace fs = std::filesystem;

// The Error message of f(), or "" when it does not throw.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Sample line(const std::string& json) { return parse_data_line(json, 7, "f.jsonl:7"); }

TEST(EvalDataFile, FieldsAndDefaults) {
  const Sample s = line(R"({"context": "The code is 4417. Other text.", "question": "What is the code?",
      "answers": ["4417"], "evidence": ["The code is 4417."]})");
  EXPECT_EQ(s.task, "data");
  EXPECT_EQ(s.id, "data/7");
  EXPECT_EQ(s.context, "The code is 4417. Other text.");
  EXPECT_EQ(s.answers, std::vector<std::string>{"4417"});
  EXPECT_EQ(s.scoring, Scoring::kMatchAll);
  EXPECT_EQ(s.max_new_tokens, 64);
  EXPECT_EQ(s.evidence, std::vector<std::string>{"The code is 4417."});
  EXPECT_EQ(s.target_tokens, 0);
  EXPECT_EQ(s.meta.at("line"), 7);

  const Sample t = line(R"({"context": "c", "question": "q", "answers": ["a", "b"], "scoring": "match_part",
      "task": "my-qa.v1", "id": 12, "max_new_tokens": 8, "meta": {"source": "x"}})");
  EXPECT_EQ(t.task, "my-qa.v1");
  EXPECT_EQ(t.id, "12");
  EXPECT_EQ(t.scoring, Scoring::kMatchPart);
  EXPECT_EQ(t.max_new_tokens, 8);
  EXPECT_TRUE(t.evidence.empty());
  EXPECT_EQ(t.meta.at("user").at("source"), "x");

  // No answers, or an empty list: open-ended.
  EXPECT_EQ(line(R"({"context": "c", "question": "q"})").scoring, Scoring::kOpenEnded);
  EXPECT_EQ(line(R"({"context": "c", "question": "q", "answers": []})").scoring, Scoring::kOpenEnded);
}

// The seed identifies the case in the result cache: any change to what is run changes it.
TEST(EvalDataFile, SeedHashesTheContent) {
  const std::string base = R"({"context": "c d", "question": "q", "answers": ["a"], "id": "x")";
  const uint64_t s0 = line(base + "}").seed;
  EXPECT_EQ(line(base + "}").seed, s0);
  EXPECT_EQ(parse_data_line(base + "}", 99, "other:99").seed, s0);  // the line number does not count
  for (const std::string& more : {std::string(R"(, "max_new_tokens": 9})"), std::string(R"(, "task": "t"})"),
                                  std::string(R"(, "scoring": "match_part"})"),
                                  std::string(R"(, "evidence": ["c"]})")})
    EXPECT_NE(line(base + more).seed, s0) << more;
  EXPECT_NE(line(R"({"context": "c e", "question": "q", "answers": ["a"], "id": "x"})").seed, s0);
  EXPECT_NE(line(R"({"context": "c d", "question": "q", "answers": ["b"], "id": "x"})").seed, s0);
  EXPECT_NE(line(R"({"context": "c d", "question": "q", "answers": ["a"], "id": "y"})").seed, s0);
}

TEST(EvalDataFile, BadLinesNameTheLineAndTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"context": "c", "question": )", "f.jsonl:7: malformed JSON"},
      {R"(["context"])", "expected a JSON object, got array"},
      {R"({"question": "q"})", "missing field 'context'"},
      {R"({"context": "c"})", "missing field 'question'"},
      {R"({"context": 5, "question": "q"})", "field 'context' must be a non-empty string"},
      {R"({"context": "", "question": "q"})", "field 'context' must be a non-empty string"},
      {R"({"context": "c", "question": "q", "answers": "a"})", "field 'answers' must be a list of strings"},
      {R"({"context": "c", "question": "q", "answers": ["a", 3]})", "field 'answers' must be a list of non-empty strings"},
      {R"({"context": "c", "question": "q", "answer": ["a"]})", "unknown field 'answer'"},
      {R"({"context": "c", "question": "q", "evidence": ["not there"]})", "evidence 1 does not occur verbatim"},
      {R"({"context": "c", "question": "q", "evidence": "c"})", "field 'evidence' must be a list of strings"},
      {R"({"context": "c", "question": "q", "max_new_tokens": 0})", "'max_new_tokens' must be an integer in 1..4096"},
      {R"({"context": "c", "question": "q", "max_new_tokens": 2.5})", "'max_new_tokens' must be an integer"},
      {R"({"context": "c", "question": "q", "max_new_tokens": "8"})", "'max_new_tokens' must be an integer"},
      {R"({"context": "c", "question": "q", "task": "a|b"})", "task 'a|b' may hold only"},
      {R"({"context": "c", "question": "q", "id": [1]})", "field 'id' must be a non-empty string"},
      {R"({"context": "c", "question": "q", "answers": ["a"], "scoring": "exact"})", "must be \"match_all\" or \"match_part\""},
      {R"({"context": "c", "question": "q", "scoring": "match_all"})", "'scoring' needs answers"},
      {R"({"context": "c", "question": "q", "meta": 3})", "field 'meta' must be a JSON object"},
  };
  for (const auto& [json, want] : cases) {
    const std::string msg = error_of([&] { line(json); });
    EXPECT_NE(msg.find(want), std::string::npos) << json << "\n  -> " << msg;
    EXPECT_EQ(msg.rfind("f.jsonl:7: ", 0), 0u) << msg;
  }
}

TEST(EvalDataFile, LoadsAFileAndRefusesRepeatsAndEmptyFiles) {
  const fs::path dir = fs::temp_directory_path() / ("glimpse-data-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string f = (dir / "cases.jsonl").string();
  auto write = [&](const std::string& text) { std::ofstream(f, std::ios::binary | std::ios::trunc) << text; };
  write("{\"context\": \"a\", \"question\": \"q\", \"answers\": [\"a\"]}\r\n\n"
        "  \n{\"context\": \"b\", \"question\": \"q\", \"task\": \"t\"}\n");
  const std::vector<Sample> v = load_data_file(f);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].id, "data/1");
  EXPECT_EQ(v[1].id, "t/4");  // blank lines still count
  EXPECT_EQ(v[1].meta.at("line"), 4);

  write("{\"context\": \"a\", \"question\": \"q\", \"id\": \"x\"}\n{\"context\": \"b\", \"question\": \"q\", \"id\": \"x\"}\n");
  EXPECT_NE(error_of([&] { load_data_file(f); }).find(f + ":2: id 'x' repeats line 1"), std::string::npos);
  write("{\"context\": \"a\", \"question\": \"q\"}\n{\"context\": \"b\"\n");
  EXPECT_NE(error_of([&] { load_data_file(f); }).find(f + ":2: malformed JSON"), std::string::npos);
  write("\n\n");
  EXPECT_NE(error_of([&] { load_data_file(f); }).find("holds no cases"), std::string::npos);
  EXPECT_NE(error_of([&] { load_data_file((dir / "missing.jsonl").string()); }).find("cannot read"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace glimpse::eval
