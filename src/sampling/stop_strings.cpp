#include "sampling/stop_strings.h"

#include <algorithm>
#include <utility>

namespace glimpse {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::feed(std::string_view piece) {
  if (stopped_) return {};
  held_.append(piece);
  if (stops_.empty()) return std::exchange(held_, {});

  // Earliest complete stop string. Everything before held_ was already proven unable to
  // start one, so only held_ needs searching.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }

  // Longest tail of held_ that is a proper prefix of some stop string: it must wait. No
  // earlier position can start a stop string any more (its tail is longer than every
  // possible partial match and contains no complete one), so the rest is safe.
  const std::string_view h = held_;
  size_t keep = 0;
  for (size_t len = std::min(h.size(), max_len_ - 1); len > 0 && keep == 0; --len) {
    const std::string_view tail = h.substr(h.size() - len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == tail) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace glimpse
