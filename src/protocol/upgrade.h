// The WebSocket upgrade's query (`/v1/ws?token=&device=&resume=&remainPresentForMs=&heartbeatMs=`),
// read and its token verified: pure and thread-safe, so the network layer's I/O thread runs it
// before a connection reaches the Dispatcher.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "protocol/options.h"
#include "protocol/peer.h"

namespace presenced::protocol {

// How long a connection upgraded without a token may take to send its `auth` frame.
inline constexpr TimeMs kAuthTimeoutMs = 5000;

// unauthorized for token problems, bad_request / too_large otherwise. Without a `token`
// parameter the request is `awaiting_auth` (the token comes in the first frame).
Result<ConnectRequest> ParseUpgrade(std::string_view target, std::string_view secret, TimeMs now,
                                    size_t max_id_bytes);

// The session's ping interval: the client's `heartbeatMs` clamped into the server's bounds
// (min_heartbeat_ms..max_heartbeat_ms), or `server_default` when it asked for none.
TimeMs HeartbeatFor(const ConnectRequest& request, TimeMs server_default,
                    const DispatcherOptions& options);

// Makes the request an observer's (the API key was shown): no token, every channel, reads only.
void MakeObserver(ConnectRequest& request);

// Verifies `token` and fills in who the request is (client id, channel patterns, roles, iat).
// A `sub` starting with "presenced:" is reserved (engine::kObserverClientId) and refused.
Status ApplyToken(ConnectRequest& request, std::string_view token, std::string_view secret,
                  TimeMs now, size_t max_id_bytes);

}  // namespace presenced::protocol
