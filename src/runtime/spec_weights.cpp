#include "runtime/spec_weights.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace glimpse {

namespace {

// Candidates per source in a grid record.
constexpr size_t kCandidates = 8;
// Floor of a score before inversion (a view that never evicted has KL 0 to the target).
constexpr double kScoreFloor = 1e-6;

// Indices of the n largest values of x[0, V), largest first (ties: lower index first).
std::vector<int32_t> top_n(const float* x, int32_t V, size_t n) {
  std::vector<int32_t> top;
  top.reserve(n + 1);
  for (int32_t i = 0; i < V; ++i) {
    if (top.size() == n && !(x[i] > x[top.back()])) continue;
    auto it = std::upper_bound(top.begin(), top.end(), i,
                               [&](int32_t a, int32_t b) { return x[a] > x[b]; });
    top.insert(it, i);
    if (top.size() > n) top.pop_back();
  }
  return top;
}

double onehot_q(const Opinion& o, int32_t x, int32_t V) {
  return (x == o.token ? 1.0 - kNgramEpsilon : 0.0) + kNgramEpsilon / V;
}

double q_of(const Opinion& o, int32_t x, int32_t V) {
  return o.kind == Opinion::Dense ? std::exp((double)o.logits[x] - o.lse) : onehot_q(o, x, V);
}

// Integer compositions of `total` into n parts, in lexicographic order.
void compositions(int n, int total, std::vector<int>& cur, std::vector<std::vector<int>>& out) {
  if ((int)cur.size() == n - 1) {
    cur.push_back(total);
    out.push_back(cur);
    cur.pop_back();
    return;
  }
  for (int a = total; a >= 0; --a) {
    cur.push_back(a);
    compositions(n, total - a, cur, out);
    cur.pop_back();
  }
}

}  // namespace

WeightRule parse_weight_rule(const std::string& v) {
  if (v == "uniform") return WeightRule::Uniform;
  if (v == "kl") return WeightRule::Kl;
  if (v == "tvd") return WeightRule::Tvd;
  if (v == "grid") return WeightRule::Grid;
  fail("--spec-weights: '{}' is not one of kl, tvd, grid, uniform", v);
}

const char* weight_rule_name(WeightRule r) {
  switch (r) {
    case WeightRule::Uniform: return "uniform";
    case WeightRule::Kl: return "kl";
    case WeightRule::Tvd: return "tvd";
    case WeightRule::Grid: return "grid";
  }
  return "?";
}

Opinion dense_opinion(const float* logits, int64_t n) {
  Opinion o;
  o.kind = Opinion::Dense;
  o.logits = logits;
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = (int32_t)i;  // strict: the lower id keeps a tie
  const float m = logits[best];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(logits[i] - m);
  o.token = best;
  o.lse = m + std::log(sum);
  return o;
}

std::vector<double> renormalised(const std::vector<Opinion>& ops, const std::vector<double>& w) {
  std::vector<double> r(ops.size(), 0.0);
  double sum = 0;
  size_t n = 0;
  for (size_t k = 0; k < ops.size(); ++k)
    if (ops[k].kind != Opinion::None) {
      sum += w[k];
      ++n;
    }
  for (size_t k = 0; k < ops.size(); ++k)
    if (ops[k].kind != Opinion::None) r[k] = sum > 0 ? w[k] / sum : 1.0 / n;
  return r;
}

int32_t mixture_argmax(const std::vector<Opinion>& ops, const std::vector<double>& w,
                       int32_t V, double* p_top, std::vector<double>& scratch) {
  const std::vector<double> r = renormalised(ops, w);
  size_t n = 0, only = 0;
  for (size_t k = 0; k < ops.size(); ++k)
    if (ops[k].kind != Opinion::None) {
      ++n;
      only = k;
    }
  if (n == 0) return -1;
  if (n == 1) {
    *p_top = q_of(ops[only], ops[only].token, V);
    return ops[only].token;
  }
  scratch.assign((size_t)V, 0.0);
  double base = 0;  // the one-hot sources' eps / V, the same for every token
  for (size_t k = 0; k < ops.size(); ++k) {
    const Opinion& o = ops[k];
    if (o.kind == Opinion::Dense && r[k] > 0) {
      const float lse = (float)o.lse;
      for (int32_t x = 0; x < V; ++x) scratch[x] += r[k] * std::exp(o.logits[x] - lse);
    } else if (o.kind == Opinion::OneHot) {
      base += r[k] * kNgramEpsilon / V;
      scratch[o.token] += r[k] * (1.0 - kNgramEpsilon);
    }
  }
  int32_t best = 0;
  for (int32_t x = 1; x < V; ++x)
    if (scratch[x] > scratch[best]) best = x;
  *p_top = scratch[best] + base;
  return best;
}

EnsembleWeights::EnsembleWeights(size_t n_sources, WeightRule rule, int32_t n_vocab)
    : K_(n_sources), rule_(rule), V_(n_vocab), w_(n_sources, 1.0 / n_sources),
      kl_(n_sources, 0.0), tvd_(n_sources, 0.0), n_(n_sources, 0) {
  if (rule_ == WeightRule::Grid && K_ > kMaxGridSources)
    fail("--spec-weights grid: at most {} sources (the grid has too many points beyond)", kMaxGridSources);
  if (rule_ == WeightRule::Grid) {
    std::vector<int> cur;
    compositions((int)K_, 10, cur, grid_points_);
  }
}

void EnsembleWeights::record(const float* t, int32_t target_token, const std::vector<Opinion>& ops) {
  if (rule_ == WeightRule::Uniform || K_ < 2) return;
  // P = softmax(t): its log-sum-exp, then KL / TVD against each source over the vocabulary.
  const Opinion P = dense_opinion(t, V_);
  const float lse_p = (float)P.lse;
  std::vector<float> p((size_t)V_);
  for (int32_t x = 0; x < V_; ++x) p[x] = std::exp(t[x] - lse_p);
  for (size_t k = 0; k < K_; ++k) {
    const Opinion& o = ops[k];
    if (o.kind == Opinion::None) continue;
    ++n_[k];
    if (rule_ == WeightRule::Kl) {
      // KL = sum_x p (log p - log q); a one-hot's log q is one constant off its token.
      double kl = 0;
      if (o.kind == Opinion::Dense) {
        for (int32_t x = 0; x < V_; ++x) kl += p[x] * ((t[x] - P.lse) - (o.logits[x] - o.lse));
      } else {
        for (int32_t x = 0; x < V_; ++x) kl += p[x] * (t[x] - P.lse);
        const double off = std::log(kNgramEpsilon / V_), on = std::log(onehot_q(o, o.token, V_));
        kl -= (1.0 - p[o.token]) * off + p[o.token] * on;
      }
      kl_[k] += std::max(0.0, kl);
    } else if (rule_ == WeightRule::Tvd) {
      double tv = 0;
      if (o.kind == Opinion::Dense) {
        const float lse = (float)o.lse;
        for (int32_t x = 0; x < V_; ++x) tv += std::fabs(p[x] - std::exp(o.logits[x] - lse));
      } else {  // |p - eps/V| everywhere but the token
        const double off = kNgramEpsilon / V_;
        for (int32_t x = 0; x < V_; ++x) tv += std::fabs(p[x] - off);
        tv += std::fabs(p[o.token] - onehot_q(o, o.token, V_)) - std::fabs(p[o.token] - off);
      }
      tvd_[k] += 0.5 * tv;
    }
  }
  if (rule_ == WeightRule::Grid) {
    history_.push_back(make_record(p, target_token, ops));
    if (history_.size() > kGridHistory) history_.pop_front();
  }
}

EnsembleWeights::Record EnsembleWeights::make_record(const std::vector<float>& p, int32_t target_token,
                                                     const std::vector<Opinion>& ops) const {
  Record r;
  std::vector<int32_t> s = top_n(p.data(), V_, kCandidates);
  s.push_back(target_token);
  std::vector<std::vector<int32_t>> tops(K_);
  for (size_t k = 0; k < K_; ++k) {
    if (ops[k].kind == Opinion::Dense) {
      tops[k] = top_n(ops[k].logits, V_, kCandidates + 1);
      s.insert(s.end(), tops[k].begin(), tops[k].begin() + std::min(kCandidates, tops[k].size()));
    } else if (ops[k].kind == Opinion::OneHot) {
      s.push_back(ops[k].token);
    }
  }
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  r.tokens = s;
  r.target = (int32_t)(std::lower_bound(s.begin(), s.end(), target_token) - s.begin());
  for (int32_t x : s) r.p.push_back(p[x]);
  r.q.resize(K_);
  r.bound.assign(K_, 0.0f);
  for (size_t k = 0; k < K_; ++k) {
    const Opinion& o = ops[k];
    if (o.kind == Opinion::None) continue;
    for (int32_t x : s) r.q[k].push_back((float)q_of(o, x, V_));
    if (o.kind == Opinion::OneHot)
      r.bound[k] = (float)(kNgramEpsilon / V_);
    else if (tops[k].size() > kCandidates)
      r.bound[k] = (float)q_of(o, tops[k][kCandidates], V_);
  }
  return r;
}

// The renormalised mixture of grid weights w at record r on its candidates (into m, with the
// bound of the other tokens as its last element); false when no source had an opinion there.
bool EnsembleWeights::grid_mixture(const Record& r, const std::vector<double>& w, std::vector<double>& m) const {
  double sum = 0;
  size_t n = 0;
  for (size_t k = 0; k < K_; ++k)
    if (!r.q[k].empty()) sum += w[k], ++n;
  if (n == 0) return false;
  const size_t S = r.tokens.size();
  m.assign(S + 1, 0.0);
  for (size_t k = 0; k < K_; ++k) {
    if (r.q[k].empty()) continue;
    const double wk = sum > 0 ? w[k] / sum : 1.0 / n;
    for (size_t i = 0; i < S; ++i) m[i] += wk * r.q[k][i];
    m[S] += wk * r.bound[k];
  }
  return true;
}

// Whether the mixture's argmax is surely the target's token: above the bound of the tokens
// outside the candidates and above every other candidate (ties go to the lower id).
bool EnsembleWeights::grid_top1(const Record& r, const std::vector<double>& m) {
  const size_t S = r.tokens.size();
  const double mt = m[r.target];
  if (!(mt > m[S])) return false;
  for (size_t i = 0; i < S; ++i)
    if ((int32_t)i != r.target && (m[i] > mt || (m[i] == mt && (int32_t)i < r.target))) return false;
  return true;
}

void EnsembleWeights::update() {
  if (rule_ == WeightRule::Kl) update_inverse(kl_);
  if (rule_ == WeightRule::Tvd) update_inverse(tvd_);
  if (rule_ == WeightRule::Grid && !history_.empty()) update_grid();
}

void EnsembleWeights::update_inverse(const std::vector<double>& sums) {
  std::vector<double> inv(K_, 0.0);
  double known = 0;
  size_t n_known = 0;
  for (size_t k = 0; k < K_; ++k)
    if (n_[k]) {
      inv[k] = 1.0 / std::max(kScoreFloor, sums[k] / n_[k]);
      known += inv[k];
      ++n_known;
    }
  if (n_known == 0) return;  // nothing verified yet: weights stay uniform
  for (size_t k = 0; k < K_; ++k)
    if (!n_[k]) inv[k] = known / n_known;
  double total = 0;
  for (double v : inv) total += v;
  for (size_t k = 0; k < K_; ++k) w_[k] = inv[k] / total;
}

// Every grid point (weights in tenths summing to 1) is scored over the history: top-1
// agreement of its renormalised mixture with the target's token (exact test against the
// candidates and the bound of the rest), then the KL of P to the mixture on the candidates.
// Cost: points * positions * |S|; 6 sources give 3003 points.
void EnsembleWeights::update_grid() {
  int64_t best_agree = -1;
  double best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> w(K_), m;
  for (const std::vector<int>& pt : grid_points_) {
    for (size_t k = 0; k < K_; ++k) w[k] = pt[k] / 10.0;
    int64_t agree = 0;
    for (const Record& r : history_) agree += grid_mixture(r, w, m) && grid_top1(r, m);
    if (agree < best_agree) continue;
    double kl = 0;  // only for points that may win: the tie-break
    for (const Record& r : history_)
      if (grid_mixture(r, w, m))
        for (size_t i = 0; i < r.tokens.size(); ++i)
          if (r.p[i] > 0) kl += r.p[i] * std::log(r.p[i] / std::max(m[i], 1e-30));
    if (agree > best_agree || kl < best_kl) {
      best_agree = agree;
      best_kl = kl;
      w_ = w;
    }
  }
}

}  // namespace glimpse
