// Speculative decoding on evaluation samples (`glimpse eval --spec ROWS`): per sample, plain
// greedy decoding then every speculative configuration, each on a fresh context over the
// sample's chat prompt, up to its max_new_tokens. A row records whether the output is the
// plain one (it must be: greedy speculation is lossless), the task score, target forwards,
// drafted / accepted tokens, each source's top-1 agreement, and decode time, so the report
// gives per task family: accuracy, accepted tokens per target forward and wall-time speedup
// for every configuration, and the ensembles against the best single source.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "runtime/speculative.h"

namespace glimpse {
class Engine;
}

namespace glimpse::eval {

struct SpecConfig {
  std::string label;  // "tabed/kl(lookahead@256,snapkv@128,ngram)"
  SpecParams spec;
  bool single_source() const { return spec.draft.sources.size() == 1; }
};

// The plain row (label "plain") and one row per config for sample s; rows whose
// (id, label) is in done are skipped (done(id, label) -> cached).
std::vector<nlohmann::json> run_spec_sample(
    const std::shared_ptr<const Engine>& engine, const Sample& s,
    const std::vector<SpecConfig>& configs,
    const std::function<bool(const std::string&, const std::string&)>& done);

// Markdown: per family and config, accuracy and identical outputs, tokens per target
// forward, acceptance, wall-time speedup over plain; then ensembles against the best single
// source per family. rows: every run_spec_sample row of the run.
std::string spec_report(const std::vector<nlohmann::json>& rows,
                        const std::vector<SpecConfig>& configs);

}  // namespace glimpse::eval
