// Dispatcher: the wire protocol on top of the engine, and the coordinator of src/protocol. It
// owns the Engine (and is its EventSink), the sessions (session_table.h), the outbox (outbox.h)
// and the store bridge (store_bridge.h). A WebSocket message is parsed, rate-limited and run
// through the op table (ops.h); a REST request goes through the route table (rest_routes.h) to
// the same ops. Engine events are serialized once and the same buffer queued to every recipient.
//
// Threading: single-threaded, like the engine: every method must be called on the one thread
// that owns the Dispatcher (the server's presence loop). The store's answers come back through
// the Poster, so every frame is queued here and leaves through the outbox (FlushOutbound).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/http_client.h"
#include "common/random.h"
#include "common/replication.h"
#include "common/transport.h"
#include "engine/engine.h"
#include "engine/session_registry.h"
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
#include "webhooks/outbox.h"

namespace presenced::protocol {

class Dispatcher final : public engine::EventSink, public engine::SessionSink, public AdminControl {
 public:
  using Clock = std::chrono::steady_clock;
  using Poster = protocol::Poster;

  // `clock`, `random`, `store` and `metrics` must outlive the Dispatcher.
  Dispatcher(DispatcherOptions options, const presenced::Clock& clock, RandomSource& random,
             storage::Store& store, Metrics& metrics, Poster post);

  // A WebSocket session was accepted for `request` (token already verified). When the engine
  // does not hold the user, what the store remembers of it is read first (StoreBridge::
  // RememberUsers: off this thread, one read for every session opened in a round), and the session
  // is attached (its `connected` frame queued) when the answer is back; messages it sends
  // meanwhile wait for it.
  void Open(SessionId session, ConnectRequest request, std::shared_ptr<Peer> peer);
  // A session upgraded without a token (ConnectRequest::awaiting_auth) is held until its first
  // frame, `{"op":"auth","token":JWT}`, within kAuthTimeoutMs; then it opens as above. Anything
  // else first, a bad or revoked token, or nothing in time closes it (4003, or 4004 revoked).
  // A text message from the session; `received` is when the network layer read it.
  void Message(SessionId session, std::string_view text, Clock::time_point received);
  // The session ended: `clean` after a close frame, otherwise an abrupt drop.
  void Closed(SessionId session, bool clean);
  // Who a session is, for logs: "clientId/connectionId", or empty for an unknown session.
  std::string Describe(SessionId session);
  // Called (on this thread) each time a session is attached, with who it is: the owner's logs.
  using AttachedHook = std::function<void(SessionId, const engine::Identity&, bool resumed)>;
  void OnAttached(AttachedHook hook) { on_attached_ = std::move(hook); }
  // The session's output drained after Peer::NotifyWhenDrained: each channel whose events were
  // dropped for it (a slow subscriber) gets its `sync`.
  void Drained(SessionId session);
  // A REST request (the API key is checked here). What the store remembers of the user it acts
  // for (HttpRouteUser) is read first, off this thread, when the engine does not hold the user.
  // `done` is called exactly once, on this thread: at once, or from a task run through the Poster.
  void Http(HttpRequest request, std::function<void(HttpResponse)> done);
  // Graceful shutdown: every member leaves (reason disconnected), every session is closed (1001).
  void Shutdown();
  // Closes every session at once as abrupt, with `code` (cluster mode: 4001 when this node's
  // lease was lost). Each then ends as a dropped connection (Closed), within its grace period.
  void CloseAll(uint16_t code, const std::string& reason);

  // Cluster mode: every change to the engine goes through `replication` (which must outlive the
  // Dispatcher), and every entry of the log comes back through Apply. Set before the first
  // session opens.
  // `shared_store`: the store is the cluster's (storage=redis), so each change is stored by the
  // node that appended its entry only; a store of the node's own gets every change.
  void SetReplication(Replication* replication, bool shared_store = true) {
    replication_ = replication;
    shared_store_ = shared_store;
    store_.SetWriting(replication == nullptr || !shared_store);  // else per entry (Apply)
  }
  // Runs `done` once every change this node has asked of the cluster's log so far has been
  // applied here (or could not be appended): at once in single-node mode. Shutdown waits on it, so
  // the store has what its last closes changed.
  void WhenApplied(std::function<void()> done);
  // The data set's epoch (`connected`, snapshots, `since`): the cluster's in cluster mode.
  void SetEpoch(std::string epoch) { options_.epoch = std::move(epoch); }
  // Cluster mode: the epoch changed (Redis lost its data). Every subscription of this node's
  // sessions gets a `sync` with the new epoch and the channel's members as this node holds them.
  void EpochChanged(std::string epoch);
  // One entry of the cluster's log, in the log's order (the clock and randomness already set).
  void Apply(const ReplicatedEntry& entry);
  // Cluster mode: the state the log has built (the engine's, and which node holds each
  // connection), as of the entry last applied.
  std::string SaveState();
  // Replaces that state with a saved one: a node joining, or one resynchronizing after missing
  // entries (its own sessions are then closed first with 4001, as after a lost lease: what they
  // did meanwhile may not be in the state). A corrupt state is refused and changes nothing.
  Status LoadState(std::string_view state);

  // Runs due engine deadlines and the lastSeen checkpoint (in cluster mode: asks the log for a
  // tick when a deadline is due, since the engine's time is the log's).
  void Tick();
  std::optional<TimeMs> NextDeadline() const;
  // Hands every frame queued since the last call to its session, one batch per session. The
  // owner calls it after each round of work, so a burst of events costs one hand-off per socket.
  void FlushOutbound() {
    RunSessionNotes();
    PumpWebhooks();
    outbox_.Flush();
    if (!fanout_started_.empty()) ObserveFanout();
  }
  // Webhooks (protocol-ext §4): deliveries go out through `client` (which must outlive the
  // Dispatcher); without one, events queue and nothing is sent. Set after SetReplication. A
  // single node keeps its outbox in the store and restores it at start (RestoreWebhooks); a
  // cluster keeps it in the replicated state, and one node delivers: the first live one to have
  // said hello in the log.
  void SetWebhookClient(HttpClient* client);
  void RestoreWebhooks(std::vector<storage::StoredWebhook> rows);
  const webhooks::Outbox& webhook_outbox() const { return webhooks_; }
  bool delivering_webhooks() const { return deliverer_ != nullptr && delivering_; }
  // Frames queued since the last FlushOutbound.
  size_t pending_frames() const { return outbox_.pending_frames(); }
  const engine::Engine& engine() const { return engine_; }
  const engine::SessionRegistry& agent_sessions() const { return agents_; }
  size_t session_count() const { return sessions_.size(); }

  // engine::EventSink
  void OnPresence(const engine::PresenceEvent& event,
                  std::span<const engine::ConnectionHandle> recipients) override;
  void OnStatus(const engine::StatusChange& change,
                std::span<const engine::ConnectionHandle> recipients) override;
  void OnUserConnectivity(std::string_view client_id, bool online, TimeMs at) override;
  void OnActivity(std::string_view client_id, const engine::ActivityRecord& record) override;
  void OnConnectionExpired(engine::ConnectionHandle connection) override;

  // engine::SessionSink (agent sessions, protocol-ext §3)
  void OnAssign(engine::ConnectionHandle worker, const engine::SessionView& session,
                const JsonText& request) override;
  void OnWorkerStop(engine::ConnectionHandle worker, std::string_view conversation_id,
                    engine::StopReason reason) override;
  void OnSessionEvent(engine::SessionAction action, const engine::SessionView& session,
                      std::optional<engine::StopReason> reason, std::string_view error,
                      std::span<const engine::ConnectionHandle> subscribers) override;
  engine::ConnectionHandle OnAgentEnter(const engine::SessionView& session) override;
  void OnAgentLeave(const engine::SessionView& session, engine::ConnectionHandle agent) override;
  void OnAgentActive(engine::ConnectionHandle agent) override { (void)engine_.Touch(agent); }

  // AdminControl (dispatcher_admin.cc)
  Status Disconnect(std::string_view connection_id) override;
  size_t DisconnectUser(std::string_view client_id) override;
  std::pair<TimeMs, size_t> Revoke(std::string_view client_id) override;
  Result<std::string> PutMember(std::string_view client_id, std::string_view channel,
                                std::optional<JsonText> data, TimeMs ttl_ms) override;
  Status DeleteMember(std::string_view client_id, std::string_view channel) override;
  // Revocations as the store keeps them (single node: restored at start).
  void RestoreRevocations(const std::vector<std::pair<std::string, TimeMs>>& rows);

 private:
  // A session waiting for what the store remembers of its user (Open).
  struct EarlyMessage {
    std::string text;
    Clock::time_point received;
  };
  struct PendingOpen {
    ConnectRequest request;
    std::shared_ptr<Peer> peer;
    std::vector<EarlyMessage> early;  // sent before it was attached
    size_t early_bytes = 0;
  };
  // A session upgraded without a token, waiting for its `auth` frame (dispatcher_admin.cc).
  struct AwaitingAuth {
    ConnectRequest request;
    std::shared_ptr<Peer> peer;
  };
  void Authenticate(SessionId id, std::string_view text);
  // `auth` on a live session: the new token's patterns and roles apply from now on.
  void ReAuth(Session& s, int64_t req_id, const boost::json::object& request);
  // Closes the sessions whose `auth` frame is overdue.
  void ExpireAuth();
  // This node's time for its own deadlines and token checks (the engine's is the log's in
  // cluster mode).
  TimeMs LocalNow() const;
  // Whether the user's tokens issued before some time are refused, and this one is such.
  bool TokenRevoked(const ConnectRequest& request) const;
  // Ends a connection at once (members leave, reason disconnected); the socket, when this node
  // holds it, closes with `code`.
  void EndConnection(engine::ConnectionHandle handle, uint16_t code, const std::string& reason);
  // Agents' and server-side members' connections have no socket.
  bool Socketless(engine::ConnectionHandle handle) const;
  // Server-side members whose member left (expired): their connections end after the engine's
  // call (RunSessionNotes).
  void EndServerMembers();
  // The round's events reached their sockets' hand-off: presenced_fanout_latency_seconds.
  void ObserveFanout();
  static constexpr size_t kMaxFanoutSamples = 4096;  // per round; beyond, a sample
  std::vector<Clock::time_point> fanout_started_;    // events of this round with recipients
  static constexpr size_t kMaxEarlyMessages = 64;
  static constexpr size_t kMaxEarlyBytes = 256 * 1024;
  // Reads the users of the sessions opened since the last call (one store read), then attaches
  // each session still waiting and hands it its early messages.
  void ReadPendingUsers();
  // Attaches the session to the engine and queues its `connected` frame (and any catch-up).
  void Attach(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer);
  // The engine's part of Attach (every node's, in cluster mode): resume or attach. A resumed
  // connection whose old socket is still here is superseded (closed with 4000).
  struct AttachResult {
    engine::Attached attached;
    std::optional<engine::Resumed> resumed;
    std::optional<Error> error;
  };
  AttachResult AttachInEngine(const std::string& client_id, const std::string& device,
                              TimeMs remain, const std::optional<std::string>& resume_key);
  // The session's part (the node the client is on): the session, `connected`, the catch-up.
  void AttachSession(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer,
                     AttachResult& r);
  TimeMs RemainFor(const ConnectRequest& request) const;
  // Cluster mode (dispatcher_cluster.cc).
  // The session waits (in pending_, keeping what it sends) for its entry. `stored`: what the
  // store remembers of a user the engine did not know, carried in the entry so every node
  // restores the same.
  void AppendOpen(SessionId id, PendingOpen open, const storage::UserRecord* stored);
  // `seeded`: the op creates ids (session.ready attaches the agent), so its entry carries a seed.
  void AppendOp(Session& s, int64_t req_id, std::string_view text, bool seeded);
  void AppendEnd(engine::ConnectionHandle handle, SessionId session, bool clean);
  // `stored`: the store's record of the user the route changes (HttpRouteUser), carried in the
  // entry so every engine restores it alike before running the request.
  void AppendHttp(HttpRequest req, std::function<void(HttpResponse)> done,
                  const storage::UserRecord* stored);
  // `checkpoint`: the lastSeen checkpoint is due (every node runs it at this entry).
  void AppendTick(bool checkpoint);
  // Each user's lastSeen checkpointed (in a shared store by a node the user has a session on).
  void CheckpointLastSeen();
  // An op entry whose append was answered as failed, though Redis may have run it: its reply,
  // if the entry comes back, is not sent a second time.
  void RememberAnswered(uint64_t op_number);
  // Runs and forgets WhenApplied's `done` for mark `n` (its entry applied, or not appended).
  void FinishMark(uint64_t n);
  void ApplyOpen(const ReplicatedEntry& e, const boost::json::object& o);
  void ApplyOp(const ReplicatedEntry& e, const boost::json::object& o);
  void ApplyHttp(const ReplicatedEntry& e, const boost::json::object& o);
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
  // Agent sessions: what the engine reported from inside its calls, told to the registry after
  // them (a sink must not call back into the engine, which the registry's answers may).
  void RunSessionNotes();
  // A request answered ok in a conversation channel is activity of its session.
  void NoteConversationActivity(const boost::json::object& request);
  // Webhooks (dispatcher_webhooks.cc): an event of `type` with `data` (a JSON object's text).
  void Webhook(webhooks::Type type, const std::string& data);
  void PumpWebhooks();
  // The deliverer's report: in a cluster it becomes a log entry, and the event leaves every
  // node's outbox when that is applied.
  void WebhookDone(size_t endpoint, uint64_t seq, bool delivered);
  void PopWebhook(size_t endpoint, uint64_t seq);
  // Cluster: whether this node delivers (the first of nodes_), after nodes_ changed.
  void NodesChanged();
  void PresenceWebhooks(const engine::PresenceEvent& event);
  // A connection ended for good, dropped abruptly or was resumed (the registry's workers and
  // subscribers).
  void ConnectionEnded(engine::ConnectionHandle handle) { agents_.ConnectionEnded(handle); }

  DispatcherOptions options_;
  const presenced::Clock& clock_;
  Metrics& metrics_;
  Poster post_;  // to this thread (before store_, which takes a copy)
  engine::Engine engine_;
  engine::SessionRegistry agents_;  // agent sessions (protocol-ext §3)
  webhooks::Outbox webhooks_;
  std::unique_ptr<webhooks::Deliverer> deliverer_;
  SystemClock wall_;        // the deliverer's in cluster mode (the engine's clock is the log's)
  bool delivering_ = true;  // cluster: this node is nodes_.front()
  std::vector<std::string> nodes_;  // cluster: live incarnations in the order of their hello
  std::string hello_origin_;        // the incarnation this node said hello as
  std::vector<engine::ConnectionHandle> expired_;  // RunSessionNotes
  StoreBridge store_;
  Core core_;
  SessionTable sessions_;
  Outbox outbox_;
  bool shutting_down_ = false;  // after Shutdown, new sessions are refused (1001)
  AttachedHook on_attached_;
  std::unordered_map<SessionId, PendingOpen> pending_;
  std::unordered_map<SessionId, AwaitingAuth> awaiting_auth_;
  std::deque<std::pair<TimeMs, SessionId>> auth_deadlines_;  // in deadline order
  std::unordered_map<std::string, TimeMs> revoked_;          // clientId -> tokens before refused
  // Server-side members, (clientId, channel) -> their connection, and back.
  std::map<std::pair<std::string, std::string>, engine::ConnectionHandle> server_members_;
  std::unordered_map<engine::ConnectionHandle, std::pair<std::string, std::string>> member_of_;
  std::vector<engine::ConnectionHandle> ended_members_;
  std::vector<SessionId> unread_;  // opened since the last ReadPendingUsers
  bool read_posted_ = false;
  // Cluster mode.
  Replication* replication_ = nullptr;
  bool tick_pending_ = false;  // a tick was appended and not applied yet
  bool shared_store_ = true;
  uint64_t next_http_ = 0;
  uint64_t next_op_ = 0;                   // numbers this node's op entries ("n")
  std::unordered_set<uint64_t> answered_;  // op entries answered as failed (RememberAnswered)
  std::deque<uint64_t> answered_order_;    // oldest first, to bound answered_
  uint64_t next_mark_ = 0;
  std::unordered_map<uint64_t, std::function<void()>> marks_;  // WhenApplied
  std::unordered_map<uint64_t, std::function<void(HttpResponse)>> http_waiting_;
  // Who holds each connection now ("node/incarnation/session"), the same on every node: a close
  // or drop counts only from its holder (a connection resumed elsewhere meanwhile stays).
  std::unordered_map<engine::ConnectionHandle, std::string> holder_;
};

}  // namespace presenced::protocol
