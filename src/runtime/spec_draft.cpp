#include "runtime/spec_draft.h"

#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

struct Drafter::Source {
  DraftSpec spec;
  std::unique_ptr<PromptCompressor> pc;   // views: the policy set up for the prompt
  std::unique_ptr<Context> ctx;           // views and the draft model
  bool batched = false;                   // runs in the views' forward_contexts
  SpecSourceStats st;
  std::vector<std::vector<float>> logits; // [draft position][n_vocab] of this round
};

Drafter::Drafter(const Context& target, const DraftParams& p, int64_t n_prompt)
    : p_(p), tok_(&target.tokenizer()), n_vocab_(target.model().config().n_vocab),
      ensemble_(p.sources.size(), p.weights, target.model().config().n_vocab) {
  if (p_.sources.empty()) fail("speculative decoding needs at least one draft source");
  for (const DraftSpec& d : p_.sources) {
    auto s = std::make_unique<Source>();
    s->spec = d;
    s->st.name = d.name;
    if (d.kind == DraftKind::View) {
      s->pc = std::make_unique<PromptCompressor>(d.kv, target.model().config(), n_prompt);
      observers_.add(s->pc->observer());
      s->batched = true;
    } else if (d.kind == DraftKind::Model) {
      if (!p_.draft_engine) fail("draft source 'draft' needs a draft model (-md FNAME)");
      check_same_vocab(target.tokenizer(), p_.draft_engine->tokenizer(), p_.draft_path);
    }
    sources_.push_back(std::move(s));
  }
}

Drafter::~Drafter() = default;

double Drafter::setup(const Context& target, const std::vector<int32_t>& prompt) {
  Stopwatch total;
  for (auto& s : sources_) {
    Stopwatch sw;
    if (s->spec.kind == DraftKind::View) {
      s->ctx = target.fork();
      if (s->pc->evicts()) s->pc->evict(*s->ctx, s->pc->score(*s->ctx, prompt, {}));
    } else if (s->spec.kind == DraftKind::Model) {
      // The draft runs on the target's pool: one driving thread, one set of workers.
      const ContextParams cp{target.n_ctx(), target.n_batch(), target.cache().type_k(),
                             target.cache().type_v()};
      s->ctx = std::make_unique<Context>(p_.draft_engine, cp, &target.pool());
      s->ctx->prefill(prompt, nullptr);
    }
    if (s->ctx) s->st.kv_entries = s->ctx->cache().total_entries();
    s->st.setup_ms = sw.ms();
  }
  return total.ms();
}

// Step i of a draft over every model source: what it is missing of seq (i = 0) or the
// previous draft token. The views go through one batched forward.
void Drafter::feed_step(const std::vector<int32_t>& seq, const std::vector<int32_t>& drafts) {
  std::vector<ContextStep> batch;
  for (auto& s : sources_) {
    if (!s->ctx) continue;
    std::vector<int32_t> toks;
    if (drafts.empty())
      toks.assign(seq.begin() + s->ctx->n_past(), seq.end());
    else
      toks = {drafts.back()};
    if (s->batched)
      batch.push_back({s->ctx.get(), std::move(toks), nullptr});
    else
      s->ctx->prefill(toks, nullptr);
  }
  if (!batch.empty()) forward_contexts(batch);
}

// What every source says at draft position pos (its context's logits, or prompt lookup
// over seq + the drafts so far).
std::vector<Opinion> Drafter::opinions_at(size_t pos) {
  std::vector<Opinion> ops(sources_.size());
  for (size_t k = 0; k < sources_.size(); ++k) {
    Source& s = *sources_[k];
    if (s.ctx) {
      if (s.logits.size() <= pos) s.logits.resize(pos + 1);
      s.logits[pos] = s.ctx->logits();  // the next step overwrites the context's
      ops[k] = dense_opinion(s.logits[pos].data(), n_vocab_);
    } else if (s.spec.kind == DraftKind::Ngram) {
      const int32_t t = ngram_lookup(history_);
      if (t >= 0) {
        ops[k].kind = Opinion::OneHot;
        ops[k].token = t;
      }
    }
  }
  return ops;
}

void Drafter::sample_with(const SamplerParams& sp, uint64_t seed) {
  SamplerParams q = sp;
  q.repeat_penalty = 1.0f;
  q.presence_penalty = q.frequency_penalty = 0.0f;
  q.repeat_last_n = 0;
  q.seed = 0;  // never draws: only distribution() is used
  q_sampler_ = std::make_unique<Sampler>(q, n_vocab_);
  rng_.seed(seed);
}

// q = sum_k w_k q_k over the sources with an opinion: q_k is the sampler's distribution of a
// dense source's logits, all mass on the token of a prompt-lookup source. Empty when no
// source has an opinion.
SparseDist Drafter::mixture_dist(const std::vector<Opinion>& ops) {
  const std::vector<double> w = renormalised(ops, ensemble_.weights());
  if (mix_.size() < (size_t)n_vocab_) mix_.assign(n_vocab_, 0.0);
  touched_.clear();
  auto add = [&](int32_t id, double mass) {
    if (mass <= 0) return;
    if (mix_[id] == 0) touched_.push_back(id);
    mix_[id] += mass;
  };
  for (size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].kind == Opinion::None || w[k] <= 0) continue;
    if (ops[k].kind == Opinion::OneHot) {
      add(ops[k].token, w[k]);
      continue;
    }
    for (const auto& [id, pr] : q_sampler_->distribution(ops[k].logits)) add(id, w[k] * pr);
  }
  SparseDist q;
  q.reserve(touched_.size());
  for (int32_t id : touched_) {
    q.push_back({id, (float)mix_[id]});
    mix_[id] = 0;
  }
  return q;
}

std::vector<int32_t> Drafter::draft(const std::vector<int32_t>& seq, int k, bool stop_at_eog) {
  std::vector<int32_t> drafts;
  round_.clear();
  round_q_.clear();
  history_ = seq;
  for (int i = 0; i < k; ++i) {
    feed_step(seq, drafts);
    std::vector<Opinion> ops = opinions_at((size_t)i);
    double p_top = 0;
    int32_t t = -1;
    if (q_sampler_) {
      SparseDist q = mixture_dist(ops);
      if (q.empty()) break;  // no source has an opinion
      t = draw_from(q, rng_);
      p_top = prob_of(q, t);
      round_q_.push_back(std::move(q));
    } else {
      t = mixture_argmax(ops, ensemble_.weights(), n_vocab_, &p_top, scratch_);
    }
    if (t < 0) break;  // no source has an opinion
    round_.push_back(std::move(ops));
    drafts.push_back(t);
    history_.push_back(t);
    if (stop_at_eog && tok_->is_eog(t)) break;
    if (p_top < p_.p_min) break;
  }
  return drafts;
}

void Drafter::verified(const std::vector<const float*>& target_rows,
                       const std::vector<int32_t>& target_tokens, size_t n) {
  Stopwatch sw;
  for (size_t j = 0; j < n && j < round_.size(); ++j) {
    const std::vector<Opinion>& ops = round_[j];
    for (size_t k = 0; k < sources_.size(); ++k) {
      if (ops[k].kind == Opinion::None) continue;
      ++sources_[k]->st.positions;
      sources_[k]->st.agreed += ops[k].token == target_tokens[j];
    }
    ensemble_.record(target_rows[j], target_tokens[j], ops);
  }
  ensemble_.update();
  weights_ms_ += sw.ms();
}

void Drafter::rollback(int32_t n_keep) {
  for (auto& s : sources_)
    if (s->ctx && s->ctx->n_past() > n_keep) s->ctx->truncate(n_keep);
}

std::vector<SpecSourceStats> Drafter::stats() const {
  std::vector<SpecSourceStats> out;
  for (size_t k = 0; k < sources_.size(); ++k) {
    out.push_back(sources_[k]->st);
    out.back().weight = ensemble_.weights()[k];
  }
  return out;
}

const Context* Drafter::source_context(size_t i) const { return sources_.at(i)->ctx.get(); }

}  // namespace glimpse
