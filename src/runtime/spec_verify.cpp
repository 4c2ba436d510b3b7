#include "runtime/spec_verify.h"

#include <algorithm>

#include "util/error.h"

namespace glimpse {

double prob_of(const SparseDist& d, int32_t t) {
  for (const auto& [id, p] : d)
    if (id == t) return p;
  return 0;
}

int32_t draw_from(const SparseDist& d, std::mt19937_64& rng) {
  if (d.empty()) fail("speculative sampling: empty distribution");
  double total = 0;
  for (const auto& e : d) total += e.second;
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng);
  double acc = 0;
  for (const auto& [id, p] : d) {
    acc += p;
    if (u < acc) return id;
  }
  return d.back().first;  // u rounded onto the total
}

VerifiedToken verify_sampled(const SparseDist& p, const SparseDist& q, int32_t x,
                             std::mt19937_64& rng, std::vector<float>& dense) {
  const double px = prob_of(p, x), qx = prob_of(q, x);
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  if (qx <= 0) fail("speculative sampling: draft token {} lies outside its own distribution", x);
  if (u * qx < px) return {x, true};  // accepted with probability min(1, px / qx)
  // Residual max(0, P - q) over P's support (it is 0 elsewhere).
  for (const auto& [id, pr] : q) dense[id] = pr;
  SparseDist residual;
  residual.reserve(p.size());
  for (const auto& [id, pr] : p) {
    const float r = pr - dense[id];
    if (r > 0) residual.push_back({id, r});
  }
  for (const auto& e : q) dense[e.first] = 0;
  // P == q up to rounding: nothing left to correct, so P itself is the residual.
  return {draw_from(residual.empty() ? p : residual, rng), false};
}

std::vector<int32_t> verify_round_sampled(const std::vector<int32_t>& drafts,
                                          const std::vector<SparseDist>& q,
                                          const std::function<SparseDist(size_t)>& target,
                                          const std::function<bool(int32_t)>& commit,
                                          std::mt19937_64& rng, std::vector<float>& dense) {
  std::vector<int32_t> out;
  for (size_t i = 0; i <= drafts.size(); ++i) {
    const SparseDist p = target(i);
    VerifiedToken v{-1, false};
    if (i < drafts.size())
      v = verify_sampled(p, q.at(i), drafts[i], rng, dense);
    else
      v.token = draw_from(p, rng);
    out.push_back(v.token);
    if (!commit(v.token) || !v.accepted) break;
  }
  return out;
}

}  // namespace glimpse
