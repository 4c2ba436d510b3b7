// glimpse train-lookahead: trains a LookaheadKV module (lookahead embeddings + LoRA) on a
// JSONL file of prompts; see src/train/lookahead_train.h for data, optimiser and
// checkpoint details.
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "train/lookahead_train.h"
#include "runtime/context.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

namespace {

// The training options' flags; --eval's module name goes to eval_module.
void add_train_args(ArgParser& ap, LookaheadTrainOptions& o, std::string& eval_module) {
  ap.add({"--prompts"}, "FNAME", "JSONL prompts file (required)",
         [&](const std::string& v) { o.prompts_path = v; });
  ap.add({"--cache-dir"}, "DIR", "per-prompt KV + ground-truth files (default: lookahead-cache)",
         [&](const std::string& v) { o.cache_dir = v; });
  ap.add({"--out"}, "FNAME", "module file; the training state goes to FNAME.state (default: lookahead.gguf)",
         [&](const std::string& v) { o.out_path = v; });
  ap.add({"--log"}, "FNAME", "training log, JSON lines (default: <out>.log.jsonl)",
         [&](const std::string& v) { o.log_path = v; });
  ap.add({"--steps"}, "N", "optimizer steps (default: 1000)",
         [&](const std::string& v) { o.steps = parse_int("--steps", v, 1, 1 << 30); });
  ap.add({"--lr"}, "X", "peak learning rate (default: 1e-3)",
         [&](const std::string& v) { o.lr = parse_float("--lr", v); });
  ap.add({"--warmup"}, "N", "linear warmup steps, then cosine decay to 10% (default: 50)",
         [&](const std::string& v) { o.warmup = parse_int("--warmup", v, 0, 1 << 30); });
  ap.add({"--batch"}, "N", "prompts per optimizer step (default: 4)",
         [&](const std::string& v) { o.batch = parse_int("--batch", v, 1, 1 << 20); });
  ap.add({"--answer-len"}, "N", "length limit of the model's own answer (default: 128)",
         [&](const std::string& v) { o.answer_len = parse_int("--answer-len", v, 1, 1 << 20); });
  ap.add({"--max-prompt"}, "N", "skip prompts longer than N tokens (default: context - answer-len)",
         [&](const std::string& v) { o.max_prompt = parse_int("--max-prompt", v, 1, 1 << 24); });
  ap.add({"--seed"}, "N", "initialisation and sample order (default: 0)",
         [&](const std::string& v) { o.seed = (uint64_t)parse_int("--seed", v, 0, 1ll << 62); });
  ap.add({"--save-every"}, "N", "checkpoint every N steps (default: 50)",
         [&](const std::string& v) { o.save_every = parse_int("--save-every", v, 0, 1 << 30); });
  ap.add({"--weight-decay"}, "X", "AdamW decay of the LoRA matrices, not of P (default: 0.01)",
         [&](const std::string& v) { o.weight_decay = parse_float("--weight-decay", v); });
  ap.add({"--n-lookahead"}, "N", "lookahead embeddings (default: 32)",
         [&](const std::string& v) { o.hyper.n_lookahead = parse_int("--n-lookahead", v, 1, 1024); });
  ap.add({"--rank"}, "N", "LoRA rank (default: 8)",
         [&](const std::string& v) { o.hyper.rank = parse_int("--rank", v, 1, 1024); });
  ap.add({"--alpha"}, "X", "LoRA alpha; scale = alpha / rank (default: 32)",
         [&](const std::string& v) { o.hyper.alpha = parse_float("--alpha", v); });
  ap.add({"-sys", "--system-prompt"}, "TEXT", "system prompt of the chat template (default: none)",
         [&](const std::string& v) { o.system = v; });
  ap.add({"--eval"}, "FNAME|init",
         "no training: report the loss and top-10% attention mass of a module (or of a fresh one) on the prompts",
         [&](const std::string& v) { eval_module = v; });
  ap.add({"--init"}, "FNAME", "start from this module's parameters (fine-tuning; its shapes replace --n-lookahead and --rank)",
         [&](const std::string& v) { o.init_path = v; });
  ap.flag({"--resume"}, "continue from <out>.state where a previous run stopped",
          [&] { o.resume = true; });
  ap.add({"--run-steps"}, "N", "stop (with a checkpoint) after N steps of this run; --resume continues",
         [&](const std::string& v) { o.run_steps = parse_int("--run-steps", v, 1, 1 << 30); });
  ap.add({"--topk-weight"}, "W", "add W x KL to the target kept on its top --topk entries (default: 0, plain KL)",
         [&](const std::string& v) {
           o.loss.topk_weight = parse_float("--topk-weight", v);
           if (!(o.loss.topk_weight >= 0)) fail("--topk-weight must be >= 0");
         });
  ap.add({"--topk"}, "K", "entries per head of the top-k term, the budget it aims at (default: 128)",
         [&](const std::string& v) { o.loss.top_k = parse_int("--topk", v, 1, 1 << 24); });
  ap.flag({"--agnostic"}, "compress once: the rows follow the context alone and learn the attention of every question "
          "(\"questions\" lists) and its answer; the module --kv-policy lookahead --query-agnostic uses",
          [&] { o.agnostic = true; });
  ap.flag({"--recompute-kv"}, "sample files hold the ground truth only (22x smaller); each step prefills the prompt again",
          [&] { o.recompute_kv = true; });
  ap.flag({"--recompute-truth"}, "sample files hold the model's answers only (~1 KB per prompt); each step prefills "
          "the prompt and its answers again to rebuild the KV and the ground truth",
          [&] { o.recompute_kv = o.recompute_truth = true; });
  ap.flag({"--prepare-only"}, "make the sample files of --prompts and --val-prompts, then stop",
          [&] { o.prepare_only = true; });
  ap.add({"--val-prompts"}, "FNAME",
         "validation prompts (JSONL): their mean loss is logged every --val-every steps and <out> keeps the best module",
         [&](const std::string& v) { o.val_prompts_path = v; });
  ap.add({"--val-every"}, "N", "steps between validations (default: 50)",
         [&](const std::string& v) { o.val_every = parse_int("--val-every", v, 1, 1 << 30); });
  ap.add({"--patience"}, "N", "stop after N validations without a better loss (default: 0, never)",
         [&](const std::string& v) { o.patience = parse_int("--patience", v, 0, 1 << 20); });
  ap.flag({"-q", "--quiet"}, "no progress bar", [&] { o.progress = false; });
}

// --eval: one JSON line with the module's loss and kept attention mass on the prompts.
void print_eval_report(const LookaheadEvalReport& ev, const std::string& module) {
  std::string kept;
  for (size_t b = 0; b < ev.kept_budgets.size(); ++b)
    kept += fmt::format("{}\"{}\": {{\"uniform\": {:.4f}, \"global\": {:.4f}}}", b ? ", " : "",
                        ev.kept_budgets[b], ev.kept_uniform[b], ev.kept_global[b]);
  std::string per_prompt;
  for (size_t i = 0; i < ev.prompt_loss.size(); ++i)
    per_prompt += fmt::format("{}{:.6f}", i ? ", " : "", ev.prompt_loss[i]);
  std::printf("{\"module\": \"%s\", \"prompts\": %d, \"mean_kl\": %.6f, \"top10_mass\": %.4f, "
              "\"top10_mass_best\": %.4f, \"kept_mass\": {%s}, \"prompt_kl\": [%s]}\n", module.c_str(),
              ev.data.n_prompts, ev.mean_loss, ev.top10_mass, ev.top10_mass_best, kept.c_str(),
              per_prompt.c_str());
}

// The end-of-run summary on stderr: data, sample files, timings, validation, module path.
void print_train_report(const LookaheadTrainReport& r, const LookaheadTrainOptions& o,
                        const ModelConfig& c) {
  const double bytes_per_token =
      o.recompute_truth ? 0.0
                        : (o.recompute_kv ? 0.0 : 2.0 * c.n_layer * c.n_kv_head * c.head_dim * 2) +
                              (double)c.n_layer * c.n_head * 4;
  const double mean_n = (double)r.total_prompt_tokens / std::max(1, r.n_prompts);
  std::fprintf(stderr, "prompts: %d used (mean %.0f tokens, %d skipped as too long)\n", r.n_prompts,
               mean_n, r.n_skipped);
  if (o.recompute_truth)
    std::fprintf(stderr, "sample files: the answers only (4 bytes per answer token)\n");
  else
    std::fprintf(stderr, "sample files: %.0f bytes per prompt token (%.1f MB per mean prompt)\n",
                 bytes_per_token, bytes_per_token * mean_n / 1e6);
  if (r.n_prepared > 0)
    std::fprintf(stderr,
                 "data generation: %d samples in %.1f s (%.2f s/sample: prefill %.2f, answer %.2f, "
                 "ground truth %.2f, write %.2f)\n", r.n_prepared, r.prepare_s,
                 r.prepare_s / r.n_prepared, r.prepare_times.prefill / 1e3 / r.n_prepared,
                 r.prepare_times.answer / 1e3 / r.n_prepared, r.prepare_times.truth / 1e3 / r.n_prepared,
                 r.prepare_times.write / 1e3 / r.n_prepared);
  const int steps = r.last_step - r.first_step;
  if (steps > 0)
    std::fprintf(stderr, "training: steps %d..%d in %.1f s (%.2f s/step, batch %d), loss %.4f\n",
                 r.first_step + 1, r.last_step, r.train_s, r.train_s / steps, o.batch, r.final_loss);
  if (r.best_step > 0)
    std::fprintf(stderr, "validation: best loss %.4f at step %d%s\n", r.best_val, r.best_step,
                 r.early_stopped ? " (stopped early)" : "");
  if (!o.prepare_only) std::fprintf(stderr, "module: %s\n", o.out_path.c_str());
}

}  // namespace

int cmd_train_lookahead(int argc, char** argv, int first) {
  EngineParams sp;
  sp.context.n_ctx = 0;  // the model's training context: prompts up to it can be used
  LookaheadTrainOptions o;
  ArgParser ap("train-lookahead",
               "Train a LookaheadKV module on prompts ({\"context\", \"question\"} per line).");
  add_model_args(ap, sp);
  std::string eval_module;
  add_train_args(ap, o, eval_module);
  if (!ap.parse(argc, argv, first)) return 0;
  if (o.prompts_path.empty()) fail("--prompts is required");
  if (!(o.lr > 0)) fail("--lr must be > 0");
  for (const std::string* m : {&o.init_path, &eval_module})
    if (!m->empty() && *m != "init" && !std::ifstream(*m)) fail("cannot read LookaheadKV module '{}'", *m);

  Context s(Engine::load(sp));
  const ModelConfig& c = s.model().config();
  const LookaheadModule probe = LookaheadModule::create(s.model(), o.hyper, o.seed);
  if (o.progress)
    std::fprintf(stderr, "train-lookahead: %s, module %lld parameters (n=%d, rank %d, alpha %g), %d threads\n",
               c.name.c_str(), (long long)probe.n_params(), o.hyper.n_lookahead, o.hyper.rank,
               o.hyper.alpha, s.pool().size());
  if (!eval_module.empty()) {
    const LookaheadModule mod = eval_module == "init" ? probe : LookaheadModule::load(eval_module, s.model());
    print_eval_report(evaluate_lookahead(s, o, mod), eval_module);
    return 0;
  }
  print_train_report(train_lookahead(s, o), o, c);
  return 0;
}

}  // namespace glimpse
