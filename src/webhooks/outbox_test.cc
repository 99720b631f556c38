// Outbox and Deliverer with a manual clock and a recording HTTP client: order per endpoint, one
// request in flight, the signature, backoff, giving up, overflow and state snapshots.
#include "webhooks/outbox.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace presenced::webhooks {
namespace {

struct FakeClient final : HttpClient {
  struct Pending {
    HttpCall call;
    std::function<void(HttpOutcome)> done;
  };
  std::deque<Pending> calls;
  void Post(HttpCall call, std::function<void(HttpOutcome)> done) override {
    calls.push_back({std::move(call), std::move(done)});
  }
  // Answers the oldest call.
  void Answer(unsigned status) {
    Pending p = std::move(calls.front());
    calls.pop_front();
    p.done(HttpOutcome{status, status == 0 ? "timed out" : ""});
  }
};

std::string Header(const HttpCall& c, std::string_view name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) return v;
  }
  return {};
}

class DelivererTest : public ::testing::Test {
 protected:
  DelivererTest() : outbox_(Opts()) {
    deliverer_ = std::make_unique<Deliverer>(
        outbox_, clock_, client_,
        Deliverer::Callbacks{
            .done =
                [this](size_t endpoint, uint64_t seq, bool delivered) {
                  done_.push_back(std::to_string(endpoint) + ":" + std::to_string(seq) +
                                  (delivered ? " ok" : " dropped"));
                  outbox_.Pop(endpoint, seq);
                  deliverer_->Settled(endpoint, seq);
                },
            .post = [](std::function<void()> task) { task(); },
            .count = [this](std::string_view r) { ++counts_[std::string(r)]; },
        });
  }
  static Options Opts() {
    Options o;
    o.endpoints = {"http://a.example/hook", "https://b.example/hook"};
    o.secret = "0123456789abcdef01234567";
    o.types = kAllTypes;
    o.retry_ms = 60000;
    return o;
  }

  ManualClock clock_{1'700'000'000'000};
  FakeClient client_;
  Outbox outbox_;
  std::unique_ptr<Deliverer> deliverer_;
  std::vector<std::string> done_;
  std::map<std::string, int> counts_;
};

TEST(WebhookTypesTest, ParseTypes) {
  EXPECT_EQ(*ParseTypes(""), kDefaultTypes);
  EXPECT_EQ(*ParseTypes("user.online, member.left"), uint32_t{kUserOnline | kMemberLeft});
  EXPECT_FALSE(ParseTypes("user.online,nope").ok());
  EXPECT_EQ(kDefaultTypes & (kMemberEntered | kMemberLeft), 0u);
}

TEST(WebhookSignatureTest, MatchesTheStandardWebhooksExample) {
  // The example of the Standard Webhooks specification (secret bytes of
  // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw).
  const std::string secret = {'\x31', '\xf2', '\x90', '\xf6', '\xbf', '\x06', '\x29', '\x8a',
                              '\xab', '\x4f', '\x08', '\xd4', '\x3c', '\x3f', '\x08', '\x2c',
                              '\xf6', '\x48', '\xa3', '\x62', '\xda', '\x2d', '\xa4', '\xb0'};
  EXPECT_EQ(
      Signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_F(DelivererTest, EventsCarryAStableIdAndGoInOrderOneAtATimePerEndpoint) {
  const TimeMs t = clock_.NowMs();
  const Event* e1 = outbox_.Add(kUserOnline, R"({"clientId":"a"})", t, "ep");
  ASSERT_NE(e1, nullptr);
  EXPECT_EQ(e1->id, "ep-1");
  EXPECT_EQ(*e1->body, R"({"id":"ep-1","type":"user.online","timestamp":)" + std::to_string(t) +
                           R"(,"data":{"clientId":"a"}})");
  outbox_.Add(kUserOffline, R"({"clientId":"a"})", t, "ep");
  deliverer_->Pump();
  ASSERT_EQ(client_.calls.size(), 2u);  // one per endpoint
  EXPECT_EQ(client_.calls[0].call.url, "http://a.example/hook");
  EXPECT_EQ(client_.calls[1].call.url, "https://b.example/hook");
  const HttpCall& c = client_.calls[0].call;
  EXPECT_EQ(Header(c, "webhook-id"), "ep-1");
  EXPECT_EQ(Header(c, "webhook-timestamp"), "1700000000");
  EXPECT_EQ(Header(c, "webhook-signature"), Signature(Opts().secret, "ep-1", 1700000000, c.body));
  deliverer_->Pump();
  EXPECT_EQ(client_.calls.size(), 2u);  // nothing more while in flight
  client_.Answer(204);                  // a: ep-1 delivered, ep-2 goes
  ASSERT_EQ(client_.calls.size(), 2u);
  deliverer_->Pump();
  ASSERT_EQ(client_.calls.size(), 2u);
  EXPECT_EQ(Header(client_.calls[1].call, "webhook-id"), "ep-2");
  EXPECT_EQ(done_, (std::vector<std::string>{"0:1 ok"}));
}

TEST_F(DelivererTest, FailuresRetryWithDoublingBackoffThenGiveUp) {
  Options o = Opts();
  o.endpoints = {"http://a.example/hook"};
  Outbox outbox(o);
  FakeClient client;
  std::vector<std::string> done;
  Deliverer d(outbox, clock_, client,
              {.done =
                   [&](size_t, uint64_t seq, bool ok) {
                     done.push_back(std::to_string(seq) + (ok ? " ok" : " dropped"));
                     outbox.Pop(0, seq);
                   },
               .post = [](std::function<void()> t) { t(); },
               .count = [](std::string_view) {}});
  outbox.Add(kUserOnline, "{}", clock_.NowMs(), "e");
  d.Pump();
  const std::string first_id = Header(client.calls.front().call, "webhook-id");
  client.Answer(500);
  EXPECT_EQ(*d.NextDeadline(), clock_.NowMs() + 1000);
  std::vector<TimeMs> gaps;
  TimeMs last = clock_.NowMs();
  while (done.empty()) {
    const TimeMs next = *d.NextDeadline();
    clock_.Set(next);
    d.Pump();
    if (!client.calls.empty()) {
      gaps.push_back(next - last);
      last = next;
      EXPECT_EQ(Header(client.calls.front().call, "webhook-id"), first_id);  // stable id
      client.Answer(0);                                                      // no answer in time
    }
  }
  // Tries at +0, +1 s, +3 s, +7 s, +15 s, +31 s; the next would be at +63 s, past the retry
  // period (60 s): given up then.
  EXPECT_EQ(gaps, (std::vector<TimeMs>{1000, 2000, 4000, 8000, 16000}));
  EXPECT_EQ(done, (std::vector<std::string>{"1 dropped"}));
  EXPECT_EQ(last + 32000, clock_.NowMs());
  EXPECT_EQ(outbox.depth(0), 0u);
}

TEST_F(DelivererTest, BackoffStopsDoublingAtItsCap) {
  Options o = Opts();
  o.endpoints = {"http://a.example/hook"};
  o.retry_ms = 86400000;
  Outbox outbox(o);
  FakeClient client;
  Deliverer d(outbox, clock_, client,
              {.done = [](size_t, uint64_t, bool) {},
               .post = [](std::function<void()> t) { t(); },
               .count = [](std::string_view) {}});
  outbox.Add(kUserOnline, "{}", clock_.NowMs(), "e");
  TimeMs gap = 0;
  for (int i = 0; i < 12; ++i) {
    d.Pump();
    ASSERT_EQ(client.calls.size(), 1u);
    client.Answer(503);
    gap = *d.NextDeadline() - clock_.NowMs();
    clock_.Set(*d.NextDeadline());
  }
  EXPECT_EQ(gap, 300000);
}

TEST_F(DelivererTest, AFullQueueDropsItsOldest) {
  Options o = Opts();
  o.max_queue = 2;
  Outbox outbox(o);
  for (int i = 0; i < 3; ++i) outbox.Add(kUserOnline, "{}", 1, "e");
  EXPECT_EQ(outbox.depth(0), 2u);
  EXPECT_EQ(outbox.Head(0)->seq, 2u);
  EXPECT_EQ(outbox.overflowed(), 2u);  // one per endpoint
  EXPECT_EQ(outbox.Add(kUserOnline, "{}", 1, "e")->seq, 4u);
  Options only = Opts();
  only.types = kUserOffline;
  Outbox filtered(only);
  EXPECT_EQ(filtered.Add(kUserOnline, "{}", 1, "e"), nullptr);
  EXPECT_EQ(filtered.total_depth(), 0u);
}

TEST_F(DelivererTest, StateSavedLoadsExactlyAndRestoreContinuesTheSequence) {
  outbox_.Add(kChannelOccupied, R"({"channel":"r"})", 5, "e");
  outbox_.Add(kChannelVacated, R"({"channel":"r"})", 6, "e");
  ASSERT_TRUE(outbox_.Pop(0, 1));
  EXPECT_FALSE(outbox_.Pop(0, 1));
  const std::string saved = outbox_.SaveState();
  Outbox copy(Opts());
  ASSERT_TRUE(copy.LoadState(saved).ok());
  EXPECT_EQ(copy.SaveState(), saved);
  EXPECT_EQ(copy.depth(0), 1u);
  EXPECT_EQ(copy.depth(1), 2u);
  EXPECT_EQ(copy.Add(kUserOnline, "{}", 7, "e")->seq, 3u);
  EXPECT_FALSE(copy.LoadState(saved.substr(0, saved.size() - 1)).ok());
  EXPECT_EQ(copy.total_depth(), 0u);

  Outbox restored(Opts());
  std::vector<StoredEvent> rows;
  rows.push_back({1, *outbox_.Head(1)});
  rows.push_back({0, *outbox_.Head(0)});
  rows.push_back({7, *outbox_.Head(0)});  // an endpoint no longer configured: skipped
  restored.Restore(rows);
  EXPECT_EQ(restored.depth(0), 1u);
  EXPECT_EQ(restored.Head(1)->id, "e-1");
  EXPECT_EQ(restored.Add(kUserOnline, "{}", 7, "x")->seq, 3u);
}

}  // namespace
}  // namespace presenced::webhooks
