// The WebSocket ops of docs/protocol.md and the errors a client can provoke, through a real
// Dispatcher without sockets (testing/protocol_test_util.h). Assertions are on the JSON frames.
#include <gtest/gtest.h>

#include <string>

#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherWsTest : public ProtocolTest {};

// ----- ping, enter, update, leave ---------------------------------------------------------------

TEST_F(DispatcherWsTest, PingIsAnsweredWithTheSameId) {
  TestConn a = Connect("alice");
  json::object reply = Send(a, R"({"op":"ping","id":42})");
  EXPECT_EQ(reply, ParseObject(R"({"type":"reply","id":42,"ok":true})"));
}

TEST_F(DispatcherWsTest, EnterRepliesWithTheMemberAndNotifiesSubscribers) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "subscribe", {{"channel", "room"}});
  b.peer->Clear();

  json::object reply = Ok(a, "enter", {{"channel", "room"}, {"data", {{"mood", "happy"}}}});
  const json::object& member = reply.at("member").as_object();
  EXPECT_EQ(Str(member, "clientId"), "alice");
  EXPECT_EQ(Str(member, "connectionId"), a.connection_id);
  EXPECT_EQ(member.at("data"), ParseObject(R"({"mood":"happy"})"));
  EXPECT_EQ(Int(member, "timestamp"), clock.NowMs());
  EXPECT_TRUE(member.at("expiresAt").is_null());

  auto events = b.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "channel"), "room");
  EXPECT_EQ(Str(events[0], "action"), "enter");
  EXPECT_EQ(events[0].at("member").as_object(), member);
  EXPECT_FALSE(events[0].contains("reason"));  // reason is on leave only
}

TEST_F(DispatcherWsTest, EnterWithoutDataHasNullDataAndTtlSetsExpiry) {
  TestConn a = Connect("alice");
  json::object plain = Ok(a, "enter", {{"channel", "room-1"}});
  EXPECT_TRUE(plain.at("member").at("data").is_null());
  json::object ttl = Ok(a, "enter", {{"channel", "room-2"}, {"ttlMs", 5000}});
  EXPECT_EQ(Int(ttl.at("member").as_object(), "expiresAt"), clock.NowMs() + 5000);
}

TEST_F(DispatcherWsTest, EnteringAgainIsAnUpdateThatKeepsDataWhenAbsent) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "subscribe", {{"channel", "room"}});
  Ok(a, "enter", {{"channel", "room"}, {"data", "first"}, {"ttlMs", 1000}});
  b.peer->Clear();
  clock.Advance(10);
  json::object again = Ok(a, "enter", {{"channel", "room"}});
  EXPECT_EQ(again.at("member").at("data"), "first");
  EXPECT_TRUE(again.at("member").at("expiresAt").is_null());  // no ttlMs: no expiry
  auto events = b.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "update");  // never leave + enter
}

TEST_F(DispatcherWsTest, UpdateReplacesOrShallowMergesData) {
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}, {"data", {{"x", 1}, {"y", {{"deep", 1}}}}}});
  json::object merged =
      Ok(a, "update",
         {{"channel", "room"}, {"data", {{"y", {{"other", 2}}}, {"z", 3}}}, {"merge", true}});
  EXPECT_EQ(merged.at("member").at("data"), ParseObject(R"({"x":1,"y":{"other":2},"z":3})"));

  json::object replaced = Ok(a, "update", {{"channel", "room"}, {"data", {{"only", true}}}});
  EXPECT_EQ(replaced.at("member").at("data"), ParseObject(R"({"only":true})"));

  // When either side is not an object, merge replaces.
  json::object scalar = Ok(a, "update", {{"channel", "room"}, {"data", 7}, {"merge", true}});
  EXPECT_EQ(scalar.at("member").at("data"), 7);
}

TEST_F(DispatcherWsTest, UpdateWithTtlRefreshesExpiryAndWithoutKeepsIt) {
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}, {"ttlMs", 1000}});
  const TimeMs first_expiry = clock.NowMs() + 1000;
  clock.Advance(100);
  json::object kept = Ok(a, "update", {{"channel", "room"}, {"data", 1}});
  EXPECT_EQ(Int(kept.at("member").as_object(), "expiresAt"), first_expiry);
  json::object refreshed = Ok(a, "update", {{"channel", "room"}, {"data", 2}, {"ttlMs", 1000}});
  EXPECT_EQ(Int(refreshed.at("member").as_object(), "expiresAt"), clock.NowMs() + 1000);
}

TEST_F(DispatcherWsTest, UpdateAndLeaveWithoutEnteringAreNotPresent) {
  TestConn a = Connect("alice");
  EXPECT_EQ(ErrorCodeOf(Call(a, "update", {{"channel", "room"}, {"data", 1}})), "not_present");
  EXPECT_EQ(ErrorCodeOf(Call(a, "leave", {{"channel", "room"}})), "not_present");
}

TEST_F(DispatcherWsTest, LeaveCarriesReasonLeftAndTheGivenData) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "subscribe", {{"channel", "room"}});
  Ok(a, "enter", {{"channel", "room"}, {"data", "here"}});
  Ok(a, "enter", {{"channel", "hall"}, {"data", "here"}});
  Ok(b, "subscribe", {{"channel", "hall"}});
  b.peer->Clear();

  Ok(a, "leave", {{"channel", "room"}, {"data", {{"why", "lunch"}}}});
  Ok(a, "leave", {{"channel", "hall"}});
  auto events = b.peer->Take("presence");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Str(events[0], "action"), "leave");
  EXPECT_EQ(Str(events[0], "reason"), "left");
  EXPECT_EQ(events[0].at("member").at("data"), ParseObject(R"({"why":"lunch"})"));
  EXPECT_EQ(Str(events[1], "reason"), "left");
  EXPECT_EQ(events[1].at("member").at("data"), "here");  // the last data
  EXPECT_TRUE(Ok(a, "get", {{"channel", "room"}}).at("members").as_array().empty());
}

// ----- get, occupancy
// -----------------------------------------------------------------------------

TEST_F(DispatcherWsTest, GetFiltersByClientIdAndConnectionId) {
  TestConn a1 = Connect("alice", Device{"phone"});
  TestConn a2 = Connect("alice", Device{"laptop"});
  TestConn b = Connect("bob");
  Ok(a1, "enter", {{"channel", "room"}});
  Ok(a2, "enter", {{"channel", "room"}});
  Ok(b, "enter", {{"channel", "room"}});

  json::object all = Ok(b, "get", {{"channel", "room"}});
  EXPECT_EQ(all.at("members").as_array().size(), 3u);
  EXPECT_EQ(Str(all, "epoch"), kTestEpoch);
  EXPECT_EQ(Int(all, "serial"), Int(Ok(b, "get", {{"channel", "room"}}), "serial"));

  json::object alices = Ok(b, "get", {{"channel", "room"}, {"clientId", "alice"}});
  ASSERT_EQ(alices.at("members").as_array().size(), 2u);
  for (const auto& m : alices.at("members").as_array()) {
    EXPECT_EQ(Str(m.as_object(), "clientId"), "alice");
  }
  json::object one = Ok(b, "get", {{"channel", "room"}, {"connectionId", a2.connection_id}});
  ASSERT_EQ(one.at("members").as_array().size(), 1u);
  EXPECT_EQ(Str(one.at("members").at(0).as_object(), "connectionId"), a2.connection_id);
  json::object none = Ok(b, "get", {{"channel", "empty-room"}});
  EXPECT_TRUE(none.at("members").as_array().empty());
}

TEST_F(DispatcherWsTest, OccupancyCountsMembersAndDistinctClients) {
  TestConn a1 = Connect("alice");
  TestConn a2 = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a1, "enter", {{"channel", "room"}});
  Ok(a2, "enter", {{"channel", "room"}});
  Ok(b, "enter", {{"channel", "room"}});
  json::object occ = Ok(b, "occupancy", {{"channel", "room"}});
  EXPECT_EQ(Int(occ, "members"), 3);
  EXPECT_EQ(Int(occ, "clients"), 2);
  json::object empty = Ok(b, "occupancy", {{"channel", "nobody"}});
  EXPECT_EQ(Int(empty, "members"), 0);
  EXPECT_EQ(Int(empty, "clients"), 0);
}

// ----- subscribe, unsubscribe
// ---------------------------------------------------------------------

TEST_F(DispatcherWsTest, SubscribeReturnsSnapshotSerialAndEpoch) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a, "enter", {{"channel", "room"}, {"data", 1}});
  json::object sub = Ok(b, "subscribe", {{"channel", "room"}});
  ASSERT_EQ(sub.at("members").as_array().size(), 1u);
  EXPECT_EQ(Str(sub.at("members").at(0).as_object(), "clientId"), "alice");
  EXPECT_EQ(Str(sub, "epoch"), kTestEpoch);
  EXPECT_FALSE(sub.contains("events"));
  EXPECT_FALSE(sub.contains("resynced"));
  EXPECT_EQ(Int(sub, "serial"), Int(Ok(b, "get", {{"channel", "room"}}), "serial"));
}

TEST_F(DispatcherWsTest, SubscribeActionsFilterLimitsPushedEvents) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "subscribe", {{"channel", "room"}, {"actions", {"leave"}}});
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "update", {{"channel", "room"}, {"data", 1}});
  Ok(a, "leave", {{"channel", "room"}});
  auto events = b.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "leave");

  // Subscribing again changes the filter.
  Ok(b, "subscribe", {{"channel", "room"}, {"actions", {"enter", "update"}}});
  b.peer->Clear();
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "leave", {{"channel", "room"}});
  events = b.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "enter");
}

TEST_F(DispatcherWsTest, SubscribeSinceInThisEpochReturnsTheMissedEventsFiltered) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  json::object first = Ok(b, "subscribe", {{"channel", "room"}});
  const int64_t since = Int(first, "serial");
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "update", {{"channel", "room"}, {"data", 2}});
  Ok(a, "leave", {{"channel", "room"}});

  json::object again = Ok(b, "subscribe",
                          {{"channel", "room"},
                           {"since", since},
                           {"epoch", kTestEpoch},
                           {"actions", {"enter", "leave"}}});
  EXPECT_FALSE(again.contains("members"));
  EXPECT_FALSE(again.contains("resynced"));
  const json::array& events = again.at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Str(events[0].as_object(), "action"), "enter");
  EXPECT_EQ(Int(events[0].as_object(), "serial"), since + 1);
  EXPECT_EQ(Str(events[1].as_object(), "action"), "leave");
  EXPECT_EQ(Int(events[1].as_object(), "serial"), since + 3);
  EXPECT_EQ(Int(again, "serial"), since + 3);
}

TEST_F(DispatcherWsTest, SubscribeSinceFromAnotherEpochResyncsWithASnapshot) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a, "enter", {{"channel", "room"}});
  json::object sub =
      Ok(b, "subscribe", {{"channel", "room"}, {"since", 0}, {"epoch", "an-older-run"}});
  EXPECT_FALSE(sub.contains("events"));
  EXPECT_EQ(sub.at("members").as_array().size(), 1u);
  EXPECT_EQ(sub.at("resynced"), true);
}

TEST(DispatcherWsRing, SubscribeSinceOlderThanTheRingResyncs) {
  DispatcherOptions o = ProtocolHarness::DefaultOptions();
  o.engine.event_ring_capacity = 2;
  ProtocolHarness h(o);
  TestConn a = h.Connect("alice");
  TestConn b = h.Connect("bob");
  const int64_t since = Int(h.Ok(b, "subscribe", {{"channel", "room"}}), "serial");
  for (int i = 0; i < 4; ++i) h.Ok(a, "enter", {{"channel", "room"}, {"data", i}});
  json::object sub =
      h.Ok(b, "subscribe", {{"channel", "room"}, {"since", since}, {"epoch", kTestEpoch}});
  EXPECT_EQ(sub.at("resynced"), true);
  ASSERT_EQ(sub.at("members").as_array().size(), 1u);
  EXPECT_EQ(sub.at("members").at(0).at("data"), 3);
  EXPECT_EQ(Int(sub, "serial"), since + 4);
}

TEST_F(DispatcherWsTest, UnsubscribeStopsEventsAndIsOkWhenNotSubscribed) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "unsubscribe", {{"channel", "room"}});  // not subscribed: still ok
  Ok(b, "subscribe", {{"channel", "room"}});
  Ok(b, "unsubscribe", {{"channel", "room"}});
  b.peer->Clear();
  Ok(a, "enter", {{"channel", "room"}});
  EXPECT_TRUE(b.peer->OfType("presence").empty());
}

TEST_F(DispatcherWsTest, EventsHaveSerialsGrowingByOneAndTheSameFrameGoesToEverySubscriber) {
  TestConn a = Connect("alice");
  TestConn s1 = Connect("sub-1");
  TestConn s2 = Connect("sub-2");
  Ok(s1, "subscribe", {{"channel", "room"}});
  Ok(s2, "subscribe", {{"channel", "room"}});
  s1.peer->Clear();
  s2.peer->Clear();
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "update", {{"channel", "room"}, {"data", 1}});
  Ok(a, "leave", {{"channel", "room"}});
  auto e1 = s1.peer->OfType("presence");
  auto e2 = s2.peer->OfType("presence");
  ASSERT_EQ(e1.size(), 3u);
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(Int(e1[1], "serial"), Int(e1[0], "serial") + 1);
  EXPECT_EQ(Int(e1[2], "serial"), Int(e1[0], "serial") + 2);
  // Byte for byte: one serialization, queued to each.
  std::vector<std::string> raw1, raw2;
  for (const auto& f : s1.peer->raw()) raw1.push_back(*f);
  for (const auto& f : s2.peer->raw()) raw2.push_back(*f);
  std::erase_if(raw1, [](const std::string& f) { return f.find("\"presence\"") == f.npos; });
  std::erase_if(raw2, [](const std::string& f) { return f.find("\"presence\"") == f.npos; });
  EXPECT_EQ(raw1, raw2);
}

TEST_F(DispatcherWsTest, AChannelThatEmptiesContinuesAboveItsEarlierSerials) {
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "leave", {{"channel", "room"}});
  const int64_t after_leave = Int(Ok(a, "get", {{"channel", "room"}}), "serial");
  Ok(a, "enter", {{"channel", "other"}});  // other channels move the counter on meanwhile
  json::object sub = Ok(a, "subscribe", {{"channel", "room"}});
  a.peer->Clear();
  Ok(a, "enter", {{"channel", "room"}});
  auto events = a.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GT(Int(events[0], "serial"), after_leave);
  EXPECT_EQ(Int(events[0], "serial"), Int(sub, "serial") + 1);
}

// ----- history
// ------------------------------------------------------------------------------------

TEST_F(DispatcherWsTest, HistoryPagesBackwardsByDefaultAndForwardsOnRequest) {
  TestConn a = Connect("alice");
  for (int i = 0; i < 5; ++i) {
    clock.Advance(1000);
    Ok(a, "enter", {{"channel", "room"}, {"data", i}});
  }
  json::object back = Ok(a, "history", {{"channel", "room"}, {"limit", 2}});
  const json::array& b1 = back.at("events").as_array();
  ASSERT_EQ(b1.size(), 2u);
  EXPECT_EQ(b1[0].at("member").at("data"), 4);  // newest first
  EXPECT_EQ(b1[1].at("member").at("data"), 3);
  ASSERT_TRUE(back.contains("next"));
  json::object back2 =
      Ok(a, "history", {{"channel", "room"}, {"limit", 2}, {"cursor", back.at("next")}});
  const json::array& b2 = back2.at("events").as_array();
  ASSERT_EQ(b2.size(), 2u);
  EXPECT_EQ(b2[0].at("member").at("data"), 2);
  EXPECT_EQ(b2[1].at("member").at("data"), 1);

  json::object fwd =
      Ok(a, "history", {{"channel", "room"}, {"limit", 3}, {"direction", "forwards"}});
  const json::array& f = fwd.at("events").as_array();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].at("member").at("data"), 0);
  EXPECT_EQ(f[2].at("member").at("data"), 2);
  EXPECT_EQ(Str(f[0].as_object(), "type"), "presence");  // as they were sent

  json::object all = Ok(a, "history", {{"channel", "room"}});
  EXPECT_EQ(all.at("events").as_array().size(), 5u);
  EXPECT_FALSE(all.contains("next"));
}

TEST_F(DispatcherWsTest, HistoryStartAndEndAreInclusiveTimes) {
  TestConn a = Connect("alice");
  std::vector<TimeMs> times;
  for (int i = 0; i < 4; ++i) {
    clock.Advance(1000);
    times.push_back(clock.NowMs());
    Ok(a, "enter", {{"channel", "room"}, {"data", i}});
  }
  json::object r =
      Ok(a, "history",
         {{"channel", "room"}, {"start", times[1]}, {"end", times[2]}, {"direction", "forwards"}});
  const json::array& events = r.at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].at("member").at("data"), 1);
  EXPECT_EQ(events[1].at("member").at("data"), 2);
}

TEST_F(DispatcherWsTest, HistoryRefusesBadParameters) {
  TestConn a = Connect("alice");
  EXPECT_EQ(ErrorCodeOf(Call(a, "history", {{"channel", "room"}, {"limit", 0}})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(a, "history", {{"channel", "room"}, {"direction", "sideways"}})),
            "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(a, "history", {{"channel", "room"}, {"start", "yesterday"}})),
            "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(a, "history", {{"channel", ""}})), "bad_request");
  EXPECT_TRUE(IsOk(Call(a, "history", {{"channel", "room"}, {"limit", 5000}})));  // clamped
}

// ----- status
// -------------------------------------------------------------------------------------

TEST_F(DispatcherWsTest, StatusSetRepliesAndPushesToOwnDevicesAndWatchers) {
  TestConn a1 = Connect("alice", Device{"phone"});
  TestConn a2 = Connect("alice", Device{"laptop"});
  TestConn b = Connect("bob");
  Ok(b, "status.watch", {{"clientIds", {"alice"}}});
  a1.peer->Clear();
  a2.peer->Clear();
  b.peer->Clear();
  clock.Advance(10);  // the phone is then the most recently active device

  json::object reply = Ok(a1, "status.set", {{"status", "dnd"}, {"text", "focus"}});
  const json::object& st = reply.at("status").as_object();
  EXPECT_EQ(Str(st, "clientId"), "alice");
  EXPECT_EQ(Str(st, "status"), "dnd");
  EXPECT_EQ(Str(st, "text"), "focus");
  EXPECT_EQ(Str(st, "activeDevice"), "phone");
  EXPECT_EQ(Int(st, "lastSeen"), clock.NowMs());

  for (TestConn* c : {&a1, &a2, &b}) {
    auto pushes = c->peer->Take("status");
    ASSERT_EQ(pushes.size(), 1u) << c->client_id;
    EXPECT_EQ(Str(pushes[0], "previous"), "online");
    EXPECT_EQ(Str(pushes[0], "status"), "dnd");
    EXPECT_EQ(Str(pushes[0], "text"), "focus");
    EXPECT_EQ(Str(pushes[0], "clientId"), "alice");
  }
  // On disk before the reply.
  auto stored = store.ReadUser("alice");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->manual, "dnd");
  EXPECT_EQ((*stored)->text, "focus");

  json::object cleared = Ok(a2, "status.set", {{"text", nullptr}});
  EXPECT_TRUE(cleared.at("status").at("text").is_null());
  EXPECT_EQ(Str(cleared.at("status").as_object(), "status"), "dnd");  // unchanged
}

TEST_F(DispatcherWsTest, StatusGetAnswersInTheOrderAsked) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "status.set", {{"status", "away"}});
  json::object r = Ok(a, "status.get", {{"clientIds", {"nobody", "bob", "alice"}}});
  const json::array& s = r.at("statuses").as_array();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], ParseObject(R"({"clientId":"nobody","status":"offline","text":null,)"
                              R"("lastSeen":null,"activeDevice":null})"));
  EXPECT_EQ(Str(s[1].as_object(), "status"), "away");
  EXPECT_EQ(Str(s[2].as_object(), "status"), "online");
  EXPECT_EQ(Str(s[2].as_object(), "activeDevice"), "unknown");  // device defaults to "unknown"
}

TEST_F(DispatcherWsTest, StatusWatchReturnsEachUserOnceAndUnwatchStopsPushes) {
  TestConn b = Connect("bob");
  json::object w = Ok(b, "status.watch", {{"clientIds", {"alice", "alice", "carol"}}});
  const json::array& s = w.at("statuses").as_array();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(Str(s[0].as_object(), "status"), "offline");

  TestConn a = Connect("alice");  // coming online is a push
  auto pushes = b.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0], "clientId"), "alice");
  EXPECT_EQ(Str(pushes[0], "previous"), "offline");
  EXPECT_EQ(Str(pushes[0], "status"), "online");

  Ok(b, "status.unwatch", {{"clientIds", {"alice"}}});
  b.peer->Clear();
  Ok(a, "status.set", {{"status", "away"}});
  EXPECT_TRUE(b.peer->OfType("status").empty());
}

// ----- activity, devices, who
// ---------------------------------------------------------------------

TEST_F(DispatcherWsTest, ActivityIsRecordedAndReadNewestFirst) {
  TestConn a = Connect("alice");
  Ok(a, "activity", {{"kind", "typing"}, {"channel", "room"}, {"data", {{"n", 1}}}});
  clock.Advance(1000);
  const TimeMs second = clock.NowMs();
  Ok(a, "activity", {{"kind", "click"}});
  json::object r = Ok(a, "activity.get");
  const json::array& list = r.at("activities").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].as_object(), ParseObject(R"({"kind":"click","channel":null,"data":null,)"
                                             R"("timestamp":)" +
                                             std::to_string(second) + R"(,"connectionId":")" +
                                             a.connection_id + R"("})"));
  EXPECT_EQ(Str(list[1].as_object(), "kind"), "typing");
  EXPECT_EQ(Str(list[1].as_object(), "channel"), "room");
  EXPECT_EQ(list[1].at("data"), ParseObject(R"({"n":1})"));

  EXPECT_EQ(Ok(a, "activity.get", {{"limit", 1}}).at("activities").as_array().size(), 1u);
  json::object since = Ok(a, "activity.get", {{"since", second}});
  ASSERT_EQ(since.at("activities").as_array().size(), 1u);
  EXPECT_EQ(ErrorCodeOf(Call(a, "activity.get", {{"limit", 0}})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(a, "activity", {{"channel", "room"}})), "bad_request");  // no kind
}

TEST_F(DispatcherWsTest, ActivityGetOfAnotherUserIsEmptyWhileTheyAppearOffline) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a, "activity", {{"kind", "typing"}});
  EXPECT_EQ(Ok(b, "activity.get", {{"clientId", "alice"}}).at("activities").as_array().size(), 1u);
  Ok(a, "status.set", {{"status", "offline"}});
  EXPECT_TRUE(Ok(b, "activity.get", {{"clientId", "alice"}}).at("activities").as_array().empty());
  // The user still sees their own.
  EXPECT_EQ(Ok(a, "activity.get").at("activities").as_array().size(), 1u);
}

TEST_F(DispatcherWsTest, ActivityGetLeavesOutChannelsOutsideTheCallersPatterns) {
  TestConn a = Connect("alice");
  Ok(a, "activity", {{"kind", "k1"}, {"channel", "team-a"}});
  Ok(a, "activity", {{"kind", "k2"}, {"channel", "secret"}});
  Ok(a, "activity", {{"kind", "k3"}});
  TestConn b = Connect("bob", Channels{{"team-*"}});
  json::object r = Ok(b, "activity.get", {{"clientId", "alice"}});
  const json::array& list = r.at("activities").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(Str(list[0].as_object(), "kind"), "k3");
  EXPECT_EQ(Str(list[1].as_object(), "kind"), "k1");
  EXPECT_EQ(ErrorCodeOf(Call(b, "activity", {{"kind", "x"}, {"channel", "secret"}})), "forbidden");
}

TEST_F(DispatcherWsTest, DevicesListsConnectionsAndHidesThemWhileAppearingOffline) {
  TestConn a1 = Connect("alice", Device{"phone"});
  clock.Advance(10);
  TestConn a2 = Connect("alice", Device{"laptop"});
  TestConn b = Connect("bob");
  clock.Advance(10);
  Ok(a1, "who");  // activity of the phone: the list below is read before its own request counts
  json::object own = Ok(a1, "devices");
  const json::array& d = own.at("devices").as_array();
  ASSERT_EQ(d.size(), 2u);
  int active = 0;
  for (const auto& v : d) {
    const json::object& dev = v.as_object();
    EXPECT_EQ(Str(dev, "status"), "online");
    if (dev.at("active").as_bool()) {
      ++active;
      EXPECT_EQ(Str(dev, "device"), "phone");
      EXPECT_EQ(Str(dev, "connectionId"), a1.connection_id);
    }
  }
  EXPECT_EQ(active, 1);
  EXPECT_EQ(Ok(b, "devices", {{"clientId", "alice"}}).at("devices").as_array().size(), 2u);

  Ok(a2, "status.set", {{"status", "offline"}});
  EXPECT_TRUE(Ok(b, "devices", {{"clientId", "alice"}}).at("devices").as_array().empty());
  EXPECT_EQ(Ok(a1, "devices").at("devices").as_array().size(), 2u);
  EXPECT_EQ(ErrorCodeOf(Call(b, "devices", {{"clientId", std::string(300, 'x')}})), "too_large");
}

TEST_F(DispatcherWsTest, WhoListsUsersNotOfflineOptionallyByChannel) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  TestConn c = Connect("carol");
  Ok(a, "enter", {{"channel", "room"}});
  Ok(b, "status.set", {{"status", "away"}});
  Ok(c, "status.set", {{"status", "offline"}});
  json::object all = Ok(a, "who");
  std::vector<std::string> ids;
  for (const auto& u : all.at("users").as_array()) ids.push_back(Str(u.as_object(), "clientId"));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"alice", "bob"}));

  json::object room = Ok(a, "who", {{"channel", "room"}});
  ASSERT_EQ(room.at("users").as_array().size(), 1u);
  EXPECT_EQ(Str(room.at("users").at(0).as_object(), "clientId"), "alice");
}

// ----- errors
// -------------------------------------------------------------------------------------

TEST_F(DispatcherWsTest, UnparsableFramesAreBadRequestsWithNullId) {
  TestConn a = Connect("alice");
  for (const char* text : {R"({"op":"ping","id":)", "[1,2]", "\"text\"", R"({"op":"ping"})",
                           R"({"op":"ping","id":"7"})", R"({"op":"ping","id":1.5})"}) {
    json::object r = Send(a, text);
    EXPECT_TRUE(r.at("id").is_null()) << text;
    EXPECT_EQ(r.at("ok"), false) << text;
    EXPECT_EQ(ErrorCodeOf(r), "bad_request") << text;
    EXPECT_FALSE(Str(r.at("error").as_object(), "message").empty()) << text;
  }
  EXPECT_FALSE(a.peer->closed());  // a bad frame never closes the connection
}

TEST_F(DispatcherWsTest, MissingOrUnknownOpIsABadRequestWithTheId) {
  TestConn a = Connect("alice");
  json::object missing = Send(a, R"({"id":3})");
  EXPECT_EQ(Int(missing, "id"), 3);
  EXPECT_EQ(ErrorCodeOf(missing), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Send(a, R"({"id":4,"op":7})")), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Send(a, R"({"id":5,"op":"Enter","channel":"room"})")), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Send(a, R"({"id":6,"op":"teleport"})")), "bad_request");
}

TEST_F(DispatcherWsTest, MistypedFieldsAreBadRequestsAndChangeNothing) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(b, "subscribe", {{"channel", "room"}});
  b.peer->Clear();
  const char* frames[] = {
      R"({"id":1,"op":"enter","channel":5})",
      R"({"id":2,"op":"enter"})",
      R"({"id":3,"op":"enter","channel":"room","ttlMs":"soon"})",
      R"({"id":4,"op":"enter","channel":"room","ttlMs":0})",
      R"({"id":5,"op":"enter","channel":"room","ttlMs":31622400001})",
      R"({"id":6,"op":"update","channel":"room"})",
      R"({"id":7,"op":"subscribe","channel":"room","actions":"enter"})",
      R"({"id":8,"op":"subscribe","channel":"room","actions":[]})",
      R"({"id":9,"op":"subscribe","channel":"room","actions":["enter","teleport"]})",
      R"({"id":10,"op":"subscribe","channel":"room","since":-1})",
      R"({"id":11,"op":"status.set","status":"busy"})",
      R"({"id":12,"op":"status.set","text":5})",
      R"({"id":13,"op":"status.get","clientIds":"alice"})",
      R"({"id":14,"op":"status.watch","clientIds":[1]})",
      R"({"id":15,"op":"command"})",
      R"({"id":16,"op":"enter","channel":"room","data":1e400})",
      R"({"id":17,"op":"enter","channel":"room","data":{"deep":[-1e999]}})",
      R"({"id":18,"op":"get","channel":"room","clientId":3})",
  };
  for (const char* text : frames) {
    json::object r = Send(a, text);
    EXPECT_EQ(ErrorCodeOf(r), "bad_request") << text;
    EXPECT_FALSE(r.at("id").is_null()) << text;
  }
  // Update with merge mistyped needs a member to get past not_present.
  Ok(a, "enter", {{"channel", "hall"}});
  EXPECT_EQ(ErrorCodeOf(Send(a, R"({"id":19,"op":"update","channel":"hall","data":1,"merge":1})")),
            "bad_request");
  EXPECT_TRUE(Ok(b, "get", {{"channel", "room"}}).at("members").as_array().empty());
  EXPECT_TRUE(b.peer->OfType("presence").empty());
}

TEST_F(DispatcherWsTest, ChannelNamesAreCheckedAgainstTheTokenPatterns) {
  TestConn a = Connect("alice", Channels{{"room-*", "lobby"}});
  EXPECT_TRUE(IsOk(Call(a, "enter", {{"channel", "room-1"}})));
  EXPECT_TRUE(IsOk(Call(a, "enter", {{"channel", "lobby"}})));
  for (const char* op : {"enter", "get", "subscribe", "unsubscribe", "occupancy", "history"}) {
    EXPECT_EQ(ErrorCodeOf(Call(a, op, {{"channel", "lobby-2"}})), "forbidden") << op;
  }
  EXPECT_EQ(ErrorCodeOf(Call(a, "who", {{"channel", "other"}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(a, "enter", {{"channel", ""}})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(a, "enter", {{"channel", "room-" + std::string(300, 'x')}})),
            "too_large");
}

TEST_F(DispatcherWsTest, DataOverTheLimitIsTooLarge) {
  TestConn a = Connect("alice");
  const std::string big(options().engine.limits.max_data_bytes, 'x');  // plus quotes: over
  EXPECT_EQ(ErrorCodeOf(Call(a, "enter", {{"channel", "room"}, {"data", big}})), "too_large");
  Ok(a, "enter", {{"channel", "room"}});
  EXPECT_EQ(ErrorCodeOf(Call(a, "update", {{"channel", "room"}, {"data", big}})), "too_large");
  EXPECT_EQ(ErrorCodeOf(Call(a, "status.set", {{"text", std::string(1025, 't')}})), "too_large");
}

TEST(DispatcherWsLimits, CountLimitsAreLimitExceeded) {
  DispatcherOptions o = ProtocolHarness::DefaultOptions();
  o.engine.limits.max_channels_per_connection = 2;
  o.engine.limits.max_members_per_channel = 2;
  o.engine.limits.max_watches_per_connection = 2;
  ProtocolHarness h(o);
  TestConn a = h.Connect("alice");
  h.Ok(a, "enter", {{"channel", "c1"}});
  h.Ok(a, "enter", {{"channel", "c2"}});
  EXPECT_EQ(ErrorCodeOf(h.Call(a, "enter", {{"channel", "c3"}})), "limit_exceeded");
  h.Ok(a, "subscribe", {{"channel", "c1"}});
  h.Ok(a, "subscribe", {{"channel", "c2"}});
  EXPECT_EQ(ErrorCodeOf(h.Call(a, "subscribe", {{"channel", "c3"}})), "limit_exceeded");
  EXPECT_EQ(ErrorCodeOf(h.Call(a, "status.watch", {{"clientIds", {"x", "y", "z"}}})),
            "limit_exceeded");
  TestConn b = h.Connect("bob");
  TestConn c = h.Connect("carol");
  h.Ok(b, "enter", {{"channel", "c1"}});
  EXPECT_EQ(ErrorCodeOf(h.Call(c, "enter", {{"channel", "c1"}})), "limit_exceeded");
}

TEST(DispatcherWsLimits, RequestsOverTheRateAreRateLimitedAndTheConnectionStays) {
  DispatcherOptions o = ProtocolHarness::DefaultOptions();
  o.rate_burst = 3;
  o.rate_per_second = 10;  // one token per 100 ms
  ProtocolHarness h(o);
  TestConn a = h.Connect("alice");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(IsOk(h.Call(a, "ping")));
  json::object limited = h.Call(a, "ping");
  EXPECT_EQ(ErrorCodeOf(limited), "rate_limited");
  EXPECT_FALSE(limited.at("id").is_null());
  EXPECT_FALSE(a.peer->closed());
  h.AdvanceTime(100);
  EXPECT_TRUE(IsOk(h.Call(a, "ping")));
  EXPECT_EQ(ErrorCodeOf(h.Call(a, "ping")), "rate_limited");
}

}  // namespace
}  // namespace presenced::protocol::testing
