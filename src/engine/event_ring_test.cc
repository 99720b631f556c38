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

}  // namespace
}  // namespace presenced::engine
