#include "common/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace presenced {
namespace {

// Standard layout with the entry first, so an Entry* is its Timer*.
struct Timer {
  explicit Timer(int id = 0) : id(id) {}
  TimerWheel::Entry entry;
  int id;
};

// Fires due timers and returns their ids in firing order.
std::vector<int> Fire(TimerWheel& wheel, TimeMs now) {
  std::vector<int> fired;
  wheel.Advance(now, [&](TimerWheel::Entry& e) {
    fired.push_back(reinterpret_cast<Timer*>(&e)->id);  // entry is Timer's first member
  });
  return fired;
}

TEST(TimerWheelTest, FiresAtTheFirstAdvanceAtOrAfterTheDeadline) {
  TimerWheel wheel(10, 8, 1000);
  Timer a(1);
  wheel.Schedule(a.entry, 1025);
  EXPECT_TRUE(a.entry.scheduled());
  EXPECT_TRUE(Fire(wheel, 1024).empty());
  EXPECT_EQ(Fire(wheel, 1025), std::vector<int>{1});
  EXPECT_FALSE(a.entry.scheduled());
  EXPECT_TRUE(Fire(wheel, 2000).empty());  // once
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, MovingAndCancellingAreExact) {
  TimerWheel wheel(10, 8, 0);
  Timer a(1), b(2);
  wheel.Schedule(a.entry, 50);
  wheel.Schedule(b.entry, 50);
  wheel.Schedule(a.entry, 200);  // moved later
  wheel.Cancel(b.entry);
  EXPECT_TRUE(Fire(wheel, 100).empty());
  EXPECT_EQ(wheel.size(), 1u);
  wheel.Schedule(a.entry, 120);  // moved earlier
  EXPECT_EQ(Fire(wheel, 130), std::vector<int>{1});
}

TEST(TimerWheelTest, DeadlinesBeyondOneRevolutionWaitForTheirRound) {
  TimerWheel wheel(10, 4, 0);  // one revolution is 40 ms
  Timer far(1), near(2);
  wheel.Schedule(far.entry, 95);  // same slot as 15 and 55
  wheel.Schedule(near.entry, 15);
  EXPECT_EQ(Fire(wheel, 20), std::vector<int>{2});
  EXPECT_TRUE(Fire(wheel, 60).empty());  // passed its slot twice, not yet due
  EXPECT_EQ(Fire(wheel, 100), std::vector<int>{1});
}

TEST(TimerWheelTest, AJumpOfManyRevolutionsFiresEverythingDueOnce) {
  TimerWheel wheel(10, 4, 0);
  std::vector<Timer> timers(20);
  for (int i = 0; i < 20; ++i) {
    timers[i].id = i;
    wheel.Schedule(timers[i].entry, 10 * i + 5);
  }
  auto fired = Fire(wheel, 1'000'000);
  std::sort(fired.begin(), fired.end());
  ASSERT_EQ(fired.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fired[i], i);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, APastDeadlineFiresAtTheNextAdvance) {
  TimerWheel wheel(10, 8, 0);
  EXPECT_TRUE(Fire(wheel, 500).empty());
  Timer late(1);
  wheel.Schedule(late.entry, 100);  // already past
  EXPECT_EQ(Fire(wheel, 500), std::vector<int>{1});
}

TEST(TimerWheelTest, FireMayRescheduleAndDestroyItsOwnEntry) {
  TimerWheel wheel(10, 8, 0);
  Timer again(1);
  auto* doomed = new Timer(2);
  wheel.Schedule(again.entry, 10);
  wheel.Schedule(doomed->entry, 10);
  std::vector<int> fired;
  wheel.Advance(10, [&](TimerWheel::Entry& e) {
    Timer* t = reinterpret_cast<Timer*>(&e);
    fired.push_back(t->id);
    if (t->id == 1) wheel.Schedule(t->entry, 30);  // a heartbeat re-arming itself
    if (t->id == 2) delete t;
  });
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Fire(wheel, 30), std::vector<int>{1});
}

TEST(TimerWheelTest, AnEntryDestroyedWhileScheduledLeavesTheWheel) {
  TimerWheel wheel(10, 8, 0);
  {
    Timer t(1);
    wheel.Schedule(t.entry, 50);
    EXPECT_EQ(wheel.size(), 1u);
  }
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_TRUE(Fire(wheel, 100).empty());
}

TEST(TimerWheelTest, ManyEntriesEachFireOnceAtTheirTime) {
  TimerWheel wheel(5, 64, 0);
  std::vector<Timer> timers(1000);
  for (int i = 0; i < 1000; ++i) {
    timers[i].id = i;
    wheel.Schedule(timers[i].entry, (i * 37) % 2000);
  }
  std::vector<int> count(1000, 0);
  for (TimeMs now = 0; now <= 2000; now += 3) {
    wheel.Advance(now, [&](TimerWheel::Entry& e) {
      Timer* t = reinterpret_cast<Timer*>(&e);
      ++count[t->id];
      EXPECT_LE((t->id * 37) % 2000, now);
      EXPECT_GT((t->id * 37) % 2000 + 3, now);  // within the Advance step after its deadline
    });
  }
  for (int c : count) EXPECT_EQ(c, 1);
}

}  // namespace
}  // namespace presenced
