// Subcommands of the glimpse CLI; each returns the process exit code.
#pragma once

#include "kv/policy.h"
#include "runtime/session.h"
#include "tools/args.h"

namespace glimpse {

// -m -t -c -b, shared by every command that loads a model.
void add_model_args(ArgParser& ap, SessionParams& sp);

// --kv-policy and its knobs, shared by run, eval and bench.
// With allow_list, --kv-policy takes a comma-separated list (bench compares policies).
void add_kv_args(ArgParser& ap, KvPolicySettings& kv, bool allow_list = false);

std::string read_text_file(const std::string& path);
std::vector<std::string> split_list(const std::string& v);  // "a,b" -> {"a", "b"}

int cmd_run(int argc, char** argv, int first);
int cmd_tokenize(int argc, char** argv, int first);
int cmd_logits(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_eval(int argc, char** argv, int first);
int cmd_prompts(int argc, char** argv, int first);
int cmd_train_lookahead(int argc, char** argv, int first);

}  // namespace glimpse
