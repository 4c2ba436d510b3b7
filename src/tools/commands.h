// Subcommands of the glimpse CLI; each returns the process exit code.
#pragma once

#include "kv/policy.h"
#include "runtime/engine.h"
#include "sampling/sampler.h"
#include "tools/args.h"

namespace glimpse {

// KV cache types to compare (bench: -ctk f16,q8_0 runs every test per type).
struct KvTypeLists {
  std::vector<KvType> k{KvType::F16}, v{KvType::F16};
};

// -m -t -c -b -ctk -ctv, shared by every command that loads a model. With lists, -ctk and
// -ctv take comma-separated lists into *lists instead of one type into sp.
void add_model_args(ArgParser& ap, EngineParams& sp, KvTypeLists* lists = nullptr);

// --kv-policy and its knobs, shared by run, eval and bench.
// With allow_list, --kv-policy takes a comma-separated list (bench compares policies).
// Values are range-checked by validate_policy_settings (kv/policy.h), which every command
// calls after parsing.
void add_kv_args(ArgParser& ap, KvPolicySettings& kv, bool allow_list = false);

// --temp --top-k --top-p --min-p --typical --repeat-penalty --repeat-last-n
// --presence-penalty --frequency-penalty -s, shared by run and serve (llama.cpp's names and
// defaults).
void add_sampling_args(ArgParser& ap, SamplerParams& sp);

// Loads the draft models the settings name (SpecKV's for "speckv" in kv.name or policies,
// SpecPC's), so their load time is not part of a request's timings and a bad file fails first.
void preload_drafts(const KvPolicySettings& kv, const std::vector<std::string>& policies = {});

std::string read_text_file(const std::string& path);
std::vector<std::string> split_list(const std::string& v);  // "a,b" -> {"a", "b"}

int cmd_run(int argc, char** argv, int first);
int cmd_tokenize(int argc, char** argv, int first);
int cmd_logits(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_eval(int argc, char** argv, int first);
int cmd_prompts(int argc, char** argv, int first);
int cmd_train_lookahead(int argc, char** argv, int first);
int cmd_serve(int argc, char** argv, int first);

}  // namespace glimpse
