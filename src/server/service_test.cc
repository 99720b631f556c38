// server::Service without sockets and without a loop: the EngineLoop is never attached, so a
// request answered at all was answered on the calling (I/O) thread, and one that reaches the
// dispatcher stays queued.
#include "server/service.h"

#include <gtest/gtest.h>

#include <optional>

#include "common/random.h"
#include "protocol/auth.h"
#include "storage/memory_store.h"

namespace presenced::server {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest()
      : dispatcher_(protocol::DispatcherOptions{}, clock_, random_, store_, metrics_,
                    [this](std::function<void()> task) { loop_.Post(std::move(task)); }),
        loop_(dispatcher_, clock_),
        service_(loop_, dispatcher_, store_, metrics_, Configured(), clock_) {}

  static const Config& Configured() {
    static const Config config = [] {
      Config c;
      c.protocol.jwt_secret = "test-secret";
      c.protocol.api_key = "test-key";
      c.net.heartbeat_ms = 7000;
      return c;
    }();
    return config;
  }

  // The response when `done` ran before HandleHttp returned, else nullopt.
  std::optional<HttpResponse> Inline(std::string method, std::string target) {
    std::optional<HttpResponse> got;
    service_.HandleHttp(HttpRequest{std::move(method), std::move(target), "", "", ""},
                        [&got](HttpResponse r) { got = std::move(r); });
    return got;
  }

  ManualClock clock_{kNow};
  SeededRandom random_{7};
  storage::MemoryStore store_;
  protocol::Metrics metrics_;
  protocol::Dispatcher dispatcher_;
  EngineLoop loop_;  // never run
  Service service_;
};

TEST_F(ServiceTest, HealthzIsAnsweredOnTheCallingThread) {
  auto r = Inline("GET", "/v1/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, R"({"ok":true})");
  EXPECT_EQ(metrics_.http_requests_total.load(), 1u);
}

TEST_F(ServiceTest, HealthzReportsRedisInClusterMode) {
  service_.SetRedisUp(false);
  auto down = Inline("GET", "/v1/healthz");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->status, 503u);
  EXPECT_EQ(down->body, R"({"ok":false,"redis":"down"})");
  auto metrics = Inline("GET", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("presenced_redis_up 0\n"), std::string::npos);
  service_.SetRedisUp(true);
  service_.CountFenced();
  auto up = Inline("GET", "/v1/healthz");
  EXPECT_EQ(up->status, 200u);
  EXPECT_EQ(up->body, R"({"ok":true,"redis":"up"})");
  metrics = Inline("GET", "/metrics");
  EXPECT_NE(metrics->body.find("presenced_redis_up 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("presenced_node_fenced_total 1\n"), std::string::npos);
  service_.CountSnapshotSaved();
  service_.CountSnapshotLoaded();
  service_.CountSnapshotLoaded();
  service_.CountLogGap();
  metrics = Inline("GET", "/metrics");
  EXPECT_NE(metrics->body.find("presenced_cluster_snapshots_saved_total 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("presenced_cluster_snapshots_loaded_total 2\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("presenced_cluster_log_gaps_total 1\n"), std::string::npos);
}

TEST_F(ServiceTest, HealthzAndMetricsAreGetOnly) {
  auto healthz = Inline("POST", "/v1/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 405u);
  EXPECT_EQ(healthz->body,
            R"({"error":{"code":"method_not_allowed","message":"method not allowed"}})");
  auto metrics = Inline("DELETE", "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 405u);
}

TEST_F(ServiceTest, DashboardNeedsNoKey) {
  auto index = Inline("GET", "/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200u);
  EXPECT_EQ(index->content_type.substr(0, 9), "text/html");
  auto missing = Inline("GET", "/dashboard/no-such-file.js");
  EXPECT_FALSE(missing);  // the dispatcher's to answer (404)
}

TEST_F(ServiceTest, MetricsRenderNetCountersAndPublishedEngineGauges) {
  net::Counters counters;
  counters.connections_open = 3;
  counters.connections_total = 9;
  counters.connections_refused = 4;
  counters.queue_drops_total = 2;
  service_.SetNetCounters(&counters);
  metrics_.PublishEngine(5, 6, 7, 8);
  auto r = Inline("GET", "/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->content_type, "text/plain; version=0.0.4");
  for (const char* line :
       {"presenced_connections 3\n", "presenced_connections_total 9\n",
        "presenced_connections_refused_total 4\n", "presenced_queue_drops_total 2\n",
        "presenced_channels 5\n", "presenced_members 6\n", "presenced_engine_connections 7\n",
        "presenced_users 8\n", "# TYPE presenced_connections gauge\n"}) {
    EXPECT_NE(r->body.find(line), std::string::npos) << line;
  }
}

TEST_F(ServiceTest, PresenceRoutesAndMalformedTargetsGoToTheEngineThread) {
  EXPECT_FALSE(Inline("GET", "/v1/channels/room/presence"));
  EXPECT_FALSE(Inline("GET", "/v1/healthz?x=%ff"));  // not UTF-8: the dispatcher refuses it
  EXPECT_EQ(metrics_.http_requests_total.load(), 0u);
}

TEST_F(ServiceTest, ErrorResponseIsTheProtocolsErrorBody) {
  HttpResponse r = service_.ErrorResponse(
      503, MakeError(ErrorCode::kLimitExceeded, "too many connections, retry"));
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body,
            R"({"error":{"code":"limit_exceeded","message":"too many connections, retry"}})");
}

TEST_F(ServiceTest, UpgradeCarriesTheConnectRequest) {
  auto token = protocol::MintToken("test-secret", "ann", 3600, std::nullopt, kNow);
  ASSERT_TRUE(token.ok());
  auto upgrade =
      service_.AuthorizeUpgrade(HttpRequest{"GET", "/v1/ws?token=" + *token, "", "", ""});
  ASSERT_TRUE(upgrade.ok());
  EXPECT_EQ(upgrade->heartbeat_ms, 7000);
  EXPECT_TRUE(upgrade->sends_on_open);
  auto request = std::static_pointer_cast<protocol::ConnectRequest>(upgrade->attachment);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->client_id, "ann");
  EXPECT_EQ(request->heartbeat_ms, 7000);
}

TEST_F(ServiceTest, UpgradeWithABadTokenIsUnauthorized) {
  auto upgrade = service_.AuthorizeUpgrade(HttpRequest{"GET", "/v1/ws?token=nope", "", "", ""});
  ASSERT_FALSE(upgrade.ok());
  EXPECT_EQ(upgrade.error().code, ErrorCode::kUnauthorized);
}

}  // namespace
}  // namespace presenced::server
