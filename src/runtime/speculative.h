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
// Cost-aware fallback (greedy decoding only, where rounds report their wall time; off with
// --draft-min > 0 and when sampling, so that a --seed keeps giving the same text): drafting is
// kept only while it commits tokens faster than plain decoding. Exponential moving averages
// (weight 1/4) track the tokens per ms of drafting rounds and of plain rounds (rounds that
// drafted nothing); after kCostWarmup drafting rounds without a plain one, one plain round
// is measured (and again every kPlainRefresh drafting rounds, as depth slows plain decoding);
// when drafting runs below kFallbackMargin x the plain rate, k falls to 0 as after rejections.
// Decisions depend on timing, so draft lengths may differ between runs; outputs never do.
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
  bool cost_aware = true;  // greedy: fall back where drafting is slower than plain decoding
};

// Plain-decode rounds before a draft length of 0 probes with 1.
inline constexpr int kProbeRounds = 8;
// Cost-aware fallback (see above).
inline constexpr int kCostWarmup = 2, kPlainRefresh = 32;
inline constexpr double kFallbackMargin = 0.95;

class DraftLength {
 public:
  DraftLength(int draft_min, int draft_max);
  // The draft length of the next round (0 during a plain measurement round).
  int k() const { return measure_plain_ ? 0 : k_; }
  // After a round: tokens drafted, tokens accepted, and (cost-aware) tokens committed and
  // the round's wall time in ms; round_ms <= 0 leaves the cost rule out.
  void update(int drafted, int accepted, int committed = 0, double round_ms = 0);
  double spec_rate() const { return spec_rate_; }    // tokens per ms while drafting
  double plain_rate() const { return plain_rate_; }  // tokens per ms of plain rounds
  int64_t cost_fallbacks() const { return cost_fallbacks_; }

 private:
  bool update_cost(int drafted, int committed, double round_ms);  // true: fell back
  int min_, max_, k_;
  int idle_ = 0;  // rounds at k = 0
  double spec_rate_ = 0, plain_rate_ = 0;
  int spec_n_ = 0, plain_n_ = 0, since_plain_ = 0;
  bool measure_plain_ = false;
  int64_t cost_fallbacks_ = 0;
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
