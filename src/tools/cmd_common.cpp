#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/draft_model.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= v.size()) {
    const size_t e = std::min(v.find(',', b), v.size());
    out.push_back(v.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

namespace {
std::vector<KvType> parse_kv_type_list(const std::string& flag, const std::string& v) {
  std::vector<KvType> out;
  for (const std::string& one : split_list(v)) out.push_back(parse_kv_type(flag, one));
  return out;
}
}  // namespace

void add_model_args(ArgParser& ap, EngineParams& sp, KvTypeLists* lists) {
  ap.add({"-m", "--model"}, "FNAME",
         "model path (default: models/SmolLM2-135M-Instruct.Q4_1.gguf or $GLIMPSE_MODEL)",
         [&](const std::string& v) { sp.model_path = v; });
  ap.add({"-t", "--threads"}, "N", "number of threads (default: all cores)",
         [&](const std::string& v) { sp.n_threads = parse_int("-t", v, 1, 1024); });
  ap.add({"-c", "--ctx-size"}, "N",
         "size of the prompt context (default: 4096, 0 = loaded from model)",
         [&](const std::string& v) { sp.context.n_ctx = parse_int("-c", v, 0, 1 << 24); });
  ap.add({"-b", "--batch-size"}, "N", "prompt tokens per forward batch (default: 512)",
         [&](const std::string& v) { sp.context.n_batch = parse_int("-b", v, 1, 1 << 20); });
  const std::string types = kv_type_list();
  const std::string value = lists ? "TYPE[,TYPE...]" : "TYPE";
  for (const bool is_k : {true, false}) {
    const std::string flag = is_k ? "-ctk" : "-ctv";
    ap.add({flag, is_k ? "--cache-type-k" : "--cache-type-v"}, value,
           fmt::format("KV cache data type for {}: {} (default: f16)", is_k ? "K" : "V", types),
           [&sp, lists, is_k, flag](const std::string& v) {
             if (lists)
               (is_k ? lists->k : lists->v) = parse_kv_type_list(flag, v);
             else
               (is_k ? sp.context.type_k : sp.context.type_v) = parse_kv_type(flag, v);
           });
  }
}

void add_kv_args(ArgParser& ap, KvPolicySettings& kv, bool allow_list) {
  std::string names;
  for (const auto& n : kv_policy_names()) names += (names.empty() ? "" : ", ") + n;
  ap.add({"--kv-policy"}, "NAME", "KV eviction after prefill: " + names + " (default: none)",
         [&kv, allow_list](const std::string& v) {
           // Rejects unknown names now, with the list of known ones.
           if (allow_list)
             for (const std::string& one : split_list(v)) make_kv_policy(one);
           else
             make_kv_policy(v);
           kv.name = v;
         });
  ap.add({"--kv-budget"}, "N", "prompt entries kept per layer and KV head, window and sinks included",
         [&](const std::string& v) { kv.budget = parse_int("--kv-budget", v, 1, 1 << 30); });
  ap.add({"--kv-ratio"}, "R", "fraction of the prompt removed (instead of --kv-budget)",
         [&](const std::string& v) { kv.ratio = parse_float("--kv-ratio", v); });
  ap.add({"--kv-window"}, "W", "protected recent entries / observation window (default: per policy)",
         [&](const std::string& v) { kv.window = parse_int("--kv-window", v, 0, 1 << 30); });
  ap.add({"--kv-sink"}, "S", "protected first entries (default: 4 for streaming and expected_attention, else 0)",
         [&](const std::string& v) { kv.sinks = parse_int("--kv-sink", v, 0, 1 << 30); });
  ap.add({"--kv-pool-kernel"}, "K", "odd 1-D pooling kernel over scores (default: per policy, 7 for snapkv)",
         [&](const std::string& v) { kv.pool_kernel = parse_int("--kv-pool-kernel", v, 0, 1 << 16); });
  ap.add({"--kv-pool"}, "max|avg|none", "pooling kind (default: per policy, max for snapkv)",
         [&](const std::string& v) { kv.pool = parse_pool_kind(v); });
  ap.add({"--kv-group-reduce"}, "mean|max", "reduce query-head scores over a GQA group (default: mean)",
         [&](const std::string& v) { kv.reduce = parse_group_reduce(v); });
  ap.add({"--kv-ada-alpha"}, "A",
         "adakv: share of each head's budget guaranteed before the layer's top scores are split "
         "(default: 0.2)",
         [&](const std::string& v) { kv.ada_alpha = parse_float("--kv-ada-alpha", v); });
  ap.add({"--kv-alloc"}, "uniform|pyramid|ada|global",
         "how the budget is spread: the same per head, by layer (PyramidKV), across a layer's heads "
         "by score (Ada-KV), or across every head of every layer by score (default: the policy's)",
         [&](const std::string& v) { kv.allocation = parse_budget_allocation(v); });
  ap.add({"--kv-seed"}, "N", "seed of the random policy (default: 0)",
         [&](const std::string& v) { kv.seed = (uint64_t)parse_int("--kv-seed", v, 0, 1ll << 62); });
  ap.add({"--kv-oracle-n"}, "N", "length limit of the oracle's own answer (default: 128)",
         [&](const std::string& v) { kv.oracle_max_new = parse_int("--kv-oracle-n", v, 1, 1 << 20); });
  ap.add({"--kv-draft"}, "FNAME", "speckv: the draft model that writes the approximate answer",
         [&](const std::string& v) { kv.draft_model = v; });
  ap.add({"--kv-draft-n"}, "N",
         "speckv: length of the draft's answer (default: -n where given, else 128)",
         [&](const std::string& v) { kv.draft_max_new = parse_int("--kv-draft-n", v, 1, 1 << 20); });
  ap.flag({"--kv-draft-mean"}, "speckv: mean of the scoring queries' attention instead of max",
          [&] { kv.draft_query_mean = true; });
  ap.add({"--prompt-compress"}, "none|specpc",
         "compress the prompt before prefill with a draft model's attention (default: none)",
         [&](const std::string& v) {
           if (v != "none" && v != "specpc") fail("--prompt-compress: expected none or specpc, got '{}'", v);
           kv.prompt_compress = v;
         });
  ap.add({"--pc-draft"}, "FNAME", "specpc: the draft model whose attention picks the tokens",
         [&](const std::string& v) { kv.pc_draft = v; });
  ap.add({"--pc-budget"}, "N", "specpc: prompt tokens the model prefills",
         [&](const std::string& v) { kv.pc_budget = parse_int("--pc-budget", v, 1, 1 << 30); });
  ap.add({"--pc-kernel"}, "K", "specpc: max-pool kernel and span of each kept peak (default: 32)",
         [&](const std::string& v) { kv.pc_kernel = parse_int("--pc-kernel", v, 1, 1 << 16); });
  ap.add({"--pc-window"}, "W", "specpc: last prompt tokens always kept and observed (default: 64)",
         [&](const std::string& v) { kv.pc_window = parse_int("--pc-window", v, 0, 1 << 30); });
  ap.add({"--pc-lookahead"}, "N", "specpc: tokens the draft generates, their queries scored (default: 1)",
         [&](const std::string& v) { kv.pc_lookahead = parse_int("--pc-lookahead", v, 1, 1 << 16); });
  ap.add({"--kv-lookahead-module"}, "FNAME",
         "LookaheadKV module of the lookahead policy (default: <model>.lookahead.gguf)",
         [&](const std::string& v) { kv.lookahead_module = v; });
  ap.add({"--kv-ea-future"}, "N", "expected_attention: future positions the RoPE rotation is averaged over (default: 512)",
         [&](const std::string& v) { kv.ea_future = parse_int("--kv-ea-future", v, 1, 1 << 24); });
  ap.add({"--kv-ea-epsilon"}, "E", "expected_attention: added to the scores before the ||v|| weight (default: 0)",
         [&](const std::string& v) { kv.ea_epsilon = parse_float("--kv-ea-epsilon", v); });
  ap.flag({"--kv-ea-no-cov"}, "expected_attention: mean query only (no covariance term)",
          [&] { kv.ea_covariance = false; });
  ap.flag({"--kv-ea-no-vnorm"}, "expected_attention: no ||v|| weight",
          [&] { kv.ea_vnorm = false; });
  ap.flag({"--query-agnostic"}, "compress the context before the question is read (needs --question)",
          [&] { kv.query_agnostic = true; });
}

void add_sampling_args(ArgParser& ap, SamplerParams& sp) {
  ap.add({"--temp"}, "N", "temperature (default: 0.8, <= 0 = greedy)",
         [&](const std::string& v) { sp.temp = parse_float("--temp", v); });
  ap.add({"--top-k"}, "N", "top-k sampling (default: 40, 0 = disabled)",
         [&](const std::string& v) { sp.top_k = parse_int("--top-k", v, 0, 1 << 30); });
  ap.add({"--top-p"}, "N", "top-p sampling (default: 0.95, 1.0 = disabled)",
         [&](const std::string& v) { sp.top_p = parse_float("--top-p", v); });
  ap.add({"--min-p"}, "N", "min-p sampling (default: 0.05, 0.0 = disabled)",
         [&](const std::string& v) { sp.min_p = parse_float("--min-p", v); });
  ap.add({"--typical"}, "N", "locally typical sampling (default: 1.0, 1.0 = disabled)",
         [&](const std::string& v) { sp.typical_p = parse_float("--typical", v); });
  ap.add({"--repeat-penalty"}, "N", "penalize repeated tokens (default: 1.0, 1.0 = disabled)",
         [&](const std::string& v) { sp.repeat_penalty = parse_float("--repeat-penalty", v); });
  ap.add({"--repeat-last-n"}, "N", "tokens considered for penalties (default: 64, -1 = ctx)",
         [&](const std::string& v) { sp.repeat_last_n = parse_int("--repeat-last-n", v, -1, 1 << 30); });
  ap.add({"--presence-penalty"}, "N", "presence penalty (default: 0.0)",
         [&](const std::string& v) { sp.presence_penalty = parse_float("--presence-penalty", v); });
  ap.add({"--frequency-penalty"}, "N", "frequency penalty (default: 0.0)",
         [&](const std::string& v) { sp.frequency_penalty = parse_float("--frequency-penalty", v); });
  ap.add({"-s", "--seed"}, "SEED", "RNG seed (default: -1, use random seed for -1)",
         [&](const std::string& v) {
           const long long x = parse_int("-s", v, -1, 0xFFFFFFFFll);
           sp.seed = x < 0 ? kDefaultSeed : (uint32_t)x;
         });
}

void preload_drafts(const KvPolicySettings& kv, const std::vector<std::string>& policies) {
  bool speckv = kv.name == "speckv";
  for (const std::string& p : policies) speckv |= p == "speckv";
  if (speckv && !kv.draft_model.empty()) shared_draft_engine(kv.draft_model);
  bool pc = kv.prompt_compress != "none";
  for (const std::string& p : policies) pc |= p == "specpc" || p == "speckv_pc";  // eval's branches
  if (pc && !kv.pc_draft.empty()) shared_draft_engine(kv.pc_draft);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace glimpse
