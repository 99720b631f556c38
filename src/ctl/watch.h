// Watch: the live tail behind `presencectl watch`, over one WebSocket (docs/protocol.md,
// "Connecting"): subscribes to channels and watches users, then hands each pushed event to the
// caller until enough were seen, SIGINT or SIGTERM arrives, or the connection ends.
//
// Runs on the calling thread (its own io_context) and returns when done; the handlers are called
// on that thread.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ctl/endpoint.h"
#include "ctl/outcome.h"

namespace presenced::ctl {

struct WatchSpec {
  // With `api_key` the watcher is an observer (an `Authorization: Bearer` upgrade: nobody's
  // device, not in `who`); with `token` (POST /v1/tokens) it is that token's user.
  std::string api_key;
  std::string token;
  std::string device = "presencectl";
  std::vector<std::string> channels;
  std::vector<std::string> users;
  uint64_t max_events = 0;  // stop after this many events; 0 = until a signal
};

struct WatchHandlers {
  std::function<void()> on_ready;  // every subscription and watch is confirmed
  // A presence event on a watched channel, or a status push about a watched user (status pushes
  // about the watching connection's own user are not shown unless it is watched).
  std::function<void(const boost::json::object& frame)> on_event;
};

// Ok after max_events events or a signal (the socket is closed cleanly); kUnauthorized when the
// upgrade is refused with 401; kServerError when a subscription is refused; kNetwork when the
// connection cannot be made or ends.
Outcome RunWatch(const Endpoint& endpoint, const WatchSpec& spec, const WatchHandlers& handlers);

}  // namespace presenced::ctl
