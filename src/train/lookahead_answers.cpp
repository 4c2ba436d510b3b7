#include "train/lookahead_answers.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "kv/attention_scores.h"
#include "kv/kv_scores.h"
#include "kv/policy_util.h"
#include "lookahead/lookahead_module.h"
#include "runtime/context.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace glimpse {

namespace {

constexpr char kAnswerMagic[8] = {'G', 'L', 'M', 'P', 'L', 'K', 'A', '1'};

// File layout: this header, then per answer an int32 length and that many int32 tokens.
struct AnswerHeader {
  char magic[8];
  uint64_t fingerprint;  // weights_fingerprint of the model that answered
  uint64_t key;          // the sample's key (prompt tokens, suffixes, answer length)
  int64_t n_prompt;
  int32_t n_answers, reserved;
};
static_assert(sizeof(AnswerHeader) == 40);

// Contexts decoding together per group: enough to share each weight read among many rows,
// few enough that their caches (up to 4K prompt tokens each) stay small.
constexpr size_t kContextsPerGroup = 32;

// Answers a job gets: one per question (compress once), else one.
size_t n_answers(const AnswerJob& j) { return j.suffixes && !j.suffixes->empty() ? j.suffixes->size() : 1; }

void write_answers(const std::string& path, const Model& m, const AnswerJob& job,
                   const std::vector<std::vector<int32_t>>& answers) {
  AnswerHeader h{};
  std::memcpy(h.magic, kAnswerMagic, 8);
  h.fingerprint = weights_fingerprint(m);
  h.key = job.key;
  h.n_prompt = (int64_t)job.tokens->size();
  h.n_answers = (int32_t)answers.size();
  AtomicFile f(path);
  f.write(&h, sizeof h);
  for (const std::vector<int32_t>& a : answers) {
    const int32_t n = (int32_t)a.size();
    f.write(&n, 4);
    f.write(a.data(), a.size() * 4);
  }
  f.commit();
}

}  // namespace

void add_truth(Context& s, const QueryCapture& cap, int64_t N, std::vector<float>& gt) {
  const ModelConfig& c = s.model().config();
  const KvCache& cache = s.cache();
  const int G = c.n_head / c.n_kv_head, d = c.head_dim;
  const float scale = c.attn_scale;
  // One pass per (layer, KV head): each head's keys are converted once for all G x captured
  // queries (recording token by token would redo that per token and per query head). The
  // sliding-window layers (never evicted) get no target: their rows stay 0.
  for (int l = 0; l < c.n_layer; ++l) {
    const int64_t count = (int64_t)cap.pos[l].size();
    if (count == 0 || !scored_layer(c, l)) continue;
    s.pool().parallel_for_dynamic(c.n_kv_head, [&](int64_t g, int) {
      const KvHead& kh = cache.head(l, (int)g);
      std::vector<ScoreQuery> qs;
      for (int gi = 0; gi < G; ++gi)
        for (int64_t t = 0; t < count; ++t)
          qs.push_back({cap.q[l].data() + ((size_t)t * c.n_head + g * G + gi) * d,
                        (int64_t)cap.pos[l][t] + 1, gi});
      accumulate_attention(qs.data(), (int64_t)qs.size(), cache.type_k(), kh.k.data(), kh.size(),
                           d, scale, QueryReduce::Sum,
                           gt.data() + ((size_t)l * c.n_head + g * G) * N, N, N);
    });
  }
}

void make_answer_samples(Context& s, const std::vector<AnswerJob>& jobs, int answer_len) {
  GreedyOptions g;
  g.max_new = answer_len;
  size_t next = 0;
  while (next < jobs.size()) {
    // A group: whole jobs while their contexts fit (a job with more suffixes than the group
    // size still runs, alone).
    std::vector<std::unique_ptr<Context>> ctxs;
    const size_t first = next;
    while (next < jobs.size()) {
      const AnswerJob& j = jobs[next];
      if (!ctxs.empty() && ctxs.size() + n_answers(j) > kContextsPerGroup) break;
      s.reset();
      s.prefill(*j.tokens, nullptr);
      if (j.suffixes && !j.suffixes->empty()) {
        for (const std::vector<int32_t>& suf : *j.suffixes) {
          ctxs.push_back(s.fork());
          ctxs.back()->prefill(suf, nullptr);
        }
      } else {
        ctxs.push_back(s.fork());
      }
      ++next;
    }
    s.reset();
    std::vector<Context*> raw;
    for (auto& c : ctxs) raw.push_back(c.get());
    const std::vector<GreedyRun> runs = greedy_contexts(raw, g);
    size_t r = 0;
    for (size_t i = first; i < next; ++i) {
      const AnswerJob& j = jobs[i];
      std::vector<std::vector<int32_t>> answers;
      for (size_t k = 0; k < n_answers(j); ++k) answers.push_back(runs[r++].tokens);
      write_answers(j.path, s.model(), j, answers);
    }
  }
}

std::vector<std::vector<int32_t>> read_answer_sample(const std::string& path, const Model& m,
                                                     uint64_t key, int64_t n_prompt) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  AnswerHeader h;
  auto read = [&](void* p, size_t n) {
    if (!in.read((char*)p, (std::streamsize)n)) fail("{}: file is truncated", path);
  };
  read(&h, sizeof h);
  if (std::memcmp(h.magic, kAnswerMagic, 8)) fail("{}: not a lookahead answer file", path);
  if (h.fingerprint != weights_fingerprint(m)) fail("{}: answers of another model", path);
  if (h.key != key || h.n_prompt != n_prompt) fail("{}: answers of another prompt", path);
  if (h.n_answers < 1 || h.n_answers > 4096) fail("{}: bad answer count", path);
  const int n_vocab = m.config().n_vocab;
  std::vector<std::vector<int32_t>> out(h.n_answers);
  for (std::vector<int32_t>& a : out) {
    int32_t n;
    read(&n, 4);
    if (n < 0 || n > (1 << 20)) fail("{}: bad answer length", path);
    a.resize(n);
    read(a.data(), (size_t)n * 4);
    for (int32_t t : a)
      if (t < 0 || t >= n_vocab) fail("{}: token {} outside the vocabulary", path, t);
  }
  if (in.peek() != EOF) fail("{}: trailing bytes", path);
  return out;
}

std::vector<float> truth_from_answers(Context& s, const std::vector<int32_t>& tokens,
                                      const std::vector<std::vector<int32_t>>* suffixes,
                                      const std::vector<std::vector<int32_t>>& answers) {
  const ModelConfig& c = s.model().config();
  const int64_t N = (int64_t)tokens.size();
  const size_t n_suffix = suffixes && !suffixes->empty() ? suffixes->size() : 0;
  if (answers.size() != std::max<size_t>(n_suffix, 1))
    fail("lookahead sample: {} answers for {} questions", answers.size(), std::max<size_t>(n_suffix, 1));
  s.reset();
  s.prefill(tokens, nullptr);
  std::vector<float> gt((size_t)c.n_layer * c.n_head * N, 0.0f);
  int64_t count = 0;
  for (size_t k = 0; k < answers.size(); ++k) {
    std::vector<int32_t> run = n_suffix ? (*suffixes)[k] : std::vector<int32_t>();
    run.insert(run.end(), answers[k].begin(), answers[k].end());
    if (run.empty()) continue;
    if (N + (int64_t)run.size() > s.n_ctx()) fail("lookahead sample: the answer does not fit the context");
    QueryCapture cap(c.n_layer);
    s.prefill(run, &cap);
    count += (int64_t)cap.pos[0].size();
    add_truth(s, cap, N, gt);
    s.truncate((int32_t)N);
  }
  finish_truth(c, count, N, gt);
  return gt;
}

void finish_truth(const ModelConfig& c, int64_t count, int64_t N, std::vector<float>& gt) {
  if (count > 0) {
    for (float& x : gt) x /= (float)count;
    return;
  }
  // An empty answer reads nothing: a uniform target on the scored layers.
  for (int l = 0; l < c.n_layer; ++l)
    if (scored_layer(c, l))
      std::fill(gt.begin() + (size_t)l * c.n_head * N, gt.begin() + (size_t)(l + 1) * c.n_head * N,
                1.0f / (float)N);
}

}  // namespace glimpse
