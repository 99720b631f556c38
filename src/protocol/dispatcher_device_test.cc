// Per-device status through the wire (device.status.set, its REST route, pushes naming the
// device, `/presence device`), observers watching every user, activity and sync over REST.
#include <gtest/gtest.h>

#include <string>

#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherDeviceTest : public ProtocolTest {};

TEST_F(DispatcherDeviceTest, ADeviceSetsItsOwnStatusAndEveryDeviceOfTheUserHears) {
  TestConn laptop = Connect("alice", Device{"laptop"});
  TestConn phone = Connect("alice", Device{"phone"});
  TestConn bob = Connect("bob");
  Ok(bob, "status.watch", {{"clientIds", json::array{"alice"}}});
  laptop.peer->Clear();
  phone.peer->Clear();
  bob.peer->Clear();

  json::object r = Ok(phone, "device.status.set", {{"status", "dnd"}});
  const json::object& device = r.at("device").as_object();
  EXPECT_EQ(Str(device, "connectionId"), phone.connection_id);
  EXPECT_EQ(Str(device, "device"), "phone");
  EXPECT_EQ(Str(device, "status"), "dnd");
  EXPECT_EQ(device.at("manual"), true);
  EXPECT_EQ(Str(r.at("status").as_object(), "status"), "online");  // the laptop is online

  // Both of alice's devices hear which device changed; bob hears nothing (alice is still online).
  for (TestConn* c : {&laptop, &phone}) {
    auto pushes = c->peer->Take("status");
    ASSERT_EQ(pushes.size(), 1u);
    EXPECT_EQ(Str(pushes[0], "previous"), "online");
    EXPECT_EQ(Str(pushes[0], "status"), "online");
    EXPECT_EQ(Str(pushes[0].at("device").as_object(), "connectionId"), phone.connection_id);
    EXPECT_EQ(Str(pushes[0].at("device").as_object(), "status"), "dnd");
  }
  EXPECT_TRUE(bob.peer->Take("status").empty());

  // The laptop sets itself away: no device online, one dnd -> alice is dnd, and bob hears.
  r = Ok(laptop, "device.status.set", {{"status", "away"}});
  EXPECT_EQ(Str(r.at("status").as_object(), "status"), "dnd");
  auto pushes = bob.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0], "status"), "dnd");
  EXPECT_FALSE(pushes[0].contains("device"));

  json::object devices = Ok(bob, "devices", {{"clientId", "alice"}});
  ASSERT_EQ(devices.at("devices").as_array().size(), 2u);
  for (const auto& d : devices.at("devices").as_array()) {
    EXPECT_EQ(d.as_object().at("manual"), true);
  }
}

TEST_F(DispatcherDeviceTest, ADeviceMaySetAnotherDeviceOfItsUserOnly) {
  TestConn laptop = Connect("alice", Device{"laptop"});
  TestConn phone = Connect("alice", Device{"phone"});
  TestConn bob = Connect("bob");
  json::object r = Ok(laptop, "device.status.set",
                      {{"status", "offline"}, {"connectionId", phone.connection_id}});
  EXPECT_EQ(Str(r.at("device").as_object(), "connectionId"), phone.connection_id);
  // Hidden from others, shown to alice.
  EXPECT_EQ(Ok(bob, "devices", {{"clientId", "alice"}}).at("devices").as_array().size(), 1u);
  EXPECT_EQ(Ok(laptop, "devices").at("devices").as_array().size(), 2u);

  EXPECT_EQ(ErrorCodeOf(Call(bob, "device.status.set",
                             {{"status", "dnd"}, {"connectionId", phone.connection_id}})),
            "not_found");
  EXPECT_EQ(ErrorCodeOf(Call(laptop, "device.status.set", {{"status", "busy"}})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(laptop, "device.status.set", {})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(laptop, "device.status.set", {{"status", 1}})), "bad_request");
  EXPECT_EQ(
      ErrorCodeOf(Call(laptop, "device.status.set", {{"status", "dnd"}, {"connectionId", 5}})),
      "bad_request");
  TestConn o = ConnectObserver();
  EXPECT_EQ(ErrorCodeOf(Call(o, "device.status.set", {{"status", "dnd"}})), "forbidden");
}

TEST_F(DispatcherDeviceTest, ABackendSetsADevicesStatusOverRest) {
  TestConn phone = Connect("alice", Device{"phone"});
  phone.peer->Clear();
  const std::string path = "/v1/users/alice/devices/" + phone.connection_id + "/status";
  HttpResponse r = Rest("PUT", path, R"({"status":"dnd"})");
  ASSERT_EQ(r.status, 200u) << r.body;
  json::object body = ParseObject(r.body);
  EXPECT_EQ(Str(body.at("device").as_object(), "status"), "dnd");
  EXPECT_EQ(Str(body.at("status").as_object(), "status"), "dnd");
  auto pushes = phone.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0].at("device").as_object(), "status"), "dnd");

  EXPECT_EQ(
      Rest("PUT", "/v1/users/bob/devices/" + phone.connection_id + "/status", R"({"status":"dnd"})")
          .status,
      404u);
  EXPECT_EQ(Rest("PUT", "/v1/users/alice/devices/nope/status", R"({"status":"dnd"})").status, 404u);
  EXPECT_EQ(Rest("PUT", path, R"({"status":"gone"})").status, 400u);
  EXPECT_EQ(Rest("PUT", path, "{}").status, 400u);
  EXPECT_EQ(Rest("PUT", path, "not json").status, 400u);
  EXPECT_EQ(Rest("PUT", path, R"({"status":"away"})", "wrong").status, 401u);
  EXPECT_EQ(Rest("GET", path).status, 405u);
  // Nothing of the refused calls stuck.
  json::object devices = RestJson("GET", "/v1/users/alice/devices");
  EXPECT_EQ(Str(devices.at("devices").as_array()[0].as_object(), "status"), "dnd");
}

TEST_F(DispatcherDeviceTest, TheDeviceCommandSetsAndTheDevicesCommandShows) {
  TestConn laptop = Connect("alice", Device{"laptop"});
  TestConn phone = Connect("alice", Device{"phone"});
  json::object r = Ok(phone, "command", {{"text", "/presence device dnd"}});
  EXPECT_EQ(Str(r, "text"), "phone is now dnd; you are online.");
  EXPECT_EQ(Str(r.at("data").as_object().at("device").as_object(), "status"), "dnd");
  r = Ok(phone, "command", {{"text", "/presence devices"}});
  EXPECT_NE(Str(r, "text").find("phone (active, dnd (set)"), std::string::npos) << Str(r, "text");
  r = Ok(phone, "command", {{"text", "/presence device online " + laptop.connection_id}});
  EXPECT_EQ(Str(r, "text"), "laptop is now online (automatic); you are online.");
  r = Ok(phone, "command", {{"text", "/presence device dnd nope"}});
  EXPECT_EQ(Str(r.at("data").at("error").as_object(), "code"), "not_found");
  r = Ok(phone, "command", {{"text", "/presence device busy"}});
  EXPECT_EQ(Str(r.at("data").at("error").as_object(), "code"), "bad_command");
  // Over REST the device must be named.
  json::object rest =
      RestJson("POST", "/v1/commands", R"({"clientId":"alice","text":"/presence device away"})");
  EXPECT_EQ(Str(rest.at("data").at("error").as_object(), "code"), "bad_request");
  rest = RestJson(
      "POST", "/v1/commands",
      R"({"clientId":"alice","text":"/presence device away )" + laptop.connection_id + "\"}");
  EXPECT_EQ(Str(rest.at("data").as_object().at("device").as_object(), "status"), "away");
}

TEST_F(DispatcherDeviceTest, AnObserverWatchesEveryUser) {
  TestConn alice = Connect("alice");
  TestConn o = ConnectObserver();
  json::object r = Ok(o, "status.watch", {{"all", true}});
  ASSERT_EQ(r.at("statuses").as_array().size(), 1u);
  EXPECT_EQ(Str(r.at("statuses").as_array()[0].as_object(), "clientId"), "alice");
  o.peer->Clear();
  TestConn bob = Connect("bob");
  Ok(alice, "status.set", {{"status", "away"}});
  auto pushes = o.peer->Take("status");
  ASSERT_EQ(pushes.size(), 2u);
  EXPECT_EQ(Str(pushes[0], "clientId"), "bob");
  EXPECT_EQ(Str(pushes[0], "previous"), "offline");
  EXPECT_EQ(Str(pushes[1], "clientId"), "alice");
  EXPECT_EQ(Str(pushes[1], "status"), "away");
  Ok(o, "status.unwatch", {{"all", true}});
  Ok(bob, "status.set", {{"status", "dnd"}});
  EXPECT_TRUE(o.peer->Take("status").empty());

  // Users may not; and `all` excludes `clientIds`.
  EXPECT_EQ(ErrorCodeOf(Call(alice, "status.watch", {{"all", true}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(alice, "status.unwatch", {{"all", true}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(o, "status.watch", {{"all", true}, {"clientIds", json::array{}}})),
            "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(o, "status.watch", {{"all", "yes"}})), "bad_request");
  EXPECT_EQ(ErrorCodeOf(Call(o, "status.watch", {{"all", false}})), "bad_request");
}

TEST_F(DispatcherDeviceTest, ABackendRecordsActivityAndReadsItBack) {
  AdvanceTime(25);
  HttpResponse r = Rest("POST", "/v1/users/alice/activity",
                        R"({"kind":"message","channel":"telegram-123","data":{"n":1}})");
  ASSERT_EQ(r.status, 200u) << r.body;
  json::object a = ParseObject(r.body).at("activity").as_object();
  EXPECT_EQ(Str(a, "kind"), "message");
  EXPECT_EQ(Str(a, "channel"), "telegram-123");
  EXPECT_EQ(a.at("data").as_object().at("n"), 1);
  EXPECT_TRUE(a.at("connectionId").is_null());
  const int64_t at = a.at("timestamp").as_int64();
  EXPECT_EQ(at, clock.NowMs());

  RunPosted();
  json::object list = RestJson("GET", "/v1/users/alice/activity");
  ASSERT_EQ(list.at("activities").as_array().size(), 1u);
  EXPECT_TRUE(list.at("activities").as_array()[0].as_object().at("connectionId").is_null());
  EXPECT_EQ(RestJson("GET", "/v1/users/alice/status").at("lastSeen").as_int64(), at);

  EXPECT_EQ(Rest("POST", "/v1/users/alice/activity", "{}").status, 400u);
  EXPECT_EQ(Rest("POST", "/v1/users/alice/activity", R"({"kind":""})").status, 400u);
  EXPECT_EQ(Rest("POST", "/v1/users/alice/activity", R"({"kind":"k","channel":5})").status, 400u);
  EXPECT_EQ(Rest("POST", "/v1/users/alice/activity",
                 R"({"kind":"k","data":")" + std::string(20000, 'x') + "\"}")
                .status,
            413u);
}

TEST_F(DispatcherDeviceTest, SyncOverRestPushesOrOnlyReports) {
  TestConn laptop = Connect("alice", Device{"laptop"});
  laptop.peer->Clear();
  json::object state = RestJson("GET", "/v1/users/alice/sync");
  EXPECT_EQ(state.at("devices").as_int64(), 1);
  EXPECT_EQ(state.at("inSync").as_int64(), 1);
  EXPECT_TRUE(laptop.peer->Take("status").empty());
  AdvanceTime(10);
  json::object synced = RestJson("POST", "/v1/users/alice/sync");
  EXPECT_EQ(synced.at("inSync").as_int64(), 1);
  EXPECT_EQ(synced.at("lastSyncedAt").as_int64(), clock.NowMs());
  EXPECT_EQ(synced.at("perDevice").as_array().size(), 1u);
  EXPECT_EQ(laptop.peer->Take("status").size(), 1u);
  json::object nobody = RestJson("GET", "/v1/users/nobody/sync");
  EXPECT_EQ(nobody.at("devices").as_int64(), 0);
  EXPECT_TRUE(nobody.at("lastSyncedAt").is_null());
  // REST only.
  EXPECT_EQ(ErrorCodeOf(Call(laptop, "sync")), "bad_request");
}

}  // namespace
}  // namespace presenced::protocol::testing
