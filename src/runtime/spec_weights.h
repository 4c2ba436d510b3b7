// The TABED ensemble of draft sources: per draft position, the mixture q = sum_k w_k q_k of
// the next-token distributions of the sources that have an opinion there (weights
// renormalised over them), its argmax being the drafted token; and the weights, learnt per
// request from the verified history.
//
// History: after each verification, the target's distributions P_j at the accepted draft
// positions plus the first rejected one are the ground truth for what each source said there.
// Rules (w_k normalised to sum 1; uniform before the first verification):
//   uniform  w_k = 1/K throughout
//   kl       w_k ∝ 1 / mean_j KL(P_j || q_k,j)
//   tvd      w_k ∝ 1 / mean_j TVD(P_j, q_k,j)
//   grid     the point of the simplex grid of step 0.1 whose mixture's top-1 agreed with the
//            target's token most often over the last kGridHistory positions, ties broken by
//            the lowest KL of the mixture (see EnsembleWeights::update)
// Means run over the positions where the source had an opinion (a prompt-lookup source has
// none where no suffix recurs), so sources with different coverage compare fairly; a source
// with no such position yet gets the average of the others' inverse scores.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace glimpse {

enum class WeightRule { Uniform, Kl, Tvd, Grid };
WeightRule parse_weight_rule(const std::string& v);  // Error naming the choices otherwise
const char* weight_rule_name(WeightRule r);

// Spread of a prompt-lookup opinion: q = (1 - eps) * one_hot(token) + eps / n_vocab.
inline constexpr double kNgramEpsilon = 0.1;
// Verified positions the grid rule looks back over, and the sources it takes (6 sources
// make 3003 grid points).
inline constexpr size_t kGridHistory = 64;
inline constexpr size_t kMaxGridSources = 6;

// One source's next-token distribution at a draft position.
// Dense: q(x) = exp(logits[x] - lse). OneHot: (1 - eps) on the token + eps / n_vocab.
struct Opinion {
  enum Kind { None, Dense, OneHot } kind = None;
  const float* logits = nullptr;  // Dense: [n_vocab]
  double lse = 0;                 // Dense: log sum_x exp(logits[x])
  int32_t token = -1;             // Dense: its argmax; OneHot: the token
};

// A dense opinion over logits[0, n): argmax (ties to the lower id) and log-sum-exp.
Opinion dense_opinion(const float* logits, int64_t n);

// w renormalised over the sources with an opinion (uniform over them when those weights sum
// to 0); entries of sources without one are 0. All zeros when no source has an opinion.
std::vector<double> renormalised(const std::vector<Opinion>& ops, const std::vector<double>& w);

// The mixture's argmax (ties to the lower id) and its mixture probability in *p_top;
// -1 when no source has an opinion. scratch: reused [n_vocab] buffer. A single source with an
// opinion gives its own argmax directly.
int32_t mixture_argmax(const std::vector<Opinion>& ops, const std::vector<double>& w,
                       int32_t n_vocab, double* p_top, std::vector<double>& scratch);

class EnsembleWeights {
 public:
  EnsembleWeights(size_t n_sources, WeightRule rule, int32_t n_vocab);
  const std::vector<double>& weights() const { return w_; }
  // One verified position: the target's logits there, the token it chose, and what each
  // source said. Updates the KL / TVD sums and (grid) the compact history.
  void record(const float* target_logits, int32_t target_token, const std::vector<Opinion>& ops);
  // New weights from the history so far (after each verification).
  void update();
  double mean_kl(size_t k) const { return n_[k] ? kl_[k] / n_[k] : 0; }
  double mean_tvd(size_t k) const { return n_[k] ? tvd_[k] / n_[k] : 0; }

 private:
  // What the grid rule needs of one position: the candidate tokens S (each source's top
  // kCandidates, the target's, and the target's token), P and every q_k on S, and per source
  // a bound on q_k outside S (its (kCandidates+1)-th largest probability; eps / V for a
  // one-hot). The mixture's argmax is the target's token only if it beats every other
  // candidate and the bound of the tokens outside S: a conservative exact test.
  struct Record {
    std::vector<int32_t> tokens;           // S
    std::vector<float> p;                  // [|S|] target probabilities
    std::vector<std::vector<float>> q;     // [source][|S|]; empty: no opinion
    std::vector<float> bound;              // [source]
    int32_t target = -1;                   // index of the target's token in S
  };
  Record make_record(const std::vector<float>& p, int32_t target_token,
                     const std::vector<Opinion>& ops) const;
  bool grid_mixture(const Record& r, const std::vector<double>& w, std::vector<double>& m) const;
  static bool grid_top1(const Record& r, const std::vector<double>& m);
  void update_inverse(const std::vector<double>& sums);
  void update_grid();

  size_t K_;
  WeightRule rule_;
  int32_t V_;
  std::vector<double> w_, kl_, tvd_;
  std::vector<int64_t> n_;
  std::deque<Record> history_;
  std::vector<std::vector<int>> grid_points_;  // grid: weights in tenths, summing to 10
};

}  // namespace glimpse
