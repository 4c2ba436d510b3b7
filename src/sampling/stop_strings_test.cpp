#include "sampling/stop_strings.h"

#include <gtest/gtest.h>

namespace glimpse {
namespace {

// Feeds the pieces in order and returns what was emitted (flushing if nothing stopped).
std::string run(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) {
    out += m.feed(p);
    if (m.stopped()) return out;
  }
  return out + m.flush();
}

TEST(SamplingStopMatcher, NoStopsPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.feed("abc"), "abc");
  EXPECT_EQ(m.feed("<"), "<");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.flush(), "");
}

TEST(SamplingStopMatcher, StopSplitAcrossPieces) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.feed("Hello <"), "Hello ");
  EXPECT_EQ(m.pending(), "<");
  EXPECT_EQ(m.feed("/"), "");
  EXPECT_EQ(m.feed("s"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.feed(">tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.feed("more"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(SamplingStopMatcher, FalseStartIsReleased) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.feed("a </"), "a ");
  EXPECT_EQ(m.feed("b"), "</b");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.feed("</"), "");
  EXPECT_EQ(m.flush(), "</");  // end of stream: the held tail was ordinary text
}

TEST(SamplingStopMatcher, StopInsideOnePiece) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.feed("abc STOP def"), "abc ");
  EXPECT_TRUE(m.stopped());
}

TEST(SamplingStopMatcher, SelfOverlappingStop) {
  // "aab" after "aaa": the first 'a' can no longer start the stop, the last two still can.
  StopMatcher m({"aab"});
  EXPECT_EQ(m.feed("a"), "");
  EXPECT_EQ(m.feed("a"), "");
  EXPECT_EQ(m.feed("a"), "a");
  EXPECT_EQ(m.pending(), "aa");
  EXPECT_EQ(m.feed("b"), "");
  EXPECT_TRUE(m.stopped());

  StopMatcher n({"abab"});
  EXPECT_EQ(run(n, {"aba", "cab", "ab", "x"}), "abac");  // "ababab" would stop at 0
}

TEST(SamplingStopMatcher, EarliestStopWins) {
  StopMatcher m({"world", "lo w"});
  EXPECT_EQ(run(m, {"hel", "lo", " wor", "ld"}), "hel");
  StopMatcher n({"xyz", "b"});
  EXPECT_EQ(run(n, {"ax", "y", "b"}), "axy");  // "b" completes first, while "xy" is held
}

TEST(SamplingStopMatcher, PartialOverlapBetweenStops) {
  // "ab" is a prefix of one stop and a suffix-start of another.
  StopMatcher m({"abc", "bd"});
  EXPECT_EQ(m.feed("xab"), "x");
  EXPECT_EQ(m.feed("d"), "a");
  EXPECT_TRUE(m.stopped());
}

TEST(SamplingStopMatcher, ByteAtATimeMatchesWholeText) {
  const std::vector<std::string> stops = {"\nUser:", "###", "<|im_end|>"};
  const std::string text = "Sure.\nUse # or ## freely.\nUser! no\n<|im_en d|> ok ### rest";
  StopMatcher whole(stops);
  const std::string expected = run(whole, {text});
  EXPECT_EQ(expected, "Sure.\nUse # or ## freely.\nUser! no\n<|im_en d|> ok ");
  for (size_t chunk = 1; chunk <= 7; ++chunk) {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size(); i += chunk) pieces.push_back(text.substr(i, chunk));
    StopMatcher m(stops);
    EXPECT_EQ(run(m, pieces), expected) << "chunk " << chunk;
  }
}

TEST(SamplingStopMatcher, FlushWithoutStopAndEmptyStopsIgnored) {
  StopMatcher m({"", "end"});
  EXPECT_EQ(m.feed("the en"), "the ");
  EXPECT_EQ(m.flush(), "en");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.feed(""), "");
}

}  // namespace
}  // namespace glimpse
