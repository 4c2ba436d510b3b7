// What the forward pass needs from a KV cache, and nothing more: the model layer sees the
// cache only through this interface, so the cache (kv/KvCache: per (layer, KV head) rows
// with original positions, eviction) lives in the layer above and another store (a paged
// or a device cache) can plug in without touching the forward.
#pragma once

#include <cstdint>

#include "ops/attention.h"
#include "ops/kv_types.h"

namespace glimpse {

class KvStore {
 public:
  virtual ~KvStore() = default;

  // Next position to assign (one past the largest position ever appended).
  virtual int32_t n_past() const = 0;
  // Entries a head may hold.
  virtual int64_t n_ctx() const = 0;
  virtual KvType type_k() const = 0;
  virtual KvType type_v() const = 0;

  // Room for T more entries in every head (called once per forward, before any append).
  virtual void reserve_more(int64_t T) = 0;
  // Appends T entries to every head of a layer. k, v: [T][n_kv_head][head_dim] f32 (k after
  // RoPE); pos: [T] their positions.
  virtual void append(int layer, const float* k, const float* v, const int32_t* pos, int64_t T) = 0;
  // One view per KV head of a layer for attention; n_base = the head's size before the last
  // T appended entries. out: [n_kv_head].
  virtual void views(int layer, int64_t T, KvHeadView* out) const = 0;
};

}  // namespace glimpse
