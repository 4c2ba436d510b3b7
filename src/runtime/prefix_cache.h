// Contexts kept after requests so that later requests starting with the same tokens skip
// their prefill (the server's document cache). Two kinds of entries:
//
//   full: a context holding the KV of `tokens` (a finished request's prompt and the tokens
//     it decoded). A request whose prompt shares at least min_tokens leading tokens with it
//     gets a fork truncated to the longest common prefix and prefills only the rest. The
//     forward gives a token the same bits whatever the batch split, and truncation is exact,
//     so the answer is the one a cold prefill gives.
//   compressed: a context holding a document (the tokens before the question) prefilled and
//     evicted query-agnostically by a policy, keyed by the document's tokens and the policy's
//     settings (policy_key). A later question on the same document under the same settings
//     gets a fork and prefills only the question: the document is scored and compressed once.
//
// Entries are evicted least recently used first to keep the resident bytes (KV buffers and
// logits of every entry) within max_bytes. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/compress.h"
#include "runtime/context.h"

namespace glimpse {

// Every setting that changes what a policy keeps, as one string (the compressed entries' key).
std::string policy_key(const KvPolicySettings& s);

class PrefixCache {
 public:
  explicit PrefixCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  struct Hit {
    std::unique_ptr<Context> ctx;  // a fork, holding the first n_tokens of the prompt
    int64_t n_tokens = 0;
    std::optional<KvCompressReport> compressed;  // set for a compressed document
  };
  // The full entry sharing the longest prefix with prompt (at least min_tokens, and at most
  // prompt.size() - 1 so that the last prompt token runs and gives the logits).
  std::optional<Hit> find_prefix(const std::vector<int32_t>& prompt, int64_t min_tokens = 16);
  // The compressed entry for exactly these document tokens under these settings.
  std::optional<Hit> find_compressed(const std::vector<int32_t>& document, const std::string& key);

  // Keeps ctx, which holds the KV of tokens (positions 0..tokens.size()-1). Entries whose
  // tokens are a prefix of these are dropped: this one serves everything they did.
  void put_full(std::vector<int32_t> tokens, std::unique_ptr<Context> ctx);
  // Keeps ctx, which holds `document` compressed under settings `key` as `report` says.
  void put_compressed(std::vector<int32_t> document, std::string key, std::unique_ptr<Context> ctx,
                      const KvCompressReport& report);

  struct Stats {
    int64_t lookups = 0, hits = 0, tokens_reused = 0, entries = 0, evictions = 0;
    size_t bytes = 0, max_bytes = 0;
  };
  Stats stats() const;

 private:
  struct Entry {
    std::string key;  // "" for full entries
    std::vector<int32_t> tokens;
    std::unique_ptr<Context> ctx;
    std::optional<KvCompressReport> report;
    size_t bytes = 0;
  };
  void insert(Entry e);  // at the front (most recent), then evicts to max_bytes_
  Hit take_fork(std::list<Entry>::iterator it, int64_t n_tokens);

  const size_t max_bytes_;
  mutable std::mutex m_;
  std::list<Entry> entries_;  // most recently used first
  Stats stats_;
};

}  // namespace glimpse
