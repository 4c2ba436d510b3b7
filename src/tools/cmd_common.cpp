#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

void add_model_args(ArgParser& ap, SessionParams& sp) {
  ap.add({"-m", "--model"}, "FNAME",
         "model path (default: models/SmolLM2-135M-Instruct.Q4_1.gguf or $GLIMPSE_MODEL)",
         [&](const std::string& v) { sp.model_path = v; });
  ap.add({"-t", "--threads"}, "N", "number of threads (default: all cores)",
         [&](const std::string& v) { sp.n_threads = parse_int("-t", v, 1, 1024); });
  ap.add({"-c", "--ctx-size"}, "N",
         "size of the prompt context (default: 4096, 0 = loaded from model)",
         [&](const std::string& v) { sp.n_ctx = parse_int("-c", v, 0, 1 << 24); });
  ap.add({"-b", "--batch-size"}, "N", "prompt tokens per forward batch (default: 512)",
         [&](const std::string& v) { sp.n_batch = parse_int("-b", v, 1, 1 << 20); });
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace glimpse
