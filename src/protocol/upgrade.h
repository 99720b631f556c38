// The WebSocket upgrade's query (`/v1/ws?token=...&device=...&resume=...&remainPresentForMs=`),
// read and its token verified: pure and thread-safe, so the network layer's I/O thread runs it
// before a connection reaches the Dispatcher.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "protocol/peer.h"

namespace presenced::protocol {

// unauthorized for token problems, bad_request / too_large otherwise.
Result<ConnectRequest> ParseUpgrade(std::string_view target, std::string_view secret, TimeMs now,
                                    size_t max_id_bytes);

}  // namespace presenced::protocol
