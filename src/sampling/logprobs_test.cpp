#include "sampling/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/error.h"

namespace glimpse {
namespace {

TEST(Logprobs, LogSoftmaxOfTheRawLogits) {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  double z = 0;
  for (float l : logits) z += std::exp((double)l);
  const LogprobsAt a = logprobs_at(logits.data(), 5, 4, 3);
  EXPECT_NEAR(a.chosen, 0.5 - std::log(z), 1e-6);
  ASSERT_EQ(a.top.size(), 3u);
  EXPECT_EQ(a.top[0].first, 1);  // the tie between 1 and 3 goes to the lower id
  EXPECT_EQ(a.top[1].first, 3);
  EXPECT_EQ(a.top[2].first, 0);
  EXPECT_NEAR(a.top[0].second, 3.0 - std::log(z), 1e-6);
  double total = 0;
  for (int i = 0; i < 5; ++i) total += std::exp(logprobs_at(logits.data(), 5, i, 0).chosen);
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_TRUE(logprobs_at(logits.data(), 5, 2, 0).top.empty());
  EXPECT_EQ(logprobs_at(logits.data(), 5, 2, 99).top.size(), 5u);
  // Large logits do not overflow.
  const std::vector<float> big = {1000.0f, 999.0f};
  EXPECT_NEAR(logprobs_at(big.data(), 2, 1, 1).chosen, -1.0 - std::log1p(std::exp(-1.0)), 1e-5);
  EXPECT_THROW(logprobs_at(logits.data(), 5, 5, 1), Error);
}

}  // namespace
}  // namespace glimpse
