#include "tools/args.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/error.h"

namespace glimpse {

void ArgParser::add(std::vector<std::string> names, std::string value_name, std::string help,
                    std::function<void(const std::string&)> apply) {
  specs_.push_back({std::move(names), std::move(value_name), std::move(help), std::move(apply)});
}

void ArgParser::flag(std::vector<std::string> names, std::string help, std::function<void()> apply) {
  specs_.push_back({std::move(names), "", std::move(help),
                    [apply = std::move(apply)](const std::string&) { apply(); }});
}

const ArgSpec* ArgParser::find(const std::string& name) const {
  for (const auto& s : specs_)
    for (const auto& n : s.names)
      if (n == name) return &s;
  return nullptr;
}

bool ArgParser::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    std::string value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
    }
    const ArgSpec* s = find(a);
    if (!s) fail("unknown argument '{}' for 'glimpse {}' (see glimpse {} --help)", a, command_, command_);
    if (s->value_name.empty()) {
      if (has_inline) fail("'{}' takes no value", a);
      s->apply("");
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) fail("'{}' needs a value ({})", a, s->value_name);
      value = argv[++i];
    }
    s->apply(value);
  }
  return true;
}

std::string ArgParser::help() const {
  std::string out = fmt::format("usage: glimpse {} [options]\n\n{}\n\noptions:\n", command_, summary_);
  for (const auto& s : specs_) {
    std::string names;
    for (const auto& n : s.names) names += (names.empty() ? "" : ", ") + n;
    if (!s.value_name.empty()) names += " " + s.value_name;
    out += fmt::format("  {:<34} {}\n", names, s.help);
  }
  out += fmt::format("  {:<34} {}\n", "-h, --help", "show this help");
  return out;
}

int parse_int(const std::string& flag, const std::string& v, long long lo, long long hi) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE)
    fail("{}: '{}' is not an integer", flag, v);
  if (x < lo || x > hi) fail("{}: {} is out of range [{}, {}]", flag, x, lo, hi);
  return (int)x;
}

float parse_float(const std::string& flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
    fail("{}: '{}' is not a number", flag, v);
  return (float)x;
}

std::vector<int> parse_int_list(const std::string& flag, const std::string& v) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const std::string part = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    out.push_back(parse_int(flag, part, 0, 1 << 30));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace glimpse
