#include "engine/event_ring.h"

#include <gtest/gtest.h>

#include <vector>

namespace presenced::engine {
namespace {

EventRecord Rec(int n) {
  EventRecord r;
  r.timestamp = n;
  return r;
}

std::vector<std::pair<uint64_t, TimeMs>> After(const EventRing& ring, uint64_t since) {
  std::vector<std::pair<uint64_t, TimeMs>> out;
  ring.ForEachAfter(since,
                    [&](uint64_t s, const EventRecord& r) { out.emplace_back(s, r.timestamp); });
  return out;
}

TEST(EventRingTest, StartsAfterTheGivenSerial) {
  EventRing ring(8, 41);
  EXPECT_EQ(ring.last_serial(), 41u);
  EXPECT_TRUE(ring.Covers(41));
  EXPECT_FALSE(ring.Covers(40));
  EXPECT_FALSE(ring.Covers(42));
  ring.Push(Rec(1));
  EXPECT_EQ(ring.last_serial(), 42u);
  EXPECT_EQ(After(ring, 41), (std::vector<std::pair<uint64_t, TimeMs>>{{42, 1}}));
}

TEST(EventRingTest, DropsTheOldestWhenFull) {
  EventRing ring(3, 0);
  for (int i = 1; i <= 5; ++i) ring.Push(Rec(i));
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.last_serial(), 5u);
  EXPECT_FALSE(ring.Covers(1));
  EXPECT_TRUE(ring.Covers(2));
  EXPECT_EQ(After(ring, 2), (std::vector<std::pair<uint64_t, TimeMs>>{{3, 3}, {4, 4}, {5, 5}}));
  EXPECT_TRUE(After(ring, 5).empty());
}

TEST(EventRingTest, KeepsOrderAcrossGrowthAndWraparound) {
  EventRing ring(10, 0);
  for (int i = 1; i <= 37; ++i) {
    ring.Push(Rec(i));
    const uint64_t oldest = ring.last_serial() - ring.size();
    auto events = After(ring, oldest);
    ASSERT_EQ(events.size(), ring.size());
    for (size_t k = 0; k < events.size(); ++k) {
      EXPECT_EQ(events[k].first, oldest + 1 + k);
      EXPECT_EQ(events[k].second, static_cast<TimeMs>(oldest + 1 + k));
    }
  }
}

// An event whose data is `n` bytes of serialized JSON (a string).
EventRecord Sized(size_t n, TimeMs t = 0) {
  EventRecord r;
  r.data = JsonText::FromSerialized("\"" + std::string(n - 2, 'x') + "\"");
  r.timestamp = t;
  return r;
}

size_t Cost(size_t n) { return sizeof(EventRecord) + n; }

TEST(RetainedBudgetTest, CountsEveryHeldEventAndReturnsToZeroWhenRingsGo) {
  RetainedBudget budget(0);  // no cap
  {
    EventRing a(3, 0, &budget);
    EventRing b(10, 0, &budget);
    EXPECT_EQ(budget.rings(), 0u);
    a.Push(Sized(100));
    a.Push(Sized(200));
    b.Push(Sized(50));
    EXPECT_EQ(budget.bytes(), Cost(100) + Cost(200) + Cost(50));
    EXPECT_EQ(a.bytes(), Cost(100) + Cost(200));
    EXPECT_EQ(budget.rings(), 2u);
    // A full ring drops its oldest: the budget follows.
    a.Push(Sized(10));
    a.Push(Sized(20));
    EXPECT_EQ(a.bytes(), Cost(200) + Cost(10) + Cost(20));
    EXPECT_EQ(budget.bytes(), a.bytes() + b.bytes());
    b.DropOldest();
    EXPECT_EQ(budget.bytes(), a.bytes());
    EXPECT_EQ(budget.rings(), 1u);
  }
  EXPECT_EQ(budget.bytes(), 0u);
  EXPECT_EQ(budget.rings(), 0u);
  EXPECT_EQ(budget.Largest(), nullptr);
}

TEST(RetainedBudgetTest, TheLargestRingIsFoundWhateverTheOrder) {
  RetainedBudget budget(0);
  EventRing small(100, 0, &budget);
  EventRing large(100, 0, &budget);
  EventRing medium(100, 0, &budget);
  small.Push(Sized(100));
  large.Push(Sized(8000));
  medium.Push(Sized(1000));
  EXPECT_EQ(budget.Largest(), &large);
  for (int i = 0; i < 20; ++i) medium.Push(Sized(1000));
  EXPECT_EQ(budget.Largest(), &medium);
}

TEST(RetainedBudgetTest, OverTheBudgetTheLargestRingLosesItsOldestEventsFirst) {
  const size_t max = 10 * Cost(1000);
  RetainedBudget budget(max);
  EventRing small(100, 0, &budget);
  EventRing large(100, 0, &budget);
  for (int i = 1; i <= 3; ++i) small.Push(Sized(100, i));
  for (int i = 1; i <= 30; ++i) {
    large.Push(Sized(1000, i));
    EXPECT_LE(budget.bytes(), max);
  }
  EXPECT_EQ(small.size(), 3u);  // untouched: the large ring paid for the excess
  EXPECT_TRUE(small.Covers(0));
  EXPECT_EQ(large.last_serial(), 30u);
  EXPECT_LT(large.size(), 10u);
  // What is left is the newest, in order; the dropped ones are no longer covered.
  const uint64_t oldest_kept = large.last_serial() - large.size() + 1;
  EXPECT_FALSE(large.Covers(oldest_kept - 2));
  EXPECT_TRUE(large.Covers(oldest_kept - 1));
  auto kept = After(large, oldest_kept - 1);
  ASSERT_EQ(kept.size(), large.size());
  EXPECT_EQ(kept.back(), (std::pair<uint64_t, TimeMs>{30, 30}));
  EXPECT_EQ(budget.bytes(), small.bytes() + large.bytes());
}

TEST(RetainedBudgetTest, AnEventLargerThanTheBudgetEmptiesItsRingButKeepsTheSerial) {
  RetainedBudget budget(Cost(100));
  EventRing ring(10, 5, &budget);
  ring.Push(Sized(50));
  ring.Push(Sized(5000));
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.last_serial(), 7u);
  EXPECT_TRUE(ring.Covers(7));  // nothing after 7 is lost
  EXPECT_FALSE(ring.Covers(6));
  EXPECT_EQ(budget.bytes(), 0u);
  ring.Push(Sized(10));
  EXPECT_EQ(After(ring, 7).size(), 1u);
}

TEST(EventRingTest, KeepsOrderWhenTrimmedAndRegrown) {
  EventRing ring(64, 0);
  for (int i = 1; i <= 64; ++i) ring.Push(Rec(i));
  for (int i = 0; i < 60; ++i) ring.DropOldest();  // shrinks its buffer on the way
  for (int i = 65; i <= 100; ++i) ring.Push(Rec(i));
  ASSERT_EQ(ring.size(), 40u);
  auto events = After(ring, 60);
  ASSERT_EQ(events.size(), 40u);
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k], (std::pair<uint64_t, TimeMs>{61 + k, static_cast<TimeMs>(61 + k)}));
  }
}

}  // namespace
}  // namespace presenced::engine
