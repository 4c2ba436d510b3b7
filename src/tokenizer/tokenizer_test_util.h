// Where tokenizer tests find their inputs: fixtures under the shared directory, the real
// model file, and the committed reference data under tests/parity.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace glimpse::testing {

inline std::string source_dir() {
  if (const char* s = std::getenv("GLIMPSE_SOURCE_DIR"); s && *s) return s;
  return GLIMPSE_SOURCE_DIR;
}

// GLIMPSE_SHARED_DIR, else <source>/../shared.
inline std::string shared_dir() {
  if (const char* s = std::getenv("GLIMPSE_SHARED_DIR"); s && *s) return s;
  return source_dir() + "/../shared";
}

inline std::string fixture_dir() { return shared_dir() + "/conformance/tokenizer"; }

// GLIMPSE_MODEL, else <source>/models/SmolLM2-135M-Instruct.Q4_1.gguf.
inline std::string model_path() {
  if (const char* s = std::getenv("GLIMPSE_MODEL"); s && *s) return s;
  return source_dir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline bool exists(const std::string& p) { return std::filesystem::exists(p); }

inline std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace glimpse::testing
