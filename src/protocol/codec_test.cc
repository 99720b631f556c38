#include "protocol/codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "protocol/json_out.h"

namespace presenced::protocol {
namespace {

TEST(CodecTest, QuotesAndEscapesStrings) {
  std::string out;
  AppendQuoted(out, "a\"b\\c\n\x01");
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(boost::json::parse(out).as_string(), "a\"b\\c\n\x01");
}

TEST(CodecTest, EventsCarryReasonOnLeaveOnly) {
  engine::PresenceEvent e;
  e.channel = "room";
  e.serial = 7;
  e.action = engine::Action::kLeave;
  e.reason = engine::LeaveReason::kTimeout;
  e.member = {"alice", "c1", JsonText::FromSerialized(R"({"x":1})"), 5, engine::kNoExpiry};
  auto v = boost::json::parse(EventFrame(e)).as_object();
  EXPECT_EQ(v["type"], "presence");
  EXPECT_EQ(v["channel"], "room");
  EXPECT_EQ(v["action"], "leave");
  EXPECT_EQ(v["reason"], "timeout");
  EXPECT_EQ(v["serial"], 7);
  EXPECT_EQ(v["member"].as_object()["data"].as_object()["x"], 1);
  EXPECT_TRUE(v["member"].as_object()["expiresAt"].is_null());
  e.action = engine::Action::kUpdate;
  e.reason = engine::LeaveReason::kNone;
  EXPECT_FALSE(boost::json::parse(EventFrame(e)).as_object().contains("reason"));
}

TEST(CodecTest, StatusPushHasPreviousAndTheStatusFields) {
  engine::StatusChange c;
  c.status.client_id = "alice";
  c.status.status = engine::Presence::kDnd;
  c.status.text = "busy";
  c.status.last_seen = 10;
  c.previous = engine::Presence::kOnline;
  auto v = boost::json::parse(StatusFrame(c)).as_object();
  EXPECT_EQ(v["type"], "status");
  EXPECT_EQ(v["previous"], "online");
  EXPECT_EQ(v["status"], "dnd");
  EXPECT_EQ(v["text"], "busy");
  EXPECT_EQ(v["lastSeen"], 10);
  EXPECT_TRUE(v["activeDevice"].is_null());
  EXPECT_FALSE(v.contains("device"));
  // A push after a device's own status was set names the device.
  c.device = engine::DeviceView{"c2", "phone", engine::Presence::kDnd, 9, false, true};
  auto d = boost::json::parse(StatusFrame(c)).as_object();
  EXPECT_EQ(d["status"], "dnd");
  const auto& device = d["device"].as_object();
  EXPECT_EQ(device.at("connectionId"), "c2");
  EXPECT_EQ(device.at("status"), "dnd");
  EXPECT_EQ(device.at("manual"), true);
  EXPECT_EQ(device.at("active"), false);
}

TEST(CodecTest, DevicesAndActivities) {
  engine::DeviceView d{"c1", "phone", engine::Presence::kAway, 5, true};
  std::string out;
  AppendDevices(out, std::span<const engine::DeviceView>(&d, 1));
  auto dv = boost::json::parse(out).as_array()[0].as_object();
  EXPECT_EQ(dv["device"], "phone");
  EXPECT_EQ(dv["status"], "away");
  EXPECT_EQ(dv["active"], true);
  EXPECT_EQ(dv["manual"], false);
  EXPECT_EQ(dv.size(), 6u);
  storage::StoredActivity a{"typing", "", JsonText::FromSerialized("[1]"), 7, "c1"};
  out.clear();
  AppendActivities(out, std::span<const storage::StoredActivity>(&a, 1));
  auto av = boost::json::parse(out).as_array()[0].as_object();
  EXPECT_EQ(av["kind"], "typing");
  EXPECT_TRUE(av["channel"].is_null());
  EXPECT_EQ(av["data"].as_array()[0], 1);
  EXPECT_EQ(av["connectionId"], "c1");
}

TEST(CodecTest, ErrorReplies) {
  auto v = boost::json::parse(ReplyError(3, MakeError(ErrorCode::kNotPresent, "no"))).as_object();
  EXPECT_EQ(v["id"], 3);
  EXPECT_EQ(v["ok"], false);
  EXPECT_EQ(v["error"].as_object()["code"], "not_present");
  EXPECT_TRUE(boost::json::parse(ReplyError(std::nullopt, MakeError(ErrorCode::kBadRequest, "x")))
                  .as_object()["id"]
                  .is_null());
}

}  // namespace
}  // namespace presenced::protocol
