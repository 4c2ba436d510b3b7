// Draft sources of speculative decoding, as named on the command line, and the two that need
// no model: the parser of source lists ("lookahead@256,snapkv@128,ngram,draft"), prompt
// lookup over the request's tokens, and the vocabulary check of a draft model.
//
//   policy@budget  a compressed view: the target model over a fork of the request's cache
//                  whose prompt entries were evicted by a KV policy down to `budget` entries
//                  per layer and KV head (the same PromptCompressor path as --kv-policy)
//   ngram          prompt lookup: the token after the most recent earlier occurrence of the
//                  longest suffix (4..1 tokens) of prompt + output + drafts
//   draft          a draft model (-md FNAME) with the target's vocabulary
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/policy.h"
#include "tokenizer/tokenizer.h"

namespace glimpse {

enum class DraftKind { View, Ngram, Model };

struct DraftSpec {
  DraftKind kind = DraftKind::View;
  std::string name;     // as written: "snapkv@128", "ngram", "draft"
  KvPolicySettings kv;  // View: the base knobs with this policy and budget
};

// One entry. Error (naming the entry) on an unknown policy, "none", a missing or bad budget.
// base: the --kv-* knobs every view starts from (window, sinks, pooling, module, ...).
DraftSpec parse_draft_spec(const std::string& entry, const KvPolicySettings& base);
// A comma-separated list; Error on an empty list, an empty entry or a repeated one.
std::vector<DraftSpec> parse_draft_specs(const std::string& list, const KvPolicySettings& base);

// Sources an ensemble may hold (the grid rule enumerates weights over all of them).
inline constexpr size_t kMaxDraftSources = 6;

// Prompt lookup over seq (prompt + output + drafts so far): for n = n_max down to n_min,
// the last n tokens are searched for in seq[0, size - 1) from the end backwards; the first
// (most recent) occurrence gives the token that followed it. -1 when no suffix recurs.
// O(size * n_max) per call.
int32_t ngram_lookup(const std::vector<int32_t>& seq, int n_max = 4, int n_min = 1);

// Error unless the draft's vocabulary is the target's: same size and the same text for every
// token id (draft tokens are fed to the target as ids).
void check_same_vocab(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_path);

}  // namespace glimpse
