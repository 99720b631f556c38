// net::Server driven over loopback by raw blocking sockets, with a toy backend (EchoService): the
// facade tested alone, without the protocol or the engine. Time is a ManualClock moved by the
// test; Server::CheckDeadlines makes sessions look at it. Nothing here sleeps: a test waits for a
// frame, a response or a service callback (each with a generous timeout that only a failure hits).
#include "net/server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"
#include "net/loopback_client.h"
#include "net/test_certificate.h"
#include "net/ws_codec.h"

namespace presenced::net {
namespace {

using namespace loopback;  // Client, Response, Frame, kKey, opcodes

constexpr TimeMs kHeartbeat = 10000;
constexpr auto kWait = std::chrono::seconds(10);  // only a failing test waits this long

// ----- The toy backend ------------------------------------------------------------------------

// Accepts upgrades unless the target says token=bad (takes `hb=N` as the session's heartbeat),
// greets each session with "hello" (not when the target says `quiet`: its 101 then goes at once),
// echoes messages, and obeys a few commands:
//   "close"           the service closes the session with 4000
//   "push N SIZE"     N messages of SIZE bytes in one batch
//   "big SIZE"        one message of SIZE bytes
// With hold_processed it keeps the `processed` callbacks until ReleaseProcessed.
class EchoService final : public Service {
 public:
  struct Closed {
    SessionId id;
    bool clean;
    CloseInfo info;
  };

  bool echo = true;             // set before traffic
  bool hold_processed = false;  // set before traffic

  Result<Upgrade> AuthorizeUpgrade(const HttpRequest& req) override {
    if (req.target.find("token=bad") != std::string::npos) {
      return MakeError(ErrorCode::kUnauthorized, "bad token");
    }
    Upgrade upgrade;
    upgrade.attachment = std::make_shared<std::string>(req.target);
    upgrade.sends_on_open = req.target.find("quiet") == std::string::npos;
    if (auto hb = req.target.find("hb="); hb != std::string::npos) {
      upgrade.heartbeat_ms = std::stoll(req.target.substr(hb + 3));
    }
    return upgrade;
  }

  void HandleHttp(HttpRequest req, std::function<void(HttpResponse)> done) override {
    if (req.target == "/v1/healthz") return done(HttpResponse{200, R"({"ok":true})"});
    done(HttpResponse{404, "no such route", "text/plain"});
  }

  void OnOpen(SessionId id, std::shared_ptr<void> attachment, std::shared_ptr<Peer> peer) override {
    const std::string& target = *std::static_pointer_cast<std::string>(attachment);
    if (target.find("quiet") == std::string::npos) {
      peer->Send(std::make_shared<const std::string>("hello"));
    }
    MutexLock lock(mu_);
    peers_[id] = peer;
    attachments_.push_back(*std::static_pointer_cast<std::string>(attachment));
    changed_.notify_all();
  }

  void OnMessage(SessionId id, std::string text, std::chrono::steady_clock::time_point,
                 std::function<void()> processed) override {
    std::shared_ptr<Peer> peer;
    {
      MutexLock lock(mu_);
      peer = peers_[id];
    }
    if (text == "close") {
      peer->Close(4000, "superseded");
    } else if (text.rfind("push ", 0) == 0) {
      size_t n = 0, size = 0;
      std::sscanf(text.c_str(), "push %zu %zu", &n, &size);
      std::vector<std::shared_ptr<const std::string>> batch;
      for (size_t i = 0; i < n; ++i) batch.push_back(std::make_shared<std::string>(size, 'p'));
      peer->SendBatch(std::move(batch));
    } else if (text.rfind("big ", 0) == 0) {
      peer->Send(std::make_shared<std::string>(std::stoul(text.substr(4)), 'b'));
    } else if (echo) {
      peer->Send(std::make_shared<const std::string>(text));
    }
    MutexLock lock(mu_);
    ++messages_;
    if (hold_processed) {
      held_.push_back(std::move(processed));
    } else {
      processed();
    }
    changed_.notify_all();
  }

  void OnDrained(SessionId) override {
    MutexLock lock(mu_);
    ++drained_;
    changed_.notify_all();
  }
  bool WaitDrained(size_t n) {
    MutexLock lock(mu_);
    return changed_.wait_for(mu_, kWait, [&] {
      mu_.AssertHeld();
      return drained_ >= n;
    });
  }
  size_t drained() {
    MutexLock lock(mu_);
    return drained_;
  }
  // The peer of the one open session.
  std::shared_ptr<Peer> only_peer() {
    MutexLock lock(mu_);
    return peers_.size() == 1 ? peers_.begin()->second : nullptr;
  }

  void OnClose(SessionId id, bool clean, const CloseInfo& info) override {
    MutexLock lock(mu_);
    closed_.push_back(Closed{id, clean, info});
    peers_.erase(id);
    changed_.notify_all();
  }

  HttpResponse ErrorResponse(unsigned status, const Error& error) const override {
    return HttpResponse{status, "{\"echo_error\":\"" + std::string(ErrorCodeName(error.code)) +
                                    ": " + error.message + "\"}"};
  }

  // The one session closed so far (waits for it).
  std::optional<Closed> WaitClosed() {
    MutexLock lock(mu_);
    if (!changed_.wait_for(mu_, kWait, [&] {
          mu_.AssertHeld();
          return !closed_.empty();
        })) {
      return std::nullopt;
    }
    return closed_.front();
  }
  size_t closed_count() {
    MutexLock lock(mu_);
    return closed_.size();
  }
  bool WaitMessages(size_t n) {
    MutexLock lock(mu_);
    return changed_.wait_for(mu_, kWait, [&] {
      mu_.AssertHeld();
      return messages_ >= n;
    });
  }
  size_t messages() {
    MutexLock lock(mu_);
    return messages_;
  }
  std::vector<std::string> attachments() {
    MutexLock lock(mu_);
    return attachments_;
  }
  void ReleaseProcessed() {
    std::vector<std::function<void()>> held;
    {
      MutexLock lock(mu_);
      hold_processed = false;
      held.swap(held_);
    }
    for (auto& processed : held) processed();
  }

 private:
  Mutex mu_;
  CondVar changed_;
  std::unordered_map<SessionId, std::shared_ptr<Peer>> peers_ GUARDED_BY(mu_);
  std::vector<std::string> attachments_ GUARDED_BY(mu_);
  std::vector<Closed> closed_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> held_ GUARDED_BY(mu_);
  size_t messages_ GUARDED_BY(mu_) = 0;
  size_t drained_ GUARDED_BY(mu_) = 0;
};

// ----- The fixture ----------------------------------------------------------------------------

// Every test runs twice: over plain TCP and over TLS (what the server serves, it serves alike).
enum class Transport { kPlain, kTls };

// What the TLS tests share: two certificates (for reloads) in a temporary directory, and the
// client's context, which trusts both.
struct TlsFixture {
  TlsFixture() {
    // OpenSSL writes to the client's socket with write(2): a server that closed it must not
    // end the test process (the plain client sends with MSG_NOSIGNAL).
    std::signal(SIGPIPE, SIG_IGN);
    char dir_template[] = "/tmp/presenced-net-test-XXXXXX";
    dir = ::mkdtemp(dir_template);
    first = testing::MakeTestCertificate(dir, "first", "first", 1);
    second = testing::MakeTestCertificate(dir, "second", "second", 2);
    client = ::SSL_CTX_new(::TLS_client_method());
    ::SSL_CTX_set_verify(client, SSL_VERIFY_PEER, nullptr);
    ::SSL_CTX_load_verify_locations(client, first.cert_file.c_str(), nullptr);
    ::SSL_CTX_load_verify_locations(client, second.cert_file.c_str(), nullptr);
  }
  ~TlsFixture() {
    ::SSL_CTX_free(client);
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  testing::TestCertificate first, second;
  SSL_CTX* client = nullptr;
};

class NetServerTest : public ::testing::TestWithParam<Transport> {
 protected:
  static void SetUpTestSuite() { tls_ = new TlsFixture; }
  static void TearDownTestSuite() {
    delete tls_;
    tls_ = nullptr;
  }

  bool tls() const { return GetParam() == Transport::kTls; }

  NetOptions TestOptions() const {
    NetOptions o;
    o.port = 0;
    o.io_threads = 1;
    o.heartbeat_ms = kHeartbeat;
    o.handshake_timeout_ms = 5000;
    o.max_frame_bytes = 1024;
    o.max_http_body_bytes = 1024;
    o.max_outbound_bytes = 64 * 1024;
    if (tls()) {
      o.tls_cert = tls_->first.cert_file;
      o.tls_key = tls_->first.key_file;
    }
    return o;
  }

  // A connection in the test's transport (TLS: handshake done, the certificate verified).
  std::unique_ptr<Client> Connect(int receive_buffer = 0) const {
    return std::make_unique<Client>(port_, receive_buffer, tls() ? tls_->client : nullptr);
  }

  void Start() { Start(TestOptions()); }
  void Start(NetOptions options) {
    server_ = std::make_unique<Server>(options, service_, clock_);
    auto port = server_->Listen();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    thread_ = std::thread([this] { server_->Run(); });
  }

  void TearDown() override {
    if (!server_) return;
    server_->Stop();
    thread_.join();
    server_.reset();
  }

  // A client whose upgrade succeeded and that read the service's greeting.
  std::unique_ptr<Client> Open(std::string_view target = "/v1/ws?token=ok",
                               int receive_buffer = 0) {
    auto client = Connect(receive_buffer);
    auto response = client->Upgrade(target);
    EXPECT_TRUE(response && response->status == 101);
    auto hello = client->ReadFrame();
    EXPECT_TRUE(hello && hello->payload == "hello");
    return client;
  }

  void AdvanceAndCheck(TimeMs ms) {
    clock_.Advance(ms);
    server_->CheckDeadlines();
  }

  static TlsFixture* tls_;
  ManualClock clock_{1'000'000};
  EchoService service_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TlsFixture* NetServerTest::tls_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Transports, NetServerTest,
                         ::testing::Values(Transport::kPlain, Transport::kTls),
                         [](const ::testing::TestParamInfo<Transport>& info) {
                           return info.param == Transport::kTls ? "Tls" : "Plain";
                         });

// ----- Handshake ------------------------------------------------------------------------------

TEST_P(NetServerTest, UpgradeAnswers101WithTheAcceptKey) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 101u);
  EXPECT_EQ(r->Header("Sec-WebSocket-Accept"), ws::AcceptKey(kKey));
  EXPECT_EQ(r->Header("Upgrade"), "websocket");
  auto hello = c->ReadFrame();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->opcode, kText);
  EXPECT_EQ(hello->payload, "hello");
}

TEST_P(NetServerTest, UpgradeOfAServiceThatSendsNothingIsAnsweredAtOnce) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade("/v1/ws?token=ok&quiet");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 101u);
  c->WriteFrame(kText, "first");
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "first");
}

TEST_P(NetServerTest, OnOpenGetsTheAttachmentOfTheUpgrade) {
  Start();
  auto c = Open("/v1/ws?token=ok&who=ann");
  EXPECT_EQ(service_.attachments(), std::vector<std::string>{"/v1/ws?token=ok&who=ann"});
}

TEST_P(NetServerTest, BadKeyIs400) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade("/v1/ws?token=ok", "not-base64-of-16-bytes");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400u);
  EXPECT_NE(r->body.find("\"echo_error\":\"bad_request: bad WebSocket handshake"),
            std::string::npos)
      << r->body;
}

TEST_P(NetServerTest, WrongVersionIs426WithTheVersionSpoken) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade("/v1/ws?token=ok", kKey, "8");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 426u);
  EXPECT_EQ(r->Header("Sec-WebSocket-Version"), "13");
}

TEST_P(NetServerTest, NonGetUpgradeIs405) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade("/v1/ws?token=ok", kKey, "13", "POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405u);
  EXPECT_EQ(r->Header("Allow"), "GET");
}

TEST_P(NetServerTest, RefusedUpgradeIs401WithTheServiceBody) {
  Start();
  auto c = Connect();
  auto r = c->Upgrade("/v1/ws?token=bad");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401u);
  EXPECT_EQ(r->body, R"({"echo_error":"unauthorized: bad token"})");
  EXPECT_EQ(server_->counters().connections_refused.load(), 1u);
  EXPECT_TRUE(c->ReadUntilEof());
  EXPECT_EQ(c->got_close_notify(), tls());  // TLS ends with its own close_notify
}

// ----- Messages -------------------------------------------------------------------------------

TEST_P(NetServerTest, EchoesText) {
  Start();
  auto c = Open();
  c->WriteFrame(kText, "hi there");
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, kText);
  EXPECT_EQ(f->payload, "hi there");
}

TEST_P(NetServerTest, BinaryMessageIsReadAsAMessage) {
  Start();
  auto c = Open();
  c->WriteFrame(kBinary, "bytes");
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, kText);
  EXPECT_EQ(f->payload, "bytes");
}

TEST_P(NetServerTest, AnswersPingWithPong) {
  Start();
  auto c = Open();
  c->WriteFrame(kPing, "are you there");
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, kPong);
  EXPECT_EQ(f->payload, "are you there");
}

// ----- Deadlines (ManualClock + CheckDeadlines) ------------------------------------------------

TEST_P(NetServerTest, PingsAfterOneHeartbeatInterval) {
  Start();
  auto c = Open();
  AdvanceAndCheck(kHeartbeat);
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, kPing);
  EXPECT_EQ(service_.closed_count(), 0u);
}

TEST_P(NetServerTest, HeartbeatIsTheSessionsOwn) {
  Start();
  auto c = Open("/v1/ws?token=ok&hb=2000");
  AdvanceAndCheck(2000);  // a fifth of the server's default
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, kPing);
}

TEST_P(NetServerTest, SilentForTwoIntervalsIsDroppedAbruptly) {
  Start();
  auto c = Open();
  AdvanceAndCheck(kHeartbeat);
  ASSERT_TRUE(c->ReadFrameOf(kPing));  // and no answer
  AdvanceAndCheck(kHeartbeat);
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_FALSE(closed->clean);
  EXPECT_EQ(closed->info.cause, CloseCause::kHeartbeatTimeout);
  EXPECT_TRUE(c->ReadUntilEof());
}

// Without CheckDeadlines: the server's timer wheel ticks on its own (every 50 ms at most) and
// reads the clock, so moving the clock is enough.
TEST_P(NetServerTest, TheTimerWheelWakesSessionsOnItsOwn) {
  Start();
  auto c = Open();
  auto d = Open();
  clock_.Advance(kHeartbeat);
  ASSERT_TRUE(c->ReadFrameOf(kPing));
  ASSERT_TRUE(d->ReadFrameOf(kPing));
  d->WriteFrame(kPong, "");
  d->WriteFrame(kText, "here");
  ASSERT_TRUE(d->ReadFrameOf(kText));
  clock_.Advance(kHeartbeat);  // c stayed silent for two intervals, d answered
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->info.cause, CloseCause::kHeartbeatTimeout);
  EXPECT_TRUE(c->ReadUntilEof());
  EXPECT_EQ(service_.closed_count(), 1u);
}

TEST_P(NetServerTest, AnsweringKeepsTheSessionAlive) {
  Start();
  auto c = Open();
  for (int i = 0; i < 4; ++i) {
    AdvanceAndCheck(kHeartbeat);
    auto ping = c->ReadFrameOf(kPing);
    ASSERT_TRUE(ping);
    c->WriteFrame(kPong, "");
    c->WriteFrame(kText, "still here");  // echoed: proves the pong was read before the next step
    ASSERT_TRUE(c->ReadFrameOf(kText));
  }
  EXPECT_EQ(service_.closed_count(), 0u);
}

// ----- Closing --------------------------------------------------------------------------------

TEST_P(NetServerTest, ClientCloseIsEchoedAndReportedClean) {
  Start();
  auto c = Open();
  c->WriteClose(4100);
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), 4100);
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_TRUE(closed->clean);
  EXPECT_EQ(closed->info.cause, CloseCause::kClientClosed);
  EXPECT_TRUE(c->ReadUntilEof());
  EXPECT_EQ(c->got_close_notify(), tls());  // after the close frame, TLS ends with its own
}

TEST_P(NetServerTest, ServiceCloseSendsItsCodeAndReason) {
  Start();
  auto c = Open();
  c->WriteFrame(kText, "close");
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), 4000);
  EXPECT_EQ(f->CloseReason(), "superseded");
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_TRUE(closed->clean);
  EXPECT_EQ(closed->info.cause, CloseCause::kServiceClosed);
  EXPECT_EQ(closed->info.code, 4000);
  EXPECT_EQ(closed->info.reason, "superseded");
}

TEST_P(NetServerTest, InvalidUtf8Closes1007) {
  Start();
  auto c = Open();
  c->WriteFrame(kText, "ok\xff");
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), ws::kCloseInvalidData);
  EXPECT_EQ(service_.messages(), 0u);
}

TEST_P(NetServerTest, OversizeMessageCloses1009) {
  Start();
  auto c = Open();
  c->WriteFrame(kText, std::string(2000, 'x'));  // max_frame_bytes is 1024
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), ws::kCloseTooBig);
}

// ----- Bounds and backpressure ----------------------------------------------------------------

TEST_P(NetServerTest, PeerHasNoRoomWhileOutputWaitsAndSaysWhenItDrained) {
  service_.echo = false;
  Start();
  auto c = Open("/v1/ws?token=ok", 64 * 1024);
  std::shared_ptr<Peer> peer = service_.only_peer();
  ASSERT_TRUE(peer);
  // A barrier: the completion of the greeting's write was queued on the (one) I/O thread before
  // this message could arrive, so once it is handled the greeting is no longer unsent.
  c->WriteFrame(kText, "sync");
  ASSERT_TRUE(service_.WaitMessages(1));
  EXPECT_TRUE(peer->HasRoomFor(0, 1 << 30));        // nothing unsent: any one message is taken
  EXPECT_TRUE(peer->HasRoomFor(1, 64 * 1024 - 1));  // the caller's own queued bytes count
  EXPECT_FALSE(peer->HasRoomFor(1, 64 * 1024));
  c->WriteFrame(kText, "big 33554432");  // far more than the kernel buffers hold
  c->WriteFrame(kText, "sync");
  ASSERT_TRUE(service_.WaitMessages(3));
  EXPECT_FALSE(peer->HasRoomFor(0, 1));
  peer->NotifyWhenDrained();
  EXPECT_EQ(service_.drained(), 0u);
  auto big = c->ReadFrame();  // the client reads it all: the output drains
  ASSERT_TRUE(big);
  EXPECT_EQ(big->payload.size(), 33554432u);
  ASSERT_TRUE(service_.WaitDrained(1));
  EXPECT_TRUE(peer->HasRoomFor(0, 1));
  peer->NotifyWhenDrained();  // already drained: told at once, and once
  ASSERT_TRUE(service_.WaitDrained(2));
  EXPECT_EQ(service_.closed_count(), 0u);
}

TEST_P(NetServerTest, BacklogPastTwiceTheOutboundBoundCloses4008) {
  Start();
  auto c = Open();
  // 100 x 4000 bytes in one batch, to a client that reads nothing meanwhile; the bound is 64 KiB
  // (the service is expected to keep under it; past twice it, the session is a slow consumer).
  c->WriteFrame(kText, "push 100 4000");
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_FALSE(closed->clean);
  EXPECT_EQ(closed->info.cause, CloseCause::kSlowConsumer);
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), ws::kCloseSlowConsumer);
  EXPECT_EQ(server_->counters().queue_drops_total.load(), 1u);
}

TEST_P(NetServerTest, OutputThatDoesNotDrainFor2IntervalsCloses4008) {
  service_.echo = false;
  Start();
  auto c = Open("/v1/ws?token=ok", 64 * 1024);
  // One message is always accepted, however large: far more than the kernel buffers hold.
  c->WriteFrame(kText, "big 33554432");
  // A barrier: the session handles "sync" on its strand after it queued the big message, so the
  // clock has not moved since the output went over the bound.
  c->WriteFrame(kText, "sync");
  ASSERT_TRUE(service_.WaitMessages(2));
  AdvanceAndCheck(2 * kHeartbeat - 1);
  EXPECT_EQ(service_.closed_count(), 0u);
  AdvanceAndCheck(1);
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_FALSE(closed->clean);
  EXPECT_EQ(closed->info.cause, CloseCause::kSlowConsumer);
  // The frame on the wire is completed, then the close frame follows.
  auto big = c->ReadFrame();
  ASSERT_TRUE(big);
  EXPECT_EQ(big->payload.size(), 33554432u);
  auto f = c->ReadFrameOf(kClose);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->CloseCode(), ws::kCloseSlowConsumer);
}

TEST_P(NetServerTest, WithheldProcessedStopsReading) {
  service_.echo = false;
  service_.hold_processed = true;
  Start();
  auto c = Open();
  // In flight is bounded by 16 frames' worth (16 KiB here): past it the session stops reading,
  // having taken at most one more read (64 KiB) from the kernel.
  const std::string message(1000, 'm');
  for (int i = 0; i < 150; ++i) c->WriteFrame(kText, message);
  ASSERT_TRUE(service_.WaitMessages(16));
  EXPECT_LT(service_.messages(), 100u);
  service_.ReleaseProcessed();  // processed now: reading resumes, and the rest arrives
  EXPECT_TRUE(service_.WaitMessages(150));
}

TEST_P(NetServerTest, OverTheCapAnswers503ButStillHealthz) {
  NetOptions options = TestOptions();
  options.max_connections = 2;
  Start(options);
  auto a = Open();
  auto b = Open();
  auto refused = Connect();
  auto r = refused->Upgrade();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503u);
  EXPECT_EQ(r->body, R"({"echo_error":"limit_exceeded: too many connections, retry"})");
  auto probe = Connect();
  auto health = probe->Request("GET", "/v1/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200u);
  EXPECT_EQ(health->body, R"({"ok":true})");
}

TEST_P(NetServerTest, BeyondTheOverCapAllowanceThe503IsTheServices) {
  NetOptions options = TestOptions();
  options.max_connections = 1;
  options.max_over_cap_sockets = 0;
  Start(options);
  auto a = Open();
  if (tls()) {
    // Closed unread: a 503 would need the TLS handshake this bound is there to spare.
    EXPECT_FALSE(Connect()->connected());
    EXPECT_EQ(server_->counters().connections_refused.load(), 1u);
    return;
  }
  auto refused = Connect();
  refused->Send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n");  // not even read
  auto r = refused->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503u);
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_EQ(r->body, R"({"echo_error":"limit_exceeded: too many connections, retry"})");
}

TEST_P(NetServerTest, BodyOverTheLimitIs413) {
  Start();
  auto c = Connect();
  auto r = c->Request("POST", "/anything", "", std::string(2000, 'b'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413u);
  EXPECT_EQ(r->body, R"({"echo_error":"too_large: request body too large"})");
}

TEST_P(NetServerTest, HeadersOverTheLimitAre431) {
  Start();
  auto c = Connect();
  auto r = c->Request("GET", "/v1/healthz", "X-Big: " + std::string(20000, 'h') + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431u);
}

TEST_P(NetServerTest, MalformedRequestIs400) {
  Start();
  auto c = Connect();
  c->Send("GET /v1/healthz HTTP/1.1\r\nHost x\r\n\r\n");
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400u);
  EXPECT_EQ(r->body, R"({"echo_error":"bad_request: malformed request"})");
}

TEST_P(NetServerTest, KeepAliveServesTwoRequestsOnOneSocket) {
  Start();
  auto c = Connect();
  auto first = c->Request("GET", "/v1/healthz");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200u);
  auto second = c->Request("GET", "/nowhere");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 404u);
  EXPECT_EQ(second->body, "no such route");
}

// ----- Shutdown and counters ------------------------------------------------------------------

TEST_P(NetServerTest, StopAcceptingCutsHttpAndWaitsForWebSockets) {
  Start();
  auto ws = Open();
  auto http = Connect();
  ASSERT_TRUE(http->Request("GET", "/v1/healthz"));  // accepted, idle between requests
  server_->StopAccepting();
  EXPECT_TRUE(http->ReadUntilEof());  // the HTTP connection is cut...
  EXPECT_FALSE(server_->WaitForSessions(std::chrono::milliseconds(0)));  // ...the WebSocket not
  auto late = Connect();
  EXPECT_FALSE(late->connected());
  ws->WriteClose(1000);
  ASSERT_TRUE(ws->ReadFrameOf(kClose));
  ws.reset();  // the client ends its side
  EXPECT_TRUE(server_->WaitForSessions(kWait));
}

TEST_P(NetServerTest, CountersFollowSessions) {
  Start();
  const Counters& counters = server_->counters();
  auto c = Open();
  EXPECT_EQ(counters.connections_open.load(), 1u);
  EXPECT_EQ(counters.connections_total.load(), 1u);
  c->WriteClose(1000);
  ASSERT_TRUE(c->ReadFrameOf(kClose));
  c.reset();
  ASSERT_TRUE(server_->WaitForSessions(kWait));
  EXPECT_EQ(counters.connections_open.load(), 0u);
  EXPECT_EQ(counters.connections_total.load(), 1u);
  EXPECT_EQ(counters.disconnects[static_cast<size_t>(CloseCause::kClientClosed)].load(), 1u);
  EXPECT_EQ(CloseCauseName(CloseCause::kClientClosed), "client_closed");
}

TEST_P(NetServerTest, ProtocolErrorsAreReportedWithTheirCause) {
  Start();
  auto c = Open();
  c->WriteFrame(kText, std::string(2000, 'x'));  // over max_frame_bytes
  ASSERT_TRUE(c->ReadFrameOf(kClose));
  auto closed = service_.WaitClosed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->info.cause, CloseCause::kMessageTooLarge);
  EXPECT_EQ(closed->info.code, ws::kCloseTooBig);
}

// ----- TLS only -------------------------------------------------------------------------------

class NetTlsTest : public NetServerTest {
 protected:
  // The certificate the server is configured with, as files a test may overwrite (then reload).
  NetOptions LiveOptions(const testing::TestCertificate& initial) {
    live_ = {tls_->dir + "/live.crt", tls_->dir + "/live.key"};
    Install(initial);
    NetOptions o = TestOptions();
    o.tls_cert = live_.cert_file;
    o.tls_key = live_.key_file;
    return o;
  }
  void Install(const testing::TestCertificate& c) {
    const auto overwrite = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(c.cert_file, live_.cert_file, overwrite);
    std::filesystem::copy_file(c.key_file, live_.key_file, overwrite);
  }
  std::string Subject() {
    auto c = Connect();
    return c->connected() ? c->PeerSubject() : "(no handshake)";
  }
  static void WriteFile(const std::string& path, std::string_view text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  testing::TestCertificate live_;
};

INSTANTIATE_TEST_SUITE_P(Tls, NetTlsTest, ::testing::Values(Transport::kTls),
                         [](const ::testing::TestParamInfo<Transport>&) { return "Tls"; });

TEST_P(NetTlsTest, PlainHttpFailsTheHandshake) {
  Start();
  Client plain(port_);
  EXPECT_FALSE(plain.Request("GET", "/v1/healthz"));  // no HTTP response, only the end
  EXPECT_TRUE(plain.ReadUntilEof());
}

TEST_P(NetTlsTest, AClientThatSendsNothingIsClosedAfterTheHandshakeTimeout) {
  NetOptions options = TestOptions();
  options.handshake_timeout_ms = 200;  // a real timer: the stream's deadline, not the clock's
  Start(options);
  Client silent(port_);  // connects, never says hello
  EXPECT_TRUE(silent.ReadUntilEof());
  auto idle = Connect();  // the handshake, then no request
  ASSERT_TRUE(idle->connected());
  EXPECT_TRUE(idle->ReadUntilEof());
}

TEST_P(NetTlsTest, ListenNamesTheFileItCannotUse) {
  NetOptions options = TestOptions();
  options.tls_cert = tls_->dir + "/missing.crt";
  auto refused = Server(options, service_, clock_).Listen();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("cannot read TLS certificate " + options.tls_cert),
            std::string::npos)
      << refused.error().message;

  options = TestOptions();
  options.tls_key = tls_->dir + "/not-pem.key";
  WriteFile(options.tls_key, "not a key\n");
  refused = Server(options, service_, clock_).Listen();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("TLS key " + options.tls_key + ": not an unencrypted PEM"),
            std::string::npos)
      << refused.error().message;

  options = TestOptions();
  options.tls_key = tls_->second.key_file;  // another certificate's key
  refused = Server(options, service_, clock_).Listen();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("is not the key of the certificate " + options.tls_cert),
            std::string::npos)
      << refused.error().message;
}

TEST_P(NetTlsTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  Start(LiveOptions(tls_->first));
  auto before = Open();
  EXPECT_EQ(before->PeerSubject(), "/CN=localhost/O=first");
  Install(tls_->second);
  ASSERT_TRUE(server_->ReloadTls().ok());
  EXPECT_EQ(Subject(), "/CN=localhost/O=second");
  // The session opened before keeps its connection (and its certificate).
  before->WriteFrame(kText, "still here");
  auto f = before->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "still here");
  EXPECT_EQ(before->PeerSubject(), "/CN=localhost/O=first");
}

TEST_P(NetTlsTest, AFailedReloadKeepsTheCertificateInUse) {
  Start(LiveOptions(tls_->first));
  WriteFile(live_.cert_file, "-----BEGIN CERTIFICATE-----\ntruncated\n");
  Status st = server_->ReloadTls();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(live_.cert_file), std::string::npos) << st.error().message;
  EXPECT_EQ(Subject(), "/CN=localhost/O=first");
  Install(tls_->second);
  std::filesystem::copy_file(tls_->first.key_file, live_.key_file,
                             std::filesystem::copy_options::overwrite_existing);
  st = server_->ReloadTls();  // the new certificate with the old key: not a pair
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("is not the key of"), std::string::npos) << st.error().message;
  EXPECT_EQ(Subject(), "/CN=localhost/O=first");
}

TEST_P(NetTlsTest, ReloadWithoutTlsIsRefused) {
  NetOptions options = TestOptions();
  options.tls_cert.clear();
  options.tls_key.clear();
  Start(options);
  EXPECT_FALSE(server_->tls());
  EXPECT_FALSE(server_->ReloadTls().ok());
}

TEST_P(NetTlsTest, TheServiceSeesTheRequestAsOverPlainTcp) {
  Start();
  auto c = Connect();
  ASSERT_TRUE(c->connected());
  // Several requests on one connection, then a pipelined upgrade with its first frame.
  for (int i = 0; i < 3; ++i) {
    auto r = c->Request("GET", "/v1/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, R"({"ok":true})");
  }
  c->Send(
      "GET /v1/ws?token=ok&quiet HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: " +
      std::string(kKey) + "\r\nSec-WebSocket-Version: 13\r\n\r\n");
  c->WriteFrame(kText, "early");
  auto r = c->ReadResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 101u);
  auto f = c->ReadFrame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "early");
}

}  // namespace
}  // namespace presenced::net
