// EventSink: how changes leave the engine. The server implements it (serialize, fan out, store);
// tests implement it to record what happened.
//
// Called synchronously on the engine's thread, from inside Engine calls. A sink must not call
// back into the Engine. Every presence event is reported exactly once, together with the
// connections subscribed to it, so the sink can serialize it once and queue the same bytes to
// every recipient. The spans and views are valid only during the call.
#pragma once

#include <span>
#include <string_view>

#include "engine/types.h"

namespace presenced::engine {

class EventSink {
 public:
  virtual ~EventSink() = default;

  // A presence event. `recipients`: live subscribers whose filter includes the action (may be
  // empty; the event still counts for history).
  virtual void OnPresence(const PresenceEvent& event,
                          std::span<const ConnectionHandle> recipients) = 0;

  // A user's visible status or text changed. `recipients`: the user's own live connections and
  // the live connections watching the user, each once.
  virtual void OnStatus(const StatusChange& change,
                        std::span<const ConnectionHandle> recipients) = 0;

  // The user's first connection appeared (online = true) or the last one is gone (false):
  // "offline on all devices" for backends.
  virtual void OnUserConnectivity(std::string_view client_id, bool online, TimeMs at) = 0;

  // An activity record was added.
  virtual void OnActivity(std::string_view client_id, const ActivityRecord& record) = 0;

  // A connection's grace period ran out and the engine forgot it; its handle is now invalid.
  virtual void OnConnectionExpired(ConnectionHandle connection) = 0;
};

// A sink that ignores everything: handy for benchmarks and tools.
class NullSink final : public EventSink {
 public:
  void OnPresence(const PresenceEvent&, std::span<const ConnectionHandle>) override {}
  void OnStatus(const StatusChange&, std::span<const ConnectionHandle>) override {}
  void OnUserConnectivity(std::string_view, bool, TimeMs) override {}
  void OnActivity(std::string_view, const ActivityRecord&) override {}
  void OnConnectionExpired(ConnectionHandle) override {}
};

}  // namespace presenced::engine
