// Fused causal attention over a per-KV-head cache, with online softmax (no T x N buffer).
//
// Each KV head has its own key/value arrays ([n] rows of head_dim values stored as type_k /
// type_v, see ops/kv_types.h) so heads may hold different token sets after eviction. A batch
// of T queries is attended after its own keys were appended: query t (0-based in the batch)
// of a head sees that head's first n_base + t + 1 entries, where n_base is the head's length
// before the batch. With a window W (sliding-window layers) it sees only the last W of those
// (itself and the W - 1 entries before it); the head's entries must then be consecutive
// positions in order.
#pragma once

#include <cstdint>

#include "ops/kv_types.h"

namespace glimpse {

class ThreadPool;

struct AttentionParams {
  int n_head = 0;     // query heads
  int n_kv_head = 0;  // key/value heads; n_head % n_kv_head == 0 (GQA groups)
  int head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  KvType type_k = KvType::F16, type_v = KvType::F16;  // element types of every head's rows
  int64_t window = 0;  // > 0: a query sees at most this many entries, ending at its own
};

// Keys are grouped in chunks of this many entries aligned at index 0 of a head (the order of
// the online softmax). Removing a multiple of it from the front of a head, of entries no
// query of the batch sees (outside every window), leaves every output bit-identical.
constexpr int64_t kAttentionChunk = 256;

struct KvHeadView {
  const void* k = nullptr;  // [>= n_base + T] rows of kv_row_bytes(type_k, head_dim) bytes
  const void* v = nullptr;  // [>= n_base + T] rows of kv_row_bytes(type_v, head_dim) bytes
  int64_t n_base = 0;
};

// q: [T][n_head][head_dim], heads: [n_kv_head], out: [T][n_head][head_dim].
void attention(const AttentionParams& p, const float* q, int64_t n_tokens,
               const KvHeadView* heads, float* out, ThreadPool& pool);

// Plain reference: the stored rows dequantized to f32, full score rows in double (q not
// rounded), single-threaded.
void attention_ref(const AttentionParams& p, const float* q, int64_t n_tokens,
                   const KvHeadView* heads, float* out);

}  // namespace glimpse
