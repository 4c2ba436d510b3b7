#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
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

std::optional<std::vector<std::string>> last_list(std::string_view text) {
  const size_t close = text.rfind(']');
  if (close == std::string_view::npos) return std::nullopt;
  const size_t open = text.rfind('[', close);
  if (open == std::string_view::npos) return std::nullopt;
  std::vector<std::string> out;
  for (size_t i = open + 1; i < close; ++i) {
    const char q = text[i];
    if (q != '"' && q != '\'') continue;
    const size_t end = text.find(q, i + 1);
    if (end == std::string_view::npos || end > close) return std::nullopt;
    out.emplace_back(text.substr(i + 1, end - i - 1));
    i = end;
  }
  return out;
}

std::optional<std::vector<std::string>> last_grid(std::string_view text) {
  std::vector<std::string> rows;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string row;
    for (char ch : text.substr(start, end - start))
      if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '`') row += ch;
    // Four single symbols separated by commas: "A,B,C,D".
    if (row.size() == 7 && row[1] == ',' && row[3] == ',' && row[5] == ',') rows.push_back(row);
    start = end + 1;
  }
  if (rows.size() < 4) return std::nullopt;
  return std::vector<std::string>(rows.end() - 4, rows.end());
}

namespace {

// list is `input` with one entry removed, order kept.
bool one_removed(const std::vector<std::string>& list, const std::vector<std::string>& input) {
  if (list.size() + 1 != input.size()) return false;
  for (size_t skip = 0; skip < input.size(); ++skip) {
    std::vector<std::string> r = input;
    r.erase(r.begin() + (std::ptrdiff_t)skip);
    if (r == list) return true;
  }
  return false;
}

double list_score(Scoring kind, std::string_view prediction, const std::vector<std::string>& answers) {
  const auto got = last_list(prediction);
  if (!got) return 0;
  const std::vector<std::string>& list = *got;
  if (kind == Scoring::kListExact) return list == answers ? 1 : 0;
  if (kind == Scoring::kListRemoveAny) return one_removed(list, answers) ? 1 : 0;
  if (kind == Scoring::kListShuffle) {
    std::vector<std::string> a = list, b = answers;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    return a == b && list != answers ? 1 : 0;
  }
  if (answers.empty()) return 0;
  const std::vector<std::string> input(answers.begin(), answers.end() - 1);
  const std::string& item = answers.back();
  if (kind == Scoring::kListInsertAny) {
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i] == item) {
        std::vector<std::string> r = list;
        r.erase(r.begin() + (std::ptrdiff_t)i);
        if (r == input) return 1;
      }
    return 0;
  }
  // kListReplaceAny: exactly one position differs from the input, and it holds the item.
  if (list.size() != input.size()) return 0;
  size_t diff = 0;
  for (size_t i = 0; i < list.size(); ++i)
    if (list[i] != input[i]) diff += list[i] == item ? 1 : 2;
  return diff == 1 ? 1 : 0;
}

// Rows and columns are permutations of the symbols of the givens' alphabet (A-D), and every
// given cell (not '.') of answers is kept.
double latin_score(std::string_view prediction, const std::vector<std::string>& givens) {
  const auto got = last_grid(prediction);
  if (!got || givens.size() != 4) return 0;
  for (const std::string& row : givens)
    if (row.size() != 7) return 0;  // "A,.,.,D"
  const std::vector<std::string>& g = *got;
  for (int i = 0; i < 4; ++i) {
    std::string row, col;
    for (int j = 0; j < 4; ++j) {
      row += g[i][2 * j];
      col += g[j][2 * i];
      if (givens[i][2 * j] != '.' && givens[i][2 * j] != g[i][2 * j]) return 0;
    }
    std::sort(row.begin(), row.end());
    std::sort(col.begin(), col.end());
    if (row != "ABCD" || col != "ABCD") return 0;
  }
  return 1;
}

}  // namespace

double score_prediction(Scoring kind, std::string_view prediction,
                        const std::vector<std::string>& answers) {
  switch (kind) {
    case Scoring::kMatchAll: return string_match_all(prediction, answers);
    case Scoring::kMatchPart: return string_match_part(prediction, answers);
    case Scoring::kOpenEnded: break;
    case Scoring::kListExact:
    case Scoring::kListShuffle:
    case Scoring::kListInsertAny:
    case Scoring::kListRemoveAny:
    case Scoring::kListReplaceAny: return list_score(kind, prediction, answers);
    case Scoring::kLatinSquare: return latin_score(prediction, answers);
    case Scoring::kGridExact: {
      const auto got = last_grid(prediction);
      return got && *got == answers ? 1 : 0;
    }
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
