// Key-value retrieval (RULER's "kv" / lost-in-the-middle style): a JSON object mapping
// UUID keys to UUID values, one line per entry; the question names one key and the answer
// is its value. The asked entry sits at a depth drawn from the seed.
//
// A UUID entry is ~70 tokens (hex tokenizes poorly), too coarse to land within 2% of a 1K
// target, so the length search may add "fine" entries with 4-hex-digit keys and values
// (~12 tokens), spread evenly through the object.
#include <fmt/format.h>

#include <cmath>

#include "eval/tasks_internal.h"
#include "eval/words.h"

namespace glimpse::eval::detail {

Sample gen_kv(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  const std::string key = random_uuid(rng), value = random_uuid(rng);
  const double depth = rng.unit();
  Rng pair_rng(rng.next()), fine_rng(rng.next());
  std::vector<std::pair<std::string, std::string>> pairs, fine;
  auto grow = [](Rng& r, auto& v, size_t n, bool uuid) {
    while (v.size() < n)
      v.emplace_back(uuid ? random_uuid(r) : random_hex(r, 4), uuid ? random_uuid(r) : random_hex(r, 4));
  };

  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 64;
  proto.answers = {value};
  proto.question = fmt::format(
      "What is the value of the key \"{}\" in the JSON object above? Answer with the value "
      "only.", key);
  proto.meta = {{"key", key}, {"depth", depth}};
  proto.evidence = {fmt::format("\"{}\": \"{}\"", key, value)};  // the asked entry

  auto build = [&](size_t n, size_t m) {
    grow(pair_rng, pairs, n, true);
    grow(fine_rng, fine, m, false);
    // n distractors + the asked entry at index `at`; fine entry j after main entry
    // floor((j + 1) * (n + 1) / (m + 1)).
    const size_t total = n + 1, at = std::min(n, (size_t)std::floor(depth * (double)total));
    std::vector<const std::pair<std::string, std::string>*> main;
    for (size_t i = 0, d = 0; i < total; ++i) main.push_back(i == at ? nullptr : &pairs[d++]);
    const std::pair<std::string, std::string> asked{key, value};
    std::string body;
    size_t j = 0;
    auto entry = [&](const std::pair<std::string, std::string>& p) {
      body += fmt::format("{}\"{}\": \"{}\"", body.empty() ? " " : ",\n ", p.first, p.second);
    };
    for (size_t i = 0; i < total; ++i) {
      entry(main[i] ? *main[i] : asked);
      for (; j < m && (j + 1) * total / (m + 1) <= i + 1; ++j) entry(fine[j]);
    }
    for (; j < m; ++j) entry(fine[j]);
    Sample s = proto;
    s.context = "Extract the value corresponding to the specified key in the JSON object "
                "below.\n\nJSON data:\n{" + body + "}";
    s.meta["n_entries"] = total + m;
    s.meta["uuid_index"] = at;  // position among the UUID entries
    return s;
  };
  FitLimits lim;
  lim.n_probe = 8;
  lim.m_max = 16;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

}  // namespace glimpse::eval::detail
