// glimpse logits: teacher-forced logits of a token sequence and its greedy continuation,
// written raw for comparison with another engine (tests/parity).
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ops/isa.h"
#include "runtime/context.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

int cmd_logits(int argc, char** argv, int first) {
  EngineParams sp;
  sp.context.n_ctx = 0;
  std::string tokens_path, out_path, greedy_path;
  int n_greedy = 0, stride = 1;
  ArgParser ap("logits", "Dump teacher-forced logits ([n_tokens][n_vocab] f32) and greedy text.");
  add_model_args(ap, sp);
  ap.add({"--tokens"}, "FNAME", "JSON array of token ids", [&](const std::string& v) { tokens_path = v; });
  ap.add({"-o", "--output"}, "FNAME", "raw f32 logits output", [&](const std::string& v) { out_path = v; });
  ap.add({"--greedy"}, "N", "also generate N greedy tokens after the sequence",
         [&](const std::string& v) { n_greedy = parse_int("--greedy", v, 0, 1 << 20); });
  ap.add({"--rows-stride"}, "N",
         "write the logits of tokens 0, N, 2N, ... only (large vocabularies: 1 MB a row)",
         [&](const std::string& v) { stride = parse_int("--rows-stride", v, 1, 1 << 20); });
  ap.add({"--greedy-out"}, "FNAME", "JSON output for the greedy tokens",
         [&](const std::string& v) { greedy_path = v; });
  if (!ap.parse(argc, argv, first)) return 0;
  if (tokens_path.empty()) fail("--tokens is required");
  std::vector<int32_t> tokens;
  try {
    tokens = nlohmann::json::parse(read_text_file(tokens_path)).get<std::vector<int32_t>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a JSON array of token ids ({})", tokens_path, e.what());
  }
  Context s(Engine::load(sp));
  // The level the kernels run at (GLIMPSE_ISA may lower it): tests/parity checks it.
  std::fprintf(stderr, "glimpse logits: isa = %s\n", isa_level_name(isa_level()));
  std::FILE* out = nullptr;
  if (!out_path.empty()) {
    out = std::fopen(out_path.c_str(), "wb");
    if (!out) fail("cannot write '{}'", out_path);
  }
  const int64_t V = s.model().config().n_vocab;
  s.prefill(tokens, out ? Context::RowsCallback([&](int64_t b, const float* l, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      if ((b + i) % stride == 0) std::fwrite(l + i * V, sizeof(float), (size_t)V, out);
  }) : Context::RowsCallback());
  if (out) std::fclose(out);
  if (n_greedy > 0) {
    GreedyOptions g;
    g.max_new = n_greedy;
    g.stop_at_eog = false;
    g.feed_last = false;
    const std::string js = nlohmann::json(s.greedy(g, nullptr).tokens).dump();
    if (greedy_path.empty()) {
      std::puts(js.c_str());
    } else {
      std::ofstream(greedy_path) << js << "\n";
    }
  }
  return 0;
}

}  // namespace glimpse
