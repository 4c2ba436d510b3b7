#include "train/lookahead_train.h"

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <climits>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kv/attention_scores.h"
#include "kv/budget.h"
#include "kv/kv_scores.h"
#include "kv/policy_util.h"
#include "lookahead/lookahead_backward.h"
#include "runtime/context.h"
#include "train/lookahead_answers.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/progress.h"
#include "util/timer.h"

namespace glimpse {

namespace fs = std::filesystem;

namespace {

// SIGINT / SIGTERM: finish the current step, checkpoint, return.
std::atomic<int> g_stop{0};
extern "C" void on_stop_signal(int) { g_stop.store(1); }

constexpr char kSampleMagic[8] = {'G', 'L', 'M', 'P', 'L', 'K', 'V', '1'};
constexpr char kStateMagic1[8] = {'G', 'L', 'M', 'P', 'L', 'K', 'S', '1'};
constexpr char kStateMagic[8] = {'G', 'L', 'M', 'P', 'L', 'K', 'S', '2'};  // + best validation

struct SampleHeader {
  char magic[8];
  uint64_t fingerprint;
  uint64_t key;
  int32_t n_layer, n_kv_head, head_dim, n_head;
  int64_t n_prompt;
  int32_t n_answer, no_kv;  // no_kv 1: ground truth only (files before it existed hold 0)
  uint64_t reserved2;
};
static_assert(sizeof(SampleHeader) == 64);

// Key of a sample (its file name): FNV-1a seeded with the weights fingerprint over the
// answer length, the prompt length and the tokens, each as 8 bytes. Plain FNV state (no
// finaliser): existing sample files are named by it.
uint64_t hash_tokens(uint64_t fingerprint, const std::vector<int32_t>& t, int answer_len) {
  Fnv1a h(kFnvOffset ^ fingerprint);
  h.value((uint64_t)answer_len);
  h.value((uint64_t)t.size());
  for (int32_t x : t) h.value((uint64_t)(uint32_t)x);
  return h.state();
}

void read_exact(std::ifstream& in, void* p, size_t n, const std::string& path) {
  if (!in.read((char*)p, (std::streamsize)n)) fail("{}: file is truncated", path);
}

// The status line of a phase, redrawn in place (util/progress.h).
void progress_line(bool on, const std::string& text) {
  if (on) redraw_line(stderr, text);
}

struct Prompt {
  std::vector<int32_t> tokens;  // what the module reads: the prompt (agnostic: the context part)
  std::vector<std::vector<int32_t>> suffixes;  // agnostic: each question's rest of the prompt
  std::string file;
  uint64_t key = 0;  // the sample's key (answer files record it)
};

// Key of a compress-once sample: the context's key continued over each question's suffix.
uint64_t hash_agnostic(uint64_t fingerprint, const Prompt& p, int answer_len) {
  Fnv1a h(hash_tokens(fingerprint, p.tokens, answer_len));
  h.value((uint64_t)p.suffixes.size());
  for (const auto& suf : p.suffixes) {
    h.value((uint64_t)suf.size());
    for (int32_t x : suf) h.value((uint64_t)(uint32_t)x);
  }
  return h.state();
}

// The questions of a prompt line: "questions" (a list of strings) or "question".
std::vector<std::string> line_questions(const nlohmann::json& j, const std::string& question,
                                        const std::string& path, int line_no) {
  if (!j.contains("questions")) return {question};
  const nlohmann::json& qs = j["questions"];
  if (!qs.is_array() || qs.empty()) fail("{}:{}: \"questions\" must be a non-empty list", path, line_no);
  std::vector<std::string> out;
  for (const auto& q : qs) {
    if (!q.is_string()) fail("{}:{}: \"questions\" must hold strings", path, line_no);
    out.push_back(q.get<std::string>());
  }
  return out;
}

std::vector<Prompt> read_prompts(Context& s, const LookaheadTrainOptions& o, const std::string& path,
                                 int& skipped) {
  std::ifstream in(path);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  const uint64_t fp = weights_fingerprint(s.model());
  const int64_t limit = o.max_prompt > 0 ? o.max_prompt : (int64_t)s.n_ctx() - o.answer_len;
  std::vector<Prompt> out;
  std::string line;
  int line_no = 0;
  skipped = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      fail("{}:{}: not a JSON object: {}", path, line_no, e.what());
    }
    if (!j.is_object()) fail("{}:{}: not a JSON object", path, line_no);
    auto field = [&](const char* k) {
      if (!j.contains(k)) return std::string();
      if (!j[k].is_string()) fail("{}:{}: \"{}\" must be a string", path, line_no, k);
      return j[k].get<std::string>();
    };
    const std::string context = field("context"), question = field("question");
    if (context.empty() && question.empty())
      fail("{}:{}: needs \"context\" and/or \"question\"", path, line_no);
    Prompt p;
    int64_t longest = 0;  // positions the sample needs before its answer
    // As eval renders a task; a chat model also gets the system prompt.
    const Engine& e = s.engine();
    if (o.agnostic) {
      // The context part (chat-template head + context) is compressed once; every question
      // follows it. Each question must leave the context's tokens as they are.
      if (context.empty()) fail("{}:{}: --agnostic needs a \"context\"", path, line_no);
      for (const std::string& q : line_questions(j, question, path, line_no)) {
        const PromptTokens pt = e.task_prompt(context, q, o.system);
        const std::vector<int32_t> head(pt.tokens.begin(), pt.tokens.begin() + pt.n_context);
        if (p.suffixes.empty()) p.tokens = head;
        else if (head != p.tokens) fail("{}:{}: a question changes the context's tokens", path, line_no);
        p.suffixes.emplace_back(pt.tokens.begin() + pt.n_context, pt.tokens.end());
        longest = std::max<int64_t>(longest, (int64_t)pt.tokens.size());
      }
    } else {
      p.tokens = context.empty() ? e.task_prompt(question, "", o.system).tokens
                               : e.task_prompt(context, question, o.system).tokens;
      longest = (int64_t)p.tokens.size();
    }
    if (longest > limit || longest + o.answer_len > s.n_ctx()) {
      ++skipped;
      continue;
    }
    // A sample made with another KV cache type (-ctk/-ctv) is another file.
    const KvCache& kc = s.cache();
    const std::string types = kc.type_k() == KvType::F16 && kc.type_v() == KvType::F16
                                  ? ""
                                  : fmt::format("-{}-{}", kv_type_name(kc.type_k()),
                                                kv_type_name(kc.type_v()));
    // Ground-truth-only files (--recompute-kv), answer-only files (--recompute-truth) and
    // compress-once samples are other files.
    const uint64_t key = o.agnostic ? hash_agnostic(fp, p, o.answer_len) : hash_tokens(fp, p.tokens, o.answer_len);
    p.key = key;
    p.file = (fs::path(o.cache_dir) /
              fmt::format("{:016x}{}{}{}.lkv", key, types, o.agnostic ? "-agnostic" : "",
                          o.recompute_truth ? "-ans" : o.recompute_kv ? "-gt" : ""))
                 .string();
    out.push_back(std::move(p));
  }
  if (out.empty()) fail("{}: no usable prompts ({} too long for the context)", path, skipped);
  return out;
}

// Permutation of [0, n) for an epoch: a function of (seed, epoch) only.
std::vector<int> epoch_order(int n, uint64_t seed, int64_t epoch) {
  std::vector<int> p(n);
  std::iota(p.begin(), p.end(), 0);
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + (uint64_t)epoch + 1);
  for (int i = n - 1; i > 0; --i) std::swap(p[i], p[(int)(rng() % (uint64_t)(i + 1))]);
  return p;
}

struct TrainState {
  int step = 0;  // optimizer steps done
  LookaheadModule m, v;  // Adam moments
  double running = 0;
  double best_val = 0;  // best validation loss and its step (0: none yet)
  int64_t best_step = 0;
};

struct StateSettings {
  uint64_t seed;
  int32_t batch, n_prompts, steps, reserved;
};

void save_state(const std::string& path, const TrainState& st, const LookaheadModule& mod,
                const StateSettings& set) {
  AtomicFile f(path);
  f.write(kStateMagic, 8);
  const int64_t step = st.step;
  f.write(&step, 8);
  f.write(&st.running, 8);
  f.write(&st.best_val, 8);
  f.write(&st.best_step, 8);
  f.write(&set, sizeof set);
  for (const LookaheadModule* x : {&mod, &st.m, &st.v})
    for (const std::vector<float>* t : x->tensors()) f.write(t->data(), t->size() * 4);
  f.commit();
}

void load_state(const std::string& path, TrainState& st, LookaheadModule& mod,
                const StateSettings& want) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--resume: cannot read '{}'", path);
  char magic[8];
  read_exact(in, magic, 8, path);
  const bool v1 = !std::memcmp(magic, kStateMagic1, 8);  // without the validation fields
  if (!v1 && std::memcmp(magic, kStateMagic, 8)) fail("{}: not a lookahead training state", path);
  int64_t step;
  read_exact(in, &step, 8, path);
  read_exact(in, &st.running, 8, path);
  if (!v1) {
    read_exact(in, &st.best_val, 8, path);
    read_exact(in, &st.best_step, 8, path);
  }
  StateSettings set;
  read_exact(in, &set, sizeof set, path);
  if (set.seed != want.seed || set.batch != want.batch || set.n_prompts != want.n_prompts)
    fail("{}: saved with --seed {} --batch {} on {} prompts; resume needs the same (got {}, {}, {})",
         path, set.seed, set.batch, set.n_prompts, want.seed, want.batch, want.n_prompts);
  st.step = (int)step;
  for (LookaheadModule* x : {&mod, &st.m, &st.v})
    for (std::vector<float>* t : x->tensors()) read_exact(in, t->data(), t->size() * 4, path);
  if (in.peek() != EOF) fail("{}: trailing bytes (state of another module shape?)", path);
}

// Keeps the log lines of steps <= step (a crash after logging but before the checkpoint
// must not leave lines for steps that will run again).
void trim_log(const std::string& path, int step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", INT_MAX) <= step) kept += line + "\n";
    } catch (const std::exception&) {
    }
  }
  in.close();
  write_file_atomic(path, kept.data(), kept.size());
}

}  // namespace

LookaheadSampleTimes make_lookahead_sample(Context& s, const std::vector<int32_t>& tokens,
                                           int answer_len, const std::string& path, bool store_kv,
                                           const std::vector<std::vector<int32_t>>* suffixes) {
  LookaheadSampleTimes times;
  Stopwatch sw;
  const Model& m = s.model();
  const ModelConfig& c = m.config();
  const int64_t N = (int64_t)tokens.size();
  if (store_kv && c.swa_window > 0)
    fail("train-lookahead: sample files with the KV need every layer to hold the whole prompt; a "
         "model with sliding-window layers trains with --recompute-kv or --recompute-truth");
  s.reset();
  s.prefill(tokens, nullptr);
  times.prefill = sw.ms();
  sw.reset();
  KvCache& cache = s.cache();

  // gt[l][h][j] = mean over the target tokens of their softmax attention (over the keys they
  // saw) on prompt key j. Query-aware: the tokens of the model's greedy full-cache answer.
  // Compress once (suffixes): each question's tokens and its answer's, over all questions.
  std::vector<float> gt((size_t)c.n_layer * c.n_head * N, 0.0f);
  GreedyOptions g;
  g.max_new = answer_len;
  int64_t count = 0;
  if (!suffixes) {
    QueryCapture cap(c.n_layer);
    s.greedy(g, &cap);
    times.answer = sw.ms();
    sw.reset();
    count = (int64_t)cap.pos[0].size();
    add_truth(s, cap, N, gt);
  } else {
    for (const std::vector<int32_t>& suf : *suffixes) {
      std::unique_ptr<Context> f = s.fork();
      QueryCapture cap(c.n_layer);
      f->prefill(suf, &cap);
      f->greedy(g, &cap);
      count += (int64_t)cap.pos[0].size();
      add_truth(*f, cap, N, gt);
    }
    times.answer = sw.ms();
    sw.reset();
  }
  finish_truth(c, count, N, gt);

  times.truth = sw.ms();
  sw.reset();
  SampleHeader h{};
  std::memcpy(h.magic, kSampleMagic, 8);
  h.fingerprint = weights_fingerprint(m);
  h.key = hash_tokens(h.fingerprint, tokens, answer_len);
  h.n_layer = c.n_layer;
  h.n_kv_head = c.n_kv_head;
  h.head_dim = c.head_dim;
  h.n_head = c.n_head;
  h.n_prompt = N;
  h.n_answer = (int32_t)count;
  h.no_kv = store_kv ? 0 : 1;
  AtomicFile f(path);
  f.write(&h, sizeof h);
  // The first N entries of a head (the prompt), stored as f16 whatever the cache type.
  const size_t hd = (size_t)N * c.head_dim;
  std::vector<uint8_t> f16(hd * 2);
  for (int l = 0; l < c.n_layer && store_kv; ++l)
    for (int g = 0; g < c.n_kv_head; ++g) {
      const KvHead& kh = cache.head(l, g);
      kv_rows_convert(cache.type_k(), kh.k.data(), KvType::F16, f16.data(), N, c.head_dim);
      f.write(f16.data(), hd * 2);
      kv_rows_convert(cache.type_v(), kh.v.data(), KvType::F16, f16.data(), N, c.head_dim);
      f.write(f16.data(), hd * 2);
    }
  f.write(gt.data(), gt.size() * 4);
  f.commit();
  s.reset();
  times.write = sw.ms();
  return times;
}

LookaheadSampleFile read_lookahead_sample(const std::string& path, const Model& m, KvCache& cache) {
  const ModelConfig& c = m.config();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  SampleHeader h;
  read_exact(in, &h, sizeof h, path);
  if (std::memcmp(h.magic, kSampleMagic, 8)) fail("{}: not a lookahead sample file", path);
  if (h.fingerprint != weights_fingerprint(m) || h.n_layer != c.n_layer ||
      h.n_kv_head != c.n_kv_head || h.head_dim != c.head_dim || h.n_head != c.n_head)
    fail("{}: sample made with another model", path);
  if (h.n_prompt < 1 || h.n_prompt > (1 << 24)) fail("{}: bad prompt length", path);
  const int64_t N = h.n_prompt;
  const size_t hd = (size_t)N * c.head_dim;
  if (h.no_kv != 0 && h.no_kv != 1) fail("{}: bad sample header", path);
  const bool has_kv = h.no_kv == 0;
  const uint64_t expect = sizeof h + (has_kv ? (uint64_t)c.n_layer * c.n_kv_head * hd * 4 : 0) +
                          (uint64_t)c.n_layer * c.n_head * N * 4;
  if (fs::file_size(path) != expect) fail("{}: file is truncated or corrupt", path);
  if (cache.n_layer() != c.n_layer || cache.n_kv_head() != c.n_kv_head)
    fail("read_lookahead_sample: cache of another model");
  if (has_kv) cache.clear();
  std::vector<uint8_t> f16(hd * 2);  // the file's f16 rows, converted to the cache's types
  for (int l = 0; l < c.n_layer && has_kv; ++l)
    for (int g = 0; g < c.n_kv_head; ++g) {
      KvHead& kh = cache.head(l, g);
      kh.k.resize(N * cache.k_row_bytes());
      kh.v.resize(N * cache.v_row_bytes());
      read_exact(in, f16.data(), hd * 2, path);
      kv_rows_convert(KvType::F16, f16.data(), cache.type_k(), kh.k.data(), N, c.head_dim);
      read_exact(in, f16.data(), hd * 2, path);
      kv_rows_convert(KvType::F16, f16.data(), cache.type_v(), kh.v.data(), N, c.head_dim);
      kh.pos.resize(N);
      std::iota(kh.pos.begin(), kh.pos.end(), 0);
    }
  if (has_kv) cache.set_n_past((int32_t)N);
  LookaheadSampleFile out;
  out.n_prompt = N;
  out.n_answer = h.n_answer;
  out.has_kv = has_kv;
  out.gt.resize((size_t)c.n_layer * c.n_head * N);
  read_exact(in, out.gt.data(), out.gt.size() * 4, path);
  return out;
}

float lookahead_lr(const LookaheadTrainOptions& o, int t) {
  if (o.warmup > 0 && t < o.warmup) return o.lr * (float)(t + 1) / (float)o.warmup;
  const double span = std::max(1, o.steps - o.warmup);
  const double prog = std::clamp((double)(t - o.warmup) / span, 0.0, 1.0);
  const double lo = o.lr * o.min_lr_ratio;
  return (float)(lo + 0.5 * (o.lr - lo) * (1.0 + std::cos(M_PI * prog)));
}

namespace {

// Makes the missing answer-only sample files, in groups that decode together.
void prepare_answers(Context& s, const LookaheadTrainOptions& o, const std::vector<Prompt>& prompts,
                     const std::vector<uint8_t>& missing, LookaheadTrainReport& rep) {
  std::vector<AnswerJob> jobs;
  for (size_t i = 0; i < prompts.size(); ++i)
    if (missing[i])
      jobs.push_back({&prompts[i].tokens, o.agnostic ? &prompts[i].suffixes : nullptr, prompts[i].file,
                      prompts[i].key});
  Stopwatch sw;
  const size_t per_group = o.agnostic ? 8 : 32;  // prompts per call (contexts: x questions)
  for (size_t i = 0; i < jobs.size(); i += per_group) {
    const size_t n = std::min(per_group, jobs.size() - i);
    make_answer_samples(s, std::vector<AnswerJob>(jobs.begin() + (long)i, jobs.begin() + (long)(i + n)),
                        o.answer_len);
    const double per = sw.ms() / 1000.0 / (double)(i + n);
    progress_line(o.progress, fmt::format("answering {} {}/{} | {:.2f} s/sample | ETA {}",
                                          progress_bar((double)(i + n) / jobs.size()), i + n, jobs.size(),
                                          per, format_compact_duration(per * (jobs.size() - i - n))));
  }
  if (o.progress && !jobs.empty()) std::fputc('\n', stderr);
  rep.n_prepared += (int)jobs.size();
  rep.prepare_s += sw.ms() / 1000.0;
  rep.prepare_times.answer += sw.ms();
}

// Reads the prompts of path and makes every missing sample file.
std::vector<Prompt> prepare_samples(Context& s, const LookaheadTrainOptions& o,
                                    const std::string& path, LookaheadTrainReport& rep) {
  std::vector<Prompt> prompts = read_prompts(s, o, path, rep.n_skipped);
  rep.n_prompts = (int)prompts.size();
  for (const Prompt& p : prompts) rep.total_prompt_tokens += (int64_t)p.tokens.size();
  fs::create_directories(o.cache_dir);
  Stopwatch sw;
  int done = 0;
  std::vector<uint8_t> missing(prompts.size());
  size_t left = 0;
  for (size_t i = 0; i < prompts.size(); ++i) left += missing[i] = !fs::exists(prompts[i].file);
  if (o.recompute_truth) {
    prepare_answers(s, o, prompts, missing, rep);
    return prompts;
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (missing[i]) {
      --left;
      const LookaheadSampleTimes t =
          make_lookahead_sample(s, prompts[i].tokens, o.answer_len, prompts[i].file, !o.recompute_kv,
                                o.agnostic ? &prompts[i].suffixes : nullptr);
      rep.prepare_times.prefill += t.prefill;
      rep.prepare_times.answer += t.answer;
      rep.prepare_times.truth += t.truth;
      rep.prepare_times.write += t.write;
      ++done;
    }
    const double per = done ? sw.ms() / 1000.0 / done : 0;
    progress_line(o.progress, fmt::format("preparing {} {}/{} | {:.1f} s/sample | ETA {}",
                                          progress_bar((double)(i + 1) / prompts.size()), i + 1,
                                          prompts.size(), per, format_compact_duration(per * left)));
  }
  if (o.progress) std::fputc('\n', stderr);
  rep.n_prepared += done;
  rep.prepare_s += sw.ms() / 1000.0;
  return prompts;
}

// The ground truth of a prompt and the cache holding its KV: `cache` filled from the sample
// file, or the context's own cache after a prefill when the file has no KV.
struct LoadedSample {
  LookaheadSampleFile file;
  KvCache* kv = nullptr;
};
LoadedSample load_sample(Context& s, const LookaheadTrainOptions& o, const Prompt& p, KvCache& cache) {
  if (o.recompute_truth) {
    const int64_t N = (int64_t)p.tokens.size();
    const auto answers = read_answer_sample(p.file, s.model(), p.key, N);
    LoadedSample out;
    out.file.n_prompt = N;
    out.file.has_kv = false;
    for (const auto& a : answers) out.file.n_answer += (int)a.size();
    out.file.gt = truth_from_answers(s, p.tokens, o.agnostic ? &p.suffixes : nullptr, answers);
    out.kv = &s.cache();
    return out;
  }
  LoadedSample out{read_lookahead_sample(p.file, s.model(), cache), &cache};
  if (!out.file.has_kv) {
    s.reset();
    s.prefill(p.tokens, nullptr);
    out.kv = &s.cache();
  }
  return out;
}

// Mean training loss (KL) of a module over prompts. memo (validation): each prompt's KV and
// ground truth are kept in memory after the first pass (~23 KB per prompt token for
// SmolLM2-135M in f16: ~6 GB for 120 prompts of 2K), so later validations run the lookahead
// rows alone instead of a prefill per prompt.
struct LossMemo {
  std::vector<KvCache> kv;
  std::vector<std::vector<float>> gt;
};
double mean_loss(Context& s, const LookaheadTrainOptions& o, const std::vector<Prompt>& prompts,
                 const LookaheadModule& mod, KvCache& cache, LossMemo* memo = nullptr) {
  const ModelConfig& c = s.model().config();
  double loss = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t N = (int64_t)prompts[i].tokens.size();
    std::vector<float> sc;
    if (memo && i < memo->kv.size()) {
      lookahead_forward<float>(s.model(), memo->kv[i], mod, s.pool(), sc, nullptr);
      loss += lookahead_loss<float>(sc, memo->gt[i].data(), c.n_layer, c.n_head, N, nullptr);
      continue;
    }
    LoadedSample ls = load_sample(s, o, prompts[i], cache);
    lookahead_forward<float>(s.model(), *ls.kv, mod, s.pool(), sc, nullptr);
    loss += lookahead_loss<float>(sc, ls.file.gt.data(), c.n_layer, c.n_head, N, nullptr);
    if (memo) {
      memo->kv.push_back(*ls.kv);
      memo->gt.push_back(std::move(ls.file.gt));
    }
  }
  s.reset();
  return loss / (double)prompts.size();
}

// AdamW on every tensor of mod from the (already batch-averaged) gradient, clipped to the
// global norm o.clip. Returns the norm before clipping; fails when it is not finite.
double adamw_step(const LookaheadTrainOptions& o, TrainState& st, LookaheadModule& mod,
                  LookaheadModule& grad, float lr) {
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<std::vector<float>*> P = mod.tensors(), Gr = grad.tensors(), M = st.m.tensors(),
                                   V = st.v.tensors();
  double norm2 = 0;
  for (auto* g : Gr)
    for (float x : *g) norm2 += (double)x * x;
  const double norm = std::sqrt(norm2);
  if (!std::isfinite(norm)) fail("step {}: the gradient is not finite", st.step + 1);
  const double clip = norm > o.clip ? o.clip / norm : 1.0;
  const int t = st.step + 1;
  const double bc1 = 1.0 - std::pow(beta1, t), bc2 = 1.0 - std::pow(beta2, t);
  for (size_t ti = 0; ti < P.size(); ++ti) {
    const float wd = ti == 0 ? 0.0f : o.weight_decay;  // no decay on the embeddings P
    float *p = P[ti]->data(), *g = Gr[ti]->data(), *m = M[ti]->data(), *v = V[ti]->data();
    for (size_t i = 0; i < P[ti]->size(); ++i) {
      const double gi = g[i] * clip;
      m[i] = (float)(beta1 * m[i] + (1 - beta1) * gi);
      v[i] = (float)(beta2 * v[i] + (1 - beta2) * gi * gi);
      const double upd = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps) + wd * p[i];
      p[i] = (float)(p[i] - lr * upd);
    }
  }
  return norm;
}

}  // namespace

// Adds one prompt's kept ground-truth mass (LookaheadEvalReport::kept_*), mean over
// layers x KV heads, at every budget under both allocations. sc, gt: [n_layer][n_head][N].
static void add_kept_mass(const ModelConfig& c, const std::vector<float>& sc, const std::vector<float>& gt,
                   int64_t N, LookaheadEvalReport& ev) {
  const KvScores pred = reduce_query_heads(sc, c.n_layer, c.n_head, c.n_kv_head, N, 0, PoolKind::None,
                                           GroupReduce::Mean);
  const KvScores truth = reduce_query_heads(gt, c.n_layer, c.n_head, c.n_kv_head, N, 0, PoolKind::None,
                                            GroupReduce::Mean);
  ev.kept_uniform.resize(ev.kept_budgets.size());
  ev.kept_global.resize(ev.kept_budgets.size());
  const std::vector<uint8_t> prot(N, 0);
  // Per head, once: the prompt ordered by predicted score and the truth's cumulative mass in
  // that order (share of the head's total), so a plan's kept mass is one lookup per head.
  const int n_heads = c.n_layer * c.n_kv_head;
  std::vector<std::vector<double>> cum(n_heads, std::vector<double>(N + 1, 0.0));
  std::vector<int64_t> idx(N);
  for (int r = 0; r < n_heads; ++r) {
    const float *p = pred.s.data() + (size_t)r * N, *g = truth.s.data() + (size_t)r * N;
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    for (int64_t j = 0; j < N; ++j) cum[r][j + 1] = cum[r][j] + g[idx[j]];
  }
  // Only the scored layers count (a sliding-window layer is never evicted).
  std::vector<uint8_t> scored(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) scored[l] = scored_layer(c, l);
  auto mass = [&](const BudgetPlan& plan) {
    double total = 0;
    int n = 0;
    for (int r = 0; r < n_heads; ++r) {
      if (!scored[r / c.n_kv_head]) continue;
      const double all = cum[r][N];
      total += all > 0 ? cum[r][std::min<int64_t>(plan.keep[r], N)] / all : 1.0;
      ++n;
    }
    return total / std::max(1, n);
  };
  const bool any_swa = c.swa_window > 0;
  for (size_t b = 0; b < ev.kept_budgets.size(); ++b) {
    const int64_t B = std::min<int64_t>(ev.kept_budgets[b], N);
    ev.kept_uniform[b] += mass(allocate_uniform(c.n_layer, c.n_kv_head, B, N));
    ev.kept_global[b] += mass(allocate_global(pred, prot, B, 0.2, any_swa ? scored : std::vector<uint8_t>{}));
  }
}

LookaheadEvalReport evaluate_lookahead(Context& s, const LookaheadTrainOptions& o,
                                       const LookaheadModule& mod) {
  const Model& model = s.model();
  const ModelConfig& c = model.config();
  LookaheadEvalReport ev;
  const std::vector<Prompt> prompts = prepare_samples(s, o, o.prompts_path, ev.data);
  KvCache cache = KvCache::for_model(model.config(), 1);
  double kept = 0, kept_best = 0;
  int64_t rows = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const LoadedSample ls = load_sample(s, o, prompts[i], cache);
    const LookaheadSampleFile& sf = ls.file;
    const int64_t N = sf.n_prompt;
    std::vector<float> sc;
    lookahead_forward<float>(model, *ls.kv, mod, s.pool(), sc, nullptr);
    ev.prompt_loss.push_back(lookahead_loss<float>(sc, sf.gt.data(), c.n_layer, c.n_head, N, nullptr));
    // Ground-truth attention mass inside the top 10% of the prompt by predicted score, and
    // by the ground truth itself (the best any score can do).
    const int64_t k = std::max<int64_t>(1, N / 10);
    std::vector<int64_t> idx(N);
    for (int64_t r = 0; r < (int64_t)c.n_layer * c.n_head; ++r) {
      const float* g = sf.gt.data() + r * N;
      const float* p = sc.data() + r * N;
      double total = 0;
      for (int64_t j = 0; j < N; ++j) total += g[j];
      if (!(total > 0)) continue;
      auto top_mass = [&](const float* key) {
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                          [&](int64_t a, int64_t b) { return key[a] > key[b]; });
        double m = 0;
        for (int64_t j = 0; j < k; ++j) m += g[idx[j]];
        return m / total;
      };
      kept += top_mass(p);
      kept_best += top_mass(g);
      ++rows;
    }
    add_kept_mass(c, sc, sf.gt, N, ev);
    progress_line(o.progress, fmt::format("evaluating {} {}/{}",
                                          progress_bar((double)(i + 1) / prompts.size()), i + 1,
                                          prompts.size()));
  }
  if (o.progress) std::fputc('\n', stderr);
  s.reset();
  ev.mean_loss = std::accumulate(ev.prompt_loss.begin(), ev.prompt_loss.end(), 0.0) / (double)prompts.size();
  ev.top10_mass = rows ? kept / (double)rows : 0;
  ev.top10_mass_best = rows ? kept_best / (double)rows : 0;
  for (double& x : ev.kept_uniform) x /= (double)prompts.size();
  for (double& x : ev.kept_global) x /= (double)prompts.size();
  return ev;
}

namespace {

// A fresh module, or (--init, fine-tuning) a trained one.
LookaheadModule start_module(const Model& model, const LookaheadTrainOptions& o) {
  return o.init_path.empty() ? LookaheadModule::create(model, o.hyper, o.seed)
                             : LookaheadModule::load(o.init_path, model);
}

// Adam moments from zero, or (--resume with a state file) the saved step, parameters and
// moments; the log is cut to the state's step, or emptied on a fresh start. True when the
// run starts from --init's module (its validation loss is logged as step 0).
bool start_state(const LookaheadTrainOptions& o, const std::string& state_path,
                 const std::string& log_path, const StateSettings& settings, LookaheadModule& mod,
                 TrainState& st) {
  st.m = mod.zeros_like();
  st.v = mod.zeros_like();
  if (o.resume && fs::exists(state_path)) {
    load_state(state_path, st, mod, settings);
    trim_log(log_path, st.step);
    if (o.progress) std::fprintf(stderr, "resuming at step %d of %d\n", st.step, o.steps);
  } else if (o.resume && o.init_path.empty()) {
    if (o.progress) std::fprintf(stderr, "no state at %s: starting from scratch\n", state_path.c_str());
  }
  const bool from_init = st.step == 0 && !o.init_path.empty();
  if (from_init && o.progress) std::fprintf(stderr, "starting from %s\n", o.init_path.c_str());
  if (!o.resume || st.step == 0) std::ofstream(log_path, std::ios::trunc);
  return from_init;
}

}  // namespace

LookaheadTrainReport train_lookahead(Context& s, const LookaheadTrainOptions& o) {
  const Model& model = s.model();
  if (o.steps < 1 || o.batch < 1) fail("--steps and --batch must be >= 1");
  if (o.val_every < 1) fail("--val-every must be >= 1");
  LookaheadTrainReport rep;
  std::vector<Prompt> prompts = prepare_samples(s, o, o.prompts_path, rep);
  std::vector<Prompt> val;
  if (!o.val_prompts_path.empty()) {
    LookaheadTrainReport val_rep;
    val = prepare_samples(s, o, o.val_prompts_path, val_rep);
  }
  if (o.prepare_only) return rep;

  // Module and optimizer state.
  const std::string state_path = o.out_path + ".state";
  const std::string log_path = o.log_path.empty() ? o.out_path + ".log.jsonl" : o.log_path;
  const StateSettings settings{o.seed, o.batch, (int32_t)prompts.size(), o.steps, 0};
  LookaheadModule mod = start_module(model, o);
  TrainState st;
  const bool from_init = start_state(o, state_path, log_path, settings, mod, st);
  rep.first_step = st.step;

  // Steps.
  LossMemo val_memo;
  LookaheadModule grad = mod.zeros_like();
  KvCache cache = KvCache::for_model(model.config(), 1);
  std::ofstream log(log_path, std::ios::app);
  if (!log) fail("cannot write '{}'", log_path);
  const int n = (int)prompts.size();
  int64_t cur_epoch = -1;
  std::vector<int> order;
  Stopwatch total;
  int steps_this_run = 0;
  g_stop.store(0);
  auto old_int = std::signal(SIGINT, on_stop_signal);
  auto old_term = std::signal(SIGTERM, on_stop_signal);
  if (from_init && !val.empty()) {
    // The starting module's validation loss, the mark the run has to beat (logged as step 0).
    const double v = mean_loss(s, o, val, mod, cache, &val_memo);
    log << nlohmann::json{{"step", 0}, {"val_loss", v}}.dump() << "\n";
    if (o.progress) std::fprintf(stderr, "validation loss of %s: %.4f\n", o.init_path.c_str(), v);
  }
  while (st.step < o.steps && (o.run_steps <= 0 || steps_this_run < o.run_steps)) {
    Stopwatch sw;
    for (auto* g : grad.tensors()) std::fill(g->begin(), g->end(), 0.0f);
    double loss = 0;
    for (int b = 0; b < o.batch; ++b) {
      const int64_t k = (int64_t)st.step * o.batch + b;
      if (k / n != cur_epoch) {
        cur_epoch = k / n;
        order = epoch_order(n, o.seed, cur_epoch);
      }
      const LoadedSample ls = load_sample(s, o, prompts[order[k % n]], cache);
      loss += lookahead_loss_and_grad<float>(model, *ls.kv, mod, ls.file.gt.data(), &grad, s.pool(), o.loss);
    }
    loss /= o.batch;
    for (auto* g : grad.tensors())
      for (float& x : *g) x /= (float)o.batch;
    const float lr = lookahead_lr(o, st.step);
    const double norm = adamw_step(o, st, mod, grad, lr);
    const int t = ++st.step;
    ++steps_this_run;
    // Running mean: exponential with a 20-step horizon, plain mean before that.
    const double a = std::max(1.0 / 20.0, 1.0 / std::min(t, 20));
    st.running = t == 1 ? loss : (1 - a) * st.running + a * loss;
    log << nlohmann::json{{"step", t}, {"loss", loss}, {"loss_mean", st.running},
                          {"grad_norm", norm}, {"lr", lr}, {"seconds", sw.ms() / 1000.0}}.dump()
        << "\n";
    bool stopping = t == o.steps || (o.run_steps > 0 && steps_this_run == o.run_steps) ||
                    g_stop.load() != 0;
    // Validation: out_path keeps the best module; patience validations without a better
    // one end the run.
    if (!val.empty() && (t % o.val_every == 0 || t == o.steps)) {
      const double v = mean_loss(s, o, val, mod, cache, &val_memo);
      log << nlohmann::json{{"step", t}, {"val_loss", v}}.dump() << "\n";
      if (st.best_step == 0 || v < st.best_val) {
        st.best_val = v;
        st.best_step = t;
        mod.save(o.out_path);
      } else if (o.patience > 0 && t - st.best_step >= (int64_t)o.patience * o.val_every) {
        rep.early_stopped = stopping = true;
      }
    }
    log.flush();
    if ((o.save_every > 0 && t % o.save_every == 0) || stopping) {
      if (val.empty()) mod.save(o.out_path);
      save_state(state_path, st, mod, settings);
    }
    const double per = total.ms() / 1000.0 / steps_this_run;
    progress_line(o.progress,
                  fmt::format("step {}/{} {} loss {:.4f}{} lr {:.2e} | {:.2f} s/step | ETA {}", t,
                              o.steps, progress_bar((double)t / o.steps), st.running,
                              st.best_step ? fmt::format(" val {:.4f}@{}", st.best_val, st.best_step) : "",
                              lr, per, format_compact_duration(per * (o.steps - t))));
    if (g_stop.load() || rep.early_stopped) {
      if (o.progress)
        std::fprintf(stderr, rep.early_stopped ? "\nearly stop after step %d: no better validation loss in %d checks"
                                               : "\nstopped by a signal after step %d (checkpoint saved)",
                     t, o.patience);
      break;
    }
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (o.progress) std::fputc('\n', stderr);
  if (steps_this_run == 0 && val.empty()) mod.save(o.out_path);
  rep.last_step = st.step;
  rep.train_s = total.ms() / 1000.0;
  rep.final_loss = st.running;
  rep.best_val = st.best_val;
  rep.best_step = (int)st.best_step;
  return rep;
}

}  // namespace glimpse
