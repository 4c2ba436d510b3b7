// Training a LookaheadKV module on a file of prompts.
//
// Data: one JSON object per line, {"context": ..., "question": ...} (either may be empty),
// rendered with the chat template as one user turn (context + "\n\n" + question).
// Per prompt, once, a sample file in the cache directory holds what every later step needs:
//   - the prompt's KV cache (keys and values of every (layer, KV head), N entries, stored
//     as f16 whatever the session's cache type; the file name records a non-default type),
//   - the ground truth: the model's own greedy full-cache answer (<= answer_len tokens) and,
//     per (layer, query head), the mean over its tokens of their softmax attention on each
//     prompt key, f32 [n_layer][n_head][N].
//   Size: 2 * n_layer * n_kv_head * head_dim * 2 + n_layer * n_head * 4 bytes per prompt
//   token (24,120 B/token for SmolLM2-135M: ~24 MB for a 1000-token prompt) plus 64 bytes.
//   Files are named by a hash of (model fingerprint, tokens, answer_len), so several prompt
//   files and models can share one directory.
// A step then only runs the 32 lookahead rows forward and backward per prompt.
// With recompute_truth (--recompute-truth) a sample file holds the greedy answers alone and
// each step rebuilds both the KV and the ground truth (train/lookahead_answers.h).
// With recompute_kv (--recompute-kv) a sample file holds the ground truth only
// (n_layer * n_head * 4 B per token: 1,080 B for SmolLM2-135M, 22x less) and each step
// prefills the prompt again to get its KV; the prefill is deterministic, so the loss is the
// one the stored KV gives (tested). What large training sets need: 1,200 prompts of 2K
// tokens would take ~58 GB stored, ~2.6 GB as ground truth.
// Compress once (agnostic, --agnostic): a prompt line has a context and several questions
// ("questions": [...], or one "question"); the lookahead rows follow the context part of the
// prompt alone (chat-template head + context, what a query-agnostic policy compresses) and
// the target is the attention of every question's tokens and of the model's answer to it on
// the context, averaged over all of them, so one compression serves later questions.
// Validation (val_prompts_path): every val_every steps the mean loss on a second prompt set
// is logged ({"step", "val_loss"}); out_path then holds the module of the best validation
// loss so far (the state file keeps the latest parameters), and with patience > 0 training
// stops once patience validations in a row did not improve on the best.
//
// Optimiser: AdamW (beta 0.9 / 0.999, eps 1e-8), weight decay on the LoRA matrices only
// (not on the embeddings P), linear warmup then cosine decay to 10% of the peak rate,
// gradient clipping at global norm 1.0, the gradient averaged over --batch prompts.
// Sample order: a permutation of the prompts per epoch, drawn from (seed, epoch) alone, so
// the step counter is the whole RNG state. Checkpoints (every save_every steps and at the
// end) write the module (out_path, GGUF) and a state file (out_path + ".state": step,
// settings, parameters and both Adam moments) atomically; resume continues bit-exactly
// (with any thread count: every reduction has a fixed order). SIGINT / SIGTERM end the
// current step, checkpoint and stop, so a run can be stopped any time and resumed later.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lookahead/lookahead_backward.h"
#include "lookahead/lookahead_module.h"

namespace glimpse {

class Context;
class KvCache;

struct LookaheadTrainOptions {
  std::string prompts_path;
  std::string cache_dir = "lookahead-cache";
  std::string out_path = "lookahead.gguf";
  std::string log_path;  // default: out_path + ".log.jsonl"
  std::string system;    // system prompt for the chat template (default none)
  int steps = 1000;
  float lr = 1e-3f;
  int warmup = 50;
  int batch = 4;
  int answer_len = 128;
  uint64_t seed = 0;
  int save_every = 50;
  bool resume = false;
  int run_steps = 0;  // stop after this many steps in this run (0: run to `steps`)
  float weight_decay = 0.01f;
  float min_lr_ratio = 0.1f;
  float clip = 1.0f;
  int max_prompt = 0;  // skip prompts longer than this (0: the session's context minus answer_len)
  LookaheadHyper hyper;
  bool progress = true;  // progress bar on stderr
  LookaheadLoss loss{0, 128};    // plain KL, or KL plus the top-k term (lookahead_backward.h)
  bool recompute_kv = false;     // sample files without KV; prefill per step
  bool recompute_truth = false;  // sample files hold the answers alone (train/lookahead_answers.h);
                                 // each step prefills the prompt and its answers again
  bool agnostic = false;         // compress once: rows after the context predict every question's
                                 // and answer's attention ("questions" lists in the prompts)
  std::string val_prompts_path;  // validation prompts (JSONL as prompts_path); empty: none
  int val_every = 50;
  int patience = 0;              // validations without improvement before stopping (0: never)
  bool prepare_only = false;     // make the sample files (training and validation) and return
  std::string init_path;         // start from this module's parameters (its shapes replace
                                 // hyper); fresh optimizer state. Ignored when resuming.
};

// Time spent making sample files, by phase (ms).
struct LookaheadSampleTimes {
  double prefill = 0, answer = 0, truth = 0, write = 0;
};

struct LookaheadTrainReport {
  int n_prompts = 0, n_skipped = 0;
  int64_t total_prompt_tokens = 0;
  double prepare_s = 0;      // data generation (cache files made in this run)
  int n_prepared = 0;        // cache files made in this run
  LookaheadSampleTimes prepare_times;  // summed over the files made
  int first_step = 0, last_step = 0;
  double train_s = 0;        // optimizer steps in this run
  double final_loss = 0;     // running mean at the end
  double best_val = 0;       // best validation loss (with a validation set)
  int best_step = 0;         // its step (0: none yet)
  bool early_stopped = false;
};

// Cached ground truth and prompt KV of one prompt.
struct LookaheadSampleFile {
  int64_t n_prompt = 0;
  int n_answer = 0;
  bool has_kv = true;     // false: ground truth only (the KV is recomputed)
  std::vector<float> gt;  // [n_layer][n_head][N]
};

// Generates the sample file for tokens (prefill, greedy answer with attention recording).
// The session's cache is cleared before and after.
// store_kv false: the file holds the ground truth only. suffixes (compress once): tokens is
// the context part, and the ground truth averages over each suffix (a question's rest of the
// prompt) and the answer the model gives to it.
LookaheadSampleTimes make_lookahead_sample(Context& s, const std::vector<int32_t>& tokens, int answer_len,
                           const std::string& path, bool store_kv = true,
                           const std::vector<std::vector<int32_t>>* suffixes = nullptr);
// Reads a sample file into cache (replacing its contents; left alone when the file has no
// KV) and the ground truth; fails if the file is truncated or does not belong to the model.
LookaheadSampleFile read_lookahead_sample(const std::string& path, const Model& m, KvCache& cache);

// Learning rate of step t (0-based).
float lookahead_lr(const LookaheadTrainOptions& o, int t);

LookaheadTrainReport train_lookahead(Context& s, const LookaheadTrainOptions& o);

// Quality of a module on a prompt set (sample files made as for training).
struct LookaheadEvalReport {
  LookaheadTrainReport data;  // prompt counts and data-generation times
  double mean_loss = 0;       // mean over prompts of the training loss (KL)
  std::vector<double> prompt_loss;  // each prompt's loss, in file order (per-family views)
  double top10_mass = 0;      // ground-truth attention mass in the top 10% by module score,
                              // mean over prompts x layers x query heads
  double top10_mass_best = 0; // same with the ground truth's own top 10% (upper bound)
  // Ground-truth attention mass kept when each KV head keeps the entries the module scores
  // highest (scores and truth reduced over the GQA group by mean), at each of kept_budgets,
  // with the budget the same for every head (uniform) or spread by allocate_global (alpha
  // 0.2): mean over prompts x layers x KV heads.
  std::vector<int64_t> kept_budgets = {64, 128, 256, 512};
  std::vector<double> kept_uniform, kept_global;
};
LookaheadEvalReport evaluate_lookahead(Context& s, const LookaheadTrainOptions& o,
                                       const LookaheadModule& mod);

}  // namespace glimpse
