#include "runtime/generate.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "sampling/logprobs.h"
#include "sampling/stop_strings.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

void Timings::record_cache(const KvCache& cache) {
  type_k = cache.type_k();
  type_v = cache.type_v();
  kv_bytes = cache.resident_bytes();
  kv_entries = cache.total_entries();
}

double Timings::decode_tps() const {
  // The first generated token comes from the prefill; each later one costs a decode step.
  const int64_t steps = n_gen > 0 ? n_gen - 1 : 0;
  return decode_ms > 0 ? steps * 1000.0 / decode_ms : 0;
}

std::string Timings::to_json() const {
  nlohmann::json j = {{"n_prompt", n_prompt},     {"n_cached", n_cached}, {"n_gen", n_gen},
                      {"load_ms", load_ms},       {"prefill_ms", prefill_ms},
                      {"decode_ms", decode_ms},   {"decode_cpu_ms", decode_cpu_ms},
                      {"sample_ms", sample_ms},
                      {"total_ms", total_ms},     {"prefill_tps", prefill_tps()},
                      {"decode_tps", decode_tps()}, {"type_k", kv_type_name(type_k)},
                      {"type_v", kv_type_name(type_v)}, {"kv_bytes", kv_bytes},
                      {"kv_entries", kv_entries}};
  if (kv.policy != "none" || kv.prompt_compress != "none") j["kv"] = nlohmann::json::parse(kv.to_json());
  if (spec.enabled) j["spec"] = nlohmann::json::parse(spec.to_json());
  return j.dump(2);
}

std::string Timings::report() const {
  const int64_t steps = n_gen > 0 ? n_gen - 1 : 0;
  std::string s;
  s += fmt::format("glimpse:        load time = {:10.2f} ms\n", load_ms);
  s += fmt::format("glimpse: prompt eval time = {:10.2f} ms / {:5} tokens ({:8.2f} ms per token, "
                   "{:8.2f} tokens per second)\n",
                   prefill_ms, n_prompt, n_prompt ? prefill_ms / n_prompt : 0.0, prefill_tps());
  s += fmt::format("glimpse:        eval time = {:10.2f} ms / {:5} runs   ({:8.2f} ms per token, "
                   "{:8.2f} tokens per second)\n",
                   decode_ms, steps, steps ? decode_ms / steps : 0.0, decode_tps());
  s += fmt::format("glimpse:      sample time = {:10.2f} ms / {:5} runs\n", sample_ms, n_gen);
  s += kv.report();
  s += spec.report();
  s += fmt::format("glimpse:         kv cache = {:10.2f} MiB / {:5} entries (K {}, V {})\n",
                   kv_bytes / 1048576.0, kv_entries, kv_type_name(type_k), kv_type_name(type_v));
  s += fmt::format("glimpse:       total time = {:10.2f} ms / {:5} tokens\n", total_ms,
                   n_prompt + n_gen);
  return s;
}

void check_prompt_fits(const Context& s, size_t n_prompt) {
  if (n_prompt == 0) fail("the prompt is empty");
  if ((int64_t)n_prompt >= s.n_ctx())
    fail("prompt is {} tokens, which does not fit the context size {} (raise -c, up to the "
         "model's {})",
         n_prompt, s.n_ctx(), s.model().config().n_ctx_train);
}

Generation::Generation(Context& ctx, const std::vector<int32_t>& prompt, const GenerateParams& p,
                       std::function<void(std::string_view)> on_text, const CachedPrefix& cached)
    : s_(ctx), p_(p), on_text_(std::move(on_text)), cached_kv_(cached.compressed) {
  check_prompt_fits(s_, prompt.size());
  if (cached.n_tokens != s_.n_past() || cached.n_tokens >= (int64_t)prompt.size())
    fail("Generation: the context holds {} tokens, the cached prefix {} of a {}-token prompt",
         s_.n_past(), cached.n_tokens, prompt.size());
  r_.timings.load_ms = s_.engine().load_ms();
  r_.timings.n_prompt = (int64_t)prompt.size();
  r_.timings.n_cached = cached.n_tokens;
  s_.begin_sampling(p_.sampling, p_.stop, prompt);
  r_.seed = s_.sampling().sampler.seed();
  if (cached.n_tokens > 0)  // the rest of the prompt, plain
    prefill_ = std::make_unique<StagedPrefill>(
        s_, std::vector<int32_t>(prompt.begin() + cached.n_tokens, prompt.end()), -1,
        KvPolicySettings{});
  else
    prefill_ = std::make_unique<StagedPrefill>(s_, prompt, p_.n_compress, p_.kv);
  // Prompt compression (SpecPC) ran its draft already: part of the time to the first token.
  r_.timings.prefill_ms += prefill_->report().pc_draft_ms + prefill_->report().pc_select_ms;
  r_.stop_reason = "length";
}

void Generation::prefill_ran(const ContextStep& chunk, double forward_ms) {
  Stopwatch sw;
  prefill_->ran(chunk, forward_ms);
  r_.timings.prefill_ms += forward_ms + sw.ms();
  if (!prefill_->done()) return;
  r_.timings.kv = prefill_->report();
  if (cached_kv_) {  // compressed when it was cached: its report, none of its costs
    const double ms = r_.timings.kv.prefill_ms;
    r_.timings.kv = *cached_kv_;
    r_.timings.kv.prefill_ms = ms;
    r_.timings.kv.score_ms = r_.timings.kv.evict_ms = 0;
  }
  cpu0_ = process_cpu_ms();
}

void Generation::prefill() {
  while (prefilling()) {
    const ContextStep chunk = prefill_chunk(s_.n_batch());
    Stopwatch sw;
    s_.prefill(chunk.tokens, chunk.observer);
    prefill_ran(chunk, sw.ms());
  }
}

void Generation::record_logprob(int32_t id) {
  const Tokenizer& tok = s_.tokenizer();
  const LogprobsAt at = logprobs_at(s_.logits().data(), (int32_t)s_.logits().size(), id, p_.n_probs);
  TokenLogprob lp;
  lp.token = {id, tok.token_to_piece(id), at.chosen};
  for (const auto& [t, l] : at.top) lp.top.push_back({t, tok.token_to_piece(t), l});
  if (on_logprob_) on_logprob_(lp);
  r_.logprobs.push_back(std::move(lp));
}

void Generation::emit(const std::string& text) {
  if (text.empty()) return;
  r_.text += text;
  if (on_text_) on_text_(text);
}

int32_t Generation::step() {
  if (prefilling()) fail("Generation::step: the prompt is not in yet");
  if (over_ || (p_.n_predict >= 0 && r_.timings.n_gen >= p_.n_predict)) {
    over_ = true;
    return -1;
  }
  Stopwatch sw;
  const int32_t id = s_.sample_next();
  r_.timings.sample_ms += sw.ms();
  ++r_.timings.n_gen;
  over_ = true;
  if (!p_.ignore_eos && s_.tokenizer().is_eog(id)) {
    r_.stop_reason = "eos";
    return -1;
  }
  r_.tokens.push_back(id);
  if (p_.n_probs >= 0) record_logprob(id);
  emit(s_.text_of(id));
  if (s_.stopped()) {
    r_.stop_reason = "stop";
    return -1;
  }
  if (p_.n_predict >= 0 && r_.timings.n_gen >= p_.n_predict) return -1;
  if (s_.cache().n_past() + 1 > s_.n_ctx()) {
    r_.stop_reason = "context";
    return -1;
  }
  over_ = false;
  return id;
}

GenerateResult Generation::finish() {
  r_.timings.decode_cpu_ms = process_cpu_ms() - cpu0_;
  emit(s_.finish_text());
  r_.timings.total_ms = total_.ms() + r_.timings.load_ms;
  r_.timings.record_cache(s_.cache());
  return std::move(r_);
}

GenerateResult generate(Context& s, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<void(std::string_view)>& on_text) {
  Generation g(s, prompt, p, on_text);
  g.prefill();
  for (int32_t id; (id = g.step()) >= 0;) {
    Stopwatch sw;
    s.decode(id);
    g.add_decode_ms(sw.ms());
  }
  return g.finish();
}

}  // namespace glimpse
