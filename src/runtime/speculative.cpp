#include "runtime/speculative.h"

#include <algorithm>

#include "runtime/spec_verify.h"

#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

DraftLength::DraftLength(int draft_min, int draft_max)
    : min_(draft_min), max_(draft_max), k_(std::min(draft_max, std::max(draft_min, 4))) {}

bool DraftLength::update_cost(int drafted, int committed, double round_ms) {
  auto ema = [](double& avg, int& n, double x) {
    avg = n == 0 ? x : 0.75 * avg + 0.25 * x;
    ++n;
  };
  if (drafted == 0) {
    ema(plain_rate_, plain_n_, committed / round_ms);
    since_plain_ = 0;
    measure_plain_ = false;
    return false;
  }
  ema(spec_rate_, spec_n_, committed / round_ms);
  ++since_plain_;
  if (plain_n_ == 0 ? since_plain_ >= kCostWarmup : since_plain_ >= kPlainRefresh) measure_plain_ = true;
  if (plain_n_ > 0 && spec_n_ >= kCostWarmup && spec_rate_ < kFallbackMargin * plain_rate_ &&
      min_ == 0) {
    k_ = 0;  // drafting costs more than it saves: plain decoding, probing now and then
    idle_ = 0;
    spec_n_ = 0;  // the probes judge afresh
    ++cost_fallbacks_;
    return true;
  }
  return false;
}

void DraftLength::update(int drafted, int accepted, int committed, double round_ms) {
  const bool measuring = measure_plain_;
  if (round_ms > 0 && committed > 0 && min_ == 0 && update_cost(drafted, committed, round_ms))
    return;  // fell back on cost
  if (measuring) return;  // a plain measurement round says nothing about k
  if (k_ == 0) {  // plain decoding; probe again now and then
    if (++idle_ >= kProbeRounds && max_ > 0) {
      k_ = 1;
      idle_ = 0;
    }
    return;
  }
  if (accepted < drafted)
    k_ = std::max(min_, k_ - 1);
  else if (drafted == k_)
    k_ = std::min(max_, k_ + 2);
}

void check_speculative(const GenerateParams& p, const SpecParams& sp) {
  if (p.kv.name != "none")
    fail("--spec verifies with the full cache, so --kv-policy does not combine with it (a "
         "compressed view is a draft source: --spec-views POLICY@BUDGET)");
  if (sp.draft_min < 0 || sp.draft_max < sp.draft_min || sp.draft_max > 256)
    fail("--draft-min {} / --draft-max {}: need 0 <= min <= max <= 256", sp.draft_min, sp.draft_max);
  if (sp.draft.p_min < 0 || sp.draft.p_min > 1)
    fail("--draft-p-min {}: expected a probability in [0, 1]", sp.draft.p_min);
}

namespace {

// One speculative request: the committed sequence, the per-token rule of generate() and the
// rounds.
class SpecRun {
 public:
  SpecRun(Context& ctx, const GenerateParams& p, const SpecParams& sp, GenerateResult& r,
          const std::function<void(std::string_view)>& on_text)
      : s_(ctx), p_(p), sp_(sp), r_(r), on_text_(on_text), len_(sp.draft_min, sp.draft_max),
        V_(ctx.model().config().n_vocab) {}

  void run(const std::vector<int32_t>& prompt);

 private:
  bool commit(int32_t id);
  int32_t pick(const float* logits);
  bool round(Drafter& dr);
  std::vector<int32_t> verify_greedy(const std::vector<int32_t>& drafts, int& accepted, bool& go);
  std::vector<int32_t> verify_sampled(const Drafter& dr, const std::vector<int32_t>& drafts,
                                      int& accepted, bool& go);
  void emit(const std::string& text) {
    if (text.empty()) return;
    r_.text += text;
    if (on_text_) on_text_(text);
  }

  Context& s_;
  const GenerateParams& p_;
  const SpecParams& sp_;
  GenerateResult& r_;
  const std::function<void(std::string_view)>& on_text_;
  DraftLength len_;
  const int32_t V_;
  std::vector<int32_t> seq_;  // prompt + committed output; the last token not yet in s_
  std::vector<float> rows_;   // [1 + drafts][V] target logits of a round
  // Sampling (temperature > 0): the accept / residual draws, and a zeroed [V] scratch.
  std::mt19937_64 rng_;
  std::vector<float> dense_;
};

// generate()'s rule for one sampled token; false when the run ends with it.
bool SpecRun::commit(int32_t id) {
  seq_.push_back(id);
  ++r_.timings.n_gen;
  if (!p_.ignore_eos && s_.tokenizer().is_eog(id)) {
    r_.stop_reason = "eos";
    return false;
  }
  r_.tokens.push_back(id);
  emit(s_.text_of(id));
  if (s_.stopped()) {
    r_.stop_reason = "stop";
    return false;
  }
  return p_.n_predict < 0 || r_.timings.n_gen < p_.n_predict;
}

// The token plain decoding would take from these logits: the request's sampler (greedy,
// penalties over the tokens it accepted so far), which then records it.
int32_t SpecRun::pick(const float* logits) {
  Stopwatch sw;
  Sampler& sampler = s_.sampling().sampler;
  const int32_t id = sampler.sample(logits);
  sampler.accept(id);
  r_.timings.sample_ms += sw.ms();
  return id;
}

// Greedy: row i holds the target's logits after feed[0..i]; its pick either confirms
// drafts[i] and the next row is valid, or replaces it (or follows the whole draft).
std::vector<int32_t> SpecRun::verify_greedy(const std::vector<int32_t>& drafts, int& accepted,
                                            bool& go) {
  std::vector<int32_t> picks;
  for (size_t i = 0; i <= drafts.size(); ++i) {
    const int32_t id = pick(rows_.data() + i * V_);
    picks.push_back(id);
    ++r_.timings.spec.generated;
    go = commit(id);
    const bool match = i < drafts.size() && id == drafts[i];
    accepted += match;
    if (!go || !match) break;
  }
  return picks;
}

// Sampling: spec_verify.h's rule with the request sampler's distribution of each row (its
// penalty window sees each token as it is committed, as in plain sampling).
std::vector<int32_t> SpecRun::verify_sampled(const Drafter& dr, const std::vector<int32_t>& drafts,
                                             int& accepted, bool& go) {
  Sampler& sampler = s_.sampling().sampler;
  auto target = [&](size_t i) {
    Stopwatch sw;
    SparseDist p = sampler.distribution(rows_.data() + i * V_);
    r_.timings.sample_ms += sw.ms();
    return p;
  };
  auto on_commit = [&](int32_t id) {
    sampler.accept(id);
    ++r_.timings.spec.generated;
    return go = commit(id);
  };
  const std::vector<int32_t> picks =
      verify_round_sampled(drafts, dr.draft_dists(), target, on_commit, rng_, dense_);
  for (size_t i = 0; i < picks.size() && i < drafts.size() && picks[i] == drafts[i]; ++i) ++accepted;
  return picks;
}

// Draft, verify in one target forward, commit, roll back. False when the run ends.
bool SpecRun::round(Drafter& dr) {
  SpecReport& rep = r_.timings.spec;
  const int32_t p0 = s_.n_past();  // == seq_.size() - 1: the pending token goes here
  Stopwatch round_sw;
  int k = std::min(len_.k(), s_.n_ctx() - p0 - 1);
  if (p_.n_predict >= 0) k = (int)std::min<int64_t>(k, p_.n_predict - r_.timings.n_gen - 1);
  if (len_.k() == 0) ++rep.fallback_rounds;
  std::vector<int32_t> drafts;
  if (k > 0) {
    Stopwatch sw;
    drafts = dr.draft(seq_, k, !p_.ignore_eos);
    rep.draft_ms += sw.ms();
  }
  std::vector<int32_t> feed = {seq_.back()};
  feed.insert(feed.end(), drafts.begin(), drafts.end());
  rows_.resize(feed.size() * (size_t)V_);
  Stopwatch sw;
  s_.prefill(feed, [&](int64_t b, const float* l, int64_t n) {
    std::copy(l, l + n * V_, rows_.begin() + b * V_);
  });
  rep.verify_ms += sw.ms();
  ++rep.rounds;

  const size_t d = drafts.size();
  int accepted = 0;
  bool go = true;
  const std::vector<int32_t> picks = dr.sampling() ? verify_sampled(dr, drafts, accepted, go)
                                                   : verify_greedy(drafts, accepted, go);
  rep.drafted += (int64_t)d;
  rep.accepted += accepted;
  if (d > 0) {
    ++rep.drafting_rounds;
    std::vector<const float*> verified_rows;
    for (size_t j = 0; j < std::min(d, picks.size()); ++j) verified_rows.push_back(rows_.data() + j * V_);
    dr.verified(verified_rows, picks, verified_rows.size());
  }
  // Keep the pending token and every committed token but the last (the new pending token,
  // seq_.back()): the accepted drafts, or fewer when the run ended on one. The target then
  // holds what plain decoding would hold.
  const int32_t n_keep = p0 + (int32_t)picks.size();
  s_.truncate(n_keep);
  dr.rollback(n_keep);
  // Greedy only: with sampling, timing-dependent lengths would change which tokens a --seed
  // gives (the draws depend on the rounds), though not their distribution.
  const bool cost = sp_.cost_aware && !dr.sampling();
  len_.update((int)d, accepted, (int)picks.size(), cost ? round_sw.ms() : 0.0);
  return go;
}

void SpecRun::run(const std::vector<int32_t>& prompt) {
  Timings& tm = r_.timings;
  SpecReport& rep = tm.spec;
  rep.enabled = true;
  rep.mode = sp_.mode;
  rep.weights = weight_rule_name(sp_.draft.weights);
  rep.verify = p_.sampling.temp > 0 ? "sampling" : "greedy";
  rep.draft_min = sp_.draft_min;
  rep.draft_max = sp_.draft_max;
  rep.p_min = sp_.draft.p_min;
  s_.begin_sampling(p_.sampling, p_.stop, prompt);
  r_.seed = s_.sampling().sampler.seed();
  Drafter dr(s_, sp_.draft, (int64_t)prompt.size());
  if (p_.sampling.temp > 0) {  // draws seeded from the request's seed, apart from the sampler's
    dr.sample_with(p_.sampling, (uint64_t)r_.seed * 0x9E3779B97F4A7C15ull + 1);
    rng_.seed((uint64_t)r_.seed * 0xD1B54A32D192ED03ull + 2);
    dense_.assign(V_, 0.0f);
  }

  Stopwatch sw;
  s_.prefill(prompt, dr.prefill_observer());
  rep.setup_ms = dr.setup(s_, prompt);
  tm.prefill_ms = sw.ms();

  seq_ = prompt;
  r_.stop_reason = "length";
  sw.reset();
  const double cpu0 = process_cpu_ms();
  if (p_.n_predict != 0 && commit(pick(s_.logits().data()))) {
    while (true) {
      if (s_.n_past() + 1 > s_.n_ctx()) {
        r_.stop_reason = "context";
        break;
      }
      if (!round(dr)) break;
    }
  }
  tm.decode_ms = std::max(0.0, sw.ms() - tm.sample_ms);
  tm.decode_cpu_ms = process_cpu_ms() - cpu0;
  emit(s_.finish_text());
  rep.weights_ms = dr.weights_ms();
  rep.cost_fallbacks = len_.cost_fallbacks();
  rep.sources = dr.stats();
}

}  // namespace

GenerateResult generate_speculative(Context& ctx, const std::vector<int32_t>& prompt,
                                    const GenerateParams& p, const SpecParams& sp,
                                    const std::function<void(std::string_view)>& on_text) {
  check_speculative(p, sp);
  check_prompt_fits(ctx, prompt.size());
  if (ctx.n_past() != 0) fail("speculative decoding starts from an empty context");
  GenerateResult r;
  Stopwatch total;
  r.timings.load_ms = ctx.engine().load_ms();
  r.timings.n_prompt = (int64_t)prompt.size();
  SpecRun(ctx, p, sp, r, on_text).run(prompt);
  r.timings.total_ms = total.ms() + r.timings.load_ms;
  r.timings.record_cache(ctx.cache());
  return r;
}

}  // namespace glimpse
