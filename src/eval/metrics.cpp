#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "util/error.h"

namespace glimpse::eval {

std::string normalize_answer(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  return out;
}

double string_match_all(std::string_view prediction, const std::vector<std::string>& answers) {
  if (answers.empty()) return 0;
  const std::string p = normalize_answer(prediction);
  size_t hit = 0;
  for (const auto& a : answers) hit += p.find(normalize_answer(a)) != std::string::npos;
  return (double)hit / (double)answers.size();
}

double string_match_part(std::string_view prediction, const std::vector<std::string>& answers) {
  const std::string p = normalize_answer(prediction);
  for (const auto& a : answers)
    if (p.find(normalize_answer(a)) != std::string::npos) return 1;
  return 0;
}

double score_prediction(Scoring kind, std::string_view prediction,
                        const std::vector<std::string>& answers) {
  switch (kind) {
    case Scoring::kMatchAll: return string_match_all(prediction, answers);
    case Scoring::kMatchPart: return string_match_part(prediction, answers);
    case Scoring::kOpenEnded: break;
  }
  fail("open-ended samples have no string score (compare with the full-cache output)");
}

SequenceAgreement greedy_agreement(std::span<const int32_t> reference,
                                   std::span<const int32_t> test) {
  SequenceAgreement a;
  const size_t n = std::min(reference.size(), test.size());
  while (a.common_prefix < n && reference[a.common_prefix] == test[a.common_prefix])
    ++a.common_prefix;
  a.exact = reference.size() == test.size() && a.common_prefix == n;
  const size_t denom = std::max(reference.size(), test.size());
  a.prefix_fraction = denom == 0 ? 1.0 : (double)a.common_prefix / (double)denom;
  return a;
}

namespace {

// log softmax in double: x - max - log(sum exp(x - max)).
std::vector<double> log_softmax(std::span<const float> x) {
  const double m = *std::max_element(x.begin(), x.end());
  double s = 0;
  for (float v : x) s += std::exp((double)v - m);
  const double lse = m + std::log(s);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (double)x[i] - lse;
  return out;
}

}  // namespace

double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  if (p_logits.size() != q_logits.size() || p_logits.empty())
    fail("KL divergence needs two logit rows of the same non-zero length ({} vs {})",
         p_logits.size(), q_logits.size());
  const std::vector<double> lp = log_softmax(p_logits), lq = log_softmax(q_logits);
  double kl = 0;
  for (size_t i = 0; i < lp.size(); ++i) {
    const double p = std::exp(lp[i]);
    if (p > 0) kl += p * (lp[i] - lq[i]);
  }
  return std::max(0.0, kl);  // rounding can give -1e-17
}

double kl_divergence_probs(std::span<const double> p, std::span<const double> q) {
  if (p.size() != q.size()) fail("KL divergence: distributions differ in size");
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    if (q[i] <= 0) return std::numeric_limits<double>::infinity();
    kl += p[i] * std::log(p[i] / q[i]);
  }
  return kl;
}

size_t argmax(std::span<const float> row) {
  if (row.empty()) fail("argmax of an empty row");
  return (size_t)(std::max_element(row.begin(), row.end()) - row.begin());
}

bool top1_agree(std::span<const float> p_logits, std::span<const float> q_logits) {
  return argmax(p_logits) == argmax(q_logits);
}

std::vector<int64_t> top_k_indices(std::span<const float> values, size_t k) {
  std::vector<int64_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  idx.resize(k);
  return idx;
}

double recall_at_k(const std::vector<int64_t>& oracle, const std::vector<int64_t>& predicted) {
  const std::set<int64_t> o(oracle.begin(), oracle.end());
  if (o.empty()) return 1;
  const std::set<int64_t> p(predicted.begin(), predicted.end());
  size_t hit = 0;
  for (int64_t x : o) hit += p.count(x);
  return (double)hit / (double)o.size();
}

void MeanStat::add(double x) {
  if (n == 0) min = max = x;
  min = std::min(min, x);
  max = std::max(max, x);
  sum += x;
  ++n;
}

}  // namespace glimpse::eval
