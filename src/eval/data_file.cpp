#include "eval/data_file.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <map>

#include "util/error.h"
#include "util/hash.h"

namespace glimpse::eval {

namespace {

constexpr int kDefaultMaxNew = 64;
constexpr int kMaxNewLimit = 4096;
const char* const kFields[] = {"context", "question", "answers", "scoring", "task",
                               "id", "max_new_tokens", "evidence", "meta"};

// nlohmann's messages open with "[json.exception.parse_error.101] " and count lines of the
// one line parsed ("at line 1, column 34"): only the column is news.
std::string json_message(const nlohmann::json::exception& e) {
  std::string w = e.what();
  const size_t close = w.find("] ");
  if (w.rfind("[json.exception", 0) == 0 && close != std::string::npos) w = w.substr(close + 2);
  if (const size_t at = w.find("at line 1, column "); at != std::string::npos) w.erase(at + 3, 8);
  return w;
}

// Shortened for messages: the first 60 bytes.
std::string excerpt(const std::string& s) {
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

std::string string_field(const nlohmann::json& j, const char* name, const std::string& where) {
  if (!j.contains(name)) fail("{}: missing field '{}' (a non-empty string)", where, name);
  const nlohmann::json& v = j.at(name);
  if (!v.is_string() || v.get_ref<const std::string&>().empty())
    fail("{}: field '{}' must be a non-empty string", where, name);
  return v.get<std::string>();
}

std::vector<std::string> string_list(const nlohmann::json& j, const char* name,
                                     const std::string& where) {
  std::vector<std::string> out;
  if (!j.contains(name) || j.at(name).is_null()) return out;
  const nlohmann::json& v = j.at(name);
  if (!v.is_array()) fail("{}: field '{}' must be a list of strings", where, name);
  for (const auto& x : v) {
    if (!x.is_string() || x.get_ref<const std::string&>().empty())
      fail("{}: field '{}' must be a list of non-empty strings", where, name);
    out.push_back(x.get<std::string>());
  }
  return out;
}

// The case's identity for result caches: every field that changes its result.
uint64_t content_hash(const Sample& s) {
  Fnv1a h;
  auto str = [&](const std::string& x) {
    h.value<uint64_t>(x.size());
    h.str(x);
  };
  for (const std::string* x : {&s.task, &s.id, &s.context, &s.question}) str(*x);
  h.value<uint64_t>(s.answers.size());
  for (const auto& a : s.answers) str(a);
  str(std::string(scoring_name(s.scoring)));
  h.value<int64_t>(s.max_new_tokens);
  h.value<uint64_t>(s.evidence.size());
  for (const auto& e : s.evidence) str(e);
  return h.digest();
}

}  // namespace

Sample parse_data_line(const std::string& line, size_t line_no, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", where, json_message(e));
  }
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", where, j.type_name());
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const char* f : kFields) known = known || k == f;
    if (!known)
      fail("{}: unknown field '{}' (known: context, question, answers, scoring, task, id, "
           "max_new_tokens, evidence, meta)", where, k);
  }
  Sample s;
  s.context = string_field(j, "context", where);
  s.question = string_field(j, "question", where);
  s.answers = string_list(j, "answers", where);
  s.evidence = string_list(j, "evidence", where);
  s.task = j.contains("task") ? string_field(j, "task", where) : "data";
  for (char c : s.task)
    if (!std::isalnum((unsigned char)c) && c != '_' && c != '-' && c != '.')
      fail("{}: task '{}' may hold only letters, digits, '_', '-' and '.'", where, s.task);
  if (!j.contains("id")) {
    s.id = fmt::format("{}/{}", s.task, line_no);
  } else if (j.at("id").is_number_integer()) {
    s.id = j.at("id").dump();
  } else {
    s.id = string_field(j, "id", where);
  }
  s.max_new_tokens = kDefaultMaxNew;
  if (j.contains("max_new_tokens")) {
    const nlohmann::json& m = j.at("max_new_tokens");
    if (!m.is_number_integer() || m.get<int64_t>() < 1 || m.get<int64_t>() > kMaxNewLimit)
      fail("{}: field 'max_new_tokens' must be an integer in 1..{}", where, kMaxNewLimit);
    s.max_new_tokens = m.get<int>();
  }
  if (s.answers.empty()) {
    s.scoring = Scoring::kOpenEnded;
    if (j.contains("scoring")) fail("{}: 'scoring' needs answers (without them the case is open-ended)", where);
  } else {
    const std::string sc = j.contains("scoring") ? string_field(j, "scoring", where) : "match_all";
    if (sc != "match_all" && sc != "match_part")
      fail("{}: field 'scoring' must be \"match_all\" or \"match_part\"", where);
    s.scoring = parse_scoring(sc);
  }
  for (size_t i = 0; i < s.evidence.size(); ++i)
    if (s.context.find(s.evidence[i]) == std::string::npos)
      fail("{}: evidence {} does not occur verbatim in the context: \"{}\"", where, i + 1,
           excerpt(s.evidence[i]));
  s.meta = {{"line", line_no}};
  if (j.contains("meta")) {
    if (!j.at("meta").is_object()) fail("{}: field 'meta' must be a JSON object", where);
    s.meta["user"] = j.at("meta");
  }
  s.target_tokens = 0;
  s.seed = content_hash(s);
  return s;
}

std::vector<Sample> load_data_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--data: cannot read '{}'", path);
  std::vector<Sample> out;
  std::map<std::string, size_t> ids;  // id -> line
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, no);
    Sample s = parse_data_line(line, no, where);
    if (auto [it, fresh] = ids.emplace(s.id, no); !fresh)
      fail("{}: id '{}' repeats line {}", where, s.id, it->second);
    out.push_back(std::move(s));
  }
  if (out.empty()) fail("--data: '{}' holds no cases", path);
  return out;
}

}  // namespace glimpse::eval
