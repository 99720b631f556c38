// The types a transport (src/net) and the code behind it (src/protocol, src/server) exchange: a
// session id, the Peer a WebSocket session is written through, and one HTTP exchange. A
// dependency-free header (std only), so the network layer and the protocol share these types
// without either linking the other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace presenced {

// Identifies one WebSocket session (socket) for its whole life; assigned by the network layer.
using SessionId = uint64_t;

// A WebSocket peer. Thread-safe: every method may be called from any thread; Send, SendBatch,
// Close and NotifyWhenDrained queue work on the session's own strand. Calls after the session
// ended are ignored.
//
// The outbound bound (NetOptions::max_outbound_bytes) is the caller's to keep: a session takes
// every message it is given, reading stops while its unsent output is over the bound, and it is
// closed with 4008 when the output stays over the bound for two heartbeat intervals (or grows
// past twice the bound). HasRoomFor lets the caller drop what may be dropped (a slow
// subscriber's events, replaced by a `sync` later) instead.
class Peer {
 public:
  virtual ~Peer() = default;
  // Queues one text message. The same buffer may be queued to many peers.
  virtual void Send(std::shared_ptr<const std::string> message) = 0;
  // Queues several messages, in order, with one hand-off to the session.
  virtual void SendBatch(std::vector<std::shared_ptr<const std::string>> messages) = 0;
  // Sends a close frame after what is already queued, then ends the session. The session's end is
  // reported back as clean unless `abrupt`, in which case the grace period applies.
  virtual void Close(uint16_t code, std::string reason, bool abrupt = false) = 0;
  // Whether `bytes` more may be queued without passing the outbound bound, given `queued` bytes
  // the caller holds for this peer and has not handed over yet. Always true while nothing at all
  // is unsent (one message of any size is taken). A snapshot: output drains meanwhile.
  virtual bool HasRoomFor(size_t queued, size_t bytes) const = 0;
  // Asks for one Service::OnDrained of this session once its unsent output is at most half the
  // bound (at once if it already is).
  virtual void NotifyWhenDrained() = 0;
};

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // origin-form: path and query, percent-encoded
  std::string authorization;
  std::string body;
  std::string remote;       // the peer's address, "ip:port" (logs)
  std::string origin = {};  // the Origin header (browsers), empty when absent
  std::string host = {};    // the Host header
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";                  // empty: no Content-Type (a 204)
  std::vector<std::pair<std::string, std::string>> headers = {};  // more fields (CORS)
};

}  // namespace presenced
