// Channel presence and connection lifecycle.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include "engine/engine_test_util.h"

namespace presenced::engine {
namespace {

using ::testing::Test;

class ChannelTest : public EngineTest {};

TEST_F(ChannelTest, EnterEmitsAnEnterEventWithSerialOne) {
  auto a = Connect("alice");
  auto r = engine_.Enter(a, "room", J(R"({"x":1})"), std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->client_id, "alice");
  EXPECT_EQ(r->data.text(), R"({"x":1})");
  EXPECT_EQ(r->timestamp, kStart);
  EXPECT_EQ(r->expires_at, kNoExpiry);
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].serial, 1u);
  EXPECT_EQ(events[0].action, Action::kEnter);
  EXPECT_EQ(events[0].reason, LeaveReason::kNone);
  EXPECT_EQ(events[0].data, R"({"x":1})");
}

TEST_F(ChannelTest, EnterWithoutDataIsNull) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  EXPECT_EQ(engine_.Get("room").members[0].data.text(), "null");
}

TEST_F(ChannelTest, EnteringAgainIsOneUpdateNeverLeavePlusEnter) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "room", J("1"), 5000).ok());
  clock_.Advance(10);
  auto r = engine_.Enter(a, "room", std::nullopt, std::nullopt);  // data kept, expiry cleared
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data.text(), "1");
  EXPECT_EQ(r->expires_at, kNoExpiry);
  ASSERT_TRUE(engine_.Enter(a, "room", J("2"), 100).ok());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].action, Action::kUpdate);
  EXPECT_EQ(events[1].data, "1");
  EXPECT_EQ(events[1].timestamp, kStart + 10);
  EXPECT_EQ(events[2].action, Action::kUpdate);
  EXPECT_EQ(events[2].data, "2");
  EXPECT_EQ(events[2].expires_at, kStart + 10 + 100);
  EXPECT_EQ(engine_.GetOccupancy("room").members, 1u);
}

TEST_F(ChannelTest, UpdateReplacesOrMergesData) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "room", J(R"({"a":1,"b":2})"), std::nullopt).ok());
  auto merged = engine_.Update(a, "room", J(R"({"b":3,"c":4})"), true, std::nullopt);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->data.text(), R"({"a":1,"b":3,"c":4})");
  auto replaced = engine_.Update(a, "room", J(R"({"z":0})"), false, std::nullopt);
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->data.text(), R"({"z":0})");
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].action, Action::kUpdate);
  EXPECT_EQ(events[1].data, R"({"a":1,"b":3,"c":4})");
}

TEST_F(ChannelTest, UpdateAndLeaveRequirePresence) {
  auto a = Connect("alice");
  auto u = engine_.Update(a, "room", J("1"), false, std::nullopt);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, ErrorCode::kNotPresent);
  Status l = engine_.Leave(a, "room", std::nullopt);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, ErrorCode::kNotPresent);
  EXPECT_TRUE(sink_.events.empty());
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, LeaveCarriesReasonAndOptionalData) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(a, "room", J(R"("hi")"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", J(R"("yo")"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Leave(a, "room", std::nullopt).ok());
  ASSERT_TRUE(engine_.Leave(b, "room", J(R"({"reason":"bye"})")).ok());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].action, Action::kLeave);
  EXPECT_EQ(events[2].reason, LeaveReason::kLeft);
  EXPECT_EQ(events[2].data, R"("hi")");
  EXPECT_EQ(events[3].data, R"({"reason":"bye"})");
  EXPECT_TRUE(engine_.Get("room").members.empty());
}

TEST_F(ChannelTest, EachConnectionOfAUserIsItsOwnMember) {
  auto laptop = Connect("alice", "laptop");
  std::string laptop_id = last_connection_id_;
  auto phone = Connect("alice", "phone");
  std::string phone_id = last_connection_id_;
  auto bob = Connect("bob");
  ASSERT_TRUE(engine_.Enter(laptop, "room", J("1"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(phone, "room", J("2"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(bob, "room", J("3"), std::nullopt).ok());
  Occupancy o = engine_.GetOccupancy("room");
  EXPECT_EQ(o.members, 3u);
  EXPECT_EQ(o.clients, 2u);

  EXPECT_EQ(
      engine_.Get("room", {.client_id = "alice", .connection_id = std::nullopt}).members.size(),
      2u);
  auto only_phone = engine_.Get("room", {.client_id = "alice", .connection_id = phone_id});
  ASSERT_EQ(only_phone.members.size(), 1u);
  EXPECT_EQ(only_phone.members[0].data.text(), "2");
  EXPECT_TRUE(engine_.Get("room", {.client_id = "bob", .connection_id = phone_id}).members.empty());

  // One device leaving keeps the user present through the other.
  ASSERT_TRUE(engine_.Close(laptop).ok());
  o = engine_.GetOccupancy("room");
  EXPECT_EQ(o.members, 2u);
  EXPECT_EQ(o.clients, 2u);
  ASSERT_TRUE(engine_.Leave(phone, "room", std::nullopt).ok());
  o = engine_.GetOccupancy("room");
  EXPECT_EQ(o.members, 1u);
  EXPECT_EQ(o.clients, 1u);
  (void)laptop_id;
}

TEST_F(ChannelTest, SerialsAreGaplessAndContinueAboveAfterTheChannelIsFreed) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(engine_.Enter(a, "room", J(std::to_string(i)), std::nullopt).ok());
    ASSERT_TRUE(engine_.Enter(b, "other", std::nullopt, std::nullopt).ok());
  }
  ASSERT_TRUE(engine_.Leave(a, "room", std::nullopt).ok());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 6u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].serial, i + 1);
  EXPECT_EQ(engine_.channel_count(), 1u);  // "room" is freed

  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  events = EventsOf("room");
  EXPECT_GT(events.back().serial, 6u);
  EXPECT_EQ(engine_.Get("room").serial, events.back().serial);
}

TEST_F(ChannelTest, ChannelIsKeptWhileSubscribedAndFreedAfter) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Subscribe(a, "room", kAllActions, std::nullopt).ok());
  EXPECT_EQ(engine_.channel_count(), 1u);
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Leave(a, "room", std::nullopt).ok());
  EXPECT_EQ(engine_.channel_count(), 1u);
  ASSERT_TRUE(engine_.Unsubscribe(a, "room").ok());
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, GetOfAnUnknownChannelCreatesNothing) {
  auto s = engine_.Get("nowhere");
  EXPECT_TRUE(s.members.empty());
  EXPECT_EQ(engine_.GetOccupancy("nowhere").members, 0u);
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, CleanCloseLeavesAtOnceWithReasonDisconnected) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "one", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(a, "two", std::nullopt, 1000).ok());
  ASSERT_TRUE(engine_.Close(a).ok());
  ASSERT_EQ(sink_.events.size(), 4u);
  EXPECT_EQ(sink_.events[2].channel, "one");
  EXPECT_EQ(sink_.events[2].reason, LeaveReason::kDisconnected);
  EXPECT_EQ(sink_.events[3].channel, "two");
  EXPECT_EQ(sink_.events[3].reason, LeaveReason::kDisconnected);
  EXPECT_EQ(sink_.events[3].expires_at, kStart + 1000);
  EXPECT_EQ(engine_.channel_count(), 0u);
  EXPECT_EQ(engine_.connection_count(), 0u);
  EXPECT_EQ(engine_.member_count(), 0u);
  // The handle is dead, and stays dead even when its slot is reused.
  EXPECT_EQ(engine_.Enter(a, "one", std::nullopt, std::nullopt).error().code, ErrorCode::kNotFound);
  Connect("bob");
  EXPECT_EQ(engine_.Touch(a).error().code, ErrorCode::kNotFound);
}

TEST_F(ChannelTest, AbruptDropKeepsMembersForTheGracePeriodThenTimesOut) {
  auto a = Connect("alice", "web", /*remain=*/2000);
  ASSERT_TRUE(engine_.Enter(a, "room", J("1"), std::nullopt).ok());
  clock_.Advance(100);
  ASSERT_TRUE(engine_.Drop(a).ok());
  const TimeMs dropped = clock_.NowMs();
  Advance(1999);
  EXPECT_EQ(engine_.Get("room").members.size(), 1u);
  EXPECT_EQ(EventsOf("room").size(), 1u);
  clock_.Advance(1);
  // Gone the moment its leave is due, even before anyone calls Tick.
  EXPECT_TRUE(engine_.Get("room").members.empty());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].reason, LeaveReason::kTimeout);
  EXPECT_EQ(events[1].timestamp, dropped + 2000);
  EXPECT_EQ(sink_.expired, std::vector<ConnectionHandle>{a});
  EXPECT_EQ(engine_.connection_count(), 0u);
}

TEST_F(ChannelTest, ADropDatedBackCountsItsGraceFromThen) {
  auto a = Connect("alice", "web", /*remain=*/2000);
  auto b = Connect("bob", "web", /*remain=*/2000);
  ASSERT_TRUE(engine_.Enter(a, "room", J("1"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", J("2"), std::nullopt).ok());
  const TimeMs lease_end = clock_.NowMs();
  clock_.Advance(1500);  // the drop is learned 1.5 s after it happened
  ASSERT_TRUE(engine_.DropAt(a, lease_end).ok());
  Advance(499);
  EXPECT_EQ(engine_.Get("room").members.size(), 2u);
  clock_.Advance(1);
  EXPECT_EQ(engine_.Get("room").members.size(), 1u);
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].reason, LeaveReason::kTimeout);
  EXPECT_EQ(events[2].timestamp, lease_end + 2000);
  // A grace period that ended before the drop was learned: the leave is at once.
  clock_.Advance(5000);
  ASSERT_TRUE(engine_.DropAt(b, lease_end).ok());
  EXPECT_TRUE(engine_.Get("room").members.empty());
  // A date in the future is now.
  auto c = Connect("cy", "web", /*remain=*/100);
  ASSERT_TRUE(engine_.DropAt(c, clock_.NowMs() + 1000000).ok());
  Advance(100);
  EXPECT_EQ(engine_.connection_count(), 0u);
}

TEST_F(ChannelTest, DropWithZeroGraceLeavesAtOnce) {
  auto a = Connect("alice", "web", /*remain=*/0);
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(a).ok());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].reason, LeaveReason::kTimeout);
  EXPECT_EQ(engine_.connection_count(), 0u);
  EXPECT_EQ(sink_.expired, std::vector<ConnectionHandle>{a});
}

TEST_F(ChannelTest, EngineTimeNeverRunsBackwards) {
  auto a = Connect("alice");
  clock_.Advance(100);
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  clock_.Advance(-50);  // the wall clock is stepped back
  ASSERT_TRUE(engine_.Update(a, "room", J("1"), false, std::nullopt).ok());
  EXPECT_EQ(sink_.events.back().timestamp, kStart + 100);
}

TEST_F(ChannelTest, ResumeWithinGraceEmitsNothingAndDeliversWhatWasMissed) {
  auto a = Connect("alice");
  std::string key = last_key_;
  std::string id = last_connection_id_;
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(a, "room", J("1"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Subscribe(a, "room", ActionBit(Action::kEnter), std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(a).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", J("2"), std::nullopt).ok());  // a is not a recipient
  EXPECT_TRUE(sink_.events.back().recipients.empty());
  ASSERT_TRUE(engine_.Update(b, "room", J("3"), false, std::nullopt).ok());
  const size_t before = sink_.events.size();
  Advance(1500);

  auto r = engine_.Resume(key, "alice", 2000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->connection.handle, a);
  EXPECT_EQ(r->connection.connection_id, id);
  EXPECT_NE(r->connection.connection_key, key);
  EXPECT_FALSE(r->was_live);
  EXPECT_EQ(sink_.events.size(), before);  // no leave, no enter
  ASSERT_EQ(r->catch_up.size(), 1u);
  EXPECT_FALSE(r->catch_up[0].snapshot);
  ASSERT_EQ(r->catch_up[0].events.size(), 1u);  // the update is filtered out
  EXPECT_EQ(r->catch_up[0].events[0].member.client_id, "bob");
  EXPECT_EQ(r->catch_up[0].events[0].serial, 2u);
  EXPECT_EQ(r->catch_up[0].serial, 3u);

  // Well past the old grace period: still present, and live again.
  Advance(10000);
  EXPECT_EQ(engine_.GetOccupancy("room").members, 2u);
  ASSERT_TRUE(engine_.Enter(b, "room", J("4"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Leave(b, "room", std::nullopt).ok());
  EXPECT_EQ(sink_.events.back().recipients.size(), 0u);  // filter: enter only
  ASSERT_TRUE(engine_.Enter(b, "room", J("5"), std::nullopt).ok());
  EXPECT_EQ(sink_.events.back().recipients, std::vector<ConnectionHandle>{a});
}

TEST_F(ChannelTest, ResumeKeysWorkOnceAndOnlyForTheirClient) {
  auto a = Connect("alice");
  std::string key = last_key_;
  ASSERT_TRUE(engine_.Drop(a).ok());
  EXPECT_EQ(engine_.Resume(key, "mallory", 1000).error().code, ErrorCode::kNotFound);
  auto first = engine_.Resume(key, "alice", 1000);
  ASSERT_TRUE(first.ok());
  std::string next = std::string(first->connection.connection_key);
  EXPECT_EQ(engine_.Resume(key, "alice", 1000).error().code, ErrorCode::kNotFound);
  // A resume while the connection still looks alive: the caller must close the old socket.
  auto again = engine_.Resume(next, "alice", 1000);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->was_live);
  EXPECT_TRUE(again->catch_up.empty());
}

TEST_F(ChannelTest, ResumeAfterTheGracePeriodFails) {
  auto a = Connect("alice", "web", 500);
  std::string key = last_key_;
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(a).ok());
  Advance(500);
  EXPECT_EQ(engine_.Resume(key, "alice", 500).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(EventsOf("room").back().reason, LeaveReason::kTimeout);
}

class SmallRingTest : public EngineTest {
 protected:
  static EngineConfig Config() {
    EngineConfig c = DefaultConfig();
    c.event_ring_capacity = 3;
    return c;
  }
  SmallRingTest() : EngineTest(Config()) {}
};

TEST_F(SmallRingTest, ResumeGetsASnapshotWhenTheRingNoLongerHoldsWhatWasMissed) {
  auto a = Connect("alice");
  std::string key = last_key_;
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Subscribe(a, "room", kAllActions, std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(a).ok());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(engine_.Enter(b, "room", J(std::to_string(i)), std::nullopt).ok());
  }
  auto r = engine_.Resume(key, "alice", 2000);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->catch_up.size(), 1u);
  EXPECT_TRUE(r->catch_up[0].snapshot);
  ASSERT_EQ(r->catch_up[0].members.size(), 1u);
  EXPECT_EQ(r->catch_up[0].members[0].data.text(), "3");
  EXPECT_EQ(r->catch_up[0].serial, 4u);
}

TEST_F(SmallRingTest, SubscribeSinceReturnsEventsOrResyncs) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(b, "room", J("1"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Update(b, "room", J("2"), false, std::nullopt).ok());
  ASSERT_TRUE(engine_.Update(b, "room", J("3"), false, std::nullopt).ok());

  auto covered = engine_.Subscribe(a, "room", kAllActions, 1);
  ASSERT_TRUE(covered.ok());
  EXPECT_TRUE(covered->has_events);
  EXPECT_FALSE(covered->resynced);
  EXPECT_TRUE(covered->members.empty());
  ASSERT_EQ(covered->events.size(), 2u);
  EXPECT_EQ(covered->events[0].serial, 2u);
  EXPECT_EQ(covered->events[1].member.data.text(), "3");
  EXPECT_EQ(covered->serial, 3u);

  // Subscribing again is idempotent and returns only what it asks for.
  auto none = engine_.Subscribe(a, "room", ActionBit(Action::kLeave), 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->has_events);
  EXPECT_TRUE(none->events.empty());  // the held events are updates: filtered out

  ASSERT_TRUE(engine_.Update(b, "room", J("4"), false, std::nullopt).ok());
  EXPECT_TRUE(sink_.events.back().recipients.empty());       // a's filter is now leave only
  auto gone = engine_.Subscribe(a, "room", kAllActions, 0);  // serial 1 fell out of the ring
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_events);
  EXPECT_TRUE(gone->resynced);
  ASSERT_EQ(gone->members.size(), 1u);
  EXPECT_EQ(gone->serial, 4u);

  auto future = engine_.Subscribe(a, "room", kAllActions, 99);
  ASSERT_TRUE(future.ok());
  EXPECT_TRUE(future->resynced);
}

// The global byte budget of all event rings (max_retained_event_bytes).
class RetainedEventsTest : public EngineTest {
 protected:
  static constexpr size_t kBudget = 64 * 1024;
  static EngineConfig Config() {
    EngineConfig c = DefaultConfig();
    c.max_retained_event_bytes = kBudget;
    return c;
  }
  RetainedEventsTest() : EngineTest(Config()) {}

  // Serialized JSON of `n` bytes (a string).
  static JsonText Data(size_t n, char fill = 'x') {
    return J("\"" + std::string(n - 2, fill) + "\"");
  }
};

TEST_F(RetainedEventsTest, AllRingsTogetherStayWithinTheBudget) {
  // One connection may be in 200 channels with 1,000 events of 16 KB each: unbounded, that was
  // 669 MB of RSS. Bounded, the rings never hold more than the budget together.
  auto a = Connect("alice");
  for (int ch = 0; ch < 20; ++ch) {
    const std::string name = "room-" + std::to_string(ch);
    ASSERT_TRUE(engine_.Enter(a, name, Data(1000), std::nullopt).ok());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(engine_.Update(a, name, Data(1000 + i), false, std::nullopt).ok());
      ASSERT_LE(engine_.retained_event_bytes(), kBudget);
    }
  }
  EXPECT_GT(engine_.retained_event_bytes(), kBudget / 2);  // it is used, not merely emptied
}

TEST_F(RetainedEventsTest, TheLargestRingIsTrimmedFirstAndSinceBeforeItGetsASnapshot) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  auto watcher = Connect("carol");
  ASSERT_TRUE(engine_.Enter(a, "quiet", J("1"), std::nullopt).ok());
  ASSERT_TRUE(engine_.Update(a, "quiet", J("2"), false, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "busy", Data(4000), std::nullopt).ok());
  for (int i = 0; i < 40; ++i) {  // 160 KB of updates into a 64 KiB budget
    ASSERT_TRUE(
        engine_.Update(b, "busy", Data(4000, static_cast<char>('a' + i % 26)), false, std::nullopt)
            .ok());
  }
  EXPECT_LE(engine_.retained_event_bytes(), kBudget);

  // The small ring kept everything: `since` is answered with events.
  auto quiet = engine_.Subscribe(watcher, "quiet", kAllActions, 0);
  ASSERT_TRUE(quiet.ok());
  EXPECT_TRUE(quiet->has_events);
  EXPECT_FALSE(quiet->resynced);
  EXPECT_EQ(quiet->events.size(), 2u);

  // The large one lost its oldest events: `since` before what it holds gets a fresh snapshot.
  const uint64_t first = sink_.events.front().serial;  // quiet's enter; busy's follow
  const uint64_t busy_enter = EventsOf("busy").front().serial;
  EXPECT_GT(busy_enter, first);
  auto busy = engine_.Subscribe(watcher, "busy", kAllActions, busy_enter - 1);
  ASSERT_TRUE(busy.ok());
  EXPECT_FALSE(busy->has_events);
  EXPECT_TRUE(busy->resynced);
  ASSERT_EQ(busy->members.size(), 1u);
  EXPECT_EQ(busy->members[0].data.text(), Data(4000, static_cast<char>('a' + 39 % 26)).text());
  EXPECT_EQ(busy->serial, EventsOf("busy").back().serial);

  // The newest events are still there for a subscriber that is only a little behind.
  auto recent = engine_.Subscribe(watcher, "busy", kAllActions, busy->serial - 2);
  ASSERT_TRUE(recent.ok());
  EXPECT_TRUE(recent->has_events);
  EXPECT_EQ(recent->events.size(), 2u);
}

TEST_F(RetainedEventsTest, AResumeThatMissedTrimmedEventsGetsASnapshot) {
  auto a = Connect("alice");
  const std::string key = last_key_;
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Subscribe(a, "busy", kAllActions, std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(a).ok());
  ASSERT_TRUE(engine_.Enter(b, "busy", Data(8000), std::nullopt).ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(engine_.Update(b, "busy", Data(8000), false, std::nullopt).ok());
  }
  auto r = engine_.Resume(key, "alice", 2000);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->catch_up.size(), 1u);
  EXPECT_TRUE(r->catch_up[0].snapshot);
  EXPECT_EQ(r->catch_up[0].members.size(), 1u);
}

TEST_F(RetainedEventsTest, ByteAccountingReturnsToZeroWhenChannelsEmpty) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  for (int ch = 0; ch < 10; ++ch) {
    const std::string name = "room-" + std::to_string(ch);
    ASSERT_TRUE(engine_.Enter(a, name, Data(3000), std::nullopt).ok());
    ASSERT_TRUE(engine_.Update(a, name, Data(3000), true, std::nullopt).ok());
    ASSERT_TRUE(engine_.Subscribe(b, name, kAllActions, std::nullopt).ok());
  }
  EXPECT_GT(engine_.retained_event_bytes(), 0u);
  for (int ch = 0; ch < 10; ++ch) {
    ASSERT_TRUE(engine_.Leave(a, "room-" + std::to_string(ch), std::nullopt).ok());
  }
  EXPECT_GT(engine_.retained_event_bytes(), 0u);  // still subscribed: the rings stay
  ASSERT_TRUE(engine_.Close(b).ok());
  EXPECT_EQ(engine_.channel_count(), 0u);
  EXPECT_EQ(engine_.retained_event_bytes(), 0u);
  // Grace periods and expiries free their channels' rings too.
  ASSERT_TRUE(engine_.Enter(a, "ttl", Data(500), 100).ok());
  auto c = Connect("carol", "web", 300);
  ASSERT_TRUE(engine_.Enter(c, "grace", Data(500), std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(c).ok());
  Advance(1000);
  EXPECT_EQ(engine_.channel_count(), 0u);
  EXPECT_EQ(engine_.retained_event_bytes(), 0u);
}

TEST_F(ChannelTest, SubscriberGetsSnapshotThenEventsInSerialOrder) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(b, "room", J("1"), std::nullopt).ok());
  auto s = engine_.Subscribe(a, "room", kAllActions, std::nullopt);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->has_events);
  EXPECT_FALSE(s->resynced);
  ASSERT_EQ(s->members.size(), 1u);
  EXPECT_EQ(s->serial, 1u);
  ASSERT_TRUE(engine_.Update(b, "room", J("2"), false, std::nullopt).ok());
  ASSERT_TRUE(engine_.Leave(b, "room", std::nullopt).ok());
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].serial, 2u);
  EXPECT_EQ(events[1].recipients, std::vector<ConnectionHandle>{a});
  EXPECT_EQ(events[2].serial, 3u);
  EXPECT_EQ(events[2].recipients, std::vector<ConnectionHandle>{a});
}

TEST_F(ChannelTest, SubscribeRejectsAnEmptyFilter) {
  auto a = Connect("alice");
  EXPECT_EQ(engine_.Subscribe(a, "room", 0, std::nullopt).error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, TtlMemberExpiresUnlessRefreshed) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(a, "room", J("1"), 1000).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", J("2"), 1000).ok());
  Advance(600);
  // Refresh a's TTL through update; b is left to expire.
  auto r = engine_.Update(a, "room", J("1"), false, 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->expires_at, kStart + 1600);
  clock_.Advance(399);
  EXPECT_EQ(engine_.Get("room").members.size(), 2u);
  clock_.Advance(1);
  auto members = engine_.Get("room").members;
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].client_id, "alice");
  auto events = EventsOf("room");
  EXPECT_EQ(events.back().reason, LeaveReason::kExpired);
  EXPECT_EQ(events.back().client_id, "bob");
  EXPECT_EQ(events.back().timestamp, kStart + 1000);
  EXPECT_EQ(events.back().expires_at, kStart + 1000);
  // An update without ttlMs keeps the expiry.
  ASSERT_TRUE(engine_.Update(a, "room", J("9"), false, std::nullopt).ok());
  Advance(600);
  EXPECT_TRUE(engine_.Get("room").members.empty());
  EXPECT_EQ(EventsOf("room").back().reason, LeaveReason::kExpired);
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, ExpiriesRunInDeadlineOrderWhateverTheTickTime) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "late", std::nullopt, 300).ok());
  ASSERT_TRUE(engine_.Enter(a, "early", std::nullopt, 100).ok());
  ASSERT_TRUE(engine_.Enter(a, "never", std::nullopt, std::nullopt).ok());
  Advance(100000);
  ASSERT_EQ(sink_.events.size(), 5u);
  EXPECT_EQ(sink_.events[3].channel, "early");
  EXPECT_EQ(sink_.events[3].timestamp, kStart + 100);
  EXPECT_EQ(sink_.events[4].channel, "late");
  EXPECT_EQ(sink_.events[4].timestamp, kStart + 300);
}

TEST_F(ChannelTest, BadTtlIsRejected) {
  auto a = Connect("alice");
  EXPECT_EQ(engine_.Enter(a, "room", std::nullopt, 0).error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.Enter(a, "room", std::nullopt, -5).error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.Enter(a, "room", std::nullopt, INT64_MAX).error().code, ErrorCode::kBadRequest);
  EXPECT_TRUE(sink_.events.empty());
}

TEST_F(ChannelTest, ShutdownClosesEveryConnectionCleanly) {
  auto watcher = Connect("watcher");  // attached first: must still see every leave
  ASSERT_TRUE(engine_.Subscribe(watcher, "room", kAllActions, std::nullopt).ok());
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Drop(b).ok());
  engine_.Shutdown();
  auto events = EventsOf("room");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].reason, LeaveReason::kDisconnected);
  EXPECT_EQ(events[3].reason, LeaveReason::kDisconnected);
  EXPECT_EQ(events[2].recipients, std::vector<ConnectionHandle>{watcher});
  EXPECT_EQ(events[3].recipients, std::vector<ConnectionHandle>{watcher});
  EXPECT_EQ(engine_.connection_count(), 0u);
  EXPECT_EQ(engine_.channel_count(), 0u);
}

TEST_F(ChannelTest, AMillionEnterLeaveCyclesLeaveNothingBehind) {
  auto a = Connect("alice");
  auto b = Connect("bob");
  ASSERT_TRUE(engine_.Subscribe(b, "watched", kAllActions, std::nullopt).ok());
  for (int i = 0; i < 1000000; ++i) {
    std::string channel = "c" + std::to_string(i % 1000);
    ASSERT_TRUE(engine_
                    .Enter(a, channel, std::nullopt,
                           (i % 3 == 0) ? std::optional<TimeMs>(50) : std::nullopt)
                    .ok());
    if (i % 7 == 0) {
      ASSERT_TRUE(engine_.Enter(a, "watched", std::nullopt, std::nullopt).ok());
    }
    if (i % 3 == 0 && i % 2 == 0) {
      clock_.Advance(50);  // let the TTL expire instead of leaving
    } else {
      ASSERT_TRUE(engine_.Leave(a, channel, std::nullopt).ok());
    }
    if (i % 7 == 0) {
      ASSERT_TRUE(engine_.Leave(a, "watched", std::nullopt).ok());
    }
  }
  engine_.Tick();
  EXPECT_EQ(engine_.member_count(), 0u);
  EXPECT_EQ(engine_.channel_count(), 1u);  // only the subscribed channel
  EXPECT_LE(engine_.timer_count(), 2u);    // at most the two devices' idle timers
  ASSERT_TRUE(engine_.Unsubscribe(b, "watched").ok());
  EXPECT_EQ(engine_.channel_count(), 0u);
}

// ----- Limits: each has a specific error and changes nothing ---------------------------------

class LimitTest : public EngineTest {
 protected:
  static EngineConfig Config() {
    EngineConfig c = DefaultConfig();
    c.limits.max_channels_per_connection = 2;
    c.limits.max_members_per_channel = 2;
    c.limits.max_data_bytes = 10;
    c.limits.max_channel_bytes = 8;
    c.limits.max_id_bytes = 6;
    c.limits.max_watches_per_connection = 2;
    c.limits.max_text_bytes = 4;
    return c;
  }
  LimitTest() : EngineTest(Config()) {}

  void ExpectUnchanged(size_t events, size_t members, size_t channels) {
    EXPECT_EQ(sink_.events.size(), events);
    EXPECT_EQ(engine_.member_count(), members);
    EXPECT_EQ(engine_.channel_count(), channels);
  }
};

TEST_F(LimitTest, ChannelsPerConnection) {
  auto a = Connect("alice");
  ASSERT_TRUE(engine_.Enter(a, "c1", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(a, "c2", std::nullopt, std::nullopt).ok());
  EXPECT_EQ(engine_.Enter(a, "c3", std::nullopt, std::nullopt).error().code,
            ErrorCode::kLimitExceeded);
  ExpectUnchanged(2, 2, 2);
  EXPECT_TRUE(engine_.Enter(a, "c1", J("1"), std::nullopt).ok());  // an update is not a new channel
  ASSERT_TRUE(engine_.Subscribe(a, "s1", kAllActions, std::nullopt).ok());
  ASSERT_TRUE(engine_.Subscribe(a, "s2", kAllActions, std::nullopt).ok());
  EXPECT_EQ(engine_.Subscribe(a, "s3", kAllActions, std::nullopt).error().code,
            ErrorCode::kLimitExceeded);
  EXPECT_EQ(engine_.channel_count(), 4u);
  EXPECT_TRUE(engine_.Subscribe(a, "s1", kAllActions, std::nullopt).ok());
}

TEST_F(LimitTest, MembersPerChannel) {
  auto a = Connect("a");
  auto b = Connect("b");
  auto c = Connect("c");
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", std::nullopt, std::nullopt).ok());
  EXPECT_EQ(engine_.Enter(c, "room", std::nullopt, std::nullopt).error().code,
            ErrorCode::kLimitExceeded);
  ExpectUnchanged(2, 2, 1);
}

TEST_F(LimitTest, SizesOfDataNamesAndText) {
  auto a = Connect("alice");
  EXPECT_EQ(engine_.Enter(a, "room", J(R"("0123456789")"), std::nullopt).error().code,
            ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.Enter(a, "123456789", std::nullopt, std::nullopt).error().code,
            ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.Enter(a, "", std::nullopt, std::nullopt).error().code, ErrorCode::kBadRequest);
  ExpectUnchanged(0, 0, 0);
  ASSERT_TRUE(engine_.Enter(a, "room", J(R"({"a":1})"), std::nullopt).ok());
  // A merge that grows the data past the limit is refused too, and keeps the old data.
  EXPECT_EQ(engine_.Update(a, "room", J(R"({"b":22})"), true, std::nullopt).error().code,
            ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.Get("room").members[0].data.text(), R"({"a":1})");
  EXPECT_EQ(engine_.Leave(a, "room", J(R"("0123456789")")).error().code, ErrorCode::kTooLarge);
  ExpectUnchanged(1, 1, 1);

  EXPECT_EQ(engine_.Attach("toolongid", "web", 0).error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.Attach("bob", "toolongdev", 0).error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.Attach("", "web", 0).error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.connection_count(), 1u);

  EXPECT_EQ(engine_.SetStatus(a, Presence::kDnd, std::optional<std::string>("12345")).error().code,
            ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);
  EXPECT_EQ(engine_.RecordActivity(a, "", "", JsonText()).error().code, ErrorCode::kBadRequest);
}

TEST_F(LimitTest, WatchesPerConnection) {
  auto a = Connect("alice");
  std::vector<std::string> two{"b", "c"};
  std::vector<std::string> three{"d", "b", "d"};  // one new distinct id, but over the limit
  ASSERT_TRUE(engine_.Watch(a, two).ok());
  EXPECT_EQ(engine_.Watch(a, three).error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(engine_.GetStatus("d").last_seen, std::nullopt);
  std::vector<std::string> again{"c", "b"};
  EXPECT_TRUE(engine_.Watch(a, again).ok());  // already watched: no new watch
}

TEST_F(LimitTest, TheWatchLimitCountsDistinctUsers) {
  auto a = Connect("alice");
  std::vector<std::string> repeated(5000, "b");
  repeated.push_back("c");
  repeated.push_back("b");
  auto w = engine_.Watch(a, repeated);  // two distinct users: exactly the limit
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), 2u);
  auto same = engine_.Watch(a, repeated);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size(), 2u);
  std::vector<std::string> one_more(100, "d");
  EXPECT_EQ(engine_.Watch(a, one_more).error().code, ErrorCode::kLimitExceeded);
  std::vector<std::string> unwatch{"b"};
  ASSERT_TRUE(engine_.Unwatch(a, unwatch).ok());
  EXPECT_TRUE(engine_.Watch(a, one_more).ok());  // room for one again
}

}  // namespace
}  // namespace presenced::engine
