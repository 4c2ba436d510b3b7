// Lossless speculative decoding. Each round, the drafter (spec_draft.h) proposes up
// to k tokens after the committed sequence; the target (full cache) runs [pending token,
// drafts] in ONE forward with every row's logits and picks its own token at each row with
// the request's sampler (greedy, penalties included), exactly as plain decoding would: the
// longest prefix of drafts equal to its picks is accepted and its pick after that prefix is
// appended. Then target and sources are truncated to the verified prefix (Context::truncate,
// exact), so the output is token-identical to plain greedy decoding and the target's cache
// is bit-identical to that of a run that never drafted (tested).
//
// Draft length (DraftLength): starts at min(draft_max, max(draft_min, 4)); +2 after a draft
// of the full length was accepted whole, -1 (not below draft_min) after any rejection,
// unchanged when a draft was cut short (no opinion, p_min, end of generation) and accepted.
// At 0 (only with draft_min 0) a round is a plain decode step; after kProbeRounds such rounds
// one probe drafts 1 token. k is also capped by the context left and by -n.
//
// Sampling (temperature > 0): the drafter draws each token from its mixture distribution and
// the target accepts or corrects it by speculative sampling (spec_verify.h), so the output is
// distributed exactly as plain sampling with the same settings (not token-identical to plain
// sampling with the same seed: the draws differ). Tested with a chi-square test.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/generate.h"
#include "runtime/spec_draft.h"

namespace glimpse {

struct SpecParams {
  std::string mode = "views";  // views, ngram, draft, tabed: named in the report
  DraftParams draft;
  int draft_max = 16, draft_min = 0;
};

// Plain-decode rounds before a draft length of 0 probes with 1.
inline constexpr int kProbeRounds = 8;

class DraftLength {
 public:
  DraftLength(int draft_min, int draft_max);
  int k() const { return k_; }
  // After a round: the controller's k, tokens drafted, tokens accepted.
  void update(int drafted, int accepted);

 private:
  int min_, max_, k_;
  int idle_ = 0;  // rounds at k = 0
};

// Error unless p suits speculative decoding: the full cache (no --kv-policy); the lengths in
// range.
void check_speculative(const GenerateParams& p, const SpecParams& sp);

// generate() with speculative decoding: prefill (the views' observers watch it), sources set
// up (their time counts in prefill_ms and timings.spec.setup_ms), then rounds. Same result
// fields as generate(); timings.spec holds the report. ctx must be empty.
GenerateResult generate_speculative(Context& ctx, const std::vector<int32_t>& prompt,
                                    const GenerateParams& p, const SpecParams& sp,
                                    const std::function<void(std::string_view)>& on_text);

}  // namespace glimpse
