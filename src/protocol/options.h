// The Dispatcher's settings, and how it runs work later on its own thread. A plain value; the
// server's Config embeds it (server/config.h), so each setting is defined once, here.
#pragma once

#include <functional>
#include <string>

#include "common/clock.h"
#include "engine/config.h"
#include "engine/session_registry.h"
#include "webhooks/outbox.h"

namespace presenced::protocol {

struct DispatcherOptions {
  engine::EngineConfig engine;
  // remainPresentFor when the upgrade does not ask (`remainPresentForMs`), and its upper bound.
  TimeMs default_remain_present_for_ms = 15000;
  TimeMs max_remain_present_for_ms = 300000;
  // The bounds of a client's own ping interval (`heartbeatMs` on the upgrade); without it the
  // server's heartbeat_ms (a network setting) applies.
  TimeMs min_heartbeat_ms = 1000;
  TimeMs max_heartbeat_ms = 120000;
  double rate_per_second = 2000;           // sustained requests per connection
  double rate_burst = 5000;                // bucket size
  std::string epoch;                       // identifies this run of the server (set at start)
  std::string api_key;                     // for REST (set at start: file or setting)
  std::string jwt_secret;                  // for POST /v1/tokens (set at start)
  TimeMs last_seen_checkpoint_ms = 10000;  // how often connected users' lastSeen is stored
  size_t max_batch_bytes = 1 << 20;        // largest `batch` frame for `batch=1` sessions
  engine::SessionSettings sessions;        // agent sessions (protocol-ext §3)
  webhooks::Options webhooks;              // lifecycle webhooks (protocol-ext §4)
};

// Runs a task on the Dispatcher's thread later, after the current call. Thread-safe. The store's
// answers come back through it, so every frame leaves from the Dispatcher's thread (one delivery
// path: the outbox flush).
using Poster = std::function<void(std::function<void()>)>;

}  // namespace presenced::protocol
