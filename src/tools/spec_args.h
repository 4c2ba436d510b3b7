// The speculative decoding flags of `glimpse run` (llama.cpp's names where it has them:
// --draft-max/--draft/--draft-n, --draft-min/--draft-n-min, --draft-p-min, -md/--model-draft).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tools/args.h"

namespace glimpse {

struct SpecFlags {
  std::string mode;     // empty: off
  std::string sources;  // --spec-views (empty: the mode's default)
  std::string weights = "kl";
  std::string draft_model;  // -md
  int draft_max = 16, draft_min = 0;
  float p_min = 0.75f;
  bool cost_aware = true;  // --no-draft-cost clears it
};

// with_mode: also --spec MODE (bench defines its own --spec ROWS).
void add_spec_args(ArgParser& ap, SpecFlags& f, bool with_mode = true);

// The SpecParams the flags ask for (nullopt without --spec), checked against the generation
// settings (greedy, full cache) before any model is loaded. The draft engine is not loaded
// here. Errors name the flag.
std::optional<SpecParams> resolve_spec_flags(const SpecFlags& f, const GenerateParams& gp);

// Several configurations in one flag (bench --spec, eval --spec): ';'-separated rows
// MODE[/WEIGHTS][:SOURCES], e.g. "views:snapkv@256;ngram;tabed/uniform:lookahead@256,ngram".
// Each row is base with its mode, weight rule (default: base's) and sources; label names it:
// "views(snapkv@256)", "tabed/uniform(lookahead@256,ngram)" (the rule only with >1 source).
struct SpecRow {
  std::string label;
  SpecFlags flags;
  SpecParams spec;  // resolved; draft engine attached by resolve_spec_rows
};
// Parsed and checked against gp (greedy, full cache) without loading anything.
std::vector<SpecRow> parse_spec_rows(const std::string& rows, const SpecFlags& base,
                                     const GenerateParams& gp);
// The same with the draft engine (-md) loaded once and attached to the rows that use it.
std::vector<SpecRow> resolve_spec_rows(const std::string& rows, const SpecFlags& base,
                                       const GenerateParams& gp, const EngineParams& target);

// The draft model: its own weights and tokenizer; its contexts run on the target's pool, so
// it gets a pool of one thread (no extra workers).
std::shared_ptr<const Engine> load_draft_engine(const EngineParams& target, const std::string& path);

}  // namespace glimpse
