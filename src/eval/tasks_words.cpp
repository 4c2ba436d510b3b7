// Aggregation tasks over word lists (RULER's "cwe" and "fwe").
//
// cwe: a numbered list "1. tavimo 2. kebu 3. ..." in which kCommon words each appear f_c
//      times and the rest f_u = 2 times; f_c grows with the target length (5 at 1K, 30 at
//      8K and above), so the common words are always strictly the most frequent. Answer:
//      the kCommon common words (match_all).
// fwe: "coded text": words drawn with Zipf-like counts c_r ~ N / (zeta(2) r^2) for the
//      ranks that reach 2 occurrences, the remaining slots filled with words seen once; the
//      top 3 counts are forced strictly above the 4th. Answer: the 3 most frequent words.
// Words are pronounceable pseudo-words (words.h), so no word list is needed and the model
// cannot rely on prior word frequencies.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "eval/tasks_internal.h"
#include "eval/words.h"

namespace glimpse::eval::detail {
namespace {

constexpr int kCommon = 10;
constexpr int kUncommonFreq = 2;
constexpr int kFweTop = 3;

// A growing pool of distinct pseudo-words drawn from its own stream, so word i is the same
// whatever size the pool reached.
class WordPool {
 public:
  WordPool(uint64_t seed, std::vector<std::string> avoid, int min_syl, int max_syl)
      : rng_(seed), avoid_(std::move(avoid)), min_syl_(min_syl), max_syl_(max_syl) {}
  const std::string& operator[](size_t i) {
    while (words_.size() <= i) {
      std::vector<std::string> avoid = avoid_;
      avoid.insert(avoid.end(), words_.begin(), words_.end());
      // Grow in chunks; distinctness is checked against everything drawn so far.
      const size_t chunk = std::max<size_t>(64, words_.size());
      for (auto& w : distinct_pseudo_words(rng_, chunk, min_syl_, max_syl_, avoid))
        words_.push_back(std::move(w));
    }
    return words_[i];
  }

 private:
  Rng rng_;
  std::vector<std::string> avoid_, words_;
  int min_syl_, max_syl_;
};

}  // namespace

Sample gen_cwe(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  const std::vector<std::string> common = distinct_pseudo_words(rng, kCommon, 2, 3);
  const int common_freq = (int)std::clamp<int64_t>(opt.target_tokens / 200, 5, 30);
  WordPool pool(rng.next(), common, 2, 3);
  const uint64_t shuffle_seed = rng.next();

  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 64;
  proto.answers = common;
  proto.question = fmt::format(
      "What are the {} most common words in the list above? Answer with the words only, "
      "separated by spaces.", kCommon);
  proto.meta = {{"common_freq", common_freq}, {"uncommon_freq", kUncommonFreq}};

  auto build = [&](size_t n, size_t) {
    if (n) pool[n - 1];  // grow first: pointers into the pool must stay valid
    std::vector<const std::string*> items;
    for (const auto& w : common)
      for (int i = 0; i < common_freq; ++i) items.push_back(&w);
    for (size_t u = 0; u < n; ++u)
      for (int i = 0; i < kUncommonFreq; ++i) items.push_back(&pool[u]);
    Rng sh(shuffle_seed);
    sh.shuffle(items);
    Sample s = proto;
    s.context =
        "Below is a numbered list of words. Some of them appear more often than others; "
        "memorize the ones that appear most often.\n\n";
    for (size_t i = 0; i < items.size(); ++i)
      s.context += fmt::format("{}{}. {}", i ? " " : "", i + 1, *items[i]);
    s.meta["n_uncommon"] = n;
    return s;
  };
  FitLimits lim;
  lim.n_probe = 32;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

// Occurrences of ranks 1.. for a text of n words: Zipf(2) for the ranks reaching 2, the
// top kFweTop made strictly larger than every later count.
std::vector<int64_t> fwe_counts(size_t n) {
  constexpr double kZeta2 = 1.6449340668482264;
  std::vector<int64_t> c;
  for (int r = 1;; ++r) {
    const int64_t x = std::llround((double)n / (kZeta2 * r * r));
    if (x < 2 && r > kFweTop + 1) break;
    c.push_back(std::max<int64_t>(x, 1));
  }
  for (int r = kFweTop - 1; r >= 0; --r) c[r] = std::max(c[r], c[r + 1] + 1);
  return c;
}

Sample gen_fwe(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  WordPool pool(rng.next(), {}, 2, 3);
  const uint64_t shuffle_seed = rng.next();

  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kMatchAll;
  proto.max_new_tokens = 32;
  proto.question = fmt::format(
      "What are the {} most frequent coded words in the text above? Answer with the words "
      "only, separated by spaces.", kFweTop);

  auto build = [&](size_t n, size_t) {
    const std::vector<int64_t> counts = fwe_counts(n);
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    pool[counts.size() + (size_t)std::max<int64_t>(0, (int64_t)n - total)];  // grow first
    std::vector<const std::string*> items;
    for (size_t r = 0; r < counts.size(); ++r)
      for (int64_t i = 0; i < counts[r]; ++i) items.push_back(&pool[r]);
    for (size_t k = counts.size(); items.size() < n; ++k) items.push_back(&pool[k]);
    Rng sh(shuffle_seed);
    sh.shuffle(items);
    Sample s = proto;
    s.answers.assign({pool[0], pool[1], pool[2]});
    s.context = "Read the following coded text and track how often each coded word appears.\n\n";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) s.context += ' ';
      s.context += *items[i];
    }
    s.meta["top_counts"] = std::vector<int64_t>(counts.begin(),
                                                counts.begin() + std::min<size_t>(5, counts.size()));
    s.meta["n_words"] = items.size();
    return s;
  };
  FitLimits lim;
  lim.n_probe = 64;
  return fit_to_budget(build, opt, task, proto.max_new_tokens, lim);
}

}  // namespace glimpse::eval::detail
