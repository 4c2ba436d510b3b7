// Test helper: two caches hold the same thing, bit for bit (every (layer, KV head)'s K and V
// bytes and original positions, and the same length and entry count).
#pragma once

#include "kv/kv_cache.h"

namespace glimpse::testing {

inline bool same_kv_cache(const KvCache& a, const KvCache& b) {
  if (a.n_past() != b.n_past() || a.total_entries() != b.total_entries()) return false;
  for (int l = 0; l < a.n_layer(); ++l)
    for (int h = 0; h < a.n_kv_head(); ++h)
      if (a.head(l, h).k != b.head(l, h).k || a.head(l, h).v != b.head(l, h).v ||
          a.head(l, h).pos != b.head(l, h).pos)
        return false;
  return true;
}

}  // namespace glimpse::testing
