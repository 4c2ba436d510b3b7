#include "kv/kv_cache.h"

#include <algorithm>

#include "util/error.h"
#include "util/fp16.h"

namespace glimpse {

KvCache::KvCache(int n_layer, int n_kv_head, int head_dim, int64_t n_ctx)
    : n_layer_(n_layer), n_kv_head_(n_kv_head), head_dim_(head_dim), n_ctx_(n_ctx),
      heads_((size_t)n_layer * n_kv_head) {}

void KvCache::append(int layer, const float* k, const float* v, const int32_t* pos, int64_t T) {
  const int d = head_dim_;
  for (int h = 0; h < n_kv_head_; ++h) {
    KvHead& hd = head(layer, h);
    if (hd.size() + T > n_ctx_)
      fail("KV cache full: {} + {} entries exceed the context size {}", hd.size(), T, n_ctx_);
    const size_t base = hd.k.size();
    hd.k.resize(base + (size_t)T * d);
    hd.v.resize(base + (size_t)T * d);
    for (int64_t t = 0; t < T; ++t) {
      const float* ks = k + ((size_t)t * n_kv_head_ + h) * d;
      const float* vs = v + ((size_t)t * n_kv_head_ + h) * d;
      uint16_t* kd = hd.k.data() + base + (size_t)t * d;
      uint16_t* vd = hd.v.data() + base + (size_t)t * d;
      for (int c = 0; c < d; ++c) {
        kd[c] = f32_to_fp16(ks[c]);
        vd[c] = f32_to_fp16(vs[c]);
      }
      hd.pos.push_back(pos[t]);
    }
  }
  if (layer == n_layer_ - 1)
    for (int64_t t = 0; t < T; ++t) n_past_ = std::max(n_past_, pos[t] + 1);
}

void KvCache::views(int layer, int64_t T, KvHeadView* out) const {
  for (int h = 0; h < n_kv_head_; ++h) {
    const KvHead& hd = head(layer, h);
    out[h].k = hd.k.data();
    out[h].v = hd.v.data();
    out[h].n_base = hd.size() - T;
  }
}

void KvCache::reserve_more(int64_t T) {
  for (auto& hd : heads_) {
    hd.k.reserve(hd.k.size() + (size_t)T * head_dim_);
    hd.v.reserve(hd.v.size() + (size_t)T * head_dim_);
    hd.pos.reserve(hd.pos.size() + (size_t)T);
  }
}

void KvCache::gather(int layer, int h, const int32_t* idx, int64_t n) {
  KvHead& hd = head(layer, h);
  const int d = head_dim_;
  KvHead out;
  out.k.resize((size_t)n * d);
  out.v.resize((size_t)n * d);
  out.pos.resize((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[i];
    if (j < 0 || j >= hd.size()) fail("KV gather: entry {} outside a head of {}", j, hd.size());
    std::copy_n(hd.k.data() + j * d, d, out.k.data() + i * d);
    std::copy_n(hd.v.data() + j * d, d, out.v.data() + i * d);
    out.pos[i] = hd.pos[j];
  }
  hd = std::move(out);  // the old buffers are released here
}

void KvCache::truncate_from(int32_t p) {
  // Stable filter: entries may be in any physical order (eviction keeps them sorted, but
  // nothing here depends on it).
  const size_t d = head_dim_;
  for (auto& hd : heads_) {
    size_t w = 0;
    for (size_t r = 0; r < hd.pos.size(); ++r) {
      if (hd.pos[r] >= p) continue;
      if (w != r) {
        std::copy_n(hd.k.data() + r * d, d, hd.k.data() + w * d);
        std::copy_n(hd.v.data() + r * d, d, hd.v.data() + w * d);
        hd.pos[w] = hd.pos[r];
      }
      ++w;
    }
    hd.pos.resize(w);
    hd.k.resize(w * d);
    hd.v.resize(w * d);
  }
  n_past_ = std::min(n_past_, p);
}

void KvCache::clear() {
  for (auto& hd : heads_) {
    hd = KvHead{};
  }
  n_past_ = 0;
}

size_t KvCache::resident_bytes() const {
  size_t b = 0;
  for (const auto& hd : heads_)
    b += hd.k.capacity() * 2 + hd.v.capacity() * 2 + hd.pos.capacity() * 4;
  return b;
}

int64_t KvCache::layer_entries(int layer) const {
  int64_t n = 0;
  for (int h = 0; h < n_kv_head_; ++h) n += head(layer, h).size();
  return n;
}

int64_t KvCache::total_entries() const {
  int64_t n = 0;
  for (const auto& hd : heads_) n += hd.size();
  return n;
}

}  // namespace glimpse
