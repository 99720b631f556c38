// The op table, the request parse shared by both surfaces, the session table and the outbox, each
// on its own (the Dispatcher tests drive them together).
#include "protocol/ops.h"

#include <gtest/gtest.h>

#include <set>

#include "protocol/args.h"
#include "protocol/outbox.h"
#include "protocol/requests.h"
#include "protocol/session_table.h"

namespace presenced::protocol {
namespace {

TEST(OpTableTest, EveryRowHasOneHandlerOfTheKindItsFlagsSay) {
  std::set<std::string_view> names;
  for (const OpSpec& op : AllOps()) {
    EXPECT_TRUE(names.insert(op.name).second) << "duplicate op " << op.name;
    const bool store_backed = (op.flags & kStoreBacked) != 0;
    if ((op.flags & kSessionOp) != 0) {  // the Dispatcher answers it itself
      EXPECT_EQ(op.sync, nullptr) << op.name;
      EXPECT_EQ(op.async, nullptr) << op.name;
      EXPECT_EQ(op.flags, kSessionOp) << op.name;
      continue;
    }
    EXPECT_EQ(op.async != nullptr, store_backed) << op.name;
    EXPECT_EQ(op.sync != nullptr, !store_backed) << op.name;
    EXPECT_EQ(FindOp(op.name), &op);
  }
  // The contract's ops (protocol-core.md), and the REST-only ones.
  for (std::string_view name :
       {"ping", "enter", "update", "leave", "get", "subscribe", "unsubscribe", "occupancy",
        "history", "status.set", "status.get", "status.watch", "status.unwatch", "activity",
        "activity.get", "devices", "who", "command"}) {
    const OpSpec* op = FindOp(name);
    ASSERT_NE(op, nullptr) << name;
    EXPECT_EQ(op->flags & kRestOnly, 0u) << name;
  }
  EXPECT_NE(FindOp("channels")->flags & kRestOnly, 0u);
  EXPECT_NE(FindOp("tokens")->flags & kRestOnly, 0u);
  EXPECT_EQ(FindOp("nope"), nullptr);
}

TEST(OpTableTest, StoreBackedReadsAndChannelOpsAreFlagged) {
  for (std::string_view name : {"history", "status.get", "status.set", "activity.get", "command"}) {
    EXPECT_NE(FindOp(name)->flags & kStoreBacked, 0u) << name;
  }
  for (std::string_view name : {"enter", "update", "leave", "get", "subscribe", "unsubscribe",
                                "occupancy", "history", "activity", "who"}) {
    EXPECT_NE(FindOp(name)->flags & kChannelOp, 0u) << name;
  }
  for (std::string_view name :
       {"get", "occupancy", "history", "status.get", "activity.get", "devices", "who", "command"}) {
    EXPECT_NE(FindOp(name)->flags & kTouch, 0u) << name;
  }
}

json::object Object(std::string_view text) { return *ParseRequestObject(text); }

TEST(RequestsTest, OneParseReadsJsonAndQueryText) {
  const json::object ws = Object(R"({"channel":"c","limit":5,"direction":"forwards"})");
  json::object rest;
  rest["channel"] = "c";
  rest["limit"] = "5";
  rest["direction"] = "forwards";
  for (const auto& [object, text] :
       {std::pair{&ws, false}, std::pair{static_cast<const json::object*>(&rest), true}}) {
    auto r = HistoryRequest::Parse(Args(*object, text));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->channel, "c");
    EXPECT_EQ(r->query.limit, 5u);
    EXPECT_TRUE(r->query.forwards);
  }
  // Text is a number only where the fields came from a query string.
  json::object text_limit;
  text_limit["channel"] = "c";
  text_limit["limit"] = "5";
  auto strict = HistoryRequest::Parse(Args(text_limit, false));
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.error().message, "limit must be an integer");
  text_limit["limit"] = "5x";
  auto bad = HistoryRequest::Parse(Args(text_limit, true));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "limit must be an integer");
}

TEST(RequestsTest, ParseErrorsNameTheField) {
  auto missing = EnterRequest::Parse(Args(Object(R"({"data":1})")));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(missing.error().message, "missing field channel");
  auto update = UpdateRequest::Parse(Args(Object(R"({"channel":"c"})")));
  EXPECT_EQ(update.error().message, "missing field data");
  auto actions = SubscribeRequest::Parse(Args(Object(R"({"channel":"c","actions":["jump"]})")));
  EXPECT_EQ(actions.error().message, "unknown action jump");
  auto since = SubscribeRequest::Parse(Args(Object(R"({"channel":"c","since":-1})")));
  EXPECT_EQ(since.error().message, "since must not be negative");
  auto limit = ActivityGetRequest::Parse(Args(Object(R"({"limit":0})")), 16);
  EXPECT_EQ(limit.error().message, "limit must be at least 1");
  auto id = DevicesRequest::Parse(Args(Object(R"({"clientId":"0123456789abcdefX"})")), 16);
  EXPECT_EQ(id.error().code, ErrorCode::kTooLarge);
  auto status = StatusSetRequest::Parse(Args(Object(R"({"status":"sleepy"})")));
  EXPECT_EQ(status.error().message, "status must be online, away, dnd or offline");
}

TEST(RequestsTest, DefaultsAndBounds) {
  auto history = HistoryRequest::Parse(Args(Object(R"({"channel":"c","limit":5000})")));
  EXPECT_EQ(history->query.limit, 1000u);
  EXPECT_FALSE(history->query.forwards);
  auto activity = ActivityGetRequest::Parse(Args(Object("{}")), 16);
  EXPECT_EQ(activity->limit, 50u);
  EXPECT_FALSE(activity->client_id);
  auto list = ChannelListRequest::Parse(Args(Object(R"({"limit":20000})")));
  EXPECT_EQ(list->limit, 10000u);
  auto text = StatusSetRequest::Parse(Args(Object(R"({"text":null})")));
  ASSERT_TRUE(text->text.has_value());
  EXPECT_FALSE(text->text->has_value());  // null clears
  EXPECT_FALSE(text->status);
}

class CountingPeer final : public Peer {
 public:
  void Send(std::shared_ptr<const std::string> m) override { frames.push_back(*m); }
  void SendBatch(std::vector<std::shared_ptr<const std::string>> ms) override {
    ++batches;
    for (auto& m : ms) frames.push_back(*m);
  }
  void Close(uint16_t, std::string, bool) override {}
  bool HasRoomFor(size_t, size_t) const override { return true; }
  void NotifyWhenDrained() override {}
  std::vector<std::string> frames;
  int batches = 0;
};

Session MakeSession(SessionId id, engine::ConnectionHandle handle, std::shared_ptr<Peer> peer) {
  return Session{id, handle, std::move(peer), "u", std::nullopt, RateLimiter(10, 0)};
}

TEST(SessionTableTest, FoundBySessionIdAndByExactHandle) {
  SessionTable t;
  auto peer = std::make_shared<CountingPeer>();
  const engine::ConnectionHandle h = (uint64_t{3} << 32) | 7;  // generation 3, slot 7
  t.Add(MakeSession(42, h, peer));
  EXPECT_EQ(t.ById(42)->handle, h);
  EXPECT_EQ(t.ByHandle(h)->id, 42u);
  // The same slot under another generation is another connection.
  EXPECT_EQ(t.ByHandle((uint64_t{4} << 32) | 7), nullptr);
  EXPECT_EQ(t.ByHandle(8), nullptr);
  EXPECT_EQ(t.AtSlot(7)->id, 42u);
  auto removed = t.Remove(42);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(t.ById(42), nullptr);
  EXPECT_EQ(t.ByHandle(h), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(SessionTableTest, ANewSessionForASlotReplacesTheOld) {
  SessionTable t;
  auto peer = std::make_shared<CountingPeer>();
  t.Add(MakeSession(1, 5, peer));
  t.Add(MakeSession(2, 5, peer));  // resumed on another socket
  EXPECT_EQ(t.ById(1), nullptr);
  EXPECT_EQ(t.ById(2)->handle, 5u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(RateLimiterTest, BurstThenSustainedRate) {
  RateLimiter r(3, 0);
  EXPECT_TRUE(r.Take(0, 1000, 3));
  EXPECT_TRUE(r.Take(0, 1000, 3));
  EXPECT_TRUE(r.Take(0, 1000, 3));
  EXPECT_FALSE(r.Take(0, 1000, 3));
  EXPECT_TRUE(r.Take(1, 1000, 3));  // one token per millisecond at 1000/s
  EXPECT_FALSE(r.Take(1, 1000, 3));
  EXPECT_TRUE(r.Take(100, 1000, 3));  // refilled up to the burst, not beyond
  EXPECT_TRUE(r.Take(100, 1000, 3));
  EXPECT_TRUE(r.Take(100, 1000, 3));
  EXPECT_FALSE(r.Take(100, 1000, 3));
}

TEST(OutboxTest, OneBatchPerPeerPerRoundInOrder) {
  SessionTable t;
  auto a = std::make_shared<CountingPeer>();
  auto b = std::make_shared<CountingPeer>();
  Session& sa = t.Add(MakeSession(1, 1, a));
  Session& sb = t.Add(MakeSession(2, 2, b));
  Outbox box;
  auto shared = std::make_shared<const std::string>("event");
  box.Queue(sa, std::make_shared<const std::string>("reply"));
  box.Queue(sa, shared);
  box.Queue(sb, shared);
  EXPECT_EQ(box.pending_frames(), 3u);
  box.Flush();
  EXPECT_EQ(a->batches, 1);
  EXPECT_EQ(b->batches, 1);
  EXPECT_EQ(a->frames, (std::vector<std::string>{"reply", "event"}));
  EXPECT_EQ(b->frames, (std::vector<std::string>{"event"}));
  EXPECT_EQ(box.pending_frames(), 0u);
  EXPECT_EQ(sa.outbox_entry, -1);
  box.Flush();  // nothing queued: no hand-off
  EXPECT_EQ(a->batches, 1);
}

TEST(OutboxTest, AForgottenSessionsFramesStillGoOut) {
  SessionTable t;
  auto a = std::make_shared<CountingPeer>();
  Session& s = t.Add(MakeSession(1, 1, a));
  Outbox box;
  box.Queue(s, std::make_shared<const std::string>("last"));
  box.Forget(s);
  t.Remove(1);  // the session is gone before the flush
  box.Flush();
  EXPECT_EQ(a->frames, (std::vector<std::string>{"last"}));
}

}  // namespace
}  // namespace presenced::protocol
