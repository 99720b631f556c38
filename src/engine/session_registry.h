// SessionRegistry: agent sessions (protocol-ext §3), one per conversation, run by workers.
//
// It owns every session (by conversation id), every serving worker (by connection handle, with
// its capacity) and every subscription to a conversation's session events. A started session is
// assigned to the live worker with the most free capacity (ties: the one that served first); one
// that no worker can take waits, first come first served, for a worker with room. It is
// `starting` until its worker says ready, then `running`. It stops on request (`stopped`), after
// `inactivity_timeout_ms` without activity (`idle`), after `abandon_after_ms` with no member but
// the agent in the conversation channel (`abandoned`), when its worker failed it or no worker got
// it running within `start_timeout_ms` (`failed`), or when its worker ended and no other worker
// serves (`worker_lost`). A worker that ends (a clean close, or the end of its grace period after
// an abrupt drop) hands its sessions over to other workers (`reassigned`); the agent's member
// stays present meanwhile.
//
// What it decides leaves through the SessionSink: assignments and stops for workers, session
// events with their subscribers, and the agent member's enter and leave (which the owner runs on
// the Engine). The registry knows nothing of channels: the owner reports member counts of a
// conversation channel (MembersChanged) and the activity in it (Activity).
//
// Threading and time: like the Engine, single-threaded and passive, with an injected Clock; due
// deadlines run when the owner calls Tick() or any mutating method. Deterministic: the same calls
// at the same times give the same results and sink calls, so cluster nodes that apply one log
// agree (SaveState/LoadState carry the whole state).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json_text.h"
#include "engine/types.h"

namespace presenced::engine {

enum class SessionState : uint8_t { kStarting, kRunning };
enum class SessionAction : uint8_t { kStarted, kRunning, kReassigned, kStopped };
enum class StopReason : uint8_t { kStopped, kIdle, kAbandoned, kFailed, kWorkerLost };

std::string_view NameOf(SessionState state);
std::string_view NameOf(SessionAction action);
std::string_view NameOf(StopReason reason);

struct SessionSettings {
  std::string agent_id_template = "agent-{conversationId}";  // {conversationId} replaced
  TimeMs inactivity_timeout_ms = 1800000;
  TimeMs abandon_after_ms = 60000;
  TimeMs start_timeout_ms = 30000;  // not running this long after waiting began or assignment
  size_t max_sessions = 100000;
  size_t max_subscriptions_per_connection = 10000;
};

// A session as the wire shows it (SESSION). Views into registry-owned strings: valid until the
// next call into the registry.
struct SessionView {
  std::string_view conversation_id;
  std::string_view agent_id;
  SessionState state = SessionState::kStarting;
  std::string_view worker_connection_id;  // empty: none
  TimeMs started_at = 0;
  TimeMs last_activity_at = 0;
  TimeMs inactivity_timeout_ms = 0;
  TimeMs abandon_after_ms = 0;
};

// Called synchronously from inside registry calls. A sink may report back what those calls cause
// (MembersChanged, Activity) but must not call the registry's other methods.
class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // `worker` is to run the session: `request` as given to session.start.
  virtual void OnAssign(ConnectionHandle worker, const SessionView& session,
                        const JsonText& request) = 0;
  // The session `worker` ran (or was starting) stopped.
  virtual void OnWorkerStop(ConnectionHandle worker, std::string_view conversation_id,
                            StopReason reason) = 0;
  // A session event; `reason` (and `error`, from session.fail) on kStopped only.
  virtual void OnSessionEvent(SessionAction action, const SessionView& session,
                              std::optional<StopReason> reason, std::string_view error,
                              std::span<const ConnectionHandle> subscribers) = 0;
  // The agent became ready: the owner enters it as a member of the conversation channel and
  // returns what identifies that member's presence (given back to OnAgentLeave).
  virtual ConnectionHandle OnAgentEnter(const SessionView& session) = 0;
  virtual void OnAgentLeave(const SessionView& session, ConnectionHandle agent) = 0;
  // Activity of a running session: the agent's own status follows it (online while the
  // conversation is active, away and offline after the engine's idle times).
  virtual void OnAgentActive(ConnectionHandle /*agent*/) {}
};

class SessionRegistry {
 public:
  // `clock` and `sink` must outlive the registry.
  SessionRegistry(SessionSettings settings, const Clock& clock, SessionSink& sink);
  ~SessionRegistry();
  SessionRegistry(const SessionRegistry&) = delete;
  SessionRegistry& operator=(const SessionRegistry&) = delete;

  // The agent's clientId for a conversation (the settings' template).
  std::string AgentIdFor(std::string_view conversation_id) const;

  struct StartOptions {
    JsonText request;  // null: none
    std::optional<TimeMs> inactivity_timeout_ms;
    std::optional<TimeMs> abandon_after_ms;
    // Members of the conversation channel other than the agent, now.
    size_t others_present = 0;
  };
  struct Started {
    SessionView session;
    bool created = false;
  };
  // Starts the conversation's session, or (created = false) counts as activity of the one that
  // exists, ignoring the options.
  Result<Started> Start(std::string_view conversation_id, StartOptions options);
  std::optional<SessionView> Get(std::string_view conversation_id);
  // Stops with reason `stopped`; false when none existed.
  bool Stop(std::string_view conversation_id);
  // Every session, by conversation id.
  std::vector<SessionView> List();
  // `connection` gets the conversation's session events from now on, until it ends.
  Status Subscribe(ConnectionHandle connection, std::string_view conversation_id);

  // --- Workers ------------------------------------------------------------------------------
  // `worker` serves with `capacity` (again: the capacity changes); `connection_id` is what
  // sessions show as its workerConnectionId.
  Status Serve(ConnectionHandle worker, std::string_view connection_id, uint32_t capacity);
  // The worker's agent is running / could not start. not_present when the session does not exist
  // or is not this worker's.
  Status Ready(ConnectionHandle worker, std::string_view conversation_id);
  Status Fail(ConnectionHandle worker, std::string_view conversation_id, std::string_view error);
  // Activity of the session; not_present when none exists.
  Status Touch(std::string_view conversation_id);

  // --- What the owner reports ---------------------------------------------------------------
  // A request answered ok in the conversation channel (nothing when no session exists).
  void Activity(std::string_view conversation_id);
  // Members other than the agent entered (+) or left (-) the conversation channel.
  void MembersChanged(std::string_view conversation_id, int delta);
  // A connection dropped abruptly (a worker then takes no new sessions) or was resumed.
  void ConnectionDropped(ConnectionHandle connection);
  void ConnectionResumed(ConnectionHandle connection);
  // A connection ended for good: its subscriptions end, and a worker's sessions are handed over.
  void ConnectionEnded(ConnectionHandle connection);

  bool Has(std::string_view conversation_id) const;
  size_t size() const { return sessions_.size(); }
  size_t worker_count() const { return workers_.size(); }
  bool empty() const { return sessions_.empty() && workers_.empty() && subscribed_.empty(); }

  // --- Time ----------------------------------------------------------------------------------
  void Tick();
  std::optional<TimeMs> NextDeadline() const;

  // Whether `handle` is a running session's agent member (a connection without a socket). A
  // scan: for admin calls.
  bool IsAgent(ConnectionHandle handle) const;

  // --- State snapshots ----------------------------------------------------------------------
  std::string SaveState() const;
  // Replaces everything with a saved state (calling no sink); a corrupt one is refused and
  // leaves the registry empty.
  Status LoadState(std::string_view state);

 private:
  struct Session {
    std::string conversation_id;
    std::string agent_id;
    SessionState state = SessionState::kStarting;
    ConnectionHandle worker = 0;  // 0: none
    TimeMs started_at = 0;
    TimeMs last_activity_at = 0;
    TimeMs inactivity_timeout_ms = 0;
    TimeMs abandon_after_ms = 0;
    JsonText request;
    uint64_t others = 0;         // members but the agent in the conversation channel
    TimeMs empty_since = -1;     // when `others` became 0; -1 while someone is there
    TimeMs start_deadline = -1;  // fails unless running by then; -1 when running
    uint64_t wait_seq = 0;       // its place in waiting_ (0: not waiting)
    ConnectionHandle agent = 0;  // the agent's member (OnAgentEnter), 0 before ready
    bool handed_over = false;    // lost its worker: the next assignment is `reassigned`
    TimeMs deadline = -1;        // the earliest of the above, as keyed in deadlines_
  };
  struct Worker {
    std::string connection_id;
    uint32_t capacity = 0;
    uint32_t sessions = 0;
    uint64_t serve_seq = 0;
    bool live = true;
  };

  void Begin();
  Session* Find(std::string_view conversation_id);
  SessionView ViewOf(const Session& s) const;
  void Emit(SessionAction action, const Session& s, std::optional<StopReason> reason = {},
            std::string_view error = {});
  void Schedule(Session& s);  // recomputes s.deadline and its key
  void NoteActivity(Session& s);
  // The live worker with the most free capacity (ties: served first), or 0.
  ConnectionHandle PickWorker() const;
  void AssignTo(Session& s, ConnectionHandle worker);
  void Wait(Session& s);
  // Hands waiting sessions to workers with room, first come first served.
  void AssignWaiting();
  void StopSession(Session& s, StopReason reason, std::string_view error = {});
  void Release(Session& s);  // detaches s from its worker and the waiting queue

  SessionSettings settings_;
  const Clock& clock_;
  SessionSink& sink_;
  TimeMs now_ = 0;
  std::map<std::string, std::unique_ptr<Session>, std::less<>> sessions_;
  std::map<ConnectionHandle, Worker> workers_;
  uint64_t next_serve_seq_ = 0;
  std::map<uint64_t, Session*> waiting_;  // by wait_seq
  uint64_t next_wait_seq_ = 0;
  std::set<std::pair<TimeMs, std::string>, std::less<>> deadlines_;
  // Subscriptions: conversation -> connections (in order), connection -> conversations.
  std::map<std::string, std::vector<ConnectionHandle>, std::less<>> subscribers_;
  std::map<ConnectionHandle, std::set<std::string, std::less<>>> subscribed_;
};

}  // namespace presenced::engine
