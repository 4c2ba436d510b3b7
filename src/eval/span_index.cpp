#include "eval/span_index.h"

#include <algorithm>

#include "util/error.h"

namespace glimpse::eval {

SpanIndex::SpanIndex(std::vector<std::string_view> texts, size_t width)
    : width_(width), texts_(std::move(texts)) {
  if (width_ == 0) fail("span index: window width must be positive");
  if (texts_.size() > UINT32_MAX) fail("span index: too many texts");
  size_t n = 0;
  for (std::string_view t : texts_) n += t.size() >= width_ ? t.size() - width_ + 1 : 0;
  entries_.reserve(n);
  for (size_t k = 0; k < texts_.size(); ++k) {
    if (texts_[k].size() > UINT32_MAX) fail("span index: text {} is over 4 GB", k);
    for_each_window_hash(texts_[k], width_, [&](size_t off, uint64_t h) {
      entries_.push_back({h, (uint32_t)k, (uint32_t)off});
    });
  }
  // One entry per hash: equal hashes are (barring a 64-bit collision) equal windows, and
  // any one of them confirms a hit.
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return a.hash != b.hash ? a.hash < b.hash
                            : a.text != b.text ? a.text < b.text : a.offset < b.offset;
  });
  entries_.erase(std::unique(entries_.begin(), entries_.end(),
                             [](const Entry& a, const Entry& b) { return a.hash == b.hash; }),
                 entries_.end());
  entries_.shrink_to_fit();
}

std::optional<SpanIndex::Match> SpanIndex::first_shared(std::string_view query) const {
  std::optional<Match> found;
  if (entries_.empty()) return found;
  // Windows come left to right: the first confirmed hit is the answer.
  for_each_window_hash(query, width_, [&](size_t off, uint64_t h) {
    if (found) return;
    const auto it = std::lower_bound(entries_.begin(), entries_.end(), h,
                                     [](const Entry& e, uint64_t v) { return e.hash < v; });
    if (it == entries_.end() || it->hash != h) return;
    const std::string_view w = texts_[it->text].substr(it->offset, width_);
    if (w == query.substr(off, width_)) found = Match{off, it->text, it->offset};
  });
  return found;
}

}  // namespace glimpse::eval
