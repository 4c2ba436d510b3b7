#include "kv/kv_cache.h"

#include <algorithm>

#include "util/error.h"

namespace glimpse {

namespace {
size_t checked_row_bytes(KvType t, int d, const char* what) {
  check_kv_type(t, d, what);
  return kv_row_bytes(t, d);
}
}  // namespace

KvCache::KvCache(int n_layer, int n_kv_head, int head_dim, int64_t n_ctx, KvType type_k,
                 KvType type_v)
    : n_layer_(n_layer), n_kv_head_(n_kv_head), head_dim_(head_dim), n_ctx_(n_ctx),
      type_k_(type_k), type_v_(type_v),
      k_row_(checked_row_bytes(type_k, head_dim, "K (-ctk)")),
      v_row_(checked_row_bytes(type_v, head_dim, "V (-ctv)")),
      heads_((size_t)n_layer * n_kv_head), window_((size_t)n_layer, 0) {}

bool KvCache::has_windows() const {
  return std::any_of(window_.begin(), window_.end(), [](int32_t w) { return w > 0; });
}

void KvCache::drop_before_window(int layer, int32_t next) {
  // Queries from position `next` on (and after a rollback of up to kWindowRollback) see
  // positions >= next - kWindowRollback - window + 1: whole chunks below that go.
  const int64_t keep_from = (int64_t)next - kWindowRollback - window_[(size_t)layer] + 1;
  for (int h = 0; h < n_kv_head_; ++h) {
    KvHead& hd = head(layer, h);
    int64_t n_drop = 0;
    while (n_drop + kAttentionChunk <= hd.size() && hd.pos[n_drop + kAttentionChunk - 1] < keep_from)
      n_drop += kAttentionChunk;
    if (n_drop == 0) continue;
    // Erasing from the front keeps the capacity: the buffer stays at its bounded size.
    hd.k.erase(hd.k.begin(), hd.k.begin() + n_drop * (int64_t)k_row_);
    hd.v.erase(hd.v.begin(), hd.v.begin() + n_drop * (int64_t)v_row_);
    hd.pos.erase(hd.pos.begin(), hd.pos.begin() + n_drop);
  }
}

int32_t KvCache::rollback_floor() const {
  // A rollback to p needs positions >= p - window + 1 of every sliding-window layer.
  int64_t floor = 0;
  for (int l = 0; l < n_layer_; ++l) {
    if (window_[(size_t)l] <= 0) continue;
    for (int h = 0; h < n_kv_head_; ++h) {
      const KvHead& hd = head(l, h);
      if (hd.size() > 0 && hd.pos[0] > 0)
        floor = std::max<int64_t>(floor, (int64_t)hd.pos[0] + window_[(size_t)l] - 1);
    }
  }
  return (int32_t)floor;
}

void KvCache::append(int layer, const float* k, const float* v, const int32_t* pos, int64_t T) {
  const int d = head_dim_;
  if (window_[(size_t)layer] > 0 && drop_out_of_window_ && T > 0) drop_before_window(layer, pos[0]);
  for (int h = 0; h < n_kv_head_; ++h) {
    KvHead& hd = head(layer, h);
    if (hd.size() + T > n_ctx_)
      fail("KV cache full: {} + {} entries exceed the context size {}", hd.size(), T, n_ctx_);
    const size_t n0 = (size_t)hd.size();
    hd.k.resize((n0 + T) * k_row_);
    hd.v.resize((n0 + T) * v_row_);
    for (int64_t t = 0; t < T; ++t) {
      kv_rows_from_f32(type_k_, k + ((size_t)t * n_kv_head_ + h) * d, 1, d,
                       hd.k.data() + (n0 + t) * k_row_);
      kv_rows_from_f32(type_v_, v + ((size_t)t * n_kv_head_ + h) * d, 1, d,
                       hd.v.data() + (n0 + t) * v_row_);
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
  // Capacity grows in steps of kGrowEntries: decoding token by token must not reallocate and
  // copy every head on every token, and a head holds at most kGrowEntries - 1 spare entries.
  constexpr size_t kGrowEntries = 64;
  for (auto& hd : heads_) {
    const size_t need = hd.pos.size() + (size_t)T;
    if (need <= hd.pos.capacity()) continue;
    const size_t n = (need + kGrowEntries - 1) / kGrowEntries * kGrowEntries;
    hd.k.reserve(n * k_row_);
    hd.v.reserve(n * v_row_);
    hd.pos.reserve(n);
  }
}

void KvCache::gather(int layer, int h, const int32_t* idx, int64_t n) {
  KvHead& hd = head(layer, h);
  KvHead out;
  out.k.resize((size_t)n * k_row_);
  out.v.resize((size_t)n * v_row_);
  out.pos.resize((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[i];
    if (j < 0 || j >= hd.size()) fail("KV gather: entry {} outside a head of {}", j, hd.size());
    std::copy_n(hd.k.data() + j * k_row_, k_row_, out.k.data() + i * k_row_);
    std::copy_n(hd.v.data() + j * v_row_, v_row_, out.v.data() + i * v_row_);
    out.pos[i] = hd.pos[j];
  }
  hd = std::move(out);  // the old buffers are released here
}

void KvCache::truncate_from(int32_t p) {
  if (p < n_past_ && p < rollback_floor())
    fail("KV cache: cannot roll back to position {}: sliding-window layers dropped entries "
         "it needs (rollback to {} or later is exact)", p, rollback_floor());
  // Stable filter: entries may be in any physical order (eviction keeps them sorted, but
  // nothing here depends on it).
  const size_t bk = k_row_, bv = v_row_;
  for (auto& hd : heads_) {
    size_t w = 0;
    for (size_t r = 0; r < hd.pos.size(); ++r) {
      if (hd.pos[r] >= p) continue;
      if (w != r) {
        std::copy_n(hd.k.data() + r * bk, bk, hd.k.data() + w * bk);
        std::copy_n(hd.v.data() + r * bv, bv, hd.v.data() + w * bv);
        hd.pos[w] = hd.pos[r];
      }
      ++w;
    }
    hd.pos.resize(w);
    hd.k.resize(w * bk);
    hd.v.resize(w * bv);
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
    b += hd.k.capacity() + hd.v.capacity() + hd.pos.capacity() * 4;
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
