// Table-driven command-line parsing. One table per subcommand drives parsing, --help and
// the flag list in the README; flag names and defaults follow llama.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace glimpse {

struct ArgSpec {
  std::vector<std::string> names;  // e.g. {"-n", "--n-predict"}
  std::string value_name;          // empty for a switch
  std::string help;                // includes the default
  std::function<void(const std::string&)> apply;
};

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)) {}

  // A flag that takes a value.
  void add(std::vector<std::string> names, std::string value_name, std::string help,
           std::function<void(const std::string&)> apply);
  // A switch.
  void flag(std::vector<std::string> names, std::string help, std::function<void()> apply);

  // Parses argv[first..argc). Returns false if --help was printed. Throws Error on bad input.
  bool parse(int argc, char** argv, int first);
  std::string help() const;

 private:
  const ArgSpec* find(const std::string& name) const;
  std::string command_, summary_;
  std::vector<ArgSpec> specs_;
};

// Strict numeric parsing: the whole string must be a number in range; Error names the flag.
int parse_int(const std::string& flag, const std::string& v, long long lo, long long hi);
float parse_float(const std::string& flag, const std::string& v);
std::vector<int> parse_int_list(const std::string& flag, const std::string& v);

}  // namespace glimpse
