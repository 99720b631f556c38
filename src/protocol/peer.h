// What a WebSocket upgrade asked for, once its token is verified: the attachment the server hands
// from the upgrade (I/O thread) to Dispatcher::Open (the presence loop).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/transport.h"

namespace presenced::protocol {

struct ConnectRequest {
  std::string client_id;
  std::optional<std::vector<std::string>> channel_patterns;  // absent = all channels
  bool worker = false;                 // the token's roles include "worker" (protocol-ext §3)
  std::optional<TimeMs> issued_at_ms;  // the token's `iat` (revocations)
  TimeMs expires_at_ms = 0;            // the token's `exp`
  // Upgraded without a token: the first frame must be `{"op":"auth","token":JWT}` (within
  // kAuthTimeoutMs), and the fields above are filled from it (ApplyToken).
  bool awaiting_auth = false;
  // Connected with the API key (an `Authorization: Bearer` header on the upgrade, or `apiKey` in
  // the `auth` frame): an observer, engine::kObserverClientId, reads only (MakeObserver).
  bool observer = false;
  std::string device;
  std::optional<std::string> resume_key;
  std::optional<TimeMs> remain_present_for_ms;
  bool batch = false;  // `batch=1`: several messages may share one frame (protocol-ext §1)
  std::optional<TimeMs> requested_heartbeat_ms;  // `heartbeatMs` of the upgrade (HeartbeatFor)
  TimeMs heartbeat_ms = 0;  // the session's ping interval, as the network layer runs it
};

}  // namespace presenced::protocol
