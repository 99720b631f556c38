// Delivery under load (protocol-ext §1) through the Dispatcher: batched frames for `batch=1`
// sessions, and slow subscribers whose events are replaced by a `sync` once they drained.
#include <gtest/gtest.h>

#include <string>

#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class DispatcherDeliveryTest : public ProtocolTest {
 protected:
  // One WebSocket message handled without ending the round (no flush): several requests then
  // share a round, as under load.
  void Queue(TestConn& c, json::object fields) {
    fields["id"] = next_id_++;
    dispatcher().Message(c.session, json::serialize(fields), std::chrono::steady_clock::now());
  }
  TestConn Subscriber(std::string_view name, bool batch = false) {
    TestConn s = batch ? Connect(name, Batch{}) : Connect(name);
    Ok(s, "subscribe", {{"channel", "room"}});
    s.peer->Clear();
    return s;
  }
  static std::vector<json::object> Messages(const json::object& batch) {
    std::vector<json::object> out;
    for (const json::value& m : batch.at("messages").as_array()) out.push_back(m.as_object());
    return out;
  }

  int64_t next_id_ = 1000;
};

TEST_F(DispatcherDeliveryTest, ARoundsMessagesShareOneBatchFrameInOrder) {
  TestConn s = Subscriber("sub", /*batch=*/true);
  TestConn a = Connect("alice");
  Queue(a, {{"op", "enter"}, {"channel", "room"}, {"data", 1}});
  Queue(a, {{"op", "update"}, {"channel", "room"}, {"data", 2}});
  Queue(s, {{"op", "ping"}});  // a reply shares the frame with the events, in order
  RunPosted();
  ASSERT_EQ(s.peer->frames().size(), 1u);
  const json::object& frame = s.peer->frames()[0];
  EXPECT_EQ(Str(frame, "type"), "batch");
  auto messages = Messages(frame);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(Str(messages[0], "action"), "enter");
  EXPECT_EQ(Str(messages[1], "action"), "update");
  EXPECT_EQ(Int(messages[1], "serial"), Int(messages[0], "serial") + 1);
  EXPECT_EQ(Str(messages[2], "type"), "reply");
}

TEST_F(DispatcherDeliveryTest, WithoutBatchEveryFrameHoldsOneMessage) {
  TestConn s = Subscriber("sub");
  TestConn a = Connect("alice");
  const size_t before = s.peer->batches();
  Queue(a, {{"op", "enter"}, {"channel", "room"}});
  Queue(a, {{"op", "update"}, {"channel", "room"}, {"data", 2}});
  RunPosted();
  ASSERT_EQ(s.peer->frames().size(), 2u);
  EXPECT_EQ(Str(s.peer->frames()[0], "type"), "presence");
  EXPECT_EQ(Str(s.peer->frames()[1], "type"), "presence");
  EXPECT_EQ(s.peer->batches(), before + 1);  // still one hand-off per round
}

TEST_F(DispatcherDeliveryTest, ALoneMessageIsNotWrappedAndConnectedIsNeverPacked) {
  TestConn s = Connect("sub", Batch{});
  ASSERT_EQ(s.peer->frames().size(), 1u);
  EXPECT_EQ(Str(s.peer->frames()[0], "type"), "connected");
  s.peer->Clear();
  EXPECT_TRUE(IsOk(Call(s, "ping")));
  ASSERT_EQ(s.peer->frames().size(), 1u);
  EXPECT_EQ(Str(s.peer->frames()[0], "type"), "reply");
}

TEST_F(DispatcherDeliveryTest, AResumedBatchSessionGetsConnectedAloneThenItsCatchUpPacked) {
  TestConn s = Connect("sub", Batch{}, RemainPresentFor{"60000"});
  Ok(s, "subscribe", {{"channel", "room"}});
  TestConn a = Connect("alice");
  Close(s, /*clean=*/false);
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "update", {{"channel", "room"}, {"data", 1}});
  TestConn back = Connect("sub", Batch{}, Resume{s.connection_key});
  ASSERT_EQ(back.peer->frames().size(), 2u);
  EXPECT_EQ(Str(back.peer->frames()[0], "type"), "connected");
  EXPECT_TRUE(back.peer->frames()[0].at("resumed").as_bool());
  const json::object& rest = back.peer->frames()[1];
  ASSERT_EQ(Str(rest, "type"), "batch");
  auto messages = Messages(rest);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(Str(messages[0], "action"), "enter");
  EXPECT_EQ(Str(messages[1], "action"), "update");
}

TEST_F(DispatcherDeliveryTest, BatchFramesStayUnderMaxBatchBytes) {
  DispatcherOptions o = DefaultOptions();
  o.max_batch_bytes = 600;
  Restart(o);
  TestConn s = Subscriber("sub", /*batch=*/true);
  TestConn a = Connect("alice");
  Ok(a, "enter", {{"channel", "room"}});
  s.peer->Clear();
  for (int i = 0; i < 10; ++i) Queue(a, {{"op", "update"}, {"channel", "room"}, {"data", i}});
  RunPosted();
  size_t messages = 0;
  int64_t serial = 0;
  for (size_t i = 0; i < s.peer->raw().size(); ++i) {
    const json::object& f = s.peer->frames()[i];
    std::vector<json::object> in =
        Str(f, "type") == "batch" ? Messages(f) : std::vector<json::object>{f};
    if (Str(f, "type") == "batch") {
      EXPECT_GE(in.size(), 2u);
      EXPECT_LE(s.peer->raw()[i]->size(), 600u);
    }
    for (const json::object& m : in) {
      if (Str(m, "type") != "presence") continue;
      ++messages;
      if (serial != 0) {
        EXPECT_EQ(Int(m, "serial"), serial + 1);
      }
      serial = Int(m, "serial");
    }
  }
  EXPECT_EQ(messages, 10u);
  EXPECT_GT(s.peer->frames().size(), 1u);
}

TEST_F(DispatcherDeliveryTest, UpgradeRefusesABatchValueOtherThan0Or1) {
  EXPECT_TRUE(UpgradeTarget("/v1/ws?token=" + Token("a") + "&batch=1").ok());
  EXPECT_FALSE(UpgradeTarget("/v1/ws?token=" + Token("a") + "&batch=0")->batch);
  auto bad = UpgradeTarget("/v1/ws?token=" + Token("a") + "&batch=yes");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kBadRequest);
}

// ----- Slow subscribers -------------------------------------------------------------------------

TEST_F(DispatcherDeliveryTest, ASlowSubscribersEventsAreDroppedThenReplacedByOneSync) {
  TestConn s = Subscriber("sub");
  TestConn a = Connect("alice");
  TestConn b = Connect("bob");
  s.peer->unsent = 900;  // the network layer holds 900 unsent bytes of a 1000-byte bound
  s.peer->room_bytes = 1000;
  Ok(a, "enter", {{"channel", "room"}, {"data", std::string(200, 'x')}});
  Ok(b, "enter", {{"channel", "room"}});
  Ok(a, "leave", {{"channel", "room"}});
  EXPECT_TRUE(s.peer->OfType("presence").empty());
  EXPECT_EQ(s.peer->drain_requests, 1u);  // asked once, however many events were dropped

  s.peer->unsent = 0;  // it drained below half the bound
  dispatcher().Drained(s.session);
  RunPosted();
  auto syncs = s.peer->Take("sync");
  ASSERT_EQ(syncs.size(), 1u);
  EXPECT_EQ(Str(syncs[0], "channel"), "room");
  const json::array& members = syncs[0].at("members").as_array();
  ASSERT_EQ(members.size(), 1u);  // the state at the sync: bob only
  EXPECT_EQ(Str(members[0].as_object(), "clientId"), "bob");
  const int64_t serial = Int(syncs[0], "serial");
  EXPECT_EQ(serial, 3);
  EXPECT_EQ(metrics.sync_conflations_total.load(), 1u);

  // Events flow again from the sync's serial on.
  Ok(b, "update", {{"channel", "room"}, {"data", 1}});
  auto events = s.peer->Take("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Int(events[0], "serial"), serial + 1);
}

TEST_F(DispatcherDeliveryTest, RepliesAndStatusPushesAreNeverDropped) {
  TestConn s = Subscriber("sub");
  s.peer->unsent = 1000;
  s.peer->room_bytes = 1000;
  EXPECT_TRUE(IsOk(Call(s, "ping")));
  Ok(s, "status.watch", {{"clientIds", json::array{"carol"}}});
  TestConn c = Connect("carol");
  EXPECT_FALSE(s.peer->OfType("status").empty());
  EXPECT_EQ(s.peer->drain_requests, 0u);
}

TEST_F(DispatcherDeliveryTest, OnlyTheChannelsWhoseEventsWereDroppedGetASync) {
  TestConn s = Connect("sub");
  Ok(s, "subscribe", {{"channel", "room"}});
  Ok(s, "subscribe", {{"channel", "quiet"}});
  Ok(s, "subscribe", {{"channel", "left"}});
  TestConn a = Connect("alice");
  s.peer->unsent = 1000;
  s.peer->room_bytes = 1000;
  Ok(a, "enter", {{"channel", "room"}});
  Ok(a, "enter", {{"channel", "left"}});
  s.peer->unsent = 0;
  Ok(s, "unsubscribe", {{"channel", "left"}});  // no longer wanted: nothing owed
  s.peer->Clear();
  dispatcher().Drained(s.session);
  RunPosted();
  auto syncs = s.peer->Take("sync");
  ASSERT_EQ(syncs.size(), 1u);
  EXPECT_EQ(Str(syncs[0], "channel"), "room");
}

TEST_F(DispatcherDeliveryTest, DrainedForAGoneSessionDoesNothing) {
  TestConn s = Subscriber("sub");
  Close(s, /*clean=*/true);
  dispatcher().Drained(s.session);
  RunPosted();
  EXPECT_TRUE(s.peer->OfType("sync").empty());
}

}  // namespace
}  // namespace presenced::protocol::testing
