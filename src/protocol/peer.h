// The protocol layer's view of a client socket and of an HTTP exchange, implemented by src/net.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "storage/store.h"

namespace presenced::protocol {

// Identifies one WebSocket session (socket) for its whole life; assigned by the network layer.
using SessionId = uint64_t;

// A WebSocket peer. Thread-safe: Send and Close may be called from any thread; they queue work on
// the session's own strand. Calls after the session ended are ignored.
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
};

// What a WebSocket upgrade asked for, after its token was verified.
struct ConnectRequest {
  std::string client_id;
  std::optional<std::vector<std::string>> channel_patterns;  // absent = all channels
  std::string device;
  std::optional<std::string> resume_key;
  std::optional<TimeMs> remain_present_for_ms;
  // What the durable store remembers of this user (read on the I/O thread during the upgrade).
  std::optional<storage::UserRecord> stored_user;
};

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // origin-form: path and query, percent-encoded
  std::string authorization;
  std::string body;
  // For PUT /v1/users/{id}/status: what the store remembers of the user, read on the I/O thread.
  std::optional<storage::UserRecord> stored_user;
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
};

}  // namespace presenced::protocol
