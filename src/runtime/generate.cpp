#include "runtime/generate.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

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
  nlohmann::json j = {{"n_prompt", n_prompt},     {"n_gen", n_gen},
                      {"load_ms", load_ms},       {"prefill_ms", prefill_ms},
                      {"decode_ms", decode_ms},   {"decode_cpu_ms", decode_cpu_ms},
                      {"sample_ms", sample_ms},
                      {"total_ms", total_ms},     {"prefill_tps", prefill_tps()},
                      {"decode_tps", decode_tps()}, {"type_k", kv_type_name(type_k)},
                      {"type_v", kv_type_name(type_v)}, {"kv_bytes", kv_bytes},
                      {"kv_entries", kv_entries}};
  if (kv.policy != "none") j["kv"] = nlohmann::json::parse(kv.to_json());
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

GenerateResult generate(Context& s, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<void(std::string_view)>& on_text) {
  check_prompt_fits(s, prompt.size());
  GenerateResult r;
  Stopwatch total;
  r.timings.load_ms = s.engine().load_ms();
  r.timings.n_prompt = (int64_t)prompt.size();
  const Tokenizer& tok = s.tokenizer();
  s.begin_sampling(p.sampling, p.stop, prompt);
  r.seed = s.sampling().sampler.seed();
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    r.text += text;
    if (on_text) on_text(text);
  };

  Stopwatch sw;
  r.timings.kv = prefill_with_eviction(s, prompt, p.n_compress, p.kv);
  r.timings.prefill_ms = sw.ms();

  r.stop_reason = "length";
  const double cpu0 = process_cpu_ms();
  while (p.n_predict < 0 || r.timings.n_gen < p.n_predict) {
    sw.reset();
    const int32_t id = s.sample_next();
    r.timings.sample_ms += sw.ms();
    ++r.timings.n_gen;
    if (!p.ignore_eos && tok.is_eog(id)) {
      r.stop_reason = "eos";
      break;
    }
    r.tokens.push_back(id);
    emit(s.text_of(id));
    if (s.stopped()) {
      r.stop_reason = "stop";
      break;
    }
    if (p.n_predict >= 0 && r.timings.n_gen >= p.n_predict) break;
    if (s.cache().n_past() + 1 > s.n_ctx()) {
      r.stop_reason = "context";
      break;
    }
    sw.reset();
    s.decode(id);
    r.timings.decode_ms += sw.ms();
  }
  r.timings.decode_cpu_ms = process_cpu_ms() - cpu0;
  emit(s.finish_text());
  r.timings.total_ms = total.ms() + r.timings.load_ms;
  r.timings.record_cache(s.cache());
  return r;
}

}  // namespace glimpse
