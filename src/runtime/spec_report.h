// What a speculative run reports: drafted and accepted tokens, target forwards per token,
// and per draft source its top-1 agreement with the target and its final ensemble weight.
// Printed on stderr after the timings and written as the "spec" object of --timings-json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

struct SpecSourceStats {
  std::string name;       // as written in the source list: "snapkv@128", "ngram", "draft"
  int64_t positions = 0;  // verified draft positions where the source had an opinion
  int64_t agreed = 0;     // ... where its own top-1 token was the target's token
  double weight = 0;      // ensemble weight after the last verification
  int64_t kv_entries = 0; // model sources: cache entries (all layers and KV heads) at the start
  double setup_ms = 0;    // views: fork + scoring + eviction; draft model: its prompt prefill

  double agreement() const { return positions ? (double)agreed / positions : 0; }
};

struct SpecReport {
  bool enabled = false;
  std::string mode;     // views, ngram, draft, tabed
  std::string weights;  // kl, tvd, grid, uniform
  std::string verify;   // greedy (token-identical) or sampling (speculative sampling)
  int draft_min = 0, draft_max = 0;
  double p_min = 0;
  int64_t rounds = 0;           // target forwards after the prompt (one per round)
  int64_t drafting_rounds = 0;  // rounds that verified at least one drafted token
  int64_t generated = 0;        // tokens the rounds produced (all but the first token)
  int64_t drafted = 0, accepted = 0;
  int64_t fallback_rounds = 0;  // rounds the draft length was 0 (plain decode)
  int64_t cost_fallbacks = 0;   // times drafting ran slower than plain decoding and stopped
  double setup_ms = 0;          // all sources' setup (part of the prefill time)
  double draft_ms = 0;          // draft forwards, ensembles and n-gram lookups
  double verify_ms = 0;         // target forwards over [pending token, drafts]
  double weights_ms = 0;        // history records and weight updates
  std::vector<SpecSourceStats> sources;

  double acceptance() const { return drafted ? (double)accepted / drafted : 0; }
  // Accepted drafted tokens per round that drafted anything.
  double mean_accepted() const { return drafting_rounds ? (double)accepted / drafting_rounds : 0; }
  double tokens_per_forward() const { return rounds ? (double)generated / rounds : 0; }
  double forwards_per_token() const { return generated ? (double)rounds / generated : 0; }

  std::string report() const;   // "glimpse: ..." lines
  std::string to_json() const;  // one JSON object
};

}  // namespace glimpse
