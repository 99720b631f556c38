// Dispatcher: the wire protocol on top of the engine. It turns WebSocket frames and REST requests
// into engine calls, and engine events into frames, serializing each event once and queuing the
// same buffer to every recipient's Peer.
//
// Owns the Engine (and is its EventSink). Threading: like the engine, single-threaded: every
// method must be called on the one thread that owns the Dispatcher (the server's engine thread).
// Peers are thread-safe, so replies are queued from here directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"
#include "protocol/metrics.h"
#include "protocol/peer.h"
#include "storage/store.h"

namespace presenced::protocol {

struct DispatcherOptions {
  engine::EngineConfig engine;
  TimeMs default_remain_present_for_ms = 15000;
  TimeMs max_remain_present_for_ms = 300000;
  double rate_per_second = 2000;           // sustained requests per connection
  double rate_burst = 5000;                // bucket size
  std::string epoch;                       // identifies this run of the server
  std::string api_key;                     // for REST
  std::string jwt_secret;                  // for POST /v1/tokens
  TimeMs last_seen_checkpoint_ms = 10000;  // how often connected users' lastSeen is stored
};

class Dispatcher final : public engine::EventSink {
 public:
  using Clock = std::chrono::steady_clock;

  // Runs a task on the Dispatcher's thread later (after the current call). Thread-safe. The
  // store's answers come back through it, so every frame leaves from the Dispatcher's thread.
  using Poster = std::function<void(std::function<void()>)>;

  // `clock`, `random`, `store` and `metrics` must outlive the Dispatcher.
  Dispatcher(DispatcherOptions options, const presenced::Clock& clock, RandomSource& random,
             storage::Store& store, Metrics& metrics, Poster post);

  // A WebSocket session was accepted for `request` (token already verified).
  void Open(SessionId session, ConnectRequest request, std::shared_ptr<Peer> peer);
  // A text message from the session; `received` is when the network layer read it.
  void Message(SessionId session, std::string_view text, Clock::time_point received);
  // The session ended: `clean` after a close frame, otherwise an abrupt drop.
  void Closed(SessionId session, bool clean);
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
  void FlushOutbound();
  // Frames queued since the last FlushOutbound.
  size_t pending_frames() const { return outbox_frames_; }
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
  struct Session {
    engine::ConnectionHandle handle = 0;
    std::shared_ptr<Peer> peer;
    std::string client_id;
    std::optional<std::vector<std::string>> channel_patterns;
    double tokens = 0;
    TimeMs refilled_at = 0;
  };
  class Request;

  void Reply(Session& s, std::string frame);
  void Queue(const std::shared_ptr<Peer>& peer, std::shared_ptr<const std::string> frame);
  // Closes a peer after everything already queued for it.
  void ClosePeer(const std::shared_ptr<Peer>& peer, uint16_t code, std::string reason);
  void SendTo(engine::ConnectionHandle handle, const std::shared_ptr<const std::string>& frame);
  bool TakeToken(Session& s);
  Result<std::string> Handle(Session& s, std::string_view op, Request& r, int64_t id, bool& async);
  Status CheckChannel(const Session& s, std::string_view channel) const;
  void History(Session& s, int64_t id, Request& r);
  void HttpHistory(std::string channel, const std::unordered_map<std::string, std::string>& query,
                   std::function<void(HttpResponse)> done);
  void StatusGet(Session& s, int64_t id, const std::vector<std::string>& ids);
  // Serializes the STATUS of each id: from the engine when it knows the user, otherwise from the
  // store (asynchronously). `done` gets them in the order of `ids`.
  void StatusesOf(const std::vector<std::string>& ids,
                  std::function<void(Result<std::string>)> done);
  // Runs a chat command (`/presence ...`) for `client_id`; `handle` is the calling connection (0
  // from REST). Returns the reply's fields (`"text":..,"data":..`) when it has them at once;
  // otherwise calls `later` with them, possibly on the storage thread.
  // `patterns` are the caller's channel patterns (nullopt: all channels, as for REST): a command
  // is checked as the op it stands for.
  std::optional<std::string> RunCommand(const std::string& client_id,
                                        engine::ConnectionHandle handle,
                                        const std::optional<std::vector<std::string>>& patterns,
                                        std::string_view line,
                                        std::function<void(std::string)> later);
  // The REST routes beyond the core contract (channel list, who, devices, activity, commands,
  // tokens). False when the request is for none of them.
  bool HttpMore(const HttpRequest& req, const std::optional<storage::UserRecord>& stored,
                const std::vector<std::string>& seg,
                const std::unordered_map<std::string, std::string>& query,
                std::function<void(HttpResponse)>& done);
  // Reads the user's activity records from the store; `done` (maybe on the storage thread) gets
  // the `"activities":[...]` field.
  // With `patterns`, records of channels outside them are left out. Thread-safe (store only).
  void ActivityFields(std::string client_id, std::optional<int64_t> limit,
                      std::optional<TimeMs> since, std::optional<std::vector<std::string>> patterns,
                      std::function<void(Result<std::string>)> done);
  // activity.get: ActivityFields as the session may see them (its channel patterns; nothing of
  // another user who appears offline).
  void ActivityOf(const Session& s, std::string client_id, std::optional<int64_t> limit,
                  std::optional<TimeMs> since, std::function<void(Result<std::string>)> done);
  // Stores the user's status set by hand; `durable` runs when it is on disk.
  void PersistSettings(const std::string& client_id, std::function<void(Status)> durable);
  // Gives the engine what the store remembers of a user it does not hold.
  void Remember(const storage::UserRecord& stored);
  // Stores lastSeen of users who came online or whose last connection ended during the call just
  // made.
  void PersistLastSeen();

  DispatcherOptions options_;
  const presenced::Clock& clock_;
  storage::Store& store_;
  Metrics& metrics_;
  Poster post_;
  engine::Engine engine_;
  std::unordered_map<SessionId, Session> sessions_;
  std::unordered_map<engine::ConnectionHandle, SessionId> by_handle_;
  std::vector<std::string> last_seen_due_;  // came online or went offline during the current call
  TimeMs next_checkpoint_ = 0;
  bool shutting_down_ = false;  // after Shutdown, new sessions are refused (1001)
  struct Outbox {
    std::shared_ptr<Peer> peer;
    std::vector<std::shared_ptr<const std::string>> frames;
  };
  std::unordered_map<Peer*, Outbox> outbox_;
  size_t outbox_frames_ = 0;
};

// Parses a WebSocket upgrade target (`/v1/ws?token=...&device=...&resume=...&remainPresentForMs=`)
// and verifies its token. unauthorized for token problems, bad_request/too_large otherwise.
Result<ConnectRequest> ParseUpgrade(std::string_view target, std::string_view secret, TimeMs now,
                                    size_t max_id_bytes);

// The user a REST request acts for whose stored settings the engine may need (PUT
// /v1/users/{clientId}/status, POST /v1/commands), if it is one.
std::optional<std::string> HttpRouteUser(const HttpRequest& req);

// The HTTP status for an error code on REST.
unsigned HttpStatusFor(ErrorCode code);

}  // namespace presenced::protocol
