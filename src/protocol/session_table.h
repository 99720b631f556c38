// SessionTable: the WebSocket sessions the Dispatcher serves, and each one's request rate limit.
//
// A session is found two ways: by the network layer's SessionId (one hash lookup per request) and
// by the engine's connection slot (an index: a delivery to a subscriber costs no lookup at all).
// The same connection may be served by a new session after a resume; the slot then points to it.
//
// Threading: the Dispatcher's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/transport.h"
#include "engine/types.h"

namespace presenced::protocol {

// A token bucket: `burst` requests at once, `rate` per second sustained.
class RateLimiter {
 public:
  RateLimiter(double burst, TimeMs now) : tokens_(burst), refilled_at_(now) {}
  // Takes one token; false when none is left.
  bool Take(TimeMs now, double rate_per_second, double burst);

 private:
  double tokens_;
  TimeMs refilled_at_;
};

struct Session {
  SessionId id = 0;
  engine::ConnectionHandle handle = 0;
  std::shared_ptr<Peer> peer;
  std::string client_id;
  std::optional<std::vector<std::string>> channel_patterns;  // absent = all channels
  RateLimiter limiter;
  bool worker = false;        // may serve agent sessions (the token's roles)
  bool observer = false;      // the API key's: reads only (kObserverOk ops)
  int32_t outbox_entry = -1;  // this round's entry in the Outbox, if any
  bool batch = false;         // `batch=1`: the round's messages go out packed (Outbox::Flush)
  // Slow subscriber (protocol-ext §1): the channels whose events were dropped for want of room,
  // each owed a `sync` once the peer drained (Dispatcher::Drained).
  std::vector<std::string> conflated = {};
  bool drain_requested = false;  // Peer::NotifyWhenDrained is pending
};

class SessionTable {
 public:
  // Adds a session for `s.handle`, replacing whatever served that connection's slot.
  Session& Add(Session s);
  Session* ById(SessionId id);
  // The session serving `handle` (exactly that handle: a reused slot does not match).
  Session* ByHandle(engine::ConnectionHandle handle) {
    const uint32_t slot = engine::ConnectionSlot(handle);
    if (slot >= by_slot_.size()) return nullptr;
    Session* s = by_slot_[slot].get();
    return s != nullptr && s->handle == handle ? s : nullptr;
  }
  // Whatever serves `slot` now (a connection that no longer exists may have left it), or null.
  Session* AtSlot(uint32_t slot) { return slot < by_slot_.size() ? by_slot_[slot].get() : nullptr; }
  // Removes the session; returns it (null when unknown) so the caller can finish with it.
  std::unique_ptr<Session> Remove(SessionId id);
  // Every session, to end them all (shutdown).
  std::vector<std::unique_ptr<Session>> TakeAll();
  // Calls `f(Session&)` for every session; `f` must not add or remove sessions.
  template <typename F>
  void ForEach(F f) {
    for (auto& s : by_slot_) {
      if (s != nullptr) f(*s);
    }
  }
  size_t size() const { return by_id_.size(); }

 private:
  std::unordered_map<SessionId, uint32_t> by_id_;  // session id -> slot
  std::vector<std::unique_ptr<Session>> by_slot_;  // by engine connection slot
};

}  // namespace presenced::protocol
