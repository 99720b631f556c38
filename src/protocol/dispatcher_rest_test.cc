// Every REST route of docs/protocol.md through Dispatcher::Http, with its status codes, as the
// server hands requests over (the user a route acts for is read from the store by the Dispatcher).
#include <gtest/gtest.h>

#include <string>

#include "protocol/auth.h"
#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherRestTest : public ProtocolTest {};

TEST_F(DispatcherRestTest, EveryKeyedRouteIs401WithoutOrWithAWrongKey) {
  const std::pair<const char*, const char*> routes[] = {
      {"GET", "/v1/channels"},
      {"GET", "/v1/channels/room/presence"},
      {"GET", "/v1/channels/room/occupancy"},
      {"GET", "/v1/channels/room/history"},
      {"GET", "/v1/users/alice/status"},
      {"PUT", "/v1/users/alice/status"},
      {"GET", "/v1/users/alice/devices"},
      {"GET", "/v1/users/alice/activity"},
      {"GET", "/v1/who"},
      {"POST", "/v1/commands"},
      {"POST", "/v1/tokens"},
  };
  for (const auto& [method, target] : routes) {
    for (std::optional<std::string_view> key :
         {std::optional<std::string_view>(), std::optional<std::string_view>("wrong-key")}) {
      HttpResponse r = Rest(method, target, "{}", key);
      EXPECT_EQ(r.status, 401u) << method << " " << target;
      EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "unauthorized") << method << " " << target;
    }
  }
}

TEST_F(DispatcherRestTest, UnknownRoutesAre404AndWrongMethods405) {
  for (const char* target : {"/v1/nothing", "/v1/channels/room/members", "/v1/users/alice",
                             "/v2/who", "/v1/channels/room/presence/alice/extra"}) {
    HttpResponse r = Rest("GET", target);
    EXPECT_EQ(r.status, 404u) << target;
    EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "not_found") << target;
  }
  const std::pair<const char*, const char*> wrong[] = {
      {"POST", "/v1/channels/room/presence"},
      {"DELETE", "/v1/users/alice/status"},
      {"POST", "/v1/channels"},
      {"GET", "/v1/commands"},
      {"GET", "/v1/tokens"},
      {"PUT", "/v1/who"},
      {"POST", "/v1/users/alice/devices"},
  };
  for (const auto& [method, target] : wrong) {
    HttpResponse r = Rest(method, target, "{}");
    EXPECT_EQ(r.status, 405u) << method << " " << target;
    EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "method_not_allowed") << method << " " << target;
  }
}

TEST_F(DispatcherRestTest, ChannelPresenceAndOccupancy) {
  TestConn a = Connect("alice");
  TestConn a2 = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a, "enter", {{"channel", "room"}, {"data", 1}});
  Ok(a2, "enter", {{"channel", "room"}});
  Ok(b, "enter", {{"channel", "room"}});
  HttpResponse r = Rest("GET", "/v1/channels/room/presence");
  EXPECT_EQ(r.status, 200u);
  json::object body = ParseObject(r.body);
  EXPECT_EQ(body.at("members").as_array().size(), 3u);
  EXPECT_EQ(Str(body, "epoch"), kTestEpoch);
  EXPECT_EQ(Int(body, "serial"), Int(Ok(b, "get", {{"channel", "room"}}), "serial"));

  json::object alice = RestJson("GET", "/v1/channels/room/presence?clientId=alice");
  EXPECT_EQ(alice.at("members").as_array().size(), 2u);
  json::object conn = RestJson("GET", "/v1/channels/room/presence?connectionId=" + a.connection_id);
  ASSERT_EQ(conn.at("members").as_array().size(), 1u);
  EXPECT_EQ(conn.at("members").at(0).at("data"), 1);

  EXPECT_EQ(RestJson("GET", "/v1/channels/room/occupancy"),
            ParseObject(R"({"members":3,"clients":2})"));
  // Percent-encoded names are decoded.
  Ok(a, "enter", {{"channel", "a room/1"}});
  EXPECT_EQ(Int(RestJson("GET", "/v1/channels/a%20room%2F1/occupancy"), "members"), 1);
}

TEST_F(DispatcherRestTest, ChannelHistoryWithParameters) {
  TestConn a = Connect("alice");
  for (int i = 0; i < 3; ++i) {
    clock.Advance(1000);
    Ok(a, "enter", {{"channel", "room"}, {"data", i}});
  }
  json::object back = RestJson("GET", "/v1/channels/room/history?limit=2");
  ASSERT_EQ(back.at("events").as_array().size(), 2u);
  EXPECT_EQ(back.at("events").at(0).at("member").at("data"), 2);
  ASSERT_TRUE(back.contains("next"));
  json::object rest = RestJson(
      "GET", "/v1/channels/room/history?limit=2&cursor=" + std::to_string(Int(back, "next")));
  ASSERT_EQ(rest.at("events").as_array().size(), 1u);
  EXPECT_EQ(rest.at("events").at(0).at("member").at("data"), 0);

  json::object fwd = RestJson("GET", "/v1/channels/room/history?direction=forwards&start=" +
                                         std::to_string(clock.NowMs() - 1000));
  ASSERT_EQ(fwd.at("events").as_array().size(), 2u);
  EXPECT_EQ(fwd.at("events").at(0).at("member").at("data"), 1);

  for (const char* q : {"limit=0", "limit=abc", "direction=up", "start=1.5", "end=x"}) {
    HttpResponse r = Rest("GET", std::string("/v1/channels/room/history?") + q);
    EXPECT_EQ(r.status, 400u) << q;
    EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "bad_request") << q;
  }
}

TEST_F(DispatcherRestTest, ListChannelsByNameWithPaging) {
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  Ok(a, "enter", {{"channel", "b-room"}});
  Ok(a, "enter", {{"channel", "a-room"}});
  Ok(b, "enter", {{"channel", "a-room"}});
  Ok(b, "enter", {{"channel", "c-room"}});
  Ok(b, "leave", {{"channel", "c-room"}});  // empty: not listed
  EXPECT_EQ(RestJson("GET", "/v1/channels"),
            ParseObject(R"({"channels":[{"channel":"a-room","members":2,"clients":2},)"
                        R"({"channel":"b-room","members":1,"clients":1}]})"));
  json::object page = RestJson("GET", "/v1/channels?limit=1");
  ASSERT_EQ(page.at("channels").as_array().size(), 1u);
  EXPECT_EQ(Str(page, "next"), "a-room");
  json::object page2 = RestJson("GET", "/v1/channels?limit=1&after=a-room");
  ASSERT_EQ(page2.at("channels").as_array().size(), 1u);
  EXPECT_EQ(Str(page2.at("channels").at(0).as_object(), "channel"), "b-room");
  EXPECT_FALSE(page2.contains("next"));
  EXPECT_EQ(Rest("GET", "/v1/channels?limit=0").status, 400u);
  EXPECT_EQ(Rest("GET", "/v1/channels?limit=ten").status, 400u);
}

TEST_F(DispatcherRestTest, GetAndPutUserStatus) {
  TestConn a = Connect("alice", Device{"phone"});
  a.peer->Clear();
  json::object st = RestJson("GET", "/v1/users/alice/status");
  EXPECT_EQ(Str(st, "clientId"), "alice");
  EXPECT_EQ(Str(st, "status"), "online");
  EXPECT_EQ(Str(st, "activeDevice"), "phone");

  HttpResponse put = Rest("PUT", "/v1/users/alice/status", R"({"status":"away","text":"brb"})");
  EXPECT_EQ(put.status, 200u);
  json::object set = ParseObject(put.body);
  EXPECT_EQ(Str(set, "status"), "away");
  EXPECT_EQ(Str(set, "text"), "brb");
  auto pushes = a.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0], "previous"), "online");
  EXPECT_EQ(Str(pushes[0], "status"), "away");
  auto stored = store.ReadUser("alice");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->manual, "away");

  // A user never seen is offline with nulls.
  EXPECT_EQ(RestJson("GET", "/v1/users/nobody/status"),
            ParseObject(R"({"clientId":"nobody","status":"offline","text":null,)"
                        R"("lastSeen":null,"activeDevice":null})"));
}

TEST_F(DispatcherRestTest, PutStatusOfAnOfflineUserKeepsWhatTheStoreRemembers) {
  TestConn a = Connect("alice");
  Ok(a, "status.set", {{"text", "on holiday"}});
  Close(a, /*clean=*/true);
  const TimeMs left_at = clock.NowMs();
  DispatcherOptions next = DefaultOptions();
  next.epoch = "run-2";
  Restart(next);  // the engine no longer knows alice; the store does
  json::object set = RestJson("PUT", "/v1/users/alice/status", R"({"status":"dnd"})");
  EXPECT_EQ(Str(set, "text"), "on holiday");
  EXPECT_EQ(Int(set, "lastSeen"), left_at);
  EXPECT_EQ(Str(set, "status"), "offline");  // not connected
  auto stored = store.ReadUser("alice");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->manual, "dnd");
  EXPECT_EQ((*stored)->text, "on holiday");
}

TEST_F(DispatcherRestTest, PutStatusRefusesBadBodies) {
  for (const char* body :
       {"", "not json", "[1]", R"({"status":"busy"})", R"({"text":5})", R"({"status":1e400})"}) {
    HttpResponse r = Rest("PUT", "/v1/users/alice/status", body);
    EXPECT_EQ(r.status, 400u) << body;
    EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "bad_request") << body;
  }
  HttpResponse long_text =
      Rest("PUT", "/v1/users/alice/status", R"({"text":")" + std::string(2000, 't') + "\"}");
  EXPECT_EQ(long_text.status, 413u);
}

TEST_F(DispatcherRestTest, NamesOverTheLimitsAre413AndInvalidUtf8Is400) {
  const std::string long_channel(300, 'c');
  const std::string long_id(300, 'u');
  for (const std::string& target :
       {"/v1/channels/" + long_channel + "/presence", "/v1/channels/" + long_channel + "/history",
        "/v1/users/" + long_id + "/status", "/v1/users/" + long_id + "/devices",
        "/v1/who?channel=" + long_channel}) {
    HttpResponse r = Rest("GET", target);
    EXPECT_EQ(r.status, 413u) << target;
    EXPECT_EQ(ErrorCodeOf(ParseObject(r.body)), "too_large") << target;
  }
  EXPECT_EQ(Rest("GET", "/v1/channels/%FF/presence").status, 400u);
  EXPECT_EQ(Rest("GET", "/v1/who?channel=%C3").status, 400u);
  EXPECT_EQ(Rest("POST", "/v1/tokens", R"({"clientId":")" + long_id + "\"}").status, 413u);
}

TEST_F(DispatcherRestTest, DevicesActivityAndWho) {
  TestConn a = Connect("alice", Device{"phone"});
  TestConn b = Connect("bob");
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "activity", {{"kind", "typing"}, {"channel", "room"}});
  clock.Advance(1000);
  Ok(a, "activity", {{"kind", "click"}});

  json::object devices = RestJson("GET", "/v1/users/alice/devices");
  ASSERT_EQ(devices.at("devices").as_array().size(), 1u);
  const json::object& d = devices.at("devices").at(0).as_object();
  EXPECT_EQ(Str(d, "device"), "phone");
  EXPECT_EQ(Str(d, "connectionId"), a.connection_id);
  EXPECT_EQ(d.at("active"), true);

  json::object activity = RestJson("GET", "/v1/users/alice/activity");
  ASSERT_EQ(activity.at("activities").as_array().size(), 2u);
  EXPECT_EQ(Str(activity.at("activities").at(0).as_object(), "kind"), "click");
  EXPECT_EQ(RestJson("GET", "/v1/users/alice/activity?limit=1").at("activities").as_array().size(),
            1u);
  EXPECT_EQ(RestJson("GET", "/v1/users/alice/activity?since=" + std::to_string(clock.NowMs()))
                .at("activities")
                .as_array()
                .size(),
            1u);
  EXPECT_EQ(Rest("GET", "/v1/users/alice/activity?limit=0").status, 400u);
  EXPECT_EQ(Rest("GET", "/v1/users/alice/activity?since=soon").status, 400u);

  json::object who = RestJson("GET", "/v1/who");
  EXPECT_EQ(who.at("users").as_array().size(), 2u);
  json::object in_room = RestJson("GET", "/v1/who?channel=room");
  ASSERT_EQ(in_room.at("users").as_array().size(), 1u);
  EXPECT_EQ(Str(in_room.at("users").at(0).as_object(), "clientId"), "alice");
  EXPECT_EQ(Rest("GET", "/v1/who?channel=").status, 400u);
}

TEST_F(DispatcherRestTest, PostTokensMintsAWebSocketToken) {
  HttpResponse r =
      Rest("POST", "/v1/tokens", R"({"clientId":"carol","channels":["room-*"],"ttlMs":60000})");
  ASSERT_EQ(r.status, 200u);
  json::object body = ParseObject(r.body);
  EXPECT_EQ(Int(body, "expiresAt"), clock.NowMs() + 60000);
  auto claims = VerifyToken(Str(body, "token"), kTestSecret, clock.NowMs());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->client_id, "carol");
  EXPECT_EQ(claims->channels, (std::vector<std::string>{"room-*"}));

  // The token works for the upgrade, and its patterns hold.
  auto request = UpgradeTarget("/v1/ws?token=" + Str(body, "token"));
  ASSERT_TRUE(request.ok());
  TestConn c = Open(std::move(request).value());
  EXPECT_EQ(Str(c.connected, "clientId"), "carol");
  EXPECT_EQ(ErrorCodeOf(Call(c, "enter", {{"channel", "lobby"}})), "forbidden");

  json::object defaults = RestJson("POST", "/v1/tokens", R"({"clientId":"dave"})");
  EXPECT_EQ(Int(defaults, "expiresAt"), clock.NowMs() + 3600 * 1000);  // an hour

  for (const char* bad :
       {"", "{}", R"({"clientId":5})", R"({"clientId":""})", R"({"clientId":"x","ttlMs":999})",
        R"({"clientId":"x","ttlMs":2592000001})", R"({"clientId":"x","ttlMs":"1h"})",
        R"({"clientId":"x","channels":"room"})", R"({"clientId":"x","channels":[1]})"}) {
    HttpResponse e = Rest("POST", "/v1/tokens", bad);
    EXPECT_EQ(e.status, 400u) << bad;
    EXPECT_EQ(ErrorCodeOf(ParseObject(e.body)), "bad_request") << bad;
  }
}

TEST_F(DispatcherRestTest, PostCommandsActsForTheClientId) {
  TestConn a = Connect("alice");
  a.peer->Clear();
  HttpResponse r = Rest("POST", "/v1/commands", R"({"clientId":"alice","text":"/presence dnd"})");
  ASSERT_EQ(r.status, 200u);
  json::object body = ParseObject(r.body);
  EXPECT_EQ(Str(body, "text"), "Status set to dnd.");
  EXPECT_EQ(Str(body.at("data").as_object(), "status"), "dnd");
  auto pushes = a.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0], "status"), "dnd");

  for (const char* bad : {"{}", R"({"clientId":"alice"})", R"({"clientId":"alice","text":5})",
                          R"({"text":"/presence"})", "nope"}) {
    EXPECT_EQ(Rest("POST", "/v1/commands", bad).status, 400u) << bad;
  }
}

}  // namespace
}  // namespace presenced::protocol::testing
