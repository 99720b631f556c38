// Cluster mode's replication through two Dispatchers, without sockets or Redis: an in-process
// log (the order of its entries is the cluster's order) applied to both, as cluster::Replicator
// applies the Redis stream. Both engines start alike (the harness's seeded randomness and clock),
// so each applies every entry alike; only the node an entry came from answers its client.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <tuple>

#include "common/http_client.h"
#include "common/replication.h"
#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

class TwoNodes;

// One node's side of the shared log.
class TestReplication final : public Replication {
 public:
  TestReplication(TwoNodes& log, std::string origin) : log_(log), origin_(std::move(origin)) {}
  void Append(std::string body, std::function<void(const Error&)> failed) override;
  std::string NewSeed() override { return "00"; }
  void UseSeed(std::string_view) override {}  // the harnesses' random sources start alike
  TimeMs LogTime() const override { return 0; }
  bool Available() const override;
  std::string Origin() const override { return origin_; }
  const std::string& origin() const { return origin_; }

 private:
  TwoNodes& log_;
  std::string origin_;
};

class TwoNodes : public ::testing::Test {
 protected:
  struct Entry {
    std::string origin;
    std::string body;
  };

  TwoNodes() {
    a_.dispatcher().SetReplication(&ra_);
    b_.dispatcher().SetReplication(&rb_);
  }

  // Applies every entry appended so far, in order, on both nodes (and what that appends).
  void Deliver() {
    while (!entries_.empty()) {
      Entry e = std::move(entries_.front());
      entries_.pop_front();
      now_ += 1;
      for (auto* n : {&a_, &b_}) {
        n->clock.Set(now_);
        const bool mine = (n == &a_ ? ra_.origin() : rb_.origin()) == e.origin;
        n->dispatcher().Apply(ReplicatedEntry{now_, mine, e.origin, e.body});
        n->RunPosted();
      }
    }
    a_.RunPosted();
    b_.RunPosted();
  }

  TestConn Open(ProtocolHarness& node, std::string_view client, ConnectOptions o = {}) {
    auto request = node.UpgradeWith(client, o);
    EXPECT_TRUE(request.ok());
    TestConn c;
    c.session = next_session_++;
    c.peer = std::make_shared<RecordingPeer>();
    c.client_id = std::string(client);
    node.dispatcher().Open(c.session, std::move(request).value(), c.peer);
    node.RunPosted();
    EXPECT_TRUE(c.peer->OfType("connected").empty());  // not before its entry is applied
    Deliver();
    auto connected = c.peer->OfType("connected");
    EXPECT_EQ(connected.size(), 1u);
    if (!connected.empty()) {
      c.connected = connected.front();
      c.connection_key = Str(c.connected, "connectionKey");
    }
    return c;
  }

  json::object Request(ProtocolHarness& node, TestConn& c, std::string_view op,
                       json::object fields = {}) {
    fields["op"] = op;
    fields["id"] = ++next_id_;
    node.dispatcher().Message(c.session, json::serialize(fields), std::chrono::steady_clock::now());
    node.RunPosted();
    Deliver();
    for (const auto& f : c.peer->OfType("reply")) {
      if (f.at("id").as_int64() == next_id_) return f;
    }
    ADD_FAILURE() << "no reply to " << op;
    return {};
  }

  friend class TestReplication;
  ProtocolHarness a_, b_;
  TestReplication ra_{*this, "a/1"}, rb_{*this, "b/1"};
  std::deque<Entry> entries_;
  std::deque<std::function<void()>> failures_;
  bool available_ = true;
  bool lose_replies_ = false;
  TimeMs now_ = kTestStart;
  SessionId next_session_ = 1;
  int64_t next_id_ = 0;
};

void TestReplication::Append(std::string body, std::function<void(const Error&)> failed) {
  if (log_.lose_replies_) {  // Redis ran the append, and its answer was lost with the connection
    log_.entries_.push_back({origin_, std::move(body)});
    failed(MakeError(ErrorCode::kInternal, "redis is down: connection lost"));
    return;
  }
  if (!log_.available_) {
    failed(MakeError(ErrorCode::kInternal, "redis is down"));
    return;
  }
  log_.entries_.push_back({origin_, std::move(body)});
}

bool TestReplication::Available() const { return log_.available_; }

TEST_F(TwoNodes, EveryNodeAppliesEveryChangeAndTheAskingNodeAnswers) {
  TestConn watcher = Open(b_, "watcher");
  json::object sub = Request(b_, watcher, "subscribe", {{"channel", "room"}});
  EXPECT_TRUE(sub.at("ok").as_bool());
  TestConn alice = Open(a_, "alice");
  json::object entered = Request(a_, alice, "enter", {{"channel", "room"}, {"data", 1}});
  EXPECT_TRUE(entered.at("ok").as_bool());
  EXPECT_TRUE(watcher.peer->OfType("reply").size() == 1);  // b answered only its own request
  auto events = watcher.peer->OfType("presence");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Str(events[0], "action"), "enter");
  // The same state, and the same serial, on both nodes.
  json::object got_b = Request(b_, watcher, "get", {{"channel", "room"}});
  json::object got_a = Request(a_, alice, "get", {{"channel", "room"}});
  EXPECT_EQ(json::serialize(got_a.at("members")), json::serialize(got_b.at("members")));
  EXPECT_EQ(got_a.at("serial"), got_b.at("serial"));
  EXPECT_EQ(Int(events[0], "serial"), got_b.at("serial").as_int64());
  EXPECT_EQ(a_.dispatcher().engine().member_count(), 1u);
  EXPECT_EQ(b_.dispatcher().engine().member_count(), 1u);
  // A clean close on a is a leave on b.
  a_.dispatcher().Closed(alice.session, /*clean=*/true);
  Deliver();
  auto after = watcher.peer->OfType("presence");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(Str(after[1], "reason"), "disconnected");
  EXPECT_EQ(b_.dispatcher().engine().connection_count(), 1u);
  EXPECT_EQ(a_.dispatcher().engine().connection_count(), 1u);
}

TEST_F(TwoNodes, AConversationHasOneAgentSessionAndEveryNodeAgreesOnIt) {
  ConnectOptions as_worker;
  as_worker.worker = true;
  TestConn w = Open(b_, "w", as_worker);
  EXPECT_TRUE(IsOk(Request(b_, w, "session.serve", {{"capacity", 3}})));
  TestConn alice = Open(a_, "alice");
  TestConn bob = Open(b_, "bob");
  EXPECT_TRUE(IsOk(Request(a_, alice, "enter", {{"channel", "conversation:c1"}})));
  json::object first = Request(a_, alice, "session.ensure", {{"conversationId", "c1"}});
  json::object second = Request(b_, bob, "session.ensure", {{"conversationId", "c1"}});
  EXPECT_TRUE(first.at("created").as_bool());
  EXPECT_FALSE(second.at("created").as_bool());
  // The assignment reaches the worker once, on its own node.
  ASSERT_EQ(w.peer->OfType("session.assign").size(), 1u);
  EXPECT_TRUE(IsOk(Request(b_, w, "session.ready", {{"conversationId", "c1"}})));
  // Both subscribers hear `running`, each from its own node, and the agent is a member on both.
  EXPECT_EQ(alice.peer->OfType("session").size(), 1u);
  EXPECT_EQ(bob.peer->OfType("session").size(), 1u);
  EXPECT_EQ(a_.dispatcher().engine().member_count(), 2u);
  EXPECT_EQ(b_.dispatcher().engine().member_count(), 2u);
  EXPECT_EQ(a_.dispatcher().SaveState(), b_.dispatcher().SaveState());
  // The only other member leaves: abandoned after abandonAfterMs, at one log position.
  EXPECT_TRUE(IsOk(Request(a_, alice, "leave", {{"channel", "conversation:c1"}})));
  now_ += engine::SessionSettings{}.abandon_after_ms;
  a_.dispatcher().Tick();  // due by the wall clock: asks the log for a tick
  b_.dispatcher().Tick();
  Deliver();
  EXPECT_EQ(a_.dispatcher().agent_sessions().size(), 0u);
  EXPECT_EQ(b_.dispatcher().agent_sessions().size(), 0u);
  auto stopped = bob.peer->OfType("session");
  ASSERT_EQ(stopped.size(), 2u);
  EXPECT_EQ(Str(stopped[1], "reason"), "abandoned");
  EXPECT_EQ(w.peer->OfType("session.stop").size(), 1u);
  EXPECT_EQ(a_.dispatcher().SaveState(), b_.dispatcher().SaveState());
}

struct RecordingHttp final : HttpClient {
  std::deque<std::pair<HttpCall, std::function<void(HttpOutcome)>>> calls;
  void Post(HttpCall call, std::function<void(HttpOutcome)> done) override {
    calls.emplace_back(std::move(call), std::move(done));
  }
};

TEST_F(TwoNodes, WebhooksAreQueuedOnEveryNodeAndDeliveredOnceByTheFirstToSayHello) {
  DispatcherOptions o = ProtocolHarness::DefaultOptions();
  o.webhooks.endpoints = {"http://receiver.test/hook"};
  o.webhooks.secret = "0123456789abcdefghijklmn";
  // The deliverer tries by the wall clock (the log's stands still without entries), and the
  // harness's log is in 2023: a retry period that long keeps the events from being given up.
  o.webhooks.retry_ms = 20LL * 365 * 86400 * 1000;
  RecordingHttp http_a, http_b;
  for (auto [node, repl, http] : {std::tuple{&a_, &ra_, &http_a}, std::tuple{&b_, &rb_, &http_b}}) {
    node->Restart(o);
    node->dispatcher().SetReplication(repl);
    node->dispatcher().SetWebhookClient(http);
  }
  a_.dispatcher().Tick();  // a says hello first
  b_.dispatcher().Tick();
  Deliver();
  EXPECT_TRUE(a_.dispatcher().delivering_webhooks());
  EXPECT_FALSE(b_.dispatcher().delivering_webhooks());
  TestConn bob = Open(b_, "bob");
  EXPECT_TRUE(IsOk(Request(b_, bob, "enter", {{"channel", "room"}})));
  EXPECT_EQ(a_.dispatcher().webhook_outbox().depth(0), 2u);  // user.online, channel.occupied
  EXPECT_EQ(b_.dispatcher().webhook_outbox().depth(0), 2u);
  a_.RunPosted();
  ASSERT_EQ(http_a.calls.size(), 1u);
  EXPECT_TRUE(http_b.calls.empty());
  auto [call, done] = std::move(http_a.calls.front());
  http_a.calls.pop_front();
  done(HttpOutcome{204, ""});
  a_.RunPosted();  // the report goes into the log
  Deliver();       // and the event leaves both outboxes there
  EXPECT_EQ(a_.dispatcher().webhook_outbox().depth(0), 1u);
  EXPECT_EQ(b_.dispatcher().webhook_outbox().depth(0), 1u);
  EXPECT_EQ(a_.dispatcher().SaveState(), b_.dispatcher().SaveState());
  // a's incarnation is reaped: b delivers from the head on.
  entries_.push_back({"a/1", R"({"k":"reap","node":"a","inc":"1","at":0})"});
  Deliver();
  EXPECT_TRUE(b_.dispatcher().delivering_webhooks());
  b_.dispatcher().Tick();
  ASSERT_EQ(http_b.calls.size(), 1u);
  EXPECT_EQ(Str(ParseObject(http_b.calls.front().first.body), "type"), "channel.occupied");
  for (auto* node : {&a_, &b_}) node->dispatcher().SetWebhookClient(nullptr);
}

// The events stored in `node`'s store for `channel` (newest first), as their actions.
std::vector<std::string> StoredActions(ProtocolHarness& node, const std::string& channel) {
  storage::HistoryQuery q;
  q.channel = channel;
  std::vector<std::string> actions;
  node.store.QueryHistory(q, [&](Result<storage::HistoryPage> page) {
    if (!page.ok()) return;
    for (const auto& e : page->events) actions.push_back(Str(ParseObject(*e), "action"));
  });
  return actions;
}

TEST_F(TwoNodes, WhatAnEntryChangesIsStoredByTheNodeThatAppendedIt) {
  // The store is the cluster's (one Redis): every node applies every change, one stores it.
  TestConn alice = Open(a_, "alice");
  TestConn bob = Open(b_, "bob");
  EXPECT_TRUE(IsOk(Request(a_, alice, "enter", {{"channel", "room"}})));
  EXPECT_TRUE(IsOk(Request(b_, bob, "enter", {{"channel", "room"}})));
  EXPECT_TRUE(IsOk(Request(b_, bob, "update", {{"channel", "room"}, {"data", 2}})));
  EXPECT_EQ(StoredActions(a_, "room"), (std::vector<std::string>{"enter"}));
  EXPECT_EQ(StoredActions(b_, "room"), (std::vector<std::string>{"update", "enter"}));
  // A status set by hand: on the asking node's store only, and answered once it is there.
  json::object set = Request(b_, bob, "status.set", {{"status", "dnd"}, {"text", "focus"}});
  EXPECT_TRUE(IsOk(set));
  auto on_b = b_.store.ReadUser("bob");
  ASSERT_TRUE(on_b.ok() && on_b->has_value());
  EXPECT_EQ((*on_b)->manual, "dnd");
  auto on_a = a_.store.ReadUser("bob");
  ASSERT_TRUE(on_a.ok());
  EXPECT_FALSE(on_a->has_value());
}

TEST_F(TwoNodes, AUserTheEnginesDoNotKnowIsRestoredFromTheStoreOnEveryNode) {
  // What the store remembers (carol chose dnd before every node restarted) is read by the node
  // she connects to and carried in her connection's entry: both engines restore it alike.
  b_.store.PutUserStatus(storage::UserRecord{"carol", "dnd", "away for lunch", kTestStart - 5000},
                         [](Status) {});
  TestConn watcher = Open(a_, "watcher");
  TestConn carol = Open(b_, "carol");
  json::object on_a = Request(a_, watcher, "status.get", {{"clientIds", json::array{"carol"}}});
  json::object on_b = Request(b_, carol, "status.get", {{"clientIds", json::array{"carol"}}});
  ASSERT_TRUE(IsOk(on_a));
  ASSERT_TRUE(IsOk(on_b));
  for (const json::object* reply : {&on_a, &on_b}) {
    const json::object& st = reply->at("statuses").as_array().at(0).as_object();
    EXPECT_EQ(Str(st, "status"), "dnd");
    EXPECT_EQ(Str(st, "text"), "away for lunch");
  }
}

TEST_F(TwoNodes, ARestChangeForAUserTheEnginesDoNotKnowStartsFromTheStoredRecord) {
  // dora chose to appear offline, with a text, before every node restarted; a backend then
  // records activity for her. The node it asks reads her record into the entry, so no engine
  // starts her from defaults (automatic, no text) and forgets what she chose.
  b_.store.PutUserStatus(storage::UserRecord{"dora", "offline", "on a trip", kTestStart - 5000},
                         [](Status) {});
  HttpRequest req;
  req.method = "POST";
  req.target = "/v1/users/dora/activity";
  req.body = R"({"kind":"mail"})";
  req.authorization = "Bearer " + std::string(kTestApiKey);
  std::optional<HttpResponse> response;
  b_.dispatcher().Http(req, [&](HttpResponse r) { response = std::move(r); });
  b_.RunPosted();
  Deliver();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200) << response->body;
  TestConn watcher = Open(a_, "watcher");
  TestConn dora = Open(b_, "dora");  // she connects: still appearing offline
  json::object on_a = Request(a_, watcher, "status.get", {{"clientIds", json::array{"dora"}}});
  json::object on_b = Request(b_, dora, "status.get", {{"clientIds", json::array{"dora"}}});
  ASSERT_TRUE(IsOk(on_a));
  ASSERT_TRUE(IsOk(on_b));
  for (const json::object* reply : {&on_a, &on_b}) {
    const json::object& st = reply->at("statuses").as_array().at(0).as_object();
    EXPECT_EQ(Str(st, "status"), "offline");
    EXPECT_EQ(Str(st, "text"), "on a trip");
  }
}

TEST_F(TwoNodes, ARequestWhoseAppendWasReportedLostIsAnsweredOnce) {
  TestConn watcher = Open(b_, "watcher");
  EXPECT_TRUE(IsOk(Request(b_, watcher, "subscribe", {{"channel", "room"}})));
  TestConn alice = Open(a_, "alice");
  EXPECT_TRUE(IsOk(Request(a_, alice, "enter", {{"channel", "room"}})));
  alice.peer->Clear();
  lose_replies_ = true;
  a_.dispatcher().Message(alice.session, R"({"op":"update","id":77,"channel":"room","data":2})",
                          std::chrono::steady_clock::now());
  a_.RunPosted();
  lose_replies_ = false;
  Deliver();  // the entry was in the log after all: applied everywhere
  const auto replies = alice.peer->OfType("reply");
  ASSERT_EQ(replies.size(), 1u);  // the failure it was told, not a second answer
  EXPECT_FALSE(IsOk(replies[0]));
  const auto events = watcher.peer->OfType("presence");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Str(events[1], "action"), "update");
  // The next request is answered as usual.
  EXPECT_TRUE(IsOk(Request(a_, alice, "update", {{"channel", "room"}, {"data", 3}})));
}

TEST_F(TwoNodes, WhenAppliedWaitsForWhatTheNodeAppendedBefore) {
  TestConn alice = Open(a_, "alice");
  EXPECT_TRUE(IsOk(Request(a_, alice, "enter", {{"channel", "room"}})));
  a_.dispatcher().Shutdown();  // appends alice's clean close
  bool applied = false;
  a_.dispatcher().WhenApplied([&] { applied = true; });
  a_.RunPosted();
  EXPECT_FALSE(applied);
  EXPECT_EQ(StoredActions(a_, "room"), (std::vector<std::string>{"enter"}));
  Deliver();
  EXPECT_TRUE(applied);
  EXPECT_EQ(StoredActions(a_, "room"), (std::vector<std::string>{"leave", "enter"}));
}

TEST_F(TwoNodes, NodesWithStoresOfTheirOwnEachStoreEveryChange) {
  a_.dispatcher().SetReplication(&ra_, /*shared_store=*/false);
  b_.dispatcher().SetReplication(&rb_, /*shared_store=*/false);
  TestConn alice = Open(a_, "alice");
  EXPECT_TRUE(IsOk(Request(a_, alice, "enter", {{"channel", "room"}})));
  EXPECT_EQ(StoredActions(a_, "room"), (std::vector<std::string>{"enter"}));
  EXPECT_EQ(StoredActions(b_, "room"), (std::vector<std::string>{"enter"}));
}

TEST_F(TwoNodes, TheLastSeenCheckpointRunsAtItsTickOnEveryNode) {
  TestConn alice = Open(a_, "alice");
  // A tick that asks for the checkpoint: both engines mark it at the same entry, so their
  // states stay alike (a node's own moment would differ).
  entries_.push_back({"b/1", R"({"k":"tick","cp":1})"});
  Deliver();
  EXPECT_EQ(a_.dispatcher().SaveState(), b_.dispatcher().SaveState());
  auto stored = a_.store.ReadUser("alice");  // the node alice is on stored her lastSeen
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_GT((*stored)->last_seen, 0);
  auto elsewhere = b_.store.ReadUser("alice");
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_FALSE(elsewhere->has_value());  // one node stores it: the one she is on
}

TEST_F(TwoNodes, ADropFromTheOldHolderDoesNotEndAConnectionResumedElsewhere) {
  ConnectOptions keep;
  keep.remain_present_for_ms = "60000";
  TestConn watcher = Open(b_, "watcher");
  Request(b_, watcher, "subscribe", {{"channel", "room"}});
  TestConn on_a = Open(a_, "mover", keep);
  Request(a_, on_a, "enter", {{"channel", "room"}});
  // The client resumes on b while its old socket on a is still open; a learns of that socket's
  // end only after b's entry was appended (the race): a's drop must not end the connection.
  keep.resume = on_a.connection_key;
  auto request = b_.UpgradeWith("mover", keep);
  ASSERT_TRUE(request.ok());
  TestConn on_b;
  on_b.session = next_session_++;
  on_b.peer = std::make_shared<RecordingPeer>();
  b_.dispatcher().Open(on_b.session, std::move(request).value(), on_b.peer);
  b_.RunPosted();
  a_.dispatcher().Closed(on_a.session, /*clean=*/false);
  a_.RunPosted();
  Deliver();
  ASSERT_EQ(on_b.peer->OfType("connected").size(), 1u);
  EXPECT_TRUE(on_b.peer->OfType("connected")[0].at("resumed").as_bool());
  json::object updated = Request(b_, on_b, "update", {{"channel", "room"}, {"data", 2}});
  EXPECT_TRUE(updated.at("ok").as_bool());
  auto events = watcher.peer->OfType("presence");
  ASSERT_EQ(events.size(), 2u);  // enter, update: no leave
  EXPECT_EQ(Str(events[1], "action"), "update");
  // Long after the grace period the connection is still there (it was not dropped).
  now_ += 120000;  // the log's time
  entries_.push_back({"b/1", R"({"k":"tick"})"});
  Deliver();
  EXPECT_EQ(watcher.peer->OfType("presence").size(), 2u);
}

TEST_F(TwoNodes, WithoutTheLogChangesAreRefusedAndReadsAnsweredHere) {
  TestConn alice = Open(a_, "alice");
  Request(a_, alice, "enter", {{"channel", "room"}});
  available_ = false;
  json::object refused = Request(a_, alice, "enter", {{"channel", "other"}});
  EXPECT_FALSE(refused.at("ok").as_bool());
  EXPECT_NE(Str(refused.at("error").as_object(), "message").find("unavailable"), std::string::npos);
  json::object got = Request(a_, alice, "get", {{"channel", "room"}});
  EXPECT_TRUE(got.at("ok").as_bool());
  EXPECT_EQ(got.at("members").as_array().size(), 1u);
  // A new connection is closed with 1013 before `connected`.
  auto request = a_.Upgrade("late");
  ASSERT_TRUE(request.ok());
  auto peer = std::make_shared<RecordingPeer>();
  a_.dispatcher().Open(next_session_++, std::move(request).value(), peer);
  a_.RunPosted();
  EXPECT_TRUE(peer->OfType("connected").empty());
  ASSERT_TRUE(peer->closed().has_value());
  EXPECT_EQ(peer->closed()->code, 1013);
}

// A node that loads another's saved state (joining, or resynchronizing at a gap) holds exactly
// that node's state, and stays with it as entries go on; its own sessions are closed with 4001,
// since what they did may not be in the state. What is not a state is refused and changes
// nothing.
TEST_F(TwoNodes, ANodeLoadedFromAnothersStateStaysWithIt) {
  TestConn watcher = Open(b_, "watcher");
  Request(b_, watcher, "subscribe", {{"channel", "room"}});
  TestConn alice = Open(a_, "alice");
  Request(a_, alice, "enter", {{"channel", "room"}, {"data", 1}});
  const std::string saved = a_.dispatcher().SaveState();
  EXPECT_EQ(b_.dispatcher().SaveState(), saved);  // replicas: the same bytes

  EXPECT_FALSE(b_.dispatcher().LoadState("not a state"));
  EXPECT_FALSE(b_.dispatcher().LoadState(saved.substr(0, saved.size() - 3)));
  EXPECT_FALSE(watcher.peer->closed().has_value());
  EXPECT_EQ(b_.dispatcher().SaveState(), saved);  // unchanged

  ASSERT_TRUE(b_.dispatcher().LoadState(saved));
  ASSERT_TRUE(watcher.peer->closed().has_value());
  EXPECT_EQ(watcher.peer->closed()->code, 4001);
  EXPECT_EQ(b_.dispatcher().SaveState(), saved);
  b_.dispatcher().Closed(watcher.session, /*clean=*/false);  // as the network layer reports it
  b_.RunPosted();
  Request(a_, alice, "update", {{"channel", "room"}, {"data", 2}});
  a_.dispatcher().Closed(alice.session, /*clean=*/true);
  Deliver();
  EXPECT_EQ(b_.dispatcher().SaveState(), a_.dispatcher().SaveState());
  EXPECT_EQ(b_.dispatcher().engine().member_count(), 0u);
}

}  // namespace
}  // namespace presenced::protocol::testing
