// Dispatcher: the wire protocol on top of the engine, and the coordinator of src/protocol. It
// owns the Engine (and is its EventSink), the sessions (session_table.h), the outbox (outbox.h)
// and the store bridge (store_bridge.h). A WebSocket message is parsed, rate-limited and run
// through the op table (ops.h); a REST request goes through the route table (rest_routes.h) to
// the same ops. Engine events are serialized once and the same buffer queued to every recipient.
//
// Threading: single-threaded, like the engine: every method must be called on the one thread
// that owns the Dispatcher (the server's engine thread). The store's answers come back through
// the Poster, so every frame is queued here and leaves through the outbox (FlushOutbound).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/random.h"
#include "common/transport.h"
#include "engine/engine.h"
#include "protocol/metrics.h"
#include "protocol/ops.h"
#include "protocol/options.h"
#include "protocol/outbox.h"
#include "protocol/peer.h"
#include "protocol/rest_routes.h"
#include "protocol/session_table.h"
#include "protocol/store_bridge.h"
#include "protocol/upgrade.h"
#include "storage/store.h"

namespace presenced::protocol {

class Dispatcher final : public engine::EventSink {
 public:
  using Clock = std::chrono::steady_clock;
  using Poster = protocol::Poster;

  // `clock`, `random`, `store` and `metrics` must outlive the Dispatcher.
  Dispatcher(DispatcherOptions options, const presenced::Clock& clock, RandomSource& random,
             storage::Store& store, Metrics& metrics, Poster post);

  // A WebSocket session was accepted for `request` (token already verified).
  void Open(SessionId session, ConnectRequest request, std::shared_ptr<Peer> peer);
  // A text message from the session; `received` is when the network layer read it.
  void Message(SessionId session, std::string_view text, Clock::time_point received);
  // The session ended: `clean` after a close frame, otherwise an abrupt drop.
  void Closed(SessionId session, bool clean);
  // Who a session is, for logs: "clientId/connectionId", or empty for an unknown session.
  std::string Describe(SessionId session);
  // The session's output drained after Peer::NotifyWhenDrained: each channel whose events were
  // dropped for it (a slow subscriber) gets its `sync`.
  void Drained(SessionId session);
  // A REST request (the API key is checked here). `stored` is what the store remembers of the
  // user the request acts for (HttpRouteUser), read off this thread. `done` is called exactly
  // once, on this thread: at once, or from a task run through the Poster.
  void Http(const HttpRequest& request, std::optional<storage::UserRecord> stored,
            std::function<void(HttpResponse)> done);
  // Graceful shutdown: every member leaves (reason disconnected), every session is closed (1001).
  void Shutdown();

  // Runs due engine deadlines and the lastSeen checkpoint.
  void Tick();
  std::optional<TimeMs> NextDeadline() const;
  // Hands every frame queued since the last call to its session, one batch per session. The
  // owner calls it after each round of work, so a burst of events costs one hand-off per socket.
  void FlushOutbound() { outbox_.Flush(); }
  // Frames queued since the last FlushOutbound.
  size_t pending_frames() const { return outbox_.pending_frames(); }
  const engine::Engine& engine() const { return engine_; }
  size_t session_count() const { return sessions_.size(); }

  // engine::EventSink
  void OnPresence(const engine::PresenceEvent& event,
                  std::span<const engine::ConnectionHandle> recipients) override;
  void OnStatus(const engine::StatusChange& change,
                std::span<const engine::ConnectionHandle> recipients) override;
  void OnUserConnectivity(std::string_view client_id, bool online, TimeMs at) override;
  void OnActivity(std::string_view client_id, const engine::ActivityRecord& record) override;
  void OnConnectionExpired(engine::ConnectionHandle connection) override;

 private:
  void Reply(Session& s, std::string frame) {
    outbox_.Queue(s, std::make_shared<const std::string>(std::move(frame)));
  }
  // A store-backed op's answer for request `id` of session `sid` (dropped when it has gone).
  void ReplyLater(SessionId sid, int64_t id, Result<std::string> fields);
  // Closes a peer after everything already queued for it.
  void ClosePeer(const std::shared_ptr<Peer>& peer, uint16_t code, std::string reason);
  // Ends a session's part here (its frames still go out).
  void Forget(std::unique_ptr<Session> s);
  void SendTo(engine::ConnectionHandle handle, const Frame& frame);
  // An event to a subscriber: queued when the peer has room, else dropped and owed a `sync`.
  void DeliverEvent(engine::ConnectionHandle handle, std::string_view channel, const Frame& frame);

  DispatcherOptions options_;
  const presenced::Clock& clock_;
  Metrics& metrics_;
  engine::Engine engine_;
  StoreBridge store_;
  Core core_;
  SessionTable sessions_;
  Outbox outbox_;
  bool shutting_down_ = false;  // after Shutdown, new sessions are refused (1001)
};

}  // namespace presenced::protocol
