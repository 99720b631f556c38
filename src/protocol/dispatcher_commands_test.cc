// The `/presence` chat commands through the `command` op (docs/protocol.md, "Chat commands"):
// each reply is ok with a human-readable `text` and structured `data`.
#include <gtest/gtest.h>

#include <string>

#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherCommandsTest : public ProtocolTest {
 protected:
  // Runs `line` as a command on `c`; the reply must be ok with a string text.
  json::object Command(TestConn& c, std::string_view line) {
    json::object reply = Ok(c, "command", {{"text", line}});
    EXPECT_TRUE(reply.contains("text") && reply.at("text").is_string()) << line;
    EXPECT_TRUE(reply.contains("data")) << line;
    return reply;
  }
};

void ExpectCommandList(const json::value& commands) {
  ASSERT_TRUE(commands.is_array());
  EXPECT_GE(commands.as_array().size(), 8u);
  for (const auto& c : commands.as_array()) {
    EXPECT_FALSE(Str(c.as_object(), "usage").empty());
    EXPECT_FALSE(Str(c.as_object(), "description").empty());
  }
}

TEST_F(DispatcherCommandsTest, HelpListsTheCommands) {
  TestConn a = Connect("alice");
  json::object r = Command(a, "/presence help");
  ExpectCommandList(r.at("data").at("commands"));
  EXPECT_NE(Str(r, "text").find("/presence who"), std::string::npos);
}

TEST_F(DispatcherCommandsTest, BareCommandIsTheCallersStatus) {
  TestConn a = Connect("alice", Device{"phone"});
  json::object r = Command(a, "/presence");
  const json::object& data = r.at("data").as_object();
  EXPECT_EQ(Str(data, "clientId"), "alice");
  EXPECT_EQ(Str(data, "status"), "online");
  EXPECT_EQ(Str(data, "activeDevice"), "phone");
  EXPECT_EQ(Str(r, "text"), "alice is online - active on phone - last seen just now");
}

TEST_F(DispatcherCommandsTest, WhoWithAndWithoutChannel) {
  TestConn a = Connect("alice", Channels{{"room-*"}});
  TestConn b = Connect("bob");
  Ok(b, "enter", {{"channel", "room-1"}});
  Ok(b, "status.set", {{"status", "away"}});

  json::object all = Command(a, "/presence who");
  EXPECT_TRUE(all.at("data").at("channel").is_null());
  EXPECT_EQ(all.at("data").at("users").as_array().size(), 2u);
  EXPECT_NE(Str(all, "text").find("2 online: "), std::string::npos);
  EXPECT_NE(Str(all, "text").find("bob (away)"), std::string::npos);

  json::object room = Command(a, "/presence who room-1");
  EXPECT_EQ(room.at("data").at("channel"), "room-1");
  ASSERT_EQ(room.at("data").at("users").as_array().size(), 1u);
  EXPECT_EQ(Str(room, "text"), "1 online in room-1: bob (away)");

  json::object empty = Command(a, "/presence who room-2");
  EXPECT_EQ(Str(empty, "text"), "Nobody is online in room-2.");

  // Checked as the op it stands for: a channel outside the token names nobody.
  json::object forbidden = Command(a, "/presence who lobby");
  EXPECT_EQ(ErrorCodeOf(forbidden.at("data").as_object()), "forbidden");
  EXPECT_FALSE(forbidden.at("data").as_object().contains("users"));
}

TEST_F(DispatcherCommandsTest, SettingTheStatusIsOnDiskAndPushed) {
  TestConn a1 = Connect("alice");
  TestConn a2 = Connect("alice");
  a2.peer->Clear();
  json::object away = Command(a1, "/presence AWAY");  // the word is case-insensitive
  EXPECT_EQ(Str(away, "text"), "Status set to away.");
  EXPECT_EQ(Str(away.at("data").as_object(), "status"), "away");
  auto pushes = a2.peer->Take("status");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(Str(pushes[0], "status"), "away");
  auto stored = store.ReadUser("alice");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->manual, "away");

  json::object offline = Command(a1, "/presence offline");
  EXPECT_EQ(Str(offline, "text"), "You now appear offline.");
  EXPECT_EQ(Str(offline.at("data").as_object(), "status"), "offline");

  json::object online = Command(a1, "/presence online");
  EXPECT_EQ(Str(online, "text"), "Status set to automatic: you are online.");
  EXPECT_EQ((*store.ReadUser("alice"))->manual, "");
}

TEST_F(DispatcherCommandsTest, StatusTextIsSetAndCleared) {
  TestConn a = Connect("alice");
  json::object set = Command(a, R"(/presence status "out to \"lunch\"")");
  EXPECT_EQ(Str(set, "text"), R"(Status text set to "out to "lunch"".)");
  EXPECT_EQ(Str(set.at("data").as_object(), "text"), R"(out to "lunch")");
  json::object unquoted = Command(a, "/presence status in a  meeting");
  EXPECT_EQ(Str(unquoted.at("data").as_object(), "text"), "in a  meeting");
  json::object cleared = Command(a, "/presence status clear");
  EXPECT_EQ(Str(cleared, "text"), "Status text cleared.");
  EXPECT_TRUE(cleared.at("data").at("text").is_null());

  // Valid but refused: answered ok, with the error's code in data.
  json::object too_long = Command(a, "/presence status " + std::string(2000, 't'));
  EXPECT_EQ(ErrorCodeOf(too_long.at("data").as_object()), "too_large");
}

TEST_F(DispatcherCommandsTest, DevicesAndActivity) {
  TestConn a = Connect("alice", Device{"phone"});
  TestConn a2 = Connect("alice", Device{"laptop"});
  json::object devices = Command(a, "/presence devices");
  EXPECT_EQ(devices.at("data").at("devices").as_array().size(), 2u);
  EXPECT_TRUE(Str(devices, "text").starts_with("2 devices: "));

  json::object none = Command(a, "/presence activity");
  EXPECT_EQ(Str(none, "text"), "No recent activity.");
  EXPECT_TRUE(none.at("data").at("activities").as_array().empty());
  for (int i = 0; i < 12; ++i) Ok(a2, "activity", {{"kind", "k" + std::to_string(i)}});
  json::object some = Command(a, "/presence activity");
  const json::array& list = some.at("data").at("activities").as_array();
  ASSERT_EQ(list.size(), 10u);  // the 10 latest
  EXPECT_EQ(Str(list[0].as_object(), "kind"), "k11");
  EXPECT_TRUE(Str(some, "text").starts_with("Recent activity:"));
}

TEST_F(DispatcherCommandsTest, SyncPushesTheStatusToEveryLiveDevice) {
  TestConn a1 = Connect("alice", Device{"phone"});
  TestConn a2 = Connect("alice", Device{"laptop"}, RemainPresentFor{"60000"});
  TestConn a3 = Connect("alice", Device{"tablet"}, RemainPresentFor{"60000"});
  Close(a3, /*clean=*/false);  // in its grace period: counted, not in sync
  a1.peer->Clear();
  a2.peer->Clear();
  json::object r = Command(a1, "/presence sync");
  const json::object& data = r.at("data").as_object();
  EXPECT_EQ(Str(data.at("status").as_object(), "status"), "online");
  EXPECT_EQ(Int(data, "devices"), 3);
  EXPECT_EQ(Int(data, "inSync"), 2);
  EXPECT_EQ(Int(data, "lastSyncedAt"), clock.NowMs());
  ASSERT_EQ(data.at("perDevice").as_array().size(), 3u);
  for (const auto& d : data.at("perDevice").as_array()) {
    const json::object& dev = d.as_object();
    EXPECT_EQ(dev.at("inSync"), Str(dev, "device") != "tablet") << Str(dev, "device");
  }
  EXPECT_NE(Str(r, "text").find("tablet is reconnecting"), std::string::npos);
  for (TestConn* c : {&a1, &a2}) {
    auto pushes = c->peer->Take("status");
    ASSERT_EQ(pushes.size(), 1u);
    EXPECT_EQ(Str(pushes[0], "previous"), "online");  // previous equals status
    EXPECT_EQ(Str(pushes[0], "status"), "online");
  }
}

TEST_F(DispatcherCommandsTest, InvalidCommandsAreAnsweredOkWithTheHelp) {
  TestConn a = Connect("alice");
  for (const char* line :
       {"/presence dance", "hello", "/presence who a b", R"(/presence status "open)", ""}) {
    json::object r = Command(a, line);
    EXPECT_EQ(ErrorCodeOf(r.at("data").as_object()), "bad_command") << line;
    ExpectCommandList(r.at("data").at("commands"));
    EXPECT_TRUE(Str(r, "text").starts_with("Sorry, ")) << line;
  }
  // Only a frame without a string text is a bad_request.
  EXPECT_EQ(ErrorCodeOf(Call(a, "command", {{"text", 5}})), "bad_request");
}

TEST_F(DispatcherCommandsTest, RestCommandsWorkForAUserWithNoConnection) {
  json::object r =
      RestJson("POST", "/v1/commands", R"({"clientId":"ghost","text":"/presence sync"})");
  EXPECT_EQ(Str(r, "text"), "Nothing to sync: none of your devices is connected.");
  EXPECT_EQ(Int(r.at("data").as_object(), "devices"), 0);
  json::object who = RestJson("POST", "/v1/commands", R"({"clientId":"ghost","text":"/presence"})");
  EXPECT_EQ(Str(who.at("data").as_object(), "status"), "offline");
}

}  // namespace
}  // namespace presenced::protocol::testing
