#include "eval/runner.h"

#include <gtest/gtest.h>

namespace glimpse::eval {
namespace {

TEST(EvalRunner, TokenF1CountsSharedWords) {
  EXPECT_DOUBLE_EQ(token_f1("the cat sat", "the cat sat"), 1.0);
  EXPECT_DOUBLE_EQ(token_f1("", ""), 1.0);
  EXPECT_DOUBLE_EQ(token_f1("dog", ""), 0.0);
  EXPECT_DOUBLE_EQ(token_f1("a b", "c d"), 0.0);
  // 2 shared of 3 predicted and 4 reference words: P = 2/3, R = 1/2, F1 = 4/7.
  EXPECT_NEAR(token_f1("The cat ran", "the cat sat down"), 4.0 / 7.0, 1e-12);
  // Repeated words count once per occurrence in the reference.
  EXPECT_NEAR(token_f1("cat cat cat", "cat"), 0.5, 1e-12);
  // Case and whitespace do not matter; word order does not either.
  EXPECT_DOUBLE_EQ(token_f1("Sat  THE\ncat", "the cat sat"), 1.0);
  // Punctuation stays part of a word: "cat." is not "cat". P = 1/2, R = 1/2.
  EXPECT_NEAR(token_f1("the cat.", "the cat"), 0.5, 1e-12);
  // Symmetric in its arguments: P and R swap.
  EXPECT_NEAR(token_f1("the cat sat down", "The cat ran"), 4.0 / 7.0, 1e-12);
}

}  // namespace
}  // namespace glimpse::eval
