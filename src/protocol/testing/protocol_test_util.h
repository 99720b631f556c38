// Protocol tests without sockets: a real protocol::Dispatcher driven the way the server drives it
// (src/server/main.cc, engine_loop.cc), with everything around it made deterministic: a
// storage::MemoryStore (answers at once), a ManualClock, a SeededRandom, a queue for the
// Dispatcher's Poster, and peers that record every frame they are sent, parsed as JSON.
//
// Modelled on Dragonfly's src/server/test_utils.h (TestConnection, BaseFamilyTest::Run,
// AdvanceTime): a test connects clients, sends frames, calls REST routes and moves time, then
// asserts on the JSON the wire would carry. Tests written against this header see only the wire
// behaviour, so they stay valid while the Dispatcher's insides change.
//
//   ProtocolHarness h;                       // or derive a gtest fixture from ProtocolTest
//   TestConn alice = h.Connect("alice", Device{"phone"}, Channels{{"room-*"}});
//   auto reply = h.Call(alice, "enter", {{"channel", "room"}, {"data", {{"x", 1}}}});
//   EXPECT_TRUE(reply.at("ok").as_bool());
//   auto events = alice.peer->Take("presence");
//   h.AdvanceTime(15000);                    // runs every deadline on the way, as the server does
//
// Threading: none. Everything runs on the test's thread: posted tasks are run by the harness
// (RunPosted) after each call, then the outbound frames are handed over (FlushOutbound), exactly
// once per round as the engine loop does. RecordingPeer is not thread-safe for that reason.
// Ownership: the harness owns the dispatcher, store, clock and peers' shared_ptrs it hands out.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/transport.h"
#include "protocol/auth.h"
#include "protocol/dispatcher.h"
#include "protocol/metrics.h"
#include "protocol/peer.h"
#include "protocol/upgrade.h"
#include "storage/memory_store.h"

namespace presenced::protocol::testing {

namespace json = boost::json;

inline constexpr std::string_view kTestSecret = "test-jwt-secret";
inline constexpr std::string_view kTestApiKey = "test-api-key";
inline constexpr std::string_view kTestEpoch = "testepoch";
inline constexpr TimeMs kTestStart = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
inline constexpr TimeMs kTestHeartbeatMs = 15000;

// Parses `text` as a client would. A frame that is not one JSON object is a test failure (and an
// empty object is returned), so every frame a test looks at is checked for well-formedness.
inline json::object ParseObject(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    ADD_FAILURE() << "not a JSON object: " << text;
    return {};
  }
  return std::move(v.as_object());
}

// The string at `key` of `o`, or "" (with a test failure) when it is absent or not a string.
inline std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    ADD_FAILURE() << "no string field " << key << " in " << json::serialize(o);
    return "";
  }
  return std::string(v->as_string());
}

// The integer at `key` of `o`, or -1 (with a test failure).
inline int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !(v->is_int64() || v->is_uint64())) {
    ADD_FAILURE() << "no integer field " << key << " in " << json::serialize(o);
    return -1;
  }
  return v->is_int64() ? v->as_int64() : static_cast<int64_t>(v->as_uint64());
}

// The `error.code` of an error reply or REST error body, or "" when there is none.
inline std::string ErrorCodeOf(const json::object& o) {
  const json::value* e = o.if_contains("error");
  if (e == nullptr || !e->is_object()) return "";
  const json::value* c = e->as_object().if_contains("code");
  return c != nullptr && c->is_string() ? std::string(c->as_string()) : "";
}

// True for an ok reply (`"ok":true`).
inline bool IsOk(const json::object& reply) {
  const json::value* ok = reply.if_contains("ok");
  return ok != nullptr && ok->is_bool() && ok->as_bool();
}

// A WebSocket peer as the network layer implements it, minus the socket: records every frame
// (raw text and parsed) and the close, if any.
class RecordingPeer final : public Peer {
 public:
  struct CloseRecord {
    uint16_t code = 0;
    std::string reason;
    bool abrupt = false;
  };

  void Send(std::shared_ptr<const std::string> message) override { Record(std::move(message)); }
  void SendBatch(std::vector<std::shared_ptr<const std::string>> messages) override {
    ++batches_;
    for (auto& m : messages) Record(std::move(m));
  }
  void Close(uint16_t code, std::string reason, bool abrupt) override {
    if (closed_) ADD_FAILURE() << "peer closed twice (" << code << " " << reason << ")";
    closed_ = CloseRecord{code, std::move(reason), abrupt};
  }
  // The outbound bound as the network layer keeps it: `unsent` bytes wait (set by the test), and
  // at most `room_bytes` may be unsent in all (unbounded by default).
  bool HasRoomFor(size_t queued, size_t bytes) const override {
    const size_t total = unsent + queued;
    return total == 0 || total + bytes <= room_bytes;
  }
  void NotifyWhenDrained() override { ++drain_requests; }
  size_t unsent = 0;
  size_t room_bytes = SIZE_MAX;
  size_t drain_requests = 0;

  // Every frame received since the last Take/Clear, oldest first.
  const std::vector<json::object>& frames() const { return frames_; }
  // The same frames as the exact buffers sent (to compare fan-out byte for byte).
  const std::vector<std::shared_ptr<const std::string>>& raw() const { return raw_; }
  // Frames whose "type" is `type`, oldest first.
  std::vector<json::object> OfType(std::string_view type) const {
    std::vector<json::object> out;
    for (const auto& f : frames_) {
      const json::value* t = f.if_contains("type");
      if (t != nullptr && t->is_string() && t->as_string() == type) out.push_back(f);
    }
    return out;
  }
  // OfType(type) (every frame when `type` is empty), then forgets every frame received so far.
  std::vector<json::object> Take(std::string_view type = {}) {
    std::vector<json::object> out = type.empty() ? frames_ : OfType(type);
    Clear();
    return out;
  }
  void Clear() {
    frames_.clear();
    raw_.clear();
  }
  const std::optional<CloseRecord>& closed() const { return closed_; }
  // Number of SendBatch hand-offs (FlushOutbound rounds that had frames for this peer).
  size_t batches() const { return batches_; }

 private:
  void Record(std::shared_ptr<const std::string> message) {
    if (closed_) ADD_FAILURE() << "frame after close: " << *message;
    frames_.push_back(ParseObject(*message));
    raw_.push_back(std::move(message));
  }

  std::vector<json::object> frames_;
  std::vector<std::shared_ptr<const std::string>> raw_;
  std::optional<CloseRecord> closed_;
  size_t batches_ = 0;
};

// One WebSocket session as a test holds it.
struct TestConn {
  SessionId session = 0;
  std::shared_ptr<RecordingPeer> peer;
  json::object connected;  // the `connected` frame (empty if the server sent none)
  std::string connection_id;
  std::string connection_key;
  std::string client_id;
};

// What goes into the upgrade target and the token of Connect.
struct ConnectOptions {
  std::optional<std::vector<std::string>> channels;  // the token's `channels` claim
  std::string device;                                // `device=` (none when empty)
  std::optional<std::string> resume;                 // `resume=`
  std::optional<std::string> remain_present_for_ms;  // `remainPresentForMs=`, as sent
  std::optional<std::string> heartbeat_query;        // `heartbeatMs=`, as sent
  int64_t token_ttl_s = 3600;
  TimeMs heartbeat_ms = kTestHeartbeatMs;
  bool batch = false;   // `batch=1`
  bool worker = false;  // the token's roles: ["worker"]
};

// The options of Connect(client_id, options...), e.g. Connect("a", Device{"phone"},
// Channels{{"r*"}}).
struct Channels {
  std::vector<std::string> patterns;
};
struct Device {
  std::string name;
};
struct Resume {
  std::string key;
};
struct RemainPresentFor {
  std::string ms;  // as sent in the query, so bad values can be tried
};
struct AskHeartbeat {
  std::string ms;  // the client's `heartbeatMs=`, as sent
};
struct TokenTtl {
  int64_t seconds;
};
struct Heartbeat {
  TimeMs ms;
};
struct Batch {};
inline void ApplyOption(ConnectOptions& o, Channels v) { o.channels = std::move(v.patterns); }
inline void ApplyOption(ConnectOptions& o, Device v) { o.device = std::move(v.name); }
inline void ApplyOption(ConnectOptions& o, Resume v) { o.resume = std::move(v.key); }
inline void ApplyOption(ConnectOptions& o, RemainPresentFor v) {
  o.remain_present_for_ms = std::move(v.ms);
}
inline void ApplyOption(ConnectOptions& o, AskHeartbeat v) { o.heartbeat_query = std::move(v.ms); }
inline void ApplyOption(ConnectOptions& o, TokenTtl v) { o.token_ttl_s = v.seconds; }
inline void ApplyOption(ConnectOptions& o, Heartbeat v) { o.heartbeat_ms = v.ms; }
inline void ApplyOption(ConnectOptions& o, Batch) { o.batch = true; }
template <typename... Opts>
ConnectOptions MakeConnectOptions(Opts... opts) {
  ConnectOptions o;
  (ApplyOption(o, std::move(opts)), ...);
  return o;
}

class ProtocolHarness {
 public:
  explicit ProtocolHarness(DispatcherOptions options = DefaultOptions()) { Restart(options); }
  virtual ~ProtocolHarness() = default;

  static DispatcherOptions DefaultOptions() {
    DispatcherOptions o;
    o.epoch = std::string(kTestEpoch);
    o.api_key = std::string(kTestApiKey);
    o.jwt_secret = std::string(kTestSecret);
    return o;
  }

  // A new Dispatcher (a server restart: sessions are gone, the store, clock and its records
  // stay). Give it another epoch to model a real restart.
  void Restart(DispatcherOptions options) {
    dispatcher_.reset();
    posted_.clear();
    options_ = options;
    dispatcher_ = std::make_unique<Dispatcher>(
        std::move(options), clock, random, store, metrics,
        [this](std::function<void()> task) { posted_.push_back(std::move(task)); });
  }

  Dispatcher& dispatcher() { return *dispatcher_; }
  const DispatcherOptions& options() const { return options_; }

  // Runs what the dispatcher posted to its own thread (and what those tasks post), then hands the
  // queued frames to their peers: one round of the engine loop.
  void RunPosted() {
    while (!posted_.empty()) {
      std::vector<std::function<void()>> tasks;
      tasks.swap(posted_);
      for (auto& t : tasks) t();
    }
    dispatcher_->FlushOutbound();
  }

  // A signed token for `client_id`, as `presenced token` mints it.
  std::string Token(std::string_view client_id,
                    const std::optional<std::vector<std::string>>& channels = std::nullopt,
                    int64_t ttl_s = 3600, bool worker = false) {
    auto token =
        MintToken(kTestSecret, client_id, ttl_s, channels, clock.NowMs(),
                  worker ? std::vector<std::string>{"worker"} : std::vector<std::string>{});
    EXPECT_TRUE(token.ok()) << (token.ok() ? "" : token.error().message);
    return token.ok() ? *token : std::string();
  }

  // The upgrade as the server runs it (ParseUpgrade with the server's secret, HeartbeatFor with
  // `heartbeat_ms` as the server's setting),
  // without opening a session. The error is what the HTTP refusal would carry.
  template <typename... Opts>
  Result<ConnectRequest> Upgrade(std::string_view client_id, Opts... opts) {
    return UpgradeWith(client_id, MakeConnectOptions(std::move(opts)...));
  }
  Result<ConnectRequest> UpgradeWith(std::string_view client_id, const ConnectOptions& o) {
    std::string target = "/v1/ws?token=" + Token(client_id, o.channels, o.token_ttl_s, o.worker);
    if (!o.device.empty()) target += "&device=" + o.device;
    if (o.resume) target += "&resume=" + *o.resume;
    if (o.remain_present_for_ms) target += "&remainPresentForMs=" + *o.remain_present_for_ms;
    if (o.heartbeat_query) target += "&heartbeatMs=" + *o.heartbeat_query;
    if (o.batch) target += "&batch=1";
    return UpgradeTarget(target, o.heartbeat_ms);
  }
  Result<ConnectRequest> UpgradeTarget(std::string_view target,
                                       TimeMs heartbeat_ms = kTestHeartbeatMs) {
    auto request = ParseUpgrade(target, kTestSecret, clock.NowMs(),
                                dispatcher_->engine().config().limits.max_id_bytes);
    if (!request.ok()) return request;
    request->heartbeat_ms = HeartbeatFor(*request, heartbeat_ms, options_);
    return request;
  }

  // Upgrades and opens a session; the returned connection has received its first frames (the
  // `connected` frame, then any catch-up). A refused upgrade is a test failure.
  template <typename... Opts>
  TestConn Connect(std::string_view client_id, Opts... opts) {
    return ConnectWith(client_id, MakeConnectOptions(std::move(opts)...));
  }
  TestConn ConnectWith(std::string_view client_id, const ConnectOptions& o) {
    auto request = UpgradeWith(client_id, o);
    if (!request.ok()) {
      ADD_FAILURE() << "upgrade refused: " << request.error().message;
      return {};
    }
    return Open(std::move(request).value());
  }
  TestConn Open(ConnectRequest request) {
    TestConn c;
    c.session = next_session_++;
    c.peer = std::make_shared<RecordingPeer>();
    c.client_id = request.client_id;
    dispatcher_->Open(c.session, std::move(request), c.peer);
    RunPosted();
    auto connected = c.peer->OfType("connected");
    if (!connected.empty()) {
      c.connected = connected.front();
      c.connection_id = Str(c.connected, "connectionId");
      c.connection_key = Str(c.connected, "connectionKey");
    }
    return c;
  }

  // An observer (the API key on the upgrade, as `Authorization: Bearer`), connected.
  TestConn ConnectObserver(std::string_view device = "monitor") {
    auto request = UpgradeTarget("/v1/ws?device=" + std::string(device));
    EXPECT_TRUE(request.ok());
    MakeObserver(*request);
    return Open(std::move(request).value());
  }

  // One WebSocket message, then one loop round. Returns the reply to the message's `id` (the
  // reply with `"id":null` when the message has no integer id), or an empty object (a test
  // failure) when none arrived. Other frames stay recorded on the peer.
  json::object Send(TestConn& c, std::string_view text) {
    std::optional<int64_t> id;
    {
      boost::system::error_code ec;
      json::value v = json::parse(text, ec);
      if (!ec && v.is_object()) {
        if (const json::value* i = v.as_object().if_contains("id"); i && i->is_int64()) {
          id = i->as_int64();
        }
      }
    }
    const size_t before = c.peer->frames().size();
    dispatcher_->Message(c.session, text, std::chrono::steady_clock::now());
    RunPosted();
    const auto& frames = c.peer->frames();
    for (size_t i = before; i < frames.size(); ++i) {
      const json::object& f = frames[i];
      const json::value* type = f.if_contains("type");
      if (type == nullptr || !type->is_string() || type->as_string() != "reply") continue;
      const json::value* rid = f.if_contains("id");
      if (rid == nullptr) continue;
      if (id ? (rid->is_int64() && rid->as_int64() == *id) : rid->is_null()) return f;
    }
    ADD_FAILURE() << "no reply to " << text;
    return {};
  }

  // Send with a fresh id: {"op":op,"id":N,...fields}.
  json::object Call(TestConn& c, std::string_view op, json::object fields = {}) {
    fields["op"] = op;
    fields["id"] = next_id_++;
    return Send(c, json::serialize(fields));
  }
  // Call that must succeed: a failed reply is a test failure.
  json::object Ok(TestConn& c, std::string_view op, json::object fields = {}) {
    const std::string what = std::string(op) + " " + json::serialize(fields);
    json::object reply = Call(c, op, std::move(fields));
    EXPECT_TRUE(IsOk(reply)) << what << " -> " << json::serialize(reply);
    return reply;
  }

  // A REST request as the server hands it over (Dispatcher::Http); returns the response (`done`
  // must have run exactly once). `api_key` nullopt sends no Authorization header.
  HttpResponse Rest(std::string method, std::string target, std::string body = "",
                    std::optional<std::string_view> api_key = kTestApiKey) {
    HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    if (api_key) req.authorization = "Bearer " + std::string(*api_key);
    int calls = 0;
    HttpResponse response;
    dispatcher_->Http(req, [&](HttpResponse r) {
      ++calls;
      response = std::move(r);
    });
    RunPosted();
    EXPECT_EQ(calls, 1) << req.method << " " << req.target;
    return response;
  }
  // Rest, with the body parsed (a test failure unless it is a JSON object).
  json::object RestJson(std::string method, std::string target, std::string body = "",
                        std::optional<std::string_view> api_key = kTestApiKey) {
    return ParseObject(Rest(std::move(method), std::move(target), std::move(body), api_key).body);
  }

  // Moves time forward by `ms` the way the engine loop does: the clock stops at each deadline the
  // dispatcher reports on the way, ticks, runs posted tasks and flushes; then at the end.
  void AdvanceTime(TimeMs ms) {
    const TimeMs target = clock.NowMs() + ms;
    for (int guard = 0; guard < 100000; ++guard) {
      auto due = dispatcher_->NextDeadline();
      if (!due || *due > target) break;
      const TimeMs before = clock.NowMs();
      if (*due > before) clock.Set(*due);
      dispatcher_->Tick();
      RunPosted();
      auto next = dispatcher_->NextDeadline();
      if (next && *next <= before) break;  // no progress; the last Tick below runs what is due
    }
    clock.Set(target);
    dispatcher_->Tick();
    RunPosted();
  }

  // The session ends: `clean` after a close frame, else an abrupt drop.
  void Close(TestConn& c, bool clean) {
    dispatcher_->Closed(c.session, clean);
    RunPosted();
  }

  void Shutdown() {
    dispatcher_->Shutdown();
    RunPosted();
  }

  ManualClock clock{kTestStart};
  SeededRandom random{42};
  storage::MemoryStore store;
  Metrics metrics;

 private:
  DispatcherOptions options_;
  std::vector<std::function<void()>> posted_;  // before the dispatcher that posts here
  std::unique_ptr<Dispatcher> dispatcher_;
  SessionId next_session_ = 1;
  int64_t next_id_ = 1;
};

// A gtest fixture with a harness in it: TEST_F(ProtocolTest, ...) { auto a = Connect("a"); }
class ProtocolTest : public ::testing::Test, public ProtocolHarness {};

}  // namespace presenced::protocol::testing
