#include "engine/timer_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace presenced::engine {
namespace {

TEST(TimerQueueTest, FiresInDeadlineOrderOnlyWhenDue) {
  TimerQueue q;
  int a = 0, b = 0, c = 0;
  q.Add(300, 1, &a);
  q.Add(100, 2, &b);
  q.Add(200, 3, &c);
  EXPECT_EQ(q.NextDeadline(), 100);
  EXPECT_FALSE(q.PopDue(99).has_value());
  auto first = q.PopDue(250);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->target, &b);
  EXPECT_EQ(first->kind, 2);
  EXPECT_EQ(first->deadline, 100);
  EXPECT_EQ(q.PopDue(250)->target, &c);
  EXPECT_FALSE(q.PopDue(250).has_value());
  EXPECT_EQ(q.PopDue(300)->target, &a);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.NextDeadline().has_value());
}

TEST(TimerQueueTest, EqualDeadlinesFireInTheOrderTheyWereSet) {
  TimerQueue q;
  int t[4];
  for (int& x : t) q.Add(50, 0, &x);
  for (int& x : t) EXPECT_EQ(q.PopDue(50)->target, &x);
}

TEST(TimerQueueTest, MoveAndCancel) {
  TimerQueue q;
  int a = 0, b = 0;
  auto ia = q.Add(100, 0, &a);
  auto ib = q.Add(200, 0, &b);
  q.Move(ia, 300);
  EXPECT_EQ(q.Deadline(ia), 300);
  EXPECT_EQ(q.PopDue(1000)->target, &b);
  q.Move(ia, 10);
  q.Cancel(ia);
  EXPECT_FALSE(q.PopDue(1000).has_value());
  (void)ib;
}

TEST(TimerQueueTest, MatchesASortedReferenceUnderRandomOperations) {
  std::mt19937 rng(7);
  TimerQueue q;
  // Reference: id -> deadline; equal deadlines are broken by the order of the last set.
  std::map<TimerQueue::TimerId, std::pair<TimeMs, uint64_t>> ref;
  uint64_t seq = 0;
  TimeMs now = 0;
  for (int step = 0; step < 20000; ++step) {
    int op = rng() % 10;
    if (op < 4) {
      TimeMs d = now + rng() % 500;
      auto id = q.Add(d, 0, nullptr);
      ASSERT_EQ(ref.count(id), 0u);
      ref[id] = {d, seq++};
    } else if (op < 6 && !ref.empty()) {
      auto it = std::next(ref.begin(), rng() % ref.size());
      TimeMs d = now + rng() % 500;
      q.Move(it->first, d);
      it->second = {d, seq++};
    } else if (op < 7 && !ref.empty()) {
      auto it = std::next(ref.begin(), rng() % ref.size());
      q.Cancel(it->first);
      ref.erase(it);
    } else {
      now += rng() % 50;
      while (auto due = q.PopDue(now)) {
        auto best = std::min_element(ref.begin(), ref.end(),
                                     [](auto& x, auto& y) { return x.second < y.second; });
        ASSERT_EQ(due->id, best->first);
        ASSERT_LE(due->deadline, now);
        ref.erase(best);
      }
      for (auto& [id, d] : ref) ASSERT_GT(d.first, now);
    }
    ASSERT_EQ(q.size(), ref.size());
  }
}

}  // namespace
}  // namespace presenced::engine
