#include "common/clock.h"

#include <gtest/gtest.h>

namespace presenced {
namespace {

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(1000);
  EXPECT_EQ(clock.NowMs(), 1000);
  clock.Advance(250);
  EXPECT_EQ(clock.NowMs(), 1250);
  clock.Set(5);
  EXPECT_EQ(clock.NowMs(), 5);
}

TEST(SystemClockTest, ReturnsMillisecondsSinceEpoch) {
  SystemClock clock;
  // 2020-01-01 and 2100-01-01: a unit mistake (seconds, microseconds) falls outside.
  EXPECT_GT(clock.NowMs(), 1577836800000);
  EXPECT_LT(clock.NowMs(), 4102444800000);
}

TEST(SteadyClockTest, NeverGoesBackwards) {
  SteadyClock clock;
  const TimeMs first = clock.NowMs();
  EXPECT_GE(clock.NowMs(), first);
}

}  // namespace
}  // namespace presenced
