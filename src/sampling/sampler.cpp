#include "sampling/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace glimpse {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Slack for mass/probability cuts: a boundary within this of the threshold counts as on it.
constexpr double kTol = 1e-6;
// top_k up to this size uses a single heap scan over the vocabulary; larger k falls back to
// nth_element over a full candidate copy.
constexpr int32_t kHeapMaxK = 4096;
// First prefix length top_p sorts when it has to find its own cut.
constexpr size_t kFirstPrefix = 64;

struct Better {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

// exp(l - mx), with the infinite-max cases spelled out so they never produce NaN.
inline float weight(float l, float mx) {
  if (std::isfinite(mx)) return std::exp(l - mx);
  return l == mx ? 1.0f : 0.0f;
}

// Logit threshold equivalent to p >= min_p * p_max, loosened by kTol (relative).
float min_p_threshold(float mx, float min_p) {
  float thr = mx + std::log(min_p);
  if (std::isfinite(thr)) thr -= (float)kTol * std::max(1.0f, std::fabs(thr));
  return thr;
}

bool finite_or_fail(float v, const char* name) {
  if (!std::isfinite(v)) fail("sampler: {} must be a finite number, got {}", name, v);
  return true;
}

uint32_t pick_seed(uint32_t requested) {
  if (requested != kDefaultSeed) return requested;
  uint32_t s = kDefaultSeed;
  try {
    std::random_device rd;
    while (s == kDefaultSeed) s = rd();
  } catch (const std::exception&) {
    // No entropy source: fall back to the clock, still avoiding the "random" marker.
    s = (uint32_t)std::chrono::steady_clock::now().time_since_epoch().count();
    if (s == kDefaultSeed) s = 0;
  }
  return s;
}

}  // namespace

Sampler::Sampler(const SamplerParams& p, int32_t n_vocab)
    : p_(p), n_vocab_(n_vocab), seed_(pick_seed(p.seed)), rng_(seed_) {
  if (n_vocab <= 0) fail("sampler: vocabulary size must be positive, got {}", n_vocab);
  finite_or_fail(p.temp, "temperature");
  if (std::isnan(p.top_p) || p.top_p < 0.0f)
    fail("sampler: top_p must be >= 0 (>= 1 turns it off), got {}", p.top_p);
  if (std::isnan(p.typical_p) || p.typical_p < 0.0f)
    fail("sampler: typical_p must be >= 0 (>= 1 turns it off), got {}", p.typical_p);
  if (std::isnan(p.min_p) || p.min_p > 1.0f)
    fail("sampler: min_p must be <= 1 (<= 0 turns it off), got {}", p.min_p);
  finite_or_fail(p.repeat_penalty, "repeat penalty");
  if (p.repeat_penalty <= 0.0f)
    fail("sampler: repeat penalty must be > 0 (1 turns it off), got {}", p.repeat_penalty);
  if (p.repeat_last_n < -1)
    fail("sampler: repeat_last_n must be >= -1 (0 off, -1 whole context), got {}",
         p.repeat_last_n);
  finite_or_fail(p.presence_penalty, "presence penalty");
  finite_or_fail(p.frequency_penalty, "frequency penalty");

  work_.resize(n_vocab);
  if (penalties_on()) {
    counts_.assign(n_vocab, 0);
    stamp_.assign(n_vocab, 0);
  }
}

bool Sampler::penalties_on() const {
  return p_.repeat_last_n != 0 && (p_.repeat_penalty != 1.0f || p_.frequency_penalty != 0.0f ||
                                   p_.presence_penalty != 0.0f);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_)
    fail("sampler: token id {} outside the vocabulary [0, {})", token, n_vocab_);
  if (!penalties_on()) return;
  window_.push_back(token);
  ++counts_[token];
  if (p_.repeat_last_n > 0 && window_.size() > (size_t)p_.repeat_last_n) {
    --counts_[window_.front()];
    window_.pop_front();
  }
}

void Sampler::reset() {
  for (int32_t t : window_) counts_[t] = 0;
  window_.clear();
}

void Sampler::prepare(const float* logits) {
  float* w = work_.data();
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float x = logits[i];
    w[i] = std::isnan(x) ? kNegInf : x;
  }
  if (window_.empty()) return;
  // Each distinct token in the window is penalised once, by its count in the window.
  if (++epoch_ == 0) {
    std::fill(stamp_.begin(), stamp_.end(), 0u);
    epoch_ = 1;
  }
  const float rp = p_.repeat_penalty;
  for (int32_t t : window_) {
    if (stamp_[t] == epoch_) continue;
    stamp_[t] = epoch_;
    const int32_t c = counts_[t];
    float l = w[t];
    l = l <= 0.0f ? l * rp : l / rp;  // always towards "less likely"
    l -= (float)c * p_.frequency_penalty + (c > 0 ? p_.presence_penalty : 0.0f);
    w[t] = l;
  }
}

int32_t Sampler::argmax() const {
  const float* w = work_.data();
  int32_t best = 0;
  float best_l = w[0];
  for (int32_t i = 1; i < n_vocab_; ++i) {
    if (w[i] > best_l) {  // strict: the lowest id keeps a tie
      best_l = w[i];
      best = i;
    }
  }
  return best;
}

void Sampler::select_top_k(int32_t k) {
  cur_.clear();
  if (k <= kHeapMaxK) {
    // Heap of the best k so far with the worst on top. Ids arrive in increasing order, so a
    // newcomer equal to the worst kept logit loses the tie and is rejected by one compare.
    cur_.reserve(k);
    for (int32_t i = 0; i < k; ++i) {
      cur_.push_back({i, work_[i]});
      std::push_heap(cur_.begin(), cur_.end(), Better{});
    }
    for (int32_t i = k; i < n_vocab_; ++i) {
      const float l = work_[i];
      if (l > cur_.front().logit) {
        std::pop_heap(cur_.begin(), cur_.end(), Better{});
        cur_.back() = {i, l};
        std::push_heap(cur_.begin(), cur_.end(), Better{});
      }
    }
    std::sort_heap(cur_.begin(), cur_.end(), Better{});
  } else {
    cur_.resize(n_vocab_);
    for (int32_t i = 0; i < n_vocab_; ++i) cur_[i] = {i, work_[i]};
    std::nth_element(cur_.begin(), cur_.begin() + k, cur_.end(), Better{});
    cur_.resize(k);
    std::sort(cur_.begin(), cur_.end(), Better{});
  }
  sorted_ = cur_.size();
}

void Sampler::ensure_sorted(size_t m) {
  m = std::min(m, cur_.size());
  if (m <= sorted_) return;
  const auto first = cur_.begin() + (ptrdiff_t)sorted_;
  const auto mid = cur_.begin() + (ptrdiff_t)m;
  if (mid != cur_.end()) std::nth_element(first, mid, cur_.end(), Better{});
  std::sort(first, mid, Better{});
  sorted_ = m;
}

double Sampler::softmax_weights() {
  float mx = kNegInf;
  if (sorted_ > 0) {
    mx = cur_[0].logit;
  } else {
    for (const Cand& c : cur_) mx = std::max(mx, c.logit);
  }
  w_.resize(cur_.size());
  double sum = 0.0;
  for (size_t i = 0; i < cur_.size(); ++i) {
    w_[i] = weight(cur_[i].logit, mx);
    sum += w_[i];
  }
  return sum;
}

void Sampler::apply_typical() {
  // Locally typical sampling: prefer tokens whose surprise -log p is closest to the
  // entropy of the distribution, and keep them until their mass exceeds typical_p.
  const size_t n = cur_.size();
  const double sum = softmax_weights();
  std::vector<double> prob(n), score(n);
  double entropy = 0.0;
  for (size_t i = 0; i < n; ++i) {
    prob[i] = w_[i] / sum;
    if (prob[i] > 0.0) entropy -= prob[i] * std::log(prob[i]);
  }
  for (size_t i = 0; i < n; ++i)
    score[i] = prob[i] > 0.0 ? std::fabs(-std::log(prob[i]) - entropy)
                             : std::numeric_limits<double>::infinity();
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = (uint32_t)i;
  std::sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
    if (score[a] != score[b]) return score[a] < score[b];
    return Better{}(cur_[a], cur_[b]);
  });
  size_t keep = n;
  double cum = 0.0;
  for (size_t j = 0; j < n; ++j) {
    cum += prob[order_[j]];
    if (cum > (double)p_.typical_p + kTol) {
      keep = j + 1;
      break;
    }
  }
  std::vector<Cand> kept(keep);
  for (size_t j = 0; j < keep; ++j) kept[j] = cur_[order_[j]];
  cur_.swap(kept);
  sorted_ = 0;  // now in typicality order, not logit order
}

void Sampler::apply_top_p_min_p(double z_known, double mass_known) {
  const bool top_p_on = p_.top_p < 1.0f;
  const bool min_p_todo = p_.min_p > 0.0f && !min_p_done_;
  float mx = kNegInf;
  if (sorted_ > 0) {
    mx = cur_[0].logit;
  } else {
    for (const Cand& c : cur_) mx = std::max(mx, c.logit);
  }
  const float thr = min_p_todo ? min_p_threshold(mx, p_.min_p) : kNegInf;

  if (!top_p_on) {  // min_p alone: a threshold, no order needed
    std::erase_if(cur_, [thr](const Cand& c) { return c.logit < thr; });
    sorted_ = std::min(sorted_, cur_.size());
    return;
  }

  // top_p measures mass in the set it sees, i.e. before min_p removes anything.
  double z = z_known;
  if (z < 0.0) {
    z = 0.0;
    for (const Cand& c : cur_) z += weight(c.logit, mx);
  }
  if (min_p_todo) {
    double mass = 0.0;
    std::erase_if(cur_, [&](const Cand& c) {
      if (c.logit < thr) return true;
      mass += weight(c.logit, mx);
      return false;
    });
    sorted_ = std::min(sorted_, cur_.size());
    mass_known = mass;
  }
  // Both cuts keep a best-first prefix, so applying both keeps the shorter one. min_p's
  // survivors are known without sorting; if their mass is still short of top_p, top_p's
  // prefix is longer and min_p decides alone.
  if (mass_known >= 0.0 && mass_known / z < (double)p_.top_p - kTol) return;

  // Walk best-first, sorting only as much of the prefix as the walk reaches.
  const double target = (double)p_.top_p - kTol;
  double cum = 0.0;
  size_t i = 0, m = kFirstPrefix;
  for (;;) {
    ensure_sorted(m);
    m = std::min(m, cur_.size());
    for (; i < m; ++i) {
      cum += weight(cur_[i].logit, mx) / z;
      if (cum >= target) {
        cur_.resize(i + 1);
        sorted_ = std::min(sorted_, cur_.size());
        return;
      }
    }
    if (m == cur_.size()) return;  // rounding left the total just short: keep everything
    m *= 4;
  }
}

void Sampler::run_chain() {
  cur_.clear();
  sorted_ = 0;
  min_p_done_ = false;
  const bool top_k_on = p_.top_k > 0 && p_.top_k < n_vocab_;
  const bool typical_on = p_.typical_p < 1.0f;
  const bool top_p_on = p_.top_p < 1.0f;
  const bool min_p_on = p_.min_p > 0.0f;
  double z_known = -1.0, mass_known = -1.0;

  if (top_k_on) {
    select_top_k(p_.top_k);
  } else if (!typical_on && min_p_on) {
    // Nothing before min_p reorders or removes tokens, so its survivors can be collected
    // straight from the vocabulary; the mass top_p needs comes from the same pass.
    float mx = kNegInf;
    for (int32_t i = 0; i < n_vocab_; ++i) mx = std::max(mx, work_[i]);
    const float thr = min_p_threshold(mx, p_.min_p);
    if (top_p_on) {
      double z = 0.0, mass = 0.0;
      for (int32_t i = 0; i < n_vocab_; ++i) {
        const float l = work_[i];
        const double w = weight(l, mx);
        z += w;
        if (l >= thr) {
          cur_.push_back({i, l});
          mass += w;
        }
      }
      z_known = z;
      mass_known = mass;
    } else {
      for (int32_t i = 0; i < n_vocab_; ++i)
        if (work_[i] >= thr) cur_.push_back({i, work_[i]});
    }
    min_p_done_ = true;
  } else {
    cur_.resize(n_vocab_);
    for (int32_t i = 0; i < n_vocab_; ++i) cur_[i] = {i, work_[i]};
  }

  if (typical_on) apply_typical();
  if (top_p_on || (min_p_on && !min_p_done_)) apply_top_p_min_p(z_known, mass_known);
  if (p_.temp != 1.0f) {
    const float t = p_.temp;
    for (Cand& c : cur_) c.logit /= t;
  }
}

int32_t Sampler::sample(const float* logits) {
  prepare(logits);
  if (greedy()) return argmax();
  run_chain();
  const double sum = softmax_weights();
  // One uniform draw located on the running sum of the weights. The running sum repeats
  // the exact additions that produced `sum`, so it ends exactly at `sum`.
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const double target = uni(rng_) * sum;
  double cum = 0.0;
  for (size_t i = 0; i < cur_.size(); ++i) {
    cum += w_[i];
    if (cum > target) return cur_[i].id;
  }
  for (size_t i = cur_.size(); i-- > 0;)  // target rounded up to sum: last live token
    if (w_[i] > 0.0f) return cur_[i].id;
  return cur_[0].id;
}

std::vector<std::pair<int32_t, float>> Sampler::distribution(const float* logits) {
  prepare(logits);
  if (greedy()) return {{argmax(), 1.0f}};
  run_chain();
  const double sum = softmax_weights();
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(cur_.size());
  for (size_t i = 0; i < cur_.size(); ++i) {
    const float p = (float)(w_[i] / sum);
    if (p > 0.0f) out.emplace_back(cur_[i].id, p);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  return out;
}

}  // namespace glimpse
