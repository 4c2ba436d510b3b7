#include "runtime/spec_report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace glimpse {

std::string SpecReport::report() const {
  if (!enabled) return "";
  std::string names;
  for (const SpecSourceStats& s : sources) names += (names.empty() ? "" : ", ") + s.name;
  std::string out = fmt::format(
      "glimpse: speculative = {} ({}), weights {}, verify {}, draft length {}..{}, p-min {:.2f}\n",
      mode, names, weights, verify, draft_min, draft_max, p_min);
  out += fmt::format("glimpse:   target forwards = {} for {} tokens ({:.2f} tokens per forward, "
                     "{:.3f} forwards per token); {} rounds without drafting, {} fallbacks on cost\n",
                     rounds, generated, tokens_per_forward(), forwards_per_token(), fallback_rounds,
                     cost_fallbacks);
  out += fmt::format("glimpse:   drafted = {}, accepted = {} ({:.1f}%), mean accepted length = {:.2f} "
                     "({} drafting rounds)\n",
                     drafted, accepted, 100.0 * acceptance(), mean_accepted(), drafting_rounds);
  out += fmt::format("glimpse:   setup = {:.2f} ms, draft = {:.2f} ms, verify = {:.2f} ms, weights = "
                     "{:.2f} ms\n",
                     setup_ms, draft_ms, verify_ms, weights_ms);
  for (const SpecSourceStats& s : sources) {
    out += fmt::format("glimpse:   source {:<16} top-1 = target {:5}/{:<5} ({:5.1f}%), weight {:.3f}",
                       s.name, s.agreed, s.positions, 100.0 * s.agreement(), s.weight);
    if (s.kv_entries) out += fmt::format(", {} kv entries, setup {:.2f} ms", s.kv_entries, s.setup_ms);
    out += "\n";
  }
  return out;
}

std::string SpecReport::to_json() const {
  nlohmann::json src = nlohmann::json::array();
  for (const SpecSourceStats& s : sources)
    src.push_back({{"name", s.name},
                   {"positions", s.positions},
                   {"agreed", s.agreed},
                   {"agreement", s.agreement()},
                   {"weight", s.weight},
                   {"kv_entries", s.kv_entries},
                   {"setup_ms", s.setup_ms}});
  nlohmann::json j = {{"mode", mode},
                      {"weights", weights},
                      {"verify", verify},
                      {"draft_min", draft_min},
                      {"draft_max", draft_max},
                      {"p_min", p_min},
                      {"rounds", rounds},
                      {"drafting_rounds", drafting_rounds},
                      {"fallback_rounds", fallback_rounds},
                      {"cost_fallbacks", cost_fallbacks},
                      {"generated", generated},
                      {"drafted", drafted},
                      {"accepted", accepted},
                      {"acceptance", acceptance()},
                      {"mean_accepted", mean_accepted()},
                      {"tokens_per_forward", tokens_per_forward()},
                      {"forwards_per_token", forwards_per_token()},
                      {"setup_ms", setup_ms},
                      {"draft_ms", draft_ms},
                      {"verify_ms", verify_ms},
                      {"weights_ms", weights_ms},
                      {"sources", src}};
  return j.dump();
}

}  // namespace glimpse
