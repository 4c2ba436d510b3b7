#include "runtime/draft_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "runtime/context.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

std::shared_ptr<const Engine> shared_draft_engine(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Engine>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;
  EngineParams p;
  p.model_path = path;
  p.n_threads = 1;  // its contexts run on the requesting context's pool
  std::shared_ptr<const Engine> e = Engine::load(p);
  loaded.emplace(path, e);
  return e;
}

bool same_vocabulary(const Tokenizer& a, const Tokenizer& b) {
  if (a.n_vocab() != b.n_vocab()) return false;
  for (int32_t id = 0; id < a.n_vocab(); ++id)
    if (a.token_text(id) != b.token_text(id)) return false;
  return true;
}

TokenSpans token_spans(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  TokenSpans s;
  for (size_t i = 0; i < ids.size(); ++i) {
    s.begin.push_back(s.text.size());
    if (!(i == 0 && ids[i] == tok.bos())) s.text += tok.token_to_piece(ids[i]);
    s.end.push_back(s.text.size());
  }
  return s;
}

TokenSpans spans_in_text(const Tokenizer& tok, const std::vector<int32_t>& ids,
                         const std::string& text) {
  constexpr size_t kLookAhead = 16;  // bytes a piece may be found ahead of where expected
  TokenSpans s;
  s.text = text;
  size_t at = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = (i == 0 && ids[i] == tok.bos()) ? "" : tok.token_to_piece(ids[i]);
    if (!piece.empty() && text.compare(at, piece.size(), piece) != 0) {
      // A SentencePiece vocabulary may put a space in front that the text does not have.
      if (piece[0] == ' ' && text.compare(at, piece.size() - 1, piece, 1) == 0) {
        piece.erase(0, 1);
      } else {
        const size_t found = text.find(piece, at);
        if (found != std::string::npos && found - at <= kLookAhead)
          at = found;
        else
          piece.clear();  // not placed: an empty range
      }
    }
    s.begin.push_back(at);
    at += piece.size();
    s.end.push_back(at);
  }
  return s;
}

std::vector<float> map_scores_by_bytes(const TokenSpans& from, const std::vector<float>& from_scores,
                                       const TokenSpans& to) {
  if (from_scores.size() != from.begin.size()) fail("map_scores_by_bytes: {} scores for {} tokens",
                                                   from_scores.size(), from.begin.size());
  float top = -INFINITY;
  for (float x : from_scores) top = std::max(top, x);
  if (from_scores.empty()) top = 0;
  const size_t nf = from.begin.size(), nt = to.begin.size();
  // Token order follows byte order on both sides: a sweep, restarting from the first `from`
  // token that may still overlap.
  std::vector<float> out(nt, -INFINITY);
  size_t j0 = 0;
  for (size_t i = 0; i < nt; ++i) {
    const size_t b = to.begin[i], e = to.end[i];
    if (b == e) {
      out[i] = top;
      continue;
    }
    while (j0 < nf && from.end[j0] <= b) ++j0;
    for (size_t j = j0; j < nf && from.begin[j] < e; ++j)
      if (from.begin[j] < from.end[j] && from.end[j] > b) out[i] = std::max(out[i], from_scores[j]);
    if (out[i] == -INFINITY) out[i] = 0;  // bytes no draft token covers
  }
  return out;
}

DraftPrompt draft_prompt(const Tokenizer& target, const Tokenizer& draft,
                         const std::vector<int32_t>& target_prompt) {
  DraftPrompt p;
  p.cross = !same_vocabulary(target, draft);
  if (!p.cross) {
    p.tokens = target_prompt;
    return p;
  }
  p.target = token_spans(target, target_prompt);
  p.tokens = draft.encode(p.target.text, draft.add_bos(), /*parse_special=*/true);
  if (p.tokens.empty()) fail("the draft model's tokenizer gave no tokens for the prompt");
  p.draft = spans_in_text(draft, p.tokens, p.target.text);
  return p;
}

std::vector<int32_t> answer_for_target(const Tokenizer& target, const Tokenizer& draft, bool cross,
                                       const std::vector<int32_t>& draft_answer) {
  if (!cross) return draft_answer;
  std::string text;
  for (int32_t id : draft_answer) text += draft.token_to_piece(id);
  if (text.empty()) return {};
  return target.encode(text, /*add_bos=*/false, /*parse_special=*/false);
}

DraftRun run_draft(const std::shared_ptr<const Engine>& draft, ThreadPool& pool, int n_batch,
                   const Tokenizer& target, const std::vector<int32_t>& target_prompt, int max_new,
                   ForwardObserver* observer) {
  Stopwatch sw;
  DraftRun r = run_draft(draft, pool, n_batch, target,
                         draft_prompt(target, draft->tokenizer(), target_prompt), max_new, observer);
  r.ms = sw.ms();  // the re-tokenization included
  return r;
}

DraftRun run_draft(const std::shared_ptr<const Engine>& draft, ThreadPool& pool, int n_batch,
                   const Tokenizer& target, DraftPrompt prompt, int max_new,
                   ForwardObserver* observer) {
  if (max_new < 1) fail("draft answer length must be >= 1");
  Stopwatch sw;
  DraftRun r;
  r.prompt = std::move(prompt);
  ContextParams cp;
  cp.n_ctx = (int)r.prompt.tokens.size() + max_new + 1;
  cp.n_batch = n_batch;
  Context ctx(draft, cp, &pool);
  ctx.prefill(r.prompt.tokens, observer);
  GreedyOptions g;
  g.max_new = max_new;
  // A draft of another family writes the whole length: an instruct draft given a base
  // model's raw text often ends at once, leaving no answer queries to score with. A draft of
  // the same vocabulary stops where it ends its answer, as the oracle does (so the model as
  // its own draft keeps the oracle's entries).
  if (r.prompt.cross) g.min_new = max_new;
  g.feed_last = false;  // the last token's forward is never needed
  const GreedyRun run = ctx.greedy(g, observer);
  r.n_draft_answer = (int64_t)run.tokens.size();
  r.answer = answer_for_target(target, draft->tokenizer(), r.prompt.cross, run.tokens);
  r.ms = sw.ms();
  return r;
}

}  // namespace glimpse
