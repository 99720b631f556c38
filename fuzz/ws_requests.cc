// Fuzzes the JSON request decoder of every WebSocket op, through a real protocol::Dispatcher
// (dispatcher_fixture.h) that one script of connects, requests, closes, clock steps and REST calls
// runs against.
//
// The input is a script, one command a line (seeds in fuzz/corpus/ws_requests, op and field names
// in fuzz/dict/ws_requests.dict):
//   open CLIENT [PATTERNS|-] [QUERY]   connect through ParseUpgrade; PATTERNS (comma-separated) go
//                                      into the token; in QUERY, $N is connection N's last key
//   N TEXT                             TEXT as one WebSocket message on connection N
//   close N [clean|abrupt]             the socket ends
//   tick MS                            the clock moves, the dispatcher ticks
//   rest METHOD TARGET [BODY]          a REST call with the API key
//   shutdown                           graceful shutdown
//   gen BYTES                          requests built from BYTES: ops and fields of
//                                      docs/protocol.md with values picked by BYTES (vocabulary,
//                                      edge numbers, nested data, raw bytes spliced in unescaped)
// Any other line is sent as a message on connection 0.
//
// Invariants: every frame the server sends is valid UTF-8 and valid JSON of a known type (checked
// by RecordingPeer); every request on an open connection gets exactly one reply; every REST call
// is answered once with a valid body.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dispatcher_fixture.h"
#include "protocol/json_out.h"

namespace {

using presenced::fuzz::DispatcherFixture;
using presenced::fuzz::RecordingPeer;
using presenced::protocol::AppendQuoted;
using presenced::HttpRequest;

constexpr std::array<std::string_view, 20> kOps = {
    "enter",        "update",         "leave",    "get",          "subscribe",
    "unsubscribe",  "occupancy",      "history",  "status.set",   "status.get",
    "status.watch", "status.unwatch", "activity", "activity.get", "devices",
    "who",          "command",        "ping",     "Enter",        "status"};

constexpr std::array<std::string_view, 21> kFields = {
    "channel", "data",  "ttlMs",     "merge", "clientId", "connectionId", "actions",
    "since",   "epoch", "start",     "end",   "limit",    "direction",    "cursor",
    "status",  "text",  "clientIds", "kind",  "id",       "op",           "resume"};

// Values: channel names and patterns, users, statuses, actions, directions, epochs, kinds,
// devices, command lines.
// clang-format off
constexpr std::array<std::string_view, 40> kWords = {
    "room", "room-1", "room-2", "lobby", "a", "", "room-*", "*", "alice", "bob", "carol",
    "online", "away", "dnd", "offline", "busy", "enter", "update", "leave", "forwards",
    "backwards", "sideways", "fuzzepoch", "other-epoch", "typing", "click", "laptop", "phone",
    "/presence", "/presence who", "/presence who room", "/presence status \"out to lunch\"",
    "/presence status clear", "/presence away", "/presence online", "/presence offline",
    "/presence sync", "/presence devices", "/presence activity", "/presence help"};

// Edge numbers: limits of the protocol (ttlMs up to a year), of doubles' exact integers, of
// int64 and uint64, beyond them, and non-integers.
constexpr std::array<std::string_view, 20> kNumbers = {
    "0", "1", "-1", "2", "100", "1000", "1001", "15000", "31622400000", "31622400001",
    "9007199254740993", "9223372036854775807", "-9223372036854775808", "18446744073709551615",
    "1e300", "-1e300", "1.5", "0.0", "1e2", "123456789012345678901234567890"};
// clang-format on

constexpr std::array<std::string_view, 4> kClients = {"alice", "bob", "carol", "dave"};

// Runs a script against one dispatcher.
class Script {
 public:
  void Run(std::string_view script) {
    int lines = 0;
    while (!script.empty() && lines++ < 256) {
      const size_t eol = script.find('\n');
      Line(script.substr(0, eol));
      script.remove_prefix(eol == std::string_view::npos ? script.size() : eol + 1);
    }
    f_.RunPosted();
  }

 private:
  struct Connection {
    presenced::SessionId id;
    std::shared_ptr<RecordingPeer> peer;
    bool open;
  };

  static std::string_view Word(std::string_view& rest) {
    const size_t end = rest.find(' ');
    const std::string_view w = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    return w;
  }

  static int64_t Number(std::string_view s) {
    int64_t n = 0;
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
  }

  Connection* At(int64_t n) {
    if (connections_.empty()) return nullptr;
    return &connections_[static_cast<size_t>(n < 0 ? -(n + 1) : n) % connections_.size()];
  }

  void Line(std::string_view line) {
    std::string_view rest = line;
    const std::string_view cmd = Word(rest);
    if (!cmd.empty() && cmd.find_first_not_of("0123456789") == std::string_view::npos) {
      Send(At(Number(cmd)), std::string(rest));
    } else if (cmd == "open") {
      const std::string_view client = Word(rest);
      const std::string_view patterns = Word(rest);
      std::optional<std::vector<std::string>> channels;
      if (!patterns.empty() && patterns != "-") {
        channels.emplace();
        std::string_view list = patterns;
        while (true) {
          const size_t comma = list.find(',');
          channels->emplace_back(list.substr(0, comma));
          if (comma == std::string_view::npos) break;
          list.remove_prefix(comma + 1);
        }
      }
      // $N: connection N's last connection key.
      std::string query;
      for (size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '$' && i + 1 < rest.size() && rest[i + 1] >= '0' && rest[i + 1] <= '9') {
          if (Connection* c = At(rest[++i] - '0')) query += c->peer->connection_key;
        } else {
          query += rest[i];
        }
      }
      Connect(client, query, channels);
    } else if (cmd == "close") {
      Close(At(Number(Word(rest))), Word(rest) != "abrupt");
    } else if (cmd == "tick") {
      Advance(std::clamp<int64_t>(Number(Word(rest)), 0, 366LL * 86400 * 1000));
    } else if (cmd == "rest") {
      HttpRequest req;
      req.method = std::string(Word(rest));
      req.target = std::string(Word(rest));
      req.body = std::string(rest);
      req.authorization = "Bearer " + std::string(presenced::fuzz::kApiKey);
      Rest(req);
    } else if (cmd == "shutdown") {
      f_.dispatcher.Shutdown();
      for (auto& c : connections_) c.open = false;
    } else if (cmd == "gen") {
      FuzzedDataProvider in(reinterpret_cast<const uint8_t*>(rest.data()), rest.size());
      Generate(in);
    } else {
      Send(At(0), std::string(line));
    }
  }

  void Connect(std::string_view client, const std::string& query,
               const std::optional<std::vector<std::string>>& channels) {
    if (connections_.size() >= 8) return;
    const presenced::SessionId id = next_session_++;
    auto peer = f_.Connect(id, client, query, channels);
    if (presenced::fuzz::Verbose()) {
      std::fprintf(stderr, "-> open %llu %.*s %s%s\n", static_cast<unsigned long long>(id),
                   static_cast<int>(client.size()), client.data(), query.c_str(),
                   peer ? "" : " (refused)");
    }
    if (!peer) return;  // the upgrade was refused
    // A refused connection (a limit, a shutdown) gets a close, never `connected`.
    FUZZ_CHECK(peer->connected != peer->closed);
    connections_.push_back(Connection{id, peer, peer->connected});
    Superseded();
  }

  // A resume closes the old socket (4000): it is not open any more.
  void Superseded() {
    for (auto& c : connections_) c.open = c.open && !c.peer->closed;
  }

  void Close(Connection* c, bool clean) {
    if (c == nullptr) return;
    f_.dispatcher.Closed(c->id, clean);
    c->open = false;
    f_.RunPosted();
  }

  void Advance(int64_t ms) {
    f_.clock.Advance(ms);
    f_.dispatcher.Tick();
    f_.RunPosted();
  }

  void Send(Connection* c, const std::string& text) {
    if (c == nullptr) return;
    const size_t before = c->peer->replies;
    if (presenced::fuzz::Verbose())
      std::fprintf(stderr, "-> %llu %s\n", static_cast<unsigned long long>(c->id), text.c_str());
    f_.dispatcher.Message(c->id, text, std::chrono::steady_clock::now());
    f_.RunPosted();
    Superseded();
    const size_t replies = c->peer->replies - before;
    if (replies != (c->open ? 1 : 0)) {
      std::fprintf(stderr, "%zu replies on a%s connection to: %s\n", replies,
                   c->open ? "n open" : " closed", text.c_str());
    }
    FUZZ_CHECK(replies == (c->open ? 1 : 0));
  }

  void Rest(const HttpRequest& req) {
    f_.Http(req);
    f_.RunPosted();
  }

  // ----- gen: requests and steps built from bytes ------------------------------------------------

  void Generate(FuzzedDataProvider& in) {
    for (int steps = 0; steps < 16 && in.remaining_bytes() > 0; ++steps) {
      switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0:
          Connect(in.PickValueInArray(kClients),
                  in.ConsumeBool() ? "&device=" + presenced::fuzz::PercentEncode(Word(in)) : "",
                  std::nullopt);
          break;
        case 1:
          Close(Pick(in), in.ConsumeBool());
          break;
        case 2:
          Advance(in.ConsumeIntegralInRange<int64_t>(0, 4'000'000));
          break;
        default:
          Send(Pick(in), Request(in));
          break;
      }
    }
  }

  Connection* Pick(FuzzedDataProvider& in) {
    if (connections_.empty()) return nullptr;
    return &connections_[in.ConsumeIntegralInRange<size_t>(0, connections_.size() - 1)];
  }

  static std::string Word(FuzzedDataProvider& in) {
    if (in.ConsumeIntegralInRange<int>(0, 3) == 0) return in.ConsumeRandomLengthString(80);
    return std::string(in.PickValueInArray(kWords));
  }

  // A value for a field: vocabulary, numbers, nested data, arrays, or raw bytes.
  static void Value(FuzzedDataProvider& in, std::string& out, int depth = 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0:
      case 1:
        AppendQuoted(out, Word(in));
        break;
      case 2:
        out += in.PickValueInArray(kNumbers);
        break;
      case 3:
        out += in.ConsumeBool() ? "true" : "false";
        break;
      case 4:
        out += "null";
        break;
      case 5: {  // an array
        out += '[';
        const int n = in.ConsumeIntegralInRange<int>(0, 4);
        for (int i = 0; i < n; ++i) {
          if (i) out += ',';
          if (depth < 8) {
            Value(in, out, depth + 1);
          } else {
            out += '0';
          }
        }
        out += ']';
        break;
      }
      case 6: {  // an object
        out += '{';
        const int n = in.ConsumeIntegralInRange<int>(0, 3);
        for (int i = 0; i < n; ++i) {
          if (i) out += ',';
          AppendQuoted(out,
                       in.ConsumeBool() ? std::string(in.PickValueInArray(kFields)) : Word(in));
          out += ':';
          if (depth < 8) {
            Value(in, out, depth + 1);
          } else {
            out += '1';
          }
        }
        out += '}';
        break;
      }
      case 7: {  // nesting around the limit of 64
        const int d = in.ConsumeIntegralInRange<int>(60, 68);
        out.append(static_cast<size_t>(d), '[');
        out.append(static_cast<size_t>(d), ']');
        break;
      }
      case 8:  // raw bytes between quotes: escapes, invalid UTF-8, broken JSON
        out += '"';
        out += in.ConsumeRandomLengthString(64);
        out += '"';
        break;
      default:
        out += in.ConsumeRandomLengthString(16);
        break;
    }
  }

  std::string Request(FuzzedDataProvider& in) {
    std::string out = R"({"op":)";
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
      AppendQuoted(out, in.ConsumeRandomLengthString(16));
    } else {
      AppendQuoted(out, in.PickValueInArray(kOps));
    }
    out += R"(,"id":)";
    out += in.ConsumeIntegralInRange<int>(0, 31) == 0 ? std::string(in.PickValueInArray(kNumbers))
                                                      : std::to_string(++next_id_);
    const int n = in.ConsumeIntegralInRange<int>(0, 6);
    for (int i = 0; i < n; ++i) {
      out += ',';
      AppendQuoted(out, in.PickValueInArray(kFields));
      out += ':';
      Value(in, out);
    }
    out += '}';
    return out;
  }

  DispatcherFixture f_;
  std::vector<Connection> connections_;
  presenced::SessionId next_session_ = 1;
  int64_t next_id_ = 1000000;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script().Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
