// A real protocol::Dispatcher for fuzz targets, with the parts around it made deterministic: a
// MemoryStore (answers at once, on the calling thread), a ManualClock, a seeded RandomSource, and
// peers that record and check every frame the server would send.
//
// The check is the one that matters most: whatever a client sends, every frame the server sends
// is well-formed UTF-8 and one valid JSON object of a known type.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/utf8.h"
#include "fuzz_check.h"
#include "protocol/auth.h"
#include "protocol/dispatcher.h"
#include "protocol/metrics.h"
#include "protocol/peer.h"
#include "storage/memory_store.h"

namespace presenced::fuzz {

inline constexpr std::string_view kSecret = "fuzz-secret";
inline constexpr std::string_view kApiKey = "fuzz-api-key";
inline constexpr std::string_view kEpoch = "fuzzepoch";
inline constexpr TimeMs kStart = 1'700'000'000'000;
inline constexpr size_t kMaxIdBytes = 64;

// Parses `text` as the client would; aborts unless it is valid UTF-8 and a JSON object. Returns
// the object.
inline boost::json::object CheckJsonObject(std::string_view text) {
  if (!IsValidUtf8(text)) {
    std::fprintf(stderr, "server sent invalid UTF-8: %.*s\n", static_cast<int>(text.size()),
                 text.data());
  }
  FUZZ_CHECK(IsValidUtf8(text));
  boost::json::parse_options opts;
  opts.max_depth = 1000;  // validity is checked here, not the depth a client accepts
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec, {}, opts);
  if (ec) {
    std::fprintf(stderr, "server sent invalid JSON (%s): %.*s\n", ec.message().c_str(),
                 static_cast<int>(text.size()), text.data());
  }
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(v.is_object());
  return std::move(v.as_object());
}

// FUZZ_VERBOSE=1 in the environment prints the exchange (to read what a saved input does).
inline bool Verbose() {
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// A WebSocket peer as the network layer implements it, minus the socket: it checks every frame
// and keeps what the target needs (replies, the last connection key, whether it was closed).
class RecordingPeer final : public Peer {
 public:
  void Send(std::shared_ptr<const std::string> message) override { Record(*message); }
  void SendBatch(std::vector<std::shared_ptr<const std::string>> messages) override {
    for (const auto& m : messages) Record(*m);
  }
  bool HasRoomFor(size_t, size_t) const override { return true; }
  void NotifyWhenDrained() override {}
  void Close(uint16_t code, std::string reason, bool) override {
    if (Verbose()) std::fprintf(stderr, "  <- close %u %s\n", code, reason.c_str());
    FUZZ_CHECK(code == 1000 || code == 1001 || code == 1008 || code == 4000);
    FUZZ_CHECK(IsValidUtf8(reason));
    closed = true;
  }

  size_t replies = 0;
  bool connected = false;
  bool closed = false;
  std::string connection_key;

 private:
  void Record(std::string_view frame) {
    if (Verbose()) {
      std::fprintf(stderr, "  <- %.*s\n", static_cast<int>(frame.size()), frame.data());
    }
    const boost::json::object o = CheckJsonObject(frame);
    const boost::json::value* type = o.if_contains("type");
    if (type != nullptr && type->is_string() && type->as_string() == "batch") {
      // batch=1 (protocol-ext §1): two or more messages, none of them `connected`.
      const boost::json::value* messages = o.if_contains("messages");
      FUZZ_CHECK(messages != nullptr && messages->is_array() && messages->as_array().size() >= 2);
      for (const boost::json::value& m : messages->as_array()) {
        FUZZ_CHECK(m.is_object());
        const boost::json::value* mt = m.as_object().if_contains("type");
        FUZZ_CHECK(mt == nullptr || !mt->is_string() || mt->as_string() != "connected");
        RecordMessage(m.as_object());
      }
      return;
    }
    RecordMessage(o);
  }

  void RecordMessage(const boost::json::object& o) {
    const boost::json::value* type = o.if_contains("type");
    FUZZ_CHECK(type != nullptr && type->is_string());
    const std::string_view t = type->as_string();
    if (t == "reply") {
      ++replies;
      FUZZ_CHECK(o.contains("id") && o.contains("ok"));
      FUZZ_CHECK(o.at("ok").is_bool());
      if (!o.at("ok").as_bool()) FUZZ_CHECK(o.contains("error"));
    } else if (t == "connected") {
      FUZZ_CHECK(!connected);
      connected = true;
      connection_key = std::string(o.at("connectionKey").as_string());
    } else {
      FUZZ_CHECK(t == "presence" || t == "status" || t == "sync" || t == "session" ||
                 t == "session.assign" || t == "session.stop");
    }
  }
};

// The dispatcher with small limits, so that every bound can be reached by a short input.
struct DispatcherFixture {
  DispatcherFixture()
      : store(/*events_per_channel=*/50, /*channels=*/16, /*activities_per_user=*/20,
              /*users=*/64),
        dispatcher(Options(), clock, random, store, metrics,
                   [this](std::function<void()> task) { posted.push_back(std::move(task)); }) {}

  // Runs what the dispatcher posted to its own thread (the store's answers), then hands the
  // queued frames to their peers.
  void RunPosted() {
    while (!posted.empty()) {
      std::vector<std::function<void()>> tasks;
      tasks.swap(posted);
      for (auto& t : tasks) t();
    }
    dispatcher.FlushOutbound();
  }

  static protocol::DispatcherOptions Options() {
    protocol::DispatcherOptions o;
    o.engine.limits.max_channels_per_connection = 8;
    o.engine.limits.max_members_per_channel = 16;
    o.engine.limits.max_data_bytes = 2048;
    o.engine.limits.max_channel_bytes = 64;
    o.engine.limits.max_id_bytes = kMaxIdBytes;
    o.engine.limits.max_text_bytes = 64;
    o.engine.limits.max_watches_per_connection = 8;
    o.engine.activities_per_user = 8;
    o.engine.max_idle_users = 8;
    o.rate_per_second = 100;
    o.rate_burst = 48;  // a long script reaches the rate limit
    o.epoch = std::string(kEpoch);
    o.api_key = std::string(kApiKey);
    o.jwt_secret = std::string(kSecret);
    return o;
  }

  // Connects `client_id` the way the server does (the upgrade target through ParseUpgrade; the
  // dispatcher reads what the store remembers of the user), and hands the peer its first frames.
  // Null when the upgrade is refused.
  std::shared_ptr<RecordingPeer> Connect(SessionId id, std::string_view client_id,
                                         std::string_view query_rest,
                                         const std::optional<std::vector<std::string>>& channels) {
    // A client whose name starts with "worker" may serve agent sessions.
    auto token =
        protocol::MintToken(kSecret, client_id, 3600, channels, clock.NowMs(),
                            client_id.starts_with("worker") ? std::vector<std::string>{"worker"}
                                                            : std::vector<std::string>{});
    if (!token.ok()) return nullptr;
    std::string target = "/v1/ws?token=" + *token;
    target += query_rest;
    auto request = protocol::ParseUpgrade(target, kSecret, clock.NowMs(), kMaxIdBytes);
    if (!request.ok()) return nullptr;
    auto peer = std::make_shared<RecordingPeer>();
    dispatcher.Open(id, std::move(request).value(), peer);
    RunPosted();
    return peer;
  }

  // A REST call; checks that `done` runs exactly once with a well-formed response.
  HttpResponse Http(const HttpRequest& request) {
    const HttpRequest& req = request;
    if (Verbose()) {
      std::fprintf(stderr, "-> %s %s %s\n", req.method.c_str(), req.target.c_str(),
                   req.body.c_str());
    }
    int calls = 0;
    HttpResponse response;
    dispatcher.Http(req, [&](HttpResponse r) {
      ++calls;
      response = std::move(r);
    });
    RunPosted();
    FUZZ_CHECK(calls == 1);  // MemoryStore answers at once: `done` ran by the end of RunPosted
    if (Verbose()) std::fprintf(stderr, "  <- %u %s\n", response.status, response.body.c_str());
    FUZZ_CHECK(response.status >= 200 && response.status < 600);
    if (response.content_type == "application/json") {
      CheckJsonObject(response.body);
    } else if (response.content_type.starts_with("text/plain")) {
      FUZZ_CHECK(IsValidUtf8(response.body));
    }
    return response;
  }

  ManualClock clock{kStart};
  SeededRandom random{42};
  storage::MemoryStore store;
  protocol::Metrics metrics;
  std::vector<std::function<void()>> posted;  // declared before the dispatcher that posts here
  protocol::Dispatcher dispatcher;
};

// Percent-encodes every byte outside the unreserved set (RFC 3986), for query values.
inline std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace presenced::fuzz
