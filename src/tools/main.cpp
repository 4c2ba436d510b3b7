// glimpse command-line entry: dispatches to a subcommand; every user error ends as one
// "error: ..." line on stderr and exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "lookahead/policy_lookahead.h"
#include "tools/commands.h"
#include "util/error.h"

namespace {
const char* kUsage =
    "usage: glimpse <command> [options]\n\n"
    "commands:\n"
    "  run        generate text from a prompt (default when the first argument is a flag)\n"
    "  tokenize   print the token ids of a text as a JSON array\n"
    "  serve      OpenAI-compatible HTTP server (per-request KV policies)\n"
    "  bench      llama-bench-style throughput tests (pp, tg, at depth)\n"
    "  eval       RULER-style evaluation of KV eviction policies (quality and cost)\n"
    "  prompts    write LookaheadKV training prompts (JSONL), disjoint from the evaluation\n"
    "  logits     dump teacher-forced logits / greedy continuations (parity testing)\n"
    "  train-lookahead  train a LookaheadKV module (KV eviction that looks ahead) on prompts\n\n"
    "'glimpse <command> --help' lists a command's options.\n";
}

int main(int argc, char** argv) {
  try {
    glimpse::register_lookahead_policy();  // the policy table is complete before flags are read
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
      std::fputs(kUsage, argc < 2 ? stderr : stdout);
      return argc < 2 ? 1 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd[0] == '-') return glimpse::cmd_run(argc, argv, 1);
    if (cmd == "run") return glimpse::cmd_run(argc, argv, 2);
    if (cmd == "tokenize") return glimpse::cmd_tokenize(argc, argv, 2);
    if (cmd == "logits") return glimpse::cmd_logits(argc, argv, 2);
    if (cmd == "bench") return glimpse::cmd_bench(argc, argv, 2);
    if (cmd == "eval") return glimpse::cmd_eval(argc, argv, 2);
    if (cmd == "prompts") return glimpse::cmd_prompts(argc, argv, 2);
    if (cmd == "train-lookahead") return glimpse::cmd_train_lookahead(argc, argv, 2);
    if (cmd == "serve") return glimpse::cmd_serve(argc, argv, 2);
    std::fprintf(stderr, "error: unknown command '%s' (see glimpse --help)\n", cmd.c_str());
    return 1;
  } catch (const glimpse::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
