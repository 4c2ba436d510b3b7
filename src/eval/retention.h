// What an eviction kept, measured against two references that need no second model run:
//
// - Recall of the training target: the share of the oracle's top entries of each (layer,
//   KV head) that the policy kept. The oracle ranks prompt entries by the attention the
//   full-cache answer pays them; its top-C set is what LookaheadKV is trained to predict.
// - Evidence recall: the share of the prompt tokens that carry the facts the answer needs
//   (a sample's `evidence` strings: the inserted needles of a generated task, the
//   `evidence` field of a --data line) that the policy kept. It is grounded in the task,
//   not in any model's attention.
//
// Evidence strings are mapped to prompt tokens through the tokens' own bytes: the pieces
// of the rendered prompt's tokens, concatenated, give back the rendered text (exactly, for
// byte-level BPE), so token i owns the bytes [offsets[i], offsets[i+1]). A token is
// evidence when its bytes overlap the first occurrence of an evidence string in the
// context (a string that occurs twice marks the first copy only).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "eval/tasks.h"

namespace glimpse {
class Tokenizer;
class KvCache;
struct KvScores;
}  // namespace glimpse

namespace glimpse::eval {

// offsets[i]: the byte at which token i's piece starts in the concatenation of the pieces;
// offsets[n]: the concatenation's length. `text`, if given, receives the concatenation.
std::vector<size_t> piece_offsets(const Tokenizer& tok, std::span<const int32_t> ids,
                                  std::string* text = nullptr);

// Indices of the tokens whose byte range [offsets[i], offsets[i+1]) overlaps one of the
// half-open byte spans, ascending and unique. Empty pieces overlap nothing.
std::vector<int64_t> tokens_overlapping(const std::vector<size_t>& offsets,
                                        const std::vector<std::pair<size_t, size_t>>& spans);

// The evidence tokens of a sample among prompt[0, limit) (the compressed entries), where
// prompt is the tokenized chat prompt of sample.context + "\n\n" + sample.question.
// nullopt (evidence recall n/a) when the sample has no evidence, when the user message
// cannot be found in the tokens' bytes, or when no evidence token lies below limit.
std::optional<std::vector<int64_t>> evidence_tokens(const Tokenizer& tok,
                                                    std::span<const int32_t> prompt,
                                                    const Sample& sample, int64_t limit);

// Evidence recall of one eviction. E = the evidence tokens, K(l,h) = the positions head h
// of layer l kept:
//   per_head[l * n_kv_head + h] = |E ∩ K(l,h)| / |E|
//   per_layer[l]                = mean over h of per_head
//   mean                        = mean over every (l, h)
//   any_head                    = mean over l of |E ∩ (K(l,0) ∪ K(l,1) ∪ ...)| / |E|
// any_head: the share of evidence tokens a layer can still attend to through at least one
// of its KV heads, averaged over layers. any_head >= mean, equal when the heads of each
// layer keep the same evidence; the gap shows how much the heads of a layer differ.
struct EvidenceRecall {
  std::vector<double> per_head, per_layer;
  double mean = 0, any_head = 0;
};

// kept[l * n_kv_head + h]: positions kept by that head (any order; duplicates ignored).
// nullopt when evidence is empty (n/a). Throws Error when kept does not hold
// n_layer * n_kv_head lists.
std::optional<EvidenceRecall> evidence_recall(const std::vector<std::vector<int32_t>>& kept,
                                              int n_layer, int n_kv_head,
                                              const std::vector<int64_t>& evidence);
// The same over what a cache holds. Positions are prompt token indices, or, with `orig`,
// cache position p holds prompt token (*orig)[p] (prompt compression prefills only the tokens
// it keeps, renumbered 0..orig->size()-1). Over the evicted layers of kc (sliding-window
// layers are left out, so per_layer has one entry per global layer).
std::optional<EvidenceRecall> evidence_recall(const KvCache& kc, const std::vector<int64_t>& evidence,
                                              const std::vector<int64_t>* orig = nullptr);

// Recall of the training target over a cache right after eviction (it holds only the
// compressed entries, positions 0..n_compressed-1): for each (layer, KV head) holding c
// entries, the share of the oracle's top-c entries of that head among them, averaged over
// heads. 1 when nothing was evicted.
// `orig` as for evidence_recall: the compressed region is then the first orig->size() cache
// positions, and n_compressed the prompt tokens the oracle scored.
double target_recall(const KvCache& kc, const KvScores& oracle, int64_t n_compressed,
                     const std::vector<int64_t>* orig = nullptr);

}  // namespace glimpse::eval
