// User status, devices, watchers and activity records.
#include <gtest/gtest.h>

#include <tuple>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

namespace presenced::engine {
namespace {

class StatusTest : public EngineTest {};

TEST_F(StatusTest, ConnectingBringsAUserOnlineOnAllDevices) {
  auto laptop = Connect("alice", "laptop");
  ASSERT_EQ(sink_.connectivity.size(), 1u);
  EXPECT_TRUE(sink_.connectivity[0].online);
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].status, Presence::kOnline);
  EXPECT_EQ(sink_.statuses[0].previous, Presence::kOffline);
  EXPECT_EQ(sink_.statuses[0].recipients, std::vector<ConnectionHandle>{laptop});
  EXPECT_EQ(sink_.statuses[0].active_device, "laptop");

  auto phone = Connect("alice", "phone");
  EXPECT_EQ(sink_.connectivity.size(), 1u);  // already online: no new event
  EXPECT_EQ(sink_.statuses.size(), 1u);      // status unchanged: no push

  // Status set on one device is pushed to every device of the user.
  auto s = engine_.SetStatus(phone, Presence::kDnd, std::optional<std::string>("Focus"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, Presence::kDnd);
  ASSERT_EQ(sink_.statuses.size(), 2u);
  EXPECT_EQ(sink_.statuses[1].status, Presence::kDnd);
  EXPECT_EQ(sink_.statuses[1].previous, Presence::kOnline);
  EXPECT_EQ(sink_.statuses[1].text, "Focus");
  EXPECT_EQ(sink_.statuses[1].recipients, (std::vector<ConnectionHandle>{laptop, phone}));
}

TEST_F(StatusTest, OfflineOnAllDevicesOnlyWhenTheLastDeviceGoes) {
  auto laptop = Connect("alice", "laptop");
  auto phone = Connect("alice", "phone", /*remain=*/500);
  sink_.Clear();
  ASSERT_TRUE(engine_.Close(laptop).ok());
  EXPECT_TRUE(sink_.connectivity.empty());
  EXPECT_TRUE(sink_.statuses.empty());
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);

  clock_.Advance(200);
  ASSERT_TRUE(engine_.Drop(phone).ok());
  // In its grace period the device still counts as live.
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);
  Advance(499);
  EXPECT_TRUE(sink_.connectivity.empty());
  Advance(1);
  ASSERT_EQ(sink_.connectivity.size(), 1u);
  EXPECT_FALSE(sink_.connectivity[0].online);
  EXPECT_EQ(sink_.connectivity[0].at, kStart + 700);
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].status, Presence::kOffline);
  EXPECT_EQ(sink_.statuses[0].previous, Presence::kOnline);
  EXPECT_EQ(sink_.statuses[0].active_device, std::nullopt);
  // lastSeen is when the drop was noticed, not when the grace ran out.
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 200);
}

TEST_F(StatusTest, IdleDevicesGoAwayThenOfflineAndActivityBringsThemBack) {
  auto a = Connect("alice");
  auto watcher = Connect("bob");
  std::vector<std::string> ids{"alice"};
  ASSERT_TRUE(engine_.Watch(watcher, ids).ok());
  sink_.Clear();
  Advance(999);
  EXPECT_TRUE(sink_.statuses.empty());
  Advance(1);
  ASSERT_EQ(sink_.statuses.size(), 2u);  // alice, and bob (idle since his watch)... see below
  // Find alice's push.
  auto alice = std::find_if(sink_.statuses.begin(), sink_.statuses.end(),
                            [](auto& s) { return s.client_id == "alice"; });
  ASSERT_NE(alice, sink_.statuses.end());
  EXPECT_EQ(alice->status, Presence::kAway);
  EXPECT_EQ(alice->previous, Presence::kOnline);
  EXPECT_EQ(alice->recipients, (std::vector<ConnectionHandle>{a, watcher}));
  sink_.Clear();
  Advance(4000);
  alice = std::find_if(sink_.statuses.begin(), sink_.statuses.end(),
                       [](auto& s) { return s.client_id == "alice"; });
  ASSERT_NE(alice, sink_.statuses.end());
  EXPECT_EQ(alice->status, Presence::kOffline);
  EXPECT_EQ(alice->previous, Presence::kAway);
  // Idle offline is not "offline on all devices": the device is still connected.
  EXPECT_TRUE(sink_.connectivity.empty());
  EXPECT_TRUE(engine_.Who(std::nullopt).empty());

  sink_.Clear();
  ASSERT_TRUE(engine_.Touch(a).ok());
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].status, Presence::kOnline);
  EXPECT_EQ(sink_.statuses[0].previous, Presence::kOffline);
  // And the idle clock starts again from this activity.
  Advance(999);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);
  Advance(1);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kAway);
}

TEST_F(StatusTest, ActivityWhileOnlineDoesNotMoveTheAwayTimeEarly) {
  auto a = Connect("alice");
  Advance(800);
  ASSERT_TRUE(engine_.Touch(a).ok());
  Advance(999);  // 1799 after connect, 999 after the touch
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);
  Advance(1);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kAway);
}

// The status table: manual setting x idle time x number of devices.
struct TableRow {
  Presence manual;  // kOnline = automatic
  TimeMs idle;      // idle time of the most active device
  int devices;
};

class StatusTableTest : public EngineTest, public ::testing::WithParamInterface<TableRow> {};

TEST_P(StatusTableTest, EffectiveStatusFollowsTheRules) {
  const TableRow row = GetParam();
  ConnectionHandle d1 = Connect("alice", "d1");
  ConnectionHandle d2 = row.devices == 2 ? Connect("alice", "d2") : 0;
  ASSERT_TRUE(engine_.SetStatus(d1, row.manual, std::nullopt).ok());
  if (row.devices == 2) {
    Advance(10000);  // both devices idle long enough to be offline
    ASSERT_TRUE(engine_.Touch(d2).ok());
  }
  if (row.devices == 0) {
    ASSERT_TRUE(engine_.Close(d1).ok());
  }
  Advance(row.idle);

  Presence expected;
  if (row.devices == 0) {
    expected = Presence::kOffline;
  } else if (row.manual != Presence::kOnline) {
    expected = row.manual;
  } else {
    expected = row.idle >= 5000   ? Presence::kOffline
               : row.idle >= 1000 ? Presence::kAway
                                  : Presence::kOnline;
  }
  StatusView v = engine_.GetStatus("alice");
  EXPECT_EQ(v.status, expected);
  // Whatever others see last was pushed.
  ASSERT_FALSE(sink_.statuses.empty());
  EXPECT_EQ(sink_.statuses.back().status, expected);
  if (expected == Presence::kOffline) {
    EXPECT_EQ(v.active_device, std::nullopt);
  } else {
    EXPECT_EQ(v.active_device, row.devices == 2 ? "d2" : "d1");
  }
  const bool in_who = !engine_.Who(std::nullopt).empty();
  EXPECT_EQ(in_who, expected != Presence::kOffline);
}

std::vector<TableRow> AllRows() {
  std::vector<TableRow> rows;
  for (Presence m : {Presence::kOnline, Presence::kAway, Presence::kDnd, Presence::kOffline}) {
    for (TimeMs idle : {0, 999, 1000, 4999, 5000}) {
      for (int devices : {0, 1, 2}) rows.push_back({m, idle, devices});
    }
  }
  return rows;
}

INSTANTIATE_TEST_SUITE_P(AllCombinations, StatusTableTest, ::testing::ValuesIn(AllRows()),
                         [](const auto& info) {
                           return std::string(PresenceName(info.param.manual)) + "_idle" +
                                  std::to_string(info.param.idle) + "_devices" +
                                  std::to_string(info.param.devices);
                         });

TEST_F(StatusTest, AppearingOfflineHidesStatusDevicesAndFreezesLastSeen) {
  auto a = Connect("alice", "laptop");
  auto bob = Connect("bob");
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  clock_.Advance(100);
  auto s = engine_.SetStatus(a, Presence::kOffline, std::nullopt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, Presence::kOffline);
  EXPECT_EQ(s->last_seen, kStart + 100);
  EXPECT_EQ(sink_.statuses.back().status, Presence::kOffline);
  EXPECT_EQ(sink_.statuses.back().active_device, std::nullopt);

  clock_.Advance(500);
  ASSERT_TRUE(engine_.Touch(a).ok());
  StatusView v = engine_.GetStatus("alice");
  EXPECT_EQ(v.status, Presence::kOffline);
  EXPECT_EQ(v.last_seen, kStart + 100);  // frozen
  EXPECT_TRUE(engine_.Devices("alice", "bob").empty());
  EXPECT_EQ(engine_.Devices("alice", "alice").size(), 1u);
  for (const auto& u : engine_.Who(std::nullopt)) EXPECT_NE(u.client_id, "alice");
  EXPECT_TRUE(engine_.Who("room").empty());
  // Channel presence is not hidden: the user controls that by entering and leaving.
  EXPECT_EQ(engine_.Get("room").members.size(), 1u);

  // Back to automatic: visible again, lastSeen moves.
  ASSERT_TRUE(engine_.SetStatus(a, Presence::kOnline, std::nullopt).ok());
  v = engine_.GetStatus("alice");
  EXPECT_EQ(v.status, Presence::kOnline);
  EXPECT_EQ(v.last_seen, kStart + 600);
  (void)bob;
}

TEST_F(StatusTest, TextIsPushedWhenItChangesAndCanBeCleared) {
  auto a = Connect("alice");
  sink_.Clear();
  ASSERT_TRUE(engine_.SetStatus(a, std::nullopt, std::optional<std::string>("In a meeting")).ok());
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].text, "In a meeting");
  EXPECT_EQ(sink_.statuses[0].previous, Presence::kOnline);
  ASSERT_TRUE(engine_.SetStatus(a, std::nullopt, std::optional<std::string>("In a meeting")).ok());
  EXPECT_EQ(sink_.statuses.size(), 1u);  // unchanged: no push
  ASSERT_TRUE(engine_.SetStatus(a, std::nullopt, std::optional<std::string>()).ok());
  ASSERT_EQ(sink_.statuses.size(), 2u);
  EXPECT_EQ(sink_.statuses[1].text, std::nullopt);
  EXPECT_EQ(engine_.GetStatus("alice").text, std::nullopt);
}

TEST_F(StatusTest, WatchersReceivePushesUntilTheyUnwatch) {
  auto bob = Connect("bob");
  std::vector<std::string> ids{"alice"};
  auto w = engine_.Watch(bob, ids);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ((*w)[0].status, Presence::kOffline);
  sink_.Clear();
  auto a = Connect("alice");
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].recipients, (std::vector<ConnectionHandle>{a, bob}));
  ASSERT_TRUE(engine_.Unwatch(bob, ids).ok());
  ASSERT_TRUE(engine_.SetStatus(a, Presence::kAway, std::nullopt).ok());
  EXPECT_EQ(sink_.statuses.back().recipients, std::vector<ConnectionHandle>{a});
}

TEST_F(StatusTest, WatchersInTheirGracePeriodAreNotRecipients) {
  auto bob = Connect("bob");
  std::vector<std::string> ids{"alice"};
  ASSERT_TRUE(engine_.Watch(bob, ids).ok());
  ASSERT_TRUE(engine_.Drop(bob).ok());
  auto a = Connect("alice");
  EXPECT_EQ(sink_.statuses.back().recipients, std::vector<ConnectionHandle>{a});
}

TEST_F(StatusTest, LastSeenIsTheLatestActivityOrDisconnect) {
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, std::nullopt);
  auto a = Connect("alice");
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart);
  clock_.Advance(300);
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 300);
  clock_.Advance(50);
  ASSERT_TRUE(engine_.Close(a).ok());
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 350);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOffline);
}

TEST_F(StatusTest, DevicesListEachConnectionWithItsOwnStatusAndTheActiveOne) {
  auto laptop = Connect("alice", "laptop");
  Advance(2000);  // laptop idle: away
  auto phone = Connect("alice", "phone");
  auto devices = engine_.Devices("alice", "alice");
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].device, "laptop");
  EXPECT_EQ(devices[0].status, Presence::kAway);
  EXPECT_FALSE(devices[0].active);
  EXPECT_EQ(devices[0].last_seen, kStart);
  EXPECT_EQ(devices[1].device, "phone");
  EXPECT_EQ(devices[1].status, Presence::kOnline);
  EXPECT_TRUE(devices[1].active);
  EXPECT_EQ(engine_.GetStatus("alice").active_device, "phone");

  clock_.Advance(10);
  ASSERT_TRUE(engine_.Touch(laptop).ok());
  EXPECT_EQ(engine_.GetStatus("alice").active_device, "laptop");
  EXPECT_TRUE(engine_.Devices("nobody", "alice").empty());
  (void)phone;
}

TEST_F(StatusTest, ActivityRecordsAreNewestFirstWithLimitAndSince) {
  auto a = Connect("alice", "laptop");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        engine_.RecordActivity(a, "message", i % 2 ? "room" : "", J(std::to_string(i))).ok());
    clock_.Advance(10);
  }
  auto all = engine_.GetActivities("alice", 50, std::nullopt);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].data.text(), "4");
  EXPECT_EQ(all[0].timestamp, kStart + 40);
  EXPECT_EQ(all[0].connection_id, last_connection_id_);
  EXPECT_EQ(all[1].channel, "room");
  EXPECT_EQ(engine_.GetActivities("alice", 2, std::nullopt).size(), 2u);
  auto recent = engine_.GetActivities("alice", 50, kStart + 20);  // inclusive
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent.back().timestamp, kStart + 20);
  EXPECT_EQ(sink_.activities.size(), 5u);
  EXPECT_TRUE(engine_.GetActivities("nobody", 50, std::nullopt).empty());
}

TEST_F(StatusTest, RecordingActivityCountsAsDeviceActivity) {
  auto a = Connect("alice");
  Advance(1500);
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kAway);
  ASSERT_TRUE(engine_.RecordActivity(a, "typing", "", JsonText()).ok());
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kOnline);
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 1500);
}

class SmallActivityTest : public EngineTest {
 protected:
  static EngineConfig Config() {
    EngineConfig c = DefaultConfig();
    c.activities_per_user = 3;
    c.max_idle_users = 2;
    return c;
  }
  SmallActivityTest() : EngineTest(Config()) {}
};

TEST_F(SmallActivityTest, ActivityRecordsAreBounded) {
  auto a = Connect("alice");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(engine_.RecordActivity(a, "k", "", J(std::to_string(i))).ok());
  }
  auto all = engine_.GetActivities("alice", 50, std::nullopt);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].data.text(), "9");
}

TEST_F(SmallActivityTest, IdleUsersAreForgottenOldestFirst) {
  for (std::string id : {"u1", "u2", "u3"}) {
    auto c = Connect(id);
    ASSERT_TRUE(engine_.SetStatus(c, Presence::kDnd, std::nullopt).ok());
    ASSERT_TRUE(engine_.Close(c).ok());
    clock_.Advance(1);
  }
  EXPECT_EQ(engine_.user_count(), 2u);
  EXPECT_EQ(engine_.GetStatus("u1").last_seen, std::nullopt);  // forgotten
  EXPECT_EQ(engine_.GetStatus("u3").last_seen, kStart + 2);
  // A returning user remembers the status set by hand.
  auto c = Connect("u3");
  EXPECT_EQ(engine_.GetStatus("u3").status, Presence::kDnd);
  (void)c;
}

TEST_F(StatusTest, WhoListsUsersNotOfflineOptionallyByChannel) {
  auto a = Connect("alice");
  auto a2 = Connect("alice", "phone");
  auto b = Connect("bob");
  auto c = Connect("carol");
  ASSERT_TRUE(engine_.Enter(a, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(a2, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.Enter(b, "room", std::nullopt, std::nullopt).ok());
  ASSERT_TRUE(engine_.SetStatus(b, Presence::kDnd, std::nullopt).ok());
  ASSERT_TRUE(engine_.SetStatus(c, Presence::kOffline, std::nullopt).ok());
  auto in_room = engine_.Who("room");
  ASSERT_EQ(in_room.size(), 2u);  // alice once, despite two members
  EXPECT_EQ(in_room[0].client_id, "alice");
  EXPECT_EQ(in_room[1].client_id, "bob");
  EXPECT_EQ(in_room[1].status, Presence::kDnd);
  EXPECT_EQ(engine_.Who(std::nullopt).size(), 2u);  // carol appears offline
  EXPECT_TRUE(engine_.Who("nowhere").empty());
}

TEST_F(StatusTest, RestoredUsersKeepTheirStatusAndLastSeen) {
  engine_.RestoreUser("ann", {Presence::kDnd, std::string("Away")}, kStart - 5000);
  StatusView v = engine_.GetStatus("ann");
  EXPECT_EQ(v.status, Presence::kOffline);
  EXPECT_EQ(v.text, "Away");
  EXPECT_EQ(v.last_seen, kStart - 5000);
  auto a = Connect("ann");
  EXPECT_EQ(engine_.GetStatus("ann").status, Presence::kDnd);
  // Known users are not overwritten by what the store remembers.
  engine_.RestoreUser("ann", {Presence::kAway, std::nullopt}, 1);
  EXPECT_EQ(engine_.GetStatus("ann").status, Presence::kDnd);
  ASSERT_TRUE(engine_.SettingsOf("ann").has_value());
  EXPECT_EQ(engine_.SettingsOf("ann")->text, "Away");
  EXPECT_FALSE(engine_.SettingsOf("nobody").has_value());
  (void)a;
}

TEST_F(StatusTest, CheckpointSaysConnectedUsersWereSeenNowExceptWhenAppearingOffline) {
  auto a = Connect("ann");
  auto b = Connect("bob");
  clock_.Advance(100);
  ASSERT_TRUE(engine_.SetStatus(b, Presence::kOffline, std::nullopt).ok());  // frozen at +100
  clock_.Advance(5000);
  auto points = engine_.LastSeenCheckpoint();
  std::sort(points.begin(), points.end());
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0], std::make_pair(std::string("ann"), kStart + 5100));
  EXPECT_EQ(points[1], std::make_pair(std::string("bob"), kStart + 100));
  ASSERT_TRUE(engine_.Close(a).ok());
  EXPECT_EQ(engine_.LastSeenCheckpoint().size(), 1u);
}

TEST_F(StatusTest, ComingOnlineAndGoingOfflineAreReportedWithTheirTime) {
  // The dispatcher stores lastSeen on both: a crash soon after a login must not leave it unset.
  clock_.Advance(10);
  auto a = Connect("ann");
  EXPECT_EQ(engine_.GetStatus("ann").last_seen, kStart + 10);  // what is stored at login
  auto a2 = Connect("ann");
  clock_.Advance(40);
  ASSERT_TRUE(engine_.Close(a).ok());
  ASSERT_TRUE(engine_.Close(a2).ok());
  ASSERT_EQ(sink_.connectivity.size(), 2u);  // first connection in, last one out
  EXPECT_EQ(sink_.connectivity[0].online, true);
  EXPECT_EQ(sink_.connectivity[0].at, kStart + 10);
  EXPECT_EQ(sink_.connectivity[1].online, false);
  EXPECT_EQ(sink_.connectivity[1].at, kStart + 50);
}

TEST_F(StatusTest, CheckpointNeverStoresZero) {
  // Appearing offline before ever being seen freezes "never" (0): a checkpoint must not write
  // that over whatever the store has.
  ASSERT_TRUE(engine_.SetStatusOf("ann", Presence::kOffline, std::nullopt).ok());
  auto a = Connect("ann");
  EXPECT_EQ(engine_.GetStatus("ann").last_seen, std::nullopt);
  EXPECT_TRUE(engine_.LastSeenCheckpoint().empty());
  engine_.RestoreUser("bob", {Presence::kOffline, std::nullopt}, 0);  // stored without lastSeen
  auto b = Connect("bob");
  EXPECT_TRUE(engine_.LastSeenCheckpoint().empty());
  (void)a;
  (void)b;
}

TEST_F(StatusTest, CheckpointOfAUserWhoseConnectionsAreAllInGraceIsWhenTheDropWasNoticed) {
  // "Seen now" would store a time later than the lastSeen the user ends with (the drop), and the
  // store never moves lastSeen backwards.
  auto a = Connect("ann", "web", 2000);
  clock_.Advance(100);
  ASSERT_TRUE(engine_.Drop(a).ok());
  clock_.Advance(500);
  auto points = engine_.LastSeenCheckpoint();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].second, kStart + 100);
  Advance(2000);  // the grace period ends: offline
  EXPECT_EQ(engine_.GetStatus("ann").status, Presence::kOffline);
  EXPECT_EQ(engine_.GetStatus("ann").last_seen, kStart + 100);
  // With another device still live, the user is seen now.
  auto b = Connect("bob", "web", 2000);
  auto b2 = Connect("bob", "phone", 2000);
  ASSERT_TRUE(engine_.Drop(b).ok());
  clock_.Advance(700);
  points = engine_.LastSeenCheckpoint();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0], std::make_pair(std::string("bob"), clock_.NowMs()));
  (void)b2;
}

TEST_F(StatusTest, AppearingOfflineFreezesNoEarlierThanTheLastCheckpoint) {
  // A backend (not device activity) makes an idle connected user appear offline after a
  // checkpoint stored "seen now": the frozen lastSeen is that stored value, not the older last
  // activity, so memory and disk agree after a restart.
  auto a = Connect("ann");
  clock_.Advance(3000);
  auto points = engine_.LastSeenCheckpoint();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].second, kStart + 3000);
  clock_.Advance(100);
  auto s = engine_.SetStatusOf("ann", Presence::kOffline, std::nullopt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->last_seen, kStart + 3000);
  clock_.Advance(5000);
  points = engine_.LastSeenCheckpoint();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].second, kStart + 3000);  // frozen
  (void)a;
}

TEST_F(StatusTest, WatchingTheSameIdManyTimesIsOneWatch) {
  auto bob = Connect("bob");
  std::vector<std::string> ids(8000, "alice");
  ids.push_back("carol");
  ids.push_back("alice");
  auto w = engine_.Watch(bob, ids);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 2u);  // each watched user once, in first-seen order
  EXPECT_EQ((*w)[0].client_id, "alice");
  EXPECT_EQ((*w)[1].client_id, "carol");
  // Watching again returns them again, once each, and adds nothing.
  std::vector<std::string> again{"carol", "alice", "carol"};
  auto w2 = engine_.Watch(bob, again);
  ASSERT_TRUE(w2.ok());
  ASSERT_EQ(w2->size(), 2u);
  EXPECT_EQ((*w2)[0].client_id, "carol");
  sink_.Clear();
  auto a = Connect("alice");
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].recipients, (std::vector<ConnectionHandle>{a, bob}));  // bob once
  // One unwatch (even of a repeated id) ends the one watch.
  std::vector<std::string> unwatch{"alice", "alice"};
  ASSERT_TRUE(engine_.Unwatch(bob, unwatch).ok());
  ASSERT_TRUE(engine_.SetStatus(a, Presence::kAway, std::nullopt).ok());
  EXPECT_EQ(sink_.statuses.back().recipients, std::vector<ConnectionHandle>{a});
}

TEST_F(StatusTest, BackendsCanSetAUsersStatus) {
  auto s = engine_.SetStatusOf("alice", Presence::kDnd, std::optional<std::string>("Away"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, Presence::kOffline);  // not connected
  EXPECT_EQ(s->text, "Away");
  auto a = Connect("alice");
  EXPECT_EQ(engine_.GetStatus("alice").status, Presence::kDnd);
  EXPECT_EQ(engine_.SetStatusOf("", Presence::kDnd, std::nullopt).error().code,
            ErrorCode::kBadRequest);
  (void)a;
}

}  // namespace
}  // namespace presenced::engine
