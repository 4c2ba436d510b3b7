// Stop-string matching over streamed text. Generated text arrives piece by piece (one
// detokenised token at a time) and a stop string may straddle pieces, so the matcher holds
// back any tail that could still grow into a stop string and releases it once it cannot.
//
//   StopMatcher m({"</s>", "\nUser:"});
//   for (piece : pieces) { print(m.feed(piece)); if (m.stopped()) break; }
//   if (!m.stopped()) print(m.flush());
//
// When several stop strings occur, the earliest one in the text wins; everything before it
// is emitted and everything from it on is dropped. Empty stop strings are ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace glimpse {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Adds a piece; returns the text that can be emitted now. After a stop string has been
  // seen it returns the text before it once, and "" for every later call.
  std::string feed(std::string_view piece);
  bool stopped() const { return stopped_; }
  // End of stream: returns whatever is still held back ("" once stopped).
  std::string flush();
  // Bytes currently held back (a possible start of a stop string).
  const std::string& pending() const { return held_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace glimpse
