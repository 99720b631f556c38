// Engine configuration: time settings and the limits that bound every map and list it keeps.
// A plain value; the engine copies it at construction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/clock.h"

namespace presenced::engine {

struct Limits {
  size_t max_channels_per_connection = 200;  // channels entered; separately, channels subscribed
  size_t max_members_per_channel = 100000;
  size_t max_data_bytes = 16384;   // serialized member/activity data
  size_t max_channel_bytes = 256;  // channel name
  size_t max_id_bytes = 256;       // clientId, device, activity kind
  size_t max_text_bytes = 1024;    // custom status text
  size_t max_watches_per_connection = 1000;
};

struct EngineConfig {
  Limits limits;
  TimeMs away_after_ms = 300000;      // idle time before a device is away
  TimeMs offline_after_ms = 3600000;  // idle time before a device is offline
  size_t event_ring_capacity = 1000;  // events kept per channel for `since` (contract: >= 1000)
  // Bytes all channels' event rings may retain together (EventRing::CostOf per event); over it,
  // the oldest events of the largest rings are dropped, and `since` before them gets a snapshot.
  // 0 = no cap.
  size_t max_retained_event_bytes = size_t{256} << 20;
  size_t activities_per_user = 100;  // activity records kept in memory per user
  // Users with no connection and no watcher are kept (last seen, status set by hand, activity) in
  // least-recently-used order up to this many; older ones are forgotten by the engine (the
  // durable store keeps them).
  size_t max_idle_users = 100000;
};

}  // namespace presenced::engine
