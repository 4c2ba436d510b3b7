// Answer-only LookaheadKV samples (train-lookahead --recompute-truth): a sample file holds the
// model's greedy answers alone (int32 tokens, ~1 KB per prompt instead of ~1 KB per prompt
// *token* for the stored ground truth), and every step rebuilds the prompt's KV and the ground
// truth from them: prefill the prompt, then run each answer (compress once: each question and
// its answer) in one batch with its queries captured, accumulate their attention on the prompt
// keys (add_truth) and roll the cache back to the prompt. The files are small enough to keep
// in the repository, so a training run resumes on a fresh machine without regenerating them.
// Generation is batched: the prompts of a group are prefilled one by one and then decoded
// together by greedy_contexts (one forward per token for the whole group, each answer exactly
// the one greedy alone gives).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

class Context;
class Model;
class QueryCapture;
struct ModelConfig;

// gt[l][h][j] += softmax attention on prompt key j (j < N) of every query in cap, per scored
// (layer, query head); a query at position pos sees keys [0, pos] of s's cache.
void add_truth(Context& s, const QueryCapture& cap, int64_t N, std::vector<float>& gt);
// The sum of add_truth over `count` target tokens into their mean (no target token: a uniform
// target on the scored layers).
void finish_truth(const ModelConfig& c, int64_t count, int64_t N, std::vector<float>& gt);

// One prompt to answer: its tokens (compress once: the context part) and, for compress once,
// each question's rest of the prompt (empty: the prompt is answered as it is).
struct AnswerJob {
  const std::vector<int32_t>* tokens = nullptr;
  const std::vector<std::vector<int32_t>>* suffixes = nullptr;
  std::string path;  // the sample file to write
  uint64_t key = 0;  // the sample's key (checked when read back)
};

// Greedy answers (<= answer_len tokens, end of generation not included) of every job, one
// per suffix (or one), written to each job's path. Jobs run in groups whose contexts decode
// together (at most kGreedyContextsPerForward per forward). s's cache is left empty.
void make_answer_samples(Context& s, const std::vector<AnswerJob>& jobs, int answer_len);

// The answers of a sample file; fails when it is truncated, of another model or key, or
// holds tokens outside the vocabulary.
std::vector<std::vector<int32_t>> read_answer_sample(const std::string& path, const Model& m,
                                                     uint64_t key, int64_t n_prompt);

// Prefills tokens into s (after a reset) and returns the ground truth [n_layer][n_head][N]
// of the answers: the mean over every captured token (suffix tokens and answer tokens) of
// its attention on each prompt key, uniform when there is none. s is left holding exactly
// the prompt's KV (the answers are rolled back).
std::vector<float> truth_from_answers(Context& s, const std::vector<int32_t>& tokens,
                                      const std::vector<std::vector<int32_t>>* suffixes,
                                      const std::vector<std::vector<int32_t>>& answers);

}  // namespace glimpse
