// Per-device status (docs/protocol.md, "Per-device status"): each rule of how a user's status
// follows from its devices' own statuses and its own manual status; hidden devices; the pushes;
// watching every user; activity recorded by a backend; the sync report.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

namespace presenced::engine {
namespace {

class DeviceStatusTest : public EngineTest {
 protected:
  // Connects and returns the handle and the connectionId.
  std::pair<ConnectionHandle, std::string> Device(std::string_view client, std::string_view name,
                                                  TimeMs remain = 2000) {
    ConnectionHandle h = Connect(client, name, remain);
    return {h, last_connection_id_};
  }

  Presence StatusOf(std::string_view client) { return engine_.GetStatus(client).status; }

  DeviceChange Set(ConnectionHandle h, Presence p, std::optional<std::string_view> id = {}) {
    auto r = engine_.SetDeviceStatus(h, id, p);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : DeviceChange{};
  }

  const DeviceView* Find(const std::vector<DeviceView>& list, std::string_view connection_id) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const DeviceView& d) { return d.connection_id == connection_id; });
    return it == list.end() ? nullptr : &*it;
  }
};

TEST_F(DeviceStatusTest, APhoneOnDndWhileTheLaptopIsOnlineLeavesTheUserOnline) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [phone, phone_id] = Device("alice", "phone");
  DeviceChange d = Set(phone, Presence::kDnd);
  EXPECT_EQ(d.device.connection_id, phone_id);
  EXPECT_EQ(d.device.status, Presence::kDnd);
  EXPECT_TRUE(d.device.manual);
  EXPECT_EQ(d.status.status, Presence::kOnline);
  EXPECT_EQ(StatusOf("alice"), Presence::kOnline);

  const auto devices = engine_.Devices("alice", "bob");
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(Find(devices, phone_id)->status, Presence::kDnd);
  EXPECT_TRUE(Find(devices, phone_id)->manual);
  EXPECT_EQ(Find(devices, laptop_id)->status, Presence::kOnline);
  EXPECT_FALSE(Find(devices, laptop_id)->manual);
}

TEST_F(DeviceStatusTest, TheMostAvailableDeviceDecidesOnlineThenDndThenAwayThenOffline) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [phone, phone_id] = Device("alice", "phone");
  (void)laptop_id;
  (void)phone_id;
  Set(phone, Presence::kDnd);
  // The laptop goes away by hand: no device is online, one is dnd.
  EXPECT_EQ(Set(laptop, Presence::kAway).status.status, Presence::kDnd);
  // Away by idle time counts as away too.
  Set(laptop, Presence::kOnline);
  Advance(1000);  // away_after_ms: both idle; the phone stays dnd (set by hand)
  EXPECT_EQ(StatusOf("alice"), Presence::kDnd);
  // The phone goes away by hand: away beats offline.
  Set(phone, Presence::kAway);
  Advance(4000);  // the laptop is idle past offline_after_ms: offline by idle time
  EXPECT_EQ(engine_.Devices("alice", "alice")[0].status, Presence::kOffline);
  EXPECT_EQ(StatusOf("alice"), Presence::kAway);
  // Every device offline: the user is offline.
  Set(phone, Presence::kOffline);
  EXPECT_EQ(StatusOf("alice"), Presence::kOffline);
}

TEST_F(DeviceStatusTest, AUsersOwnManualStatusWinsOverEveryDevice) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [phone, phone_id] = Device("alice", "phone");
  (void)phone_id;
  (void)laptop_id;
  ASSERT_TRUE(engine_.SetStatus(laptop, Presence::kAway, std::nullopt).ok());
  EXPECT_EQ(StatusOf("alice"), Presence::kAway);  // both devices online, the user away
  EXPECT_EQ(Set(phone, Presence::kDnd).status.status, Presence::kAway);
  ASSERT_TRUE(engine_.SetStatus(laptop, Presence::kDnd, std::nullopt).ok());
  Set(phone, Presence::kOffline);
  Set(laptop, Presence::kOffline);
  EXPECT_EQ(StatusOf("alice"), Presence::kDnd);  // even with every device hidden
  // Back to automatic: now the devices decide.
  ASSERT_TRUE(engine_.SetStatus(laptop, Presence::kOnline, std::nullopt).ok());
  EXPECT_EQ(StatusOf("alice"), Presence::kOffline);
  Set(phone, Presence::kOnline);
  EXPECT_EQ(StatusOf("alice"), Presence::kOnline);
}

TEST_F(DeviceStatusTest, OnlineReturnsADeviceToItsIdleStatus) {
  auto [phone, phone_id] = Device("alice", "phone");
  auto [laptop, laptop_id] = Device("alice", "laptop");
  (void)laptop;
  Set(phone, Presence::kDnd);
  Advance(5000);  // past offline_after_ms: idle time says offline, the hand says dnd
  EXPECT_EQ(StatusOf("alice"), Presence::kDnd);
  // Returning to automatic from another device: the phone is idle, so offline.
  DeviceChange d = Set(laptop, Presence::kOnline, phone_id);
  EXPECT_EQ(d.device.status, Presence::kOffline);
  EXPECT_FALSE(d.device.manual);
  // The laptop's own call was its activity: online.
  EXPECT_EQ(d.status.status, Presence::kOnline);
  EXPECT_EQ(Find(engine_.Devices("alice", "alice"), laptop_id)->status, Presence::kOnline);
}

TEST_F(DeviceStatusTest, ADeviceSetOfflineIsHiddenFromOthers) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  clock_.Advance(10);
  auto [phone, phone_id] = Device("alice", "phone");
  // The phone is the most recently active device, until it hides.
  EXPECT_EQ(engine_.GetStatus("alice").active_device, "phone");
  clock_.Advance(10);
  Set(phone, Presence::kOffline);
  EXPECT_EQ(engine_.GetStatus("alice").active_device, "laptop");
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 20);
  // Activity on the hidden phone moves neither lastSeen nor the active device.
  clock_.Advance(100);
  ASSERT_TRUE(engine_.Touch(phone).ok());
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 20);
  EXPECT_EQ(engine_.GetStatus("alice").active_device, "laptop");
  // Others do not see it; the user does, as offline and set by hand.
  auto others = engine_.Devices("alice", "bob");
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].connection_id, laptop_id);
  EXPECT_TRUE(others[0].active);
  auto own = engine_.Devices("alice", "alice");
  ASSERT_EQ(own.size(), 2u);
  EXPECT_EQ(Find(own, phone_id)->status, Presence::kOffline);
  EXPECT_TRUE(Find(own, phone_id)->manual);
  EXPECT_FALSE(Find(own, phone_id)->active);
  // With the laptop gone, the user is offline and out of `who`; lastSeen is the laptop's leaving.
  clock_.Advance(5);
  ASSERT_TRUE(engine_.Close(laptop).ok());
  EXPECT_EQ(StatusOf("alice"), Presence::kOffline);
  EXPECT_EQ(engine_.GetStatus("alice").active_device, std::nullopt);
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 125);
  EXPECT_TRUE(engine_.Who(std::nullopt).empty());
  // The hidden phone leaving later is not seen either.
  clock_.Advance(50);
  ASSERT_TRUE(engine_.Close(phone).ok());
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 125);
}

TEST_F(DeviceStatusTest, AHiddenDeviceDroppingAbruptlyIsNotSeenLeaving) {
  auto [phone, phone_id] = Device("alice", "phone");
  (void)phone_id;
  Set(phone, Presence::kOffline);
  clock_.Advance(300);
  ASSERT_TRUE(engine_.Drop(phone).ok());
  Advance(2000);  // the grace ends
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart);
}

TEST_F(DeviceStatusTest, TheCheckpointDoesNotSeeAUserWhoseLiveDevicesAreHidden) {
  auto [phone, phone_id] = Device("alice", "phone");
  (void)phone_id;
  Set(phone, Presence::kOffline);
  clock_.Advance(700);
  auto checkpoint = engine_.LastSeenCheckpoint();
  ASSERT_EQ(checkpoint.size(), 1u);
  EXPECT_EQ(checkpoint[0].second, kStart);  // frozen, not "seen now"
  Set(phone, Presence::kOnline);
  checkpoint = engine_.LastSeenCheckpoint();
  EXPECT_EQ(checkpoint[0].second, kStart + 700);
}

TEST_F(DeviceStatusTest, OwnDevicesHearEveryChangeAndWatchersOnlyTheUsersStatus) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [phone, phone_id] = Device("alice", "phone");
  (void)laptop_id;
  auto bob = Connect("bob");
  std::vector<std::string> ids{"alice"};
  ASSERT_TRUE(engine_.Watch(bob, ids).ok());
  sink_.Clear();
  // The user's status does not change: only alice's devices hear, with the device named.
  Set(laptop, Presence::kDnd, phone_id);
  ASSERT_EQ(sink_.statuses.size(), 1u);
  const RecordedStatus& own = sink_.statuses[0];
  EXPECT_EQ(own.recipients, (std::vector<ConnectionHandle>{laptop, phone}));
  EXPECT_EQ(own.status, Presence::kOnline);
  EXPECT_EQ(own.previous, Presence::kOnline);
  EXPECT_EQ(own.device_connection_id, phone_id);
  EXPECT_EQ(own.device_status, Presence::kDnd);
  EXPECT_TRUE(own.device_manual);
  // Now it does: alice's devices hear with the device, bob without.
  sink_.Clear();
  Set(laptop, Presence::kAway);
  ASSERT_EQ(sink_.statuses.size(), 2u);
  EXPECT_EQ(sink_.statuses[0].recipients, (std::vector<ConnectionHandle>{laptop, phone}));
  EXPECT_EQ(sink_.statuses[0].status, Presence::kDnd);
  EXPECT_EQ(sink_.statuses[0].previous, Presence::kOnline);
  EXPECT_EQ(sink_.statuses[0].device_status, Presence::kAway);
  EXPECT_EQ(sink_.statuses[1].recipients, std::vector<ConnectionHandle>{bob});
  EXPECT_EQ(sink_.statuses[1].status, Presence::kDnd);
  EXPECT_EQ(sink_.statuses[1].device_connection_id, std::nullopt);
}

TEST_F(DeviceStatusTest, OnlyTheUsersOwnLiveConnectionsCanBeSet) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [bob, bob_id] = Device("bob", "phone");
  (void)laptop_id;
  (void)bob;
  auto other = engine_.SetDeviceStatus(laptop, std::string_view(bob_id), Presence::kDnd);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(engine_.SetDeviceStatus(laptop, std::string_view("nope"), Presence::kDnd).ok());
  EXPECT_FALSE(engine_.SetDeviceStatus(0, std::nullopt, Presence::kDnd).ok());
  EXPECT_FALSE(engine_.SetDeviceStatusOf("alice", bob_id, Presence::kDnd).ok());
  auto nobody = engine_.SetDeviceStatusOf("carol", bob_id, Presence::kDnd);
  ASSERT_FALSE(nobody.ok());
  EXPECT_EQ(nobody.error().code, ErrorCode::kNotFound);
  // Nothing changed.
  EXPECT_FALSE(engine_.Devices("bob", "bob")[0].manual);
}

TEST_F(DeviceStatusTest, SettingAnotherDeviceIsActivityOfTheCallerOnly) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  auto [phone, phone_id] = Device("alice", "phone");
  (void)phone;
  Advance(1000);  // both away by idle time
  EXPECT_EQ(StatusOf("alice"), Presence::kAway);
  DeviceChange d = Set(laptop, Presence::kDnd, phone_id);
  EXPECT_EQ(d.status.status, Presence::kOnline);  // the laptop is active again
  EXPECT_EQ(Find(engine_.Devices("alice", "alice"), laptop_id)->last_seen, kStart + 1000);
  EXPECT_EQ(Find(engine_.Devices("alice", "alice"), phone_id)->last_seen, kStart);
}

TEST_F(DeviceStatusTest, ABackendSetsADeviceWithoutActivity) {
  auto [laptop, laptop_id] = Device("alice", "laptop");
  (void)laptop;
  Advance(1000);
  auto d = engine_.SetDeviceStatusOf("alice", laptop_id, Presence::kDnd);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status.status, Presence::kDnd);
  EXPECT_EQ(d->device.last_seen, kStart);
  auto back = engine_.SetDeviceStatusOf("alice", laptop_id, Presence::kOnline);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->status.status, Presence::kAway);  // still idle
}

TEST_F(DeviceStatusTest, ADeviceKeepsItsStatusThroughGraceAndResume) {
  auto [phone, phone_id] = Device("alice", "phone", 5000);
  const std::string key = last_key_;
  Set(phone, Presence::kDnd);
  ASSERT_TRUE(engine_.Drop(phone).ok());
  // In its grace period it is still a live device of the user, and a backend may still set it.
  EXPECT_EQ(StatusOf("alice"), Presence::kDnd);
  ASSERT_TRUE(engine_.SetDeviceStatusOf("alice", phone_id, Presence::kAway).ok());
  auto resumed = engine_.Resume(key, "alice", 5000);
  ASSERT_TRUE(resumed.ok());
  auto own = engine_.Devices("alice", "alice");
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].status, Presence::kAway);
  EXPECT_TRUE(own[0].manual);
}

// Status pushes are not events of a channel's ring: a connection that resumes gets, once, the
// current status of every user it would have heard of while it was away (docs/protocol.md,
// "Resume"), so a watcher never keeps showing a user who went offline meanwhile.
TEST_F(DeviceStatusTest, AResumedWatcherGetsTheStatusesItMissed) {
  auto [laptop, laptop_id] = Device("alice", "laptop", 5000);
  const std::string key = last_key_;
  auto phone = Connect("alice", "phone");
  auto bob = Connect("bob");
  auto carol = Connect("carol");
  (void)Connect("dave");
  std::vector<std::string> ids{"bob", "carol"};
  ASSERT_TRUE(engine_.Watch(laptop, ids).ok());
  Advance(10);
  ASSERT_TRUE(engine_.Drop(laptop).ok());
  Advance(10);
  ASSERT_TRUE(engine_.SetStatus(carol, Presence::kDnd, std::nullopt).ok());
  Advance(10);
  ASSERT_TRUE(engine_.Close(bob).ok());  // offline on all devices
  Advance(10);
  ASSERT_TRUE(engine_.SetStatus(phone, Presence::kAway, std::nullopt).ok());  // alice herself
  (void)Connect("erin");                                                      // not watched
  Advance(10);
  auto r = engine_.Resume(key, "alice", 5000);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->statuses.size(), 3u);  // oldest change first (then by clientId)
  EXPECT_EQ(r->statuses[0].status.client_id, "carol");
  EXPECT_EQ(r->statuses[0].status.status, Presence::kDnd);
  EXPECT_EQ(r->statuses[0].previous, Presence::kOnline);
  EXPECT_EQ(r->statuses[1].status.client_id, "bob");
  EXPECT_EQ(r->statuses[1].status.status, Presence::kOffline);
  EXPECT_EQ(r->statuses[2].status.client_id, "alice");
  EXPECT_EQ(r->statuses[2].status.status, Presence::kAway);
  EXPECT_EQ(r->statuses[2].previous, Presence::kOnline);
  EXPECT_FALSE(r->statuses[2].device.has_value());
  // Its own user's push counts for the sync report.
  SyncReport sync = engine_.SyncState("alice");
  auto it = std::find_if(sync.devices.begin(), sync.devices.end(),
                         [&](const auto& d) { return d.connection_id == laptop_id; });
  ASSERT_NE(it, sync.devices.end());
  EXPECT_TRUE(it->in_sync);
  // Nothing changed during a second, quiet gap: nothing to catch up.
  const std::string key2(r->connection.connection_key);
  Advance(10);
  ASSERT_TRUE(engine_.Drop(laptop).ok());
  Advance(10);
  auto again = engine_.Resume(key2, "alice", 5000);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->statuses.empty());
}

// Resuming is activity: an idle device's user comes back online, and the push it gets says so
// (not the status from before the resume).
TEST_F(DeviceStatusTest, AResumedIdleDeviceGetsItsUsersStatusAfterTheResume) {
  auto phone = Connect("alice", "phone", 10000);
  const std::string key = last_key_;
  Advance(1500);  // idle: away
  ASSERT_EQ(StatusOf("alice"), Presence::kAway);
  ASSERT_TRUE(engine_.Drop(phone).ok());
  Advance(10);
  std::optional<std::optional<std::string>> text{std::optional<std::string>("lunch")};
  ASSERT_TRUE(engine_.SetStatusOf("alice", std::nullopt, text).ok());
  Advance(10);
  auto r = engine_.Resume(key, "alice", 10000);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->statuses.size(), 1u);
  EXPECT_EQ(r->statuses[0].status.status, Presence::kOnline);
  EXPECT_EQ(r->statuses[0].status.text, "lunch");
  EXPECT_EQ(r->statuses[0].previous, Presence::kAway);
  EXPECT_EQ(StatusOf("alice"), Presence::kOnline);
}

TEST_F(DeviceStatusTest, AResumedAllWatcherGetsEveryChangedUser) {
  auto observer = Connect(std::string(kObserverClientId), "observer", 5000);
  const std::string key = last_key_;
  auto alice = Connect("alice");
  (void)Connect("bob");
  ASSERT_TRUE(engine_.WatchAll(observer).ok());
  Advance(10);
  ASSERT_TRUE(engine_.Drop(observer).ok());
  Advance(10);
  ASSERT_TRUE(engine_.Close(alice).ok());
  Advance(10);
  (void)Connect("carol");
  (void)Connect(std::string(kObserverClientId), "observer");  // observers are nobody
  Advance(10);
  auto r = engine_.Resume(key, std::string(kObserverClientId), 5000);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->statuses.size(), 2u);
  EXPECT_EQ(r->statuses[0].status.client_id, "alice");
  EXPECT_EQ(r->statuses[0].status.status, Presence::kOffline);
  EXPECT_EQ(r->statuses[1].status.client_id, "carol");
  EXPECT_EQ(r->statuses[1].previous, Presence::kOffline);
}

TEST_F(DeviceStatusTest, AnAllWatcherHearsEveryUserOnceAndNotItsOwn) {
  auto observer = Connect(std::string(kObserverClientId), "observer");
  auto alice = Connect("alice");
  auto w = engine_.WatchAll(observer);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 1u);  // who is online now
  EXPECT_EQ((*w)[0].client_id, "alice");
  std::vector<std::string> ids{"alice"};
  ASSERT_TRUE(engine_.Watch(observer, ids).ok());  // watching alice too: still one push
  sink_.Clear();
  auto bob = Connect("bob");
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].client_id, "bob");
  EXPECT_EQ(sink_.statuses[0].recipients, (std::vector<ConnectionHandle>{bob, observer}));
  ASSERT_TRUE(engine_.SetStatus(alice, Presence::kDnd, std::nullopt).ok());
  ASSERT_EQ(sink_.statuses.size(), 2u);
  EXPECT_EQ(sink_.statuses[1].recipients, (std::vector<ConnectionHandle>{alice, observer}));
  // Another observer connecting is not a user it hears of.
  sink_.Clear();
  (void)Connect(std::string(kObserverClientId), "observer");
  for (const auto& s : sink_.statuses) {
    EXPECT_EQ(std::count(s.recipients.begin(), s.recipients.end(), observer), 0);
  }
  ASSERT_TRUE(engine_.UnwatchAll(observer).ok());
  ASSERT_TRUE(engine_.Unwatch(observer, ids).ok());
  sink_.Clear();
  ASSERT_TRUE(engine_.Close(bob).ok());
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].recipients, std::vector<ConnectionHandle>{});
}

TEST_F(DeviceStatusTest, AnAllWatcherThatGoesAwayHearsNoMore) {
  auto observer = Connect(std::string(kObserverClientId), "observer");
  ASSERT_TRUE(engine_.WatchAll(observer).ok());
  ASSERT_TRUE(engine_.WatchAll(observer).ok());  // twice is once
  ASSERT_TRUE(engine_.Close(observer).ok());
  sink_.Clear();
  (void)Connect("alice");
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(sink_.statuses[0].recipients.size(), 1u);  // alice's own connection only
  EXPECT_FALSE(engine_.WatchAll(observer).ok());
}

TEST_F(DeviceStatusTest, ABackendRecordsActivityForAUser) {
  clock_.Advance(40);
  auto a = engine_.RecordActivityOf("alice", "message", "room", J(R"({"n":1})"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, "message");
  EXPECT_EQ(a->channel, "room");
  EXPECT_EQ(a->timestamp, kStart + 40);
  EXPECT_EQ(a->connection_id, "");
  ASSERT_EQ(sink_.activities.size(), 1u);
  EXPECT_EQ(sink_.activities[0].first, "alice");
  // It moves lastSeen; the user stays offline (no connection).
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 40);
  EXPECT_EQ(StatusOf("alice"), Presence::kOffline);
  EXPECT_EQ(engine_.GetActivities("alice", 10, std::nullopt).size(), 1u);
  // Appearing offline freezes lastSeen against it too.
  auto phone = Connect("alice");
  clock_.Advance(10);
  ASSERT_TRUE(engine_.SetStatus(phone, Presence::kOffline, std::nullopt).ok());
  clock_.Advance(10);
  ASSERT_TRUE(engine_.RecordActivityOf("alice", "message", "", JsonText()).ok());
  EXPECT_EQ(engine_.GetStatus("alice").last_seen, kStart + 50);  // when it began
  // Bad input changes nothing.
  EXPECT_EQ(engine_.RecordActivityOf("alice", "", "", JsonText()).error().code,
            ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.RecordActivityOf("", "k", "", JsonText()).error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(engine_.RecordActivityOf(std::string(1000, 'x'), "k", "", JsonText()).error().code,
            ErrorCode::kTooLarge);
  EXPECT_EQ(engine_.GetActivities("alice", 10, std::nullopt).size(), 2u);
}

TEST_F(DeviceStatusTest, TheSyncStateReportsWithoutPushing) {
  auto laptop = Connect("alice", "laptop");
  (void)laptop;
  auto phone = Connect("alice", "phone", 5000);
  ASSERT_TRUE(engine_.Drop(phone).ok());
  sink_.Clear();
  SyncReport state = engine_.SyncState("alice");
  EXPECT_TRUE(sink_.statuses.empty());
  ASSERT_EQ(state.devices.size(), 2u);
  EXPECT_TRUE(state.devices[0].in_sync);
  EXPECT_FALSE(state.devices[1].in_sync);  // in its grace period
  clock_.Advance(5);
  SyncReport synced = engine_.SyncStatus("alice");
  ASSERT_EQ(sink_.statuses.size(), 1u);
  EXPECT_EQ(synced.devices[0].last_synced_at, kStart + 5);
  EXPECT_EQ(engine_.SyncState("nobody").devices.size(), 0u);
}

TEST_F(DeviceStatusTest, ASavedEngineKeepsDeviceStatusesAndAllWatchers) {
  auto observer = Connect(std::string(kObserverClientId), "observer");
  auto [phone, phone_id] = Device("alice", "phone");
  auto [laptop, laptop_id] = Device("alice", "laptop");
  (void)laptop;
  ASSERT_TRUE(engine_.WatchAll(observer).ok());
  Set(phone, Presence::kOffline);
  const std::string state = engine_.SaveState();

  RecordingSink sink;
  Engine loaded(DefaultConfig(), clock_, random_, sink);
  ASSERT_TRUE(loaded.LoadState(state).ok());
  EXPECT_EQ(loaded.SaveState(), state);
  auto own = loaded.Devices("alice", "alice");
  EXPECT_TRUE(Find(own, phone_id)->manual);
  EXPECT_EQ(loaded.Devices("alice", "bob").size(), 1u);
  ASSERT_TRUE(loaded.SetStatus(laptop, Presence::kDnd, std::nullopt).ok());
  ASSERT_FALSE(sink.statuses.empty());
  const auto& r = sink.statuses.back().recipients;
  EXPECT_NE(std::find(r.begin(), r.end(), observer), r.end());
  (void)laptop_id;
}

}  // namespace
}  // namespace presenced::engine
