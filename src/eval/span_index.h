// Shared-span detection between two bodies of text: every `width`-byte window of a set of
// texts is indexed by a polynomial rolling hash (one multiply-add per byte), and a query
// text's windows are looked up in it; a hash hit is confirmed by comparing the bytes, so a
// reported match is a real shared span. Used to keep evaluation text disjoint from
// training text (text_corpus.cpp drops evaluation paragraphs that share a span with the
// training side) and by the test that proves prompts of both sides share none.
//
// Memory: 16 bytes per distinct window hash of the indexed texts (a 2.5 MB text: ~40 MB
// while building, less after duplicates are merged).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace glimpse::eval {

class SpanIndex {
 public:
  // Indexes every window of `texts`, which must outlive the index (views are kept to
  // confirm hits). Texts shorter than width contribute nothing.
  explicit SpanIndex(std::vector<std::string_view> texts, size_t width = 64);

  struct Match {
    size_t offset;       // where the shared window starts in the query
    size_t text;         // index of the indexed text that holds it
    size_t text_offset;  // where it starts there
  };
  // The first window of `query` (lowest offset) that occurs byte for byte in an indexed text.
  std::optional<Match> first_shared(std::string_view query) const;

  size_t width() const { return width_; }
  size_t distinct_windows() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t hash;
    uint32_t text, offset;
  };
  size_t width_;
  std::vector<std::string_view> texts_;
  std::vector<Entry> entries_;  // sorted by hash, one entry per hash value
};

// Calls f(offset, hash) for every `width`-byte window of s, left to right.
template <typename F>
void for_each_window_hash(std::string_view s, size_t width, F&& f) {
  constexpr uint64_t kBase = 0x100000001B3ull;  // odd: the hash is a bijection per byte
  if (width == 0 || s.size() < width) return;
  uint64_t top = 1;  // kBase^(width-1): weight of the byte leaving the window
  for (size_t i = 1; i < width; ++i) top *= kBase;
  uint64_t h = 0;
  for (size_t i = 0; i < width; ++i) h = h * kBase + (unsigned char)s[i];
  f(size_t{0}, h);
  for (size_t i = width; i < s.size(); ++i) {
    h = (h - (unsigned char)s[i - width] * top) * kBase + (unsigned char)s[i];
    f(i - width + 1, h);
  }
}

}  // namespace glimpse::eval
