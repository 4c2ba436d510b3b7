// KV cache stored per (layer, KV head): each head owns its keys, values and the original
// position of every entry, so heads can keep different token sets after eviction and
// memory can really be released. Keys and values are rows of head_dim values stored as the
// cache's type_k / type_v (ops/kv_types.h: f32, f16 (default), bf16, q8_0), chosen
// independently.
//
// Sliding-window layers (ModelConfig::window_of > 0) hold consecutive positions in order
// (eviction leaves them alone) and, by default, drop entries no query can see any more: when a
// batch arrives, whole chunks of kAttentionChunk entries older than the window of its first
// query by more than kWindowRollback positions go, so such a head holds at most
// window + kWindowRollback + kAttentionChunk + batch entries however long the context grows,
// attention gives the same bits as with every entry kept (chunks stay aligned), and a rollback
// of up to kWindowRollback positions stays exact. A longer rollback is refused (Error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/kv_store.h"
#include "model/model_config.h"
#include "ops/attention.h"
#include "ops/kv_types.h"

namespace glimpse {

struct KvHead {
  std::vector<uint8_t> k;     // [n] rows of k_row_bytes(): post-RoPE keys as type_k
  std::vector<uint8_t> v;     // [n] rows of v_row_bytes(): values as type_v
  std::vector<int32_t> pos;   // [n] original positions
  int64_t size() const { return (int64_t)pos.size(); }
};

class KvCache final : public KvStore {
 public:
  // Error if a type cannot hold rows of head_dim values (q8_0 needs head_dim % 32 == 0).
  KvCache(int n_layer, int n_kv_head, int head_dim, int64_t n_ctx,
          KvType type_k = KvType::F16, KvType type_v = KvType::F16);
  // An empty cache shaped for a model (its layers, KV heads and head_dim).
  // An empty cache shaped for a model (its layers, KV heads, head_dim and sliding windows).
  static KvCache for_model(const ModelConfig& c, int64_t n_ctx, KvType type_k = KvType::F16,
                           KvType type_v = KvType::F16) {
    KvCache cache(c.n_layer, c.n_kv_head, c.head_dim, n_ctx, type_k, type_v);
    for (int l = 0; l < c.n_layer; ++l) cache.window_[(size_t)l] = c.window_of(l);
    return cache;
  }

  // Positions a rollback (truncate_from) of a sliding-window layer may always go back.
  static constexpr int32_t kWindowRollback = 256;
  // Sliding window of a layer (keys a query sees counting itself), 0 for a global layer.
  int32_t window(int layer) const { return window_[(size_t)layer]; }
  bool has_windows() const;
  // Off: sliding-window layers keep every entry (attention masks them; same bits).
  void set_drop_out_of_window(bool drop) { drop_out_of_window_ = drop; }
  bool drops_out_of_window() const { return drop_out_of_window_; }
  // The smallest position truncate_from accepts (entries older than some window were
  // dropped); 0 when any rollback is exact.
  int32_t rollback_floor() const;

  int n_layer() const { return n_layer_; }
  int n_kv_head() const { return n_kv_head_; }
  int head_dim() const { return head_dim_; }
  int64_t n_ctx() const override { return n_ctx_; }
  KvType type_k() const override { return type_k_; }
  KvType type_v() const override { return type_v_; }
  size_t k_row_bytes() const { return k_row_; }  // bytes of one stored key row
  size_t v_row_bytes() const { return v_row_; }

  KvHead& head(int layer, int h) { return heads_[(size_t)layer * n_kv_head_ + h]; }
  const KvHead& head(int layer, int h) const { return heads_[(size_t)layer * n_kv_head_ + h]; }

  // Next position to assign (one past the largest position ever appended).
  int32_t n_past() const override { return n_past_; }
  void set_n_past(int32_t p) { n_past_ = p; }

  // Appends T entries to every head of a layer, converting to the cache's types.
  // k, v: [T][n_kv_head][head_dim] f32.
  void append(int layer, const float* k, const float* v, const int32_t* pos, int64_t T) override;

  // Views for attention over a layer, each head's n_base = its size before the last T
  // appended entries.
  void views(int layer, int64_t T, KvHeadView* out) const override;

  // Reserve room for T more entries in every head (avoids regrowth during prefill).
  void reserve_more(int64_t T) override;

  // Keeps only the entries idx[0..n) of one head, in that order, in freshly allocated
  // buffers of exactly that size; the old buffers are freed (memory really goes back).
  // idx must hold distinct valid entry indices; eviction passes them sorted ascending.
  void gather(int layer, int h, const int32_t* idx, int64_t n);

  // Drops every entry at position >= pos in every head (rollback). Error if pos is below
  // rollback_floor() (a sliding-window layer no longer holds what pos would need).
  void truncate_from(int32_t pos);
  void clear();

  // Bytes really held by the cache buffers (capacity, not just size).
  size_t resident_bytes() const;
  // Entries stored, summed over layers and heads.
  int64_t total_entries() const;
  // Entries stored in one layer, summed over its heads.
  int64_t layer_entries(int layer) const;

 private:
  int n_layer_, n_kv_head_, head_dim_;
  int64_t n_ctx_;
  KvType type_k_, type_v_;
  size_t k_row_, v_row_;
  int32_t n_past_ = 0;
  std::vector<KvHead> heads_;  // [n_layer][n_kv_head]
  std::vector<int32_t> window_;  // [n_layer] 0: global layer
  bool drop_out_of_window_ = true;
  // Sliding-window layer: drops the front chunks no query from position `next` on sees.
  void drop_before_window(int layer, int32_t next);
};

// While it lives, sliding-window layers keep every entry appended (dropping is off), so a
// rollback of any depth to a position the cache could reach when it was made stays exact:
// what rolls back further than kWindowRollback (the oracle's own answer, SpecKV's draft rows,
// eval's branch answers, bench repetitions) holds one. Attention gives the same bits either
// way (it skips entries outside a window); only the memory of the entries appended
// meanwhile is kept. The cache's setting is restored at the end.
class KeepWindowEntries {
 public:
  explicit KeepWindowEntries(KvCache& c) : c_(c), prev_(c.drops_out_of_window()) {
    c.set_drop_out_of_window(false);
  }
  ~KeepWindowEntries() { c_.set_drop_out_of_window(prev_); }
  KeepWindowEntries(const KeepWindowEntries&) = delete;
  KeepWindowEntries& operator=(const KeepWindowEntries&) = delete;

 private:
  KvCache& c_;
  bool prev_;
};

}  // namespace glimpse
