// Draft models for draft-guided compression: SpecKV (kv/policy_speckv.cpp, through
// Context::draft_answer) and SpecPC (runtime/specpc.h). A draft is a smaller model loaded
// once per file per process and shared by every request; its contexts run on the requesting
// context's thread pool.
//
// Same vocabulary (same size, same text for every id): token ids pass between target and
// draft as they are. Otherwise (cross-tokenizer mode, e.g. a SmolLM2 draft for a Gemma 3
// target) they pass through text: the target's prompt tokens become bytes (their pieces,
// the leading BOS left out; special tokens as their text), the draft tokenizes those bytes
// with its own vocabulary (its BOS added, special text parsed), and the draft's answer comes
// back as bytes the target re-tokenizes. Each side's tokens keep their byte span in the
// shared text, which is how SpecPC moves scores from draft tokens to target tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"

namespace glimpse {

class ThreadPool;

// The draft engine of a file, loaded on first use (one-thread default pool) and kept for the
// process; thread-safe. Error naming the file if it cannot be loaded.
std::shared_ptr<const Engine> shared_draft_engine(const std::string& path);

// Same size and the same text for every id.
bool same_vocabulary(const Tokenizer& a, const Tokenizer& b);

// Bytes of a token sequence: pieces concatenated, a leading BOS left out. begin/end[i] is
// token i's byte range in text (empty for the BOS and tokens without bytes).
struct TokenSpans {
  std::string text;
  std::vector<size_t> begin, end;
};
TokenSpans token_spans(const Tokenizer& tok, const std::vector<int32_t>& ids);

// Byte ranges of `ids` inside `text`, the tokens being tok's encoding of text: their pieces
// are matched against text in order (a piece that is not found where expected, as the space
// a SentencePiece vocabulary may put in front, is placed at the nearest match ahead, or given
// an empty range).
TokenSpans spans_in_text(const Tokenizer& tok, const std::vector<int32_t>& ids,
                         const std::string& text);

// Score of each `to` token = max over the `from` tokens whose byte ranges overlap its own
// (both over the same text). A `to` token that overlaps none (no bytes: the BOS) gets the
// largest score of all, so it is kept wherever anything is (a sink).
std::vector<float> map_scores_by_bytes(const TokenSpans& from, const std::vector<float>& from_scores,
                                       const TokenSpans& to);

// The target's prompt as the draft reads it.
struct DraftPrompt {
  bool cross = false;           // different vocabularies
  std::vector<int32_t> tokens;  // in the draft's vocabulary
  TokenSpans target, draft;     // cross only: byte spans of both over the prompt's text
};
DraftPrompt draft_prompt(const Tokenizer& target, const Tokenizer& draft,
                         const std::vector<int32_t>& target_prompt);

// The draft's answer tokens in the target's vocabulary (cross: bytes re-tokenized, no BOS,
// special text not parsed; same vocabulary: as they are).
std::vector<int32_t> answer_for_target(const Tokenizer& target, const Tokenizer& draft, bool cross,
                                       const std::vector<int32_t>& draft_answer);

// One greedy run of a draft on a target prompt: its own context (n_ctx: the prompt, the
// answer and one spare position; n_batch of the target) on `pool`.
struct DraftRun {
  DraftPrompt prompt;
  std::vector<int32_t> answer;  // in the target's vocabulary
  int64_t n_draft_answer = 0;   // tokens the draft wrote (its own vocabulary)
  double ms = 0;                // prefill + decode
};
// observer (may be null) watches the draft's prompt prefill and every answer token fed back
// (the last one is never fed). max_new >= 1; stops before an end-of-generation token.
DraftRun run_draft(const std::shared_ptr<const Engine>& draft, ThreadPool& pool, int n_batch,
                   const Tokenizer& target, const std::vector<int32_t>& target_prompt, int max_new,
                   ForwardObserver* observer = nullptr);
// The same with the prompt already in the draft's terms (draft_prompt).
DraftRun run_draft(const std::shared_ptr<const Engine>& draft, ThreadPool& pool, int n_batch,
                   const Tokenizer& target, DraftPrompt prompt, int max_new,
                   ForwardObserver* observer = nullptr);

}  // namespace glimpse
