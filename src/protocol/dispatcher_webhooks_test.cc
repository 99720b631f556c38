// Webhooks (protocol-ext §4) through the Dispatcher, without sockets: which events are queued and
// in what order, the single node's outbox in its store (written, deleted once delivered, restored
// after a restart), with a recording HTTP client answering by hand.
#include <gtest/gtest.h>

#include <deque>
#include <string>

#include "common/http_client.h"
#include "protocol/testing/protocol_test_util.h"

namespace presenced::protocol::testing {
namespace {

struct FakeHttp final : HttpClient {
  struct Call {
    HttpCall call;
    std::function<void(HttpOutcome)> done;
  };
  std::deque<Call> calls;
  void Post(HttpCall call, std::function<void(HttpOutcome)> done) override {
    calls.push_back({std::move(call), std::move(done)});
  }
};

DispatcherOptions WithWebhooks() {
  DispatcherOptions o = ProtocolHarness::DefaultOptions();
  o.webhooks.endpoints = {"http://receiver.test/hook"};
  o.webhooks.secret = "0123456789abcdefghijklmn";
  o.webhooks.types = webhooks::kAllTypes;
  return o;
}

class DispatcherWebhooksTest : public ::testing::Test {
 protected:
  DispatcherWebhooksTest() : h_(WithWebhooks()) { h_.dispatcher().SetWebhookClient(&http_); }

  std::vector<std::string> QueuedTypes() {
    std::vector<std::string> out;
    auto rows = h_.store.LoadWebhooks();
    for (const auto& r : *rows) out.push_back(Str(ParseObject(r.body), "type"));
    return out;
  }
  // Answers the oldest request and runs what that posts.
  void Answer(unsigned status) {
    FakeHttp::Call c = std::move(http_.calls.front());
    http_.calls.pop_front();
    c.done(HttpOutcome{status, ""});
    h_.RunPosted();
  }

  FakeHttp http_;
  ProtocolHarness h_;
};

TEST_F(DispatcherWebhooksTest, EnterAndLeaveQueueTheirEventsInOrderAndTheStoreKeepsThem) {
  TestConn alice = h_.Connect("alice");
  h_.Ok(alice, "enter", {{"channel", "room"}, {"data", 1}});
  h_.Ok(alice, "enter", {{"channel", "room"}, {"data", 2}});  // an update: no webhook
  h_.Ok(alice, "leave", {{"channel", "room"}});
  EXPECT_EQ(QueuedTypes(),
            (std::vector<std::string>{"user.online", "channel.occupied", "member.entered",
                                      "member.left", "channel.vacated"}));
  // One request in flight: the first event.
  ASSERT_EQ(http_.calls.size(), 1u);
  const json::object first = ParseObject(http_.calls.front().call.body);
  EXPECT_EQ(Str(first, "type"), "user.online");
  EXPECT_EQ(Str(first.at("data").as_object(), "clientId"), "alice");
  Answer(200);
  EXPECT_EQ(QueuedTypes().size(), 4u);  // delivered: gone from the store too
  ASSERT_EQ(http_.calls.size(), 1u);
  EXPECT_EQ(Str(ParseObject(http_.calls.front().call.body), "type"), "channel.occupied");
  Answer(503);  // kept, retried later with the same id
  EXPECT_EQ(QueuedTypes().size(), 4u);
  EXPECT_TRUE(http_.calls.empty());
  EXPECT_EQ(h_.metrics.webhook_error_total.load(), 1u);
}

TEST_F(DispatcherWebhooksTest, ARestartSendsWhatTheStoreKeptWithTheSameIds) {
  TestConn alice = h_.Connect("alice");
  ASSERT_EQ(http_.calls.size(), 1u);
  const std::string id = Str(ParseObject(http_.calls.front().call.body), "id");
  http_.calls.clear();  // never answered: the process dies
  h_.Restart(WithWebhooks());
  FakeHttp again;
  h_.dispatcher().RestoreWebhooks(*h_.store.LoadWebhooks());
  h_.dispatcher().SetWebhookClient(&again);
  h_.dispatcher().Tick();
  ASSERT_EQ(again.calls.size(), 1u);
  EXPECT_EQ(Str(ParseObject(again.calls.front().call.body), "id"), id);
  h_.dispatcher().SetWebhookClient(nullptr);
}

TEST_F(DispatcherWebhooksTest, AgentSessionsStartAndStopAsWebhooks) {
  h_.dispatcher().SetWebhookClient(nullptr);  // only what is queued matters here
  TestConn alice = h_.Connect("alice");
  h_.Ok(alice, "session.start", {{"conversationId", "c1"}});
  h_.Ok(alice, "session.stop", {{"conversationId", "c1"}});
  const auto types = QueuedTypes();
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(types[types.size() - 2], "session.started");
  EXPECT_EQ(types.back(), "session.stopped");
  const auto rows = *h_.store.LoadWebhooks();
  const json::object stopped = ParseObject(rows.back().body);
  EXPECT_EQ(Str(stopped.at("data").as_object(), "reason"), "stopped");
}

}  // namespace
}  // namespace presenced::protocol::testing
