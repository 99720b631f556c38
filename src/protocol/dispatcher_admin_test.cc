// Authentication and administration through a real Dispatcher without sockets: the token in the
// first frame (and its deadline, exact by the manual clock), token refresh, revocations, admin
// disconnects and server-side members.
#include <gtest/gtest.h>

#include <string>

#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherAdminTest : public ProtocolTest {
 protected:
  // A session upgraded without a token; nothing sent yet.
  TestConn OpenWithoutToken() {
    auto request = UpgradeTarget("/v1/ws?device=laptop");
    EXPECT_TRUE(request.ok());
    EXPECT_TRUE(request->awaiting_auth);
    return Open(std::move(request).value());
  }
  void SendRaw(TestConn& c, std::string_view text) {
    dispatcher().Message(c.session, text, std::chrono::steady_clock::now());
    RunPosted();
  }
  static uint16_t CloseCode(const TestConn& c) {
    return c.peer->closed() ? c.peer->closed()->code : 0;
  }
  TestConn Watcher(std::string_view channel) {
    TestConn w = Connect("watcher");
    Ok(w, "subscribe", {{"channel", channel}});
    w.peer->Clear();
    return w;
  }
};

TEST_F(DispatcherAdminTest, TheFirstFrameCarriesTheTokenThenConnectedFollows) {
  TestConn c = OpenWithoutToken();
  EXPECT_TRUE(c.peer->frames().empty());
  SendRaw(c, R"({"op":"auth","token":")" + Token("alice") + "\"}");
  auto connected = c.peer->Take("connected");
  ASSERT_EQ(connected.size(), 1u);
  EXPECT_EQ(Str(connected[0], "clientId"), "alice");
  json::object devices = RestJson("GET", "/v1/users/alice/devices");
  ASSERT_EQ(devices.at("devices").as_array().size(), 1u);
  EXPECT_EQ(Str(devices.at("devices").as_array()[0].as_object(), "device"), "laptop");
  EXPECT_FALSE(c.peer->closed());
  c.client_id = "alice";
  json::object reply = Ok(c, "enter", {{"channel", "room"}});
  EXPECT_EQ(Str(reply.at("member").as_object(), "clientId"), "alice");
}

TEST_F(DispatcherAdminTest, AnythingElseFirstOrABadTokenClosesWith4003) {
  for (std::string first :
       {std::string(R"({"op":"enter","id":1,"channel":"room"})"), std::string("not json"),
        std::string(R"({"op":"auth","token":"x.y.z"})"), std::string(R"({"op":"auth"})"),
        R"({"op":"auth","token":")" +
            *MintToken("other-secret", "alice", 60, std::nullopt, clock.NowMs()) + "\"}"}) {
    TestConn c = OpenWithoutToken();
    SendRaw(c, first);
    ASSERT_TRUE(c.peer->closed()) << first;
    EXPECT_EQ(c.peer->closed()->code, 4003) << first;
    EXPECT_EQ(c.peer->closed()->reason, "authentication failed");
    EXPECT_TRUE(c.peer->OfType("connected").empty());
  }
}

TEST_F(DispatcherAdminTest, NoFrameWithinFiveSecondsClosesWith4003) {
  TestConn c = OpenWithoutToken();
  AdvanceTime(kAuthTimeoutMs - 1);
  EXPECT_FALSE(c.peer->closed());
  AdvanceTime(1);
  ASSERT_TRUE(c.peer->closed());
  EXPECT_EQ(c.peer->closed()->code, 4003);
  // Its end is nothing to the engine.
  dispatcher().Closed(c.session, true);
  EXPECT_EQ(dispatcher().engine().connection_count(), 0u);
}

TEST_F(DispatcherAdminTest, AClientThatAuthenticatedInTimeIsNotClosedAtTheDeadline) {
  TestConn c = OpenWithoutToken();
  AdvanceTime(kAuthTimeoutMs - 1);
  SendRaw(c, R"({"op":"auth","token":")" + Token("alice") + "\"}");
  AdvanceTime(10);
  EXPECT_FALSE(c.peer->closed());
  EXPECT_EQ(c.peer->OfType("connected").size(), 1u);
}

TEST_F(DispatcherAdminTest, AuthAgainReplacesThePatternsForTheSameClientOnly) {
  TestConn c = Connect("alice", Channels{{"a:*"}});
  EXPECT_EQ(ErrorCodeOf(Call(c, "enter", {{"channel", "b:1"}})), "forbidden");
  json::object r = Ok(c, "auth", {{"token", Token("alice", std::vector<std::string>{"b:*"}, 60)}});
  EXPECT_EQ(r.at("expiresAt").as_int64(), (kTestStart / 1000 + 60) * 1000);
  Ok(c, "enter", {{"channel", "b:1"}});
  EXPECT_EQ(ErrorCodeOf(Call(c, "enter", {{"channel", "a:1"}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(c, "auth", {{"token", Token("bob")}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(c, "auth", {{"token", "nope"}})), "unauthorized");
  EXPECT_EQ(ErrorCodeOf(Call(c, "auth", {})), "bad_request");
  EXPECT_FALSE(c.peer->closed());
  // Over REST there is no socket whose token could change.
  EXPECT_EQ(Rest("POST", "/v1/auth", "{}").status, 404u);
}

TEST_F(DispatcherAdminTest, RevokeClosesLiveConnectionsAndRefusesOlderTokens) {
  const std::string old_token = Token("alice");
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  clock.Advance(5);
  HttpResponse r = Rest("POST", "/v1/users/alice/revoke");
  ASSERT_EQ(r.status, 200u) << r.body;
  json::object body = ParseObject(r.body);
  EXPECT_EQ(body.at("revokedBefore").as_int64(), kTestStart + 5);
  EXPECT_EQ(body.at("closed").as_int64(), 1);
  EXPECT_EQ(CloseCode(a), 4004);
  EXPECT_EQ(a.peer->closed()->reason, "token revoked");
  EXPECT_EQ(CloseCode(b), 0);
  // A token issued before: refused in the URL and in the first frame.
  auto request = UpgradeTarget("/v1/ws?token=" + old_token);
  ASSERT_TRUE(request.ok());
  TestConn again = Open(std::move(request).value());
  EXPECT_EQ(CloseCode(again), 4004);
  EXPECT_TRUE(again.peer->OfType("connected").empty());
  TestConn first = OpenWithoutToken();
  SendRaw(first, R"({"op":"auth","token":")" + old_token + "\"}");
  EXPECT_EQ(CloseCode(first), 4004);
  // One issued at or after the revocation is taken.
  TestConn fresh = Connect("alice");
  EXPECT_EQ(fresh.peer->OfType("connected").size(), 1u);
  EXPECT_EQ(CloseCode(fresh), 0);
  // The store has it, for the next start.
  auto rows = store.LoadRevocations();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0], std::make_pair(std::string("alice"), kTestStart + 5));
}

TEST_F(DispatcherAdminTest, ATokenWithoutIatIsRefusedOnceTheUserWasRevoked) {
  ConnectRequest request;
  request.client_id = "alice";
  EXPECT_EQ(Rest("POST", "/v1/users/alice/revoke").status, 200u);
  TestConn c = Open(request);
  EXPECT_EQ(CloseCode(c), 4004);
  ConnectRequest other;
  other.client_id = "bob";
  TestConn b = Open(other);
  EXPECT_EQ(CloseCode(b), 0);
}

TEST_F(DispatcherAdminTest, RevocationsAreRestoredAtStart) {
  const std::string old_token = Token("alice");
  clock.Advance(5);
  EXPECT_EQ(Rest("POST", "/v1/users/alice/revoke").status, 200u);
  Restart(DefaultOptions());
  auto rows = store.LoadRevocations();
  ASSERT_TRUE(rows.ok());
  dispatcher().RestoreRevocations(*rows);
  auto request = UpgradeTarget("/v1/ws?token=" + old_token);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(CloseCode(Open(std::move(request).value())), 4004);
}

TEST_F(DispatcherAdminTest, AuthAgainWithARevokedTokenCloses) {
  const std::string old_token = Token("alice");
  clock.Advance(5);
  TestConn a = Connect("alice");  // a token issued now, after...
  EXPECT_EQ(Rest("POST", "/v1/users/bob/revoke").status, 200u);
  EXPECT_EQ(CloseCode(a), 0);  // ...another user's revocation
  EXPECT_EQ(Rest("POST", "/v1/users/alice/revoke").status, 200u);
  EXPECT_EQ(CloseCode(a), 4004);
  TestConn b = Connect("alice");
  EXPECT_EQ(ErrorCodeOf(Call(b, "auth", {{"token", Token("alice")}})), "");
  SendRaw(b, R"({"op":"auth","id":99,"token":")" + old_token + "\"}");
  EXPECT_EQ(CloseCode(b), 4004);
}

TEST_F(DispatcherAdminTest, DeleteConnectionEndsItAndItsMembersLeaveDisconnected) {
  TestConn w = Watcher("room");
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}});
  w.peer->Clear();
  HttpResponse r = Rest("DELETE", "/v1/connections/" + a.connection_id);
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_EQ(CloseCode(a), 4002);
  EXPECT_EQ(a.peer->closed()->reason, "disconnected by the server");
  auto events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "leave");
  EXPECT_EQ(Str(events[0], "reason"), "disconnected");
  // The socket's own end, reported later, changes nothing more.
  Close(a, true);
  EXPECT_TRUE(w.peer->Take("presence").empty());
  EXPECT_EQ(ErrorCodeOf(ParseObject(Rest("DELETE", "/v1/connections/" + a.connection_id).body)),
            "not_found");
  EXPECT_EQ(Rest("DELETE", "/v1/connections/nope").status, 404u);
}

TEST_F(DispatcherAdminTest, DeleteConnectionEndsOneInItsGracePeriod) {
  TestConn w = Watcher("room");
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}});
  Close(a, false);  // dropped: present for its grace period
  w.peer->Clear();
  EXPECT_EQ(Rest("DELETE", "/v1/connections/" + a.connection_id).status, 204u);
  auto events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "reason"), "disconnected");
}

TEST_F(DispatcherAdminTest, DeleteUserConnectionsCountsThem) {
  TestConn a1 = Connect("alice", Device{"phone"});
  TestConn a2 = Connect("alice", Device{"laptop"});
  TestConn b = Connect("bob");
  json::object body = RestJson("DELETE", "/v1/users/alice/connections");
  EXPECT_EQ(body.at("closed").as_int64(), 2);
  EXPECT_EQ(CloseCode(a1), 4002);
  EXPECT_EQ(CloseCode(a2), 4002);
  EXPECT_EQ(CloseCode(b), 0);
  EXPECT_EQ(RestJson("DELETE", "/v1/users/alice/connections").at("closed").as_int64(), 0);
}

TEST_F(DispatcherAdminTest, AServerSideMemberIsEnteredUpdatedAndLeaves) {
  TestConn w = Watcher("room");
  HttpResponse r =
      Rest("PUT", "/v1/channels/room/presence/bot", R"({"data":{"v":1},"ttlMs":60000})");
  ASSERT_EQ(r.status, 200u) << r.body;
  json::object body = ParseObject(r.body);
  EXPECT_TRUE(body.at("created").as_bool());
  EXPECT_EQ(Str(body.at("member").as_object(), "clientId"), "bot");
  auto events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "enter");
  body = RestJson("PUT", "/v1/channels/room/presence/bot", R"({"data":{"v":2},"ttlMs":60000})");
  EXPECT_FALSE(body.at("created").as_bool());
  events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "update");
  // The user is online through it, on a device of its own.
  json::object devices = RestJson("GET", "/v1/users/bot/devices");
  ASSERT_EQ(devices.at("devices").as_array().size(), 1u);
  EXPECT_EQ(Str(devices.at("devices").as_array()[0].as_object(), "device"), "server");
  // Not a connection an admin can close; a member only its DELETE ends.
  EXPECT_EQ(RestJson("DELETE", "/v1/users/bot/connections").at("closed").as_int64(), 0);
  const std::string id = Str(body.at("member").as_object(), "connectionId");
  EXPECT_EQ(Rest("DELETE", "/v1/connections/" + id).status, 404u);
  EXPECT_EQ(Rest("DELETE", "/v1/channels/room/presence/bot").status, 204u);
  events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "reason"), "left");
  EXPECT_EQ(dispatcher().engine().connection_count(), 1u);  // the watcher's
  EXPECT_EQ(Rest("DELETE", "/v1/channels/room/presence/bot").status, 404u);
}

TEST_F(DispatcherAdminTest, AServerSideMemberExpiresUnlessRenewed) {
  TestConn w = Watcher("room");
  ASSERT_EQ(Rest("PUT", "/v1/channels/room/presence/bot", R"({"ttlMs":2000})").status, 200u);
  AdvanceTime(1500);
  ASSERT_EQ(Rest("PUT", "/v1/channels/room/presence/bot", R"({"ttlMs":2000})").status, 200u);
  AdvanceTime(1999);
  w.peer->Clear();
  AdvanceTime(1);
  auto events = w.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "reason"), "expired");
  EXPECT_EQ(dispatcher().engine().connection_count(), 1u);  // its connection ended with it
  EXPECT_TRUE(RestJson("PUT", "/v1/channels/room/presence/bot", R"({"ttlMs":2000})")
                  .at("created")
                  .as_bool());
}

TEST_F(DispatcherAdminTest, AServerSideMemberNeedsAValidTtlAndChannel) {
  for (const char* body : {"{}", R"({"ttlMs":999})", R"({"ttlMs":86400001})", R"({"ttlMs":"5"})"}) {
    HttpResponse r = Rest("PUT", "/v1/channels/room/presence/bot", body);
    EXPECT_EQ(r.status, 400u) << body;
  }
  EXPECT_EQ(
      Rest("PUT", "/v1/channels/" + std::string(300, 'c') + "/presence/bot", R"({"ttlMs":1000})")
          .status,
      413u);
  EXPECT_EQ(Rest("PUT", "/v1/channels/room/presence/bot", R"({"ttlMs":1000})", "wrong").status,
            401u);
  EXPECT_EQ(dispatcher().engine().connection_count(), 0u);
}

TEST_F(DispatcherAdminTest, AnObserverReadsAndSubscribesButIsNobody) {
  TestConn o = OpenWithoutToken();
  SendRaw(o, R"({"op":"auth","apiKey":")" + std::string(kTestApiKey) + "\"}");
  ASSERT_EQ(o.peer->OfType("connected").size(), 1u);
  EXPECT_EQ(Str(o.peer->OfType("connected")[0], "clientId"), engine::kObserverClientId);
  o.client_id = std::string(engine::kObserverClientId);
  Ok(o, "subscribe", {{"channel", "room"}});
  Ok(o, "status.watch", {{"clientIds", json::array{"alice"}}});
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}});
  EXPECT_EQ(o.peer->OfType("presence").size(), 1u);
  EXPECT_EQ(ErrorCodeOf(Call(o, "enter", {{"channel", "room"}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(o, "status.set", {{"status", "away"}})), "forbidden");
  EXPECT_EQ(ErrorCodeOf(Call(o, "auth", {{"token", Token("alice")}})), "forbidden");
  json::object who = RestJson("GET", "/v1/who");
  ASSERT_EQ(who.at("users").as_array().size(), 1u);  // alice only
  EXPECT_EQ(dispatcher().engine().user_count(), 1u);
  EXPECT_EQ(RestJson("GET", "/v1/channels/room/occupancy").at("clients").as_int64(), 1);
}

TEST_F(DispatcherAdminTest, AWrongApiKeyOrAReservedClientIdIsRefused) {
  TestConn o = OpenWithoutToken();
  SendRaw(o, R"({"op":"auth","apiKey":"wrong"})");
  EXPECT_EQ(CloseCode(o), 4003);
  auto reserved = UpgradeTarget("/v1/ws?token=" + Token(engine::kObserverClientId));
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().code, ErrorCode::kUnauthorized);
}

TEST_F(DispatcherAdminTest, ShutdownClosesSessionsWaitingForTheirToken) {
  TestConn c = OpenWithoutToken();
  Shutdown();
  ASSERT_TRUE(c.peer->closed());
  EXPECT_EQ(c.peer->closed()->code, 1001);
}

}  // namespace
}  // namespace presenced::protocol::testing
