// Engine: the presence state of one presenced process, and the only code that changes it.
//
// It owns every channel (members, subscribers, recent events), every connection (live, or in its
// grace period after an abrupt drop), and every known user (status, devices, activity). Each
// change becomes an event reported through the EventSink given at construction.
//
// Threading: single-threaded and passive. It has no thread, no I/O and no timer of its own: time
// comes from the injected Clock, and deadlines (TTL, grace, idle transitions) run when the owner
// calls Tick() or any other method (each call first runs what is due, so an expired member is
// never visible). NextDeadline() tells the owner when to call Tick(). One thread (or strand) must
// own the Engine; everything it returns is valid until the next call (views hold string_views into
// engine-owned strings), except JsonText values, which may be kept.
//
// Errors: every operation that can fail returns Result/Status and changes nothing when it fails.
// Operations that take a ConnectionHandle count as activity of that device when they succeed;
// read-only queries do not take one, so the caller reports their activity with Touch().
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json_text.h"
#include "common/random.h"
#include "engine/config.h"
#include "engine/event_ring.h"
#include "engine/event_sink.h"
#include "engine/identity.h"
#include "engine/timer_queue.h"
#include "engine/types.h"

namespace presenced::engine {

struct Attached {
  ConnectionHandle handle = 0;
  std::string_view client_id;
  std::string_view connection_id;
  std::string_view connection_key;  // 128-bit random, hex; works once, for Resume
  TimeMs remain_present_for_ms = 0;
};

// What a resumed connection missed on one subscribed channel: the events, in order, or (when the
// ring no longer holds them all) a full snapshot.
struct CatchUp {
  std::string_view channel;
  bool snapshot = false;
  std::vector<PresenceEvent> events;  // when !snapshot
  std::vector<MemberView> members;    // when snapshot
  uint64_t serial = 0;
};

struct Resumed {
  Attached connection;
  bool was_live = false;  // the old socket still looked alive: the caller must close it
  std::vector<CatchUp> catch_up;
  // Status pushes missed in the grace period: the current status of the connection's own user and
  // of each user it watches (every user, for a watcher of all) whose status or text changed after
  // the drop, oldest change first; `previous` is that of the latest change.
  std::vector<StatusChange> statuses;
};

struct Snapshot {
  std::vector<MemberView> members;
  uint64_t serial = 0;
};

struct Subscribed {
  uint64_t serial = 0;
  // With a covered `since`: the events after it (filtered), and no members.
  bool has_events = false;
  std::vector<PresenceEvent> events;
  std::vector<MemberView> members;
  // `since` was given but the events after it are gone: `members` is a fresh snapshot.
  bool resynced = false;
};

struct MemberFilter {
  std::optional<std::string_view> client_id;
  std::optional<std::string_view> connection_id;
};

class Engine {
 public:
  // `clock`, `random` and `sink` must outlive the Engine.
  Engine(EngineConfig config, const Clock& clock, RandomSource& random, EventSink& sink);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // --- Connections ---------------------------------------------------------------------------
  // A new connection of `client_id` from `device` ("" = "unknown"). It stays present for
  // `remain_present_for_ms` after an abrupt drop.
  Result<Attached> Attach(std::string_view client_id, std::string_view device,
                          TimeMs remain_present_for_ms);
  // Clean close: members leave at once (reason disconnected), subscriptions and watches end.
  Status Close(ConnectionHandle connection);
  // Abrupt drop: members stay for the grace period, then leave (reason timeout). Events meanwhile
  // are kept for Resume.
  Status Drop(ConnectionHandle connection);
  // The same, as if the drop had happened at `at` (no later than now): the grace period counts
  // from then (a dead cluster node's connections count as dropped when its lease expired).
  Status DropAt(ConnectionHandle connection, TimeMs at);
  // Takes a connection back by its key (within its grace period, or while still live). The key
  // is replaced; the connection keeps members, subscriptions and watches; no event is emitted.
  Result<Resumed> Resume(std::string_view connection_key, std::string_view client_id,
                         TimeMs remain_present_for_ms);
  // Who the connection is (clientId, connectionId, device), or null for an unknown handle. Valid
  // until the next call into the Engine.
  const Identity* IdentityOf(ConnectionHandle connection);
  // The connection with this id (live or in its grace period), if any. A scan: for admin calls.
  std::optional<ConnectionHandle> FindConnectionById(std::string_view connection_id) const;
  // The user's connections, live or in their grace period, in attach order.
  std::vector<ConnectionHandle> ConnectionsOf(std::string_view client_id) const;
  // Records activity of the connection's device (for read-only requests answered ok).
  Status Touch(ConnectionHandle connection);
  // Graceful shutdown: closes every connection cleanly (members leave with reason disconnected).
  void Shutdown();

  // --- Channel presence ----------------------------------------------------------------------
  // Enters, or updates when already present: `data` replaces the data when given; the expiry
  // becomes now + ttl when given, none otherwise.
  Result<MemberView> Enter(ConnectionHandle connection, std::string_view channel,
                           std::optional<JsonText> data, std::optional<TimeMs> ttl_ms);
  // Replaces the data (or shallow-merges object keys when `merge`); `ttl_ms` refreshes the expiry.
  Result<MemberView> Update(ConnectionHandle connection, std::string_view channel, JsonText data,
                            bool merge, std::optional<TimeMs> ttl_ms);
  // Leaves; `data`, when given, is the leave event's data.
  Status Leave(ConnectionHandle connection, std::string_view channel, std::optional<JsonText> data);
  Snapshot Get(std::string_view channel, const MemberFilter& filter = {});
  Occupancy GetOccupancy(std::string_view channel);
  // Channels with members, by name; at most `limit`, starting after `after` (paging).
  std::vector<ChannelSummary> ListChannels(std::string_view after, size_t limit);
  // Subscribes (or changes the filter of an existing subscription). With `since`, returns the
  // events after it when all are still held; otherwise a snapshot.
  Result<Subscribed> Subscribe(ConnectionHandle connection, std::string_view channel,
                               ActionMask actions, std::optional<uint64_t> since);
  Status Unsubscribe(ConnectionHandle connection, std::string_view channel);
  // Whether the connection is subscribed to the channel (false for an unknown connection).
  bool IsSubscribed(ConnectionHandle connection, std::string_view channel);
  // The channels the connection is subscribed to, in the order it subscribed (valid until the
  // next call).
  std::vector<std::string_view> SubscriptionsOf(ConnectionHandle connection);

  // --- User status ---------------------------------------------------------------------------
  // `status`: kOnline returns to automatic; away/dnd/offline are set by hand. `text`: absent =
  // unchanged, nullopt inside = clear.
  Result<StatusView> SetStatus(ConnectionHandle connection, std::optional<Presence> status,
                               std::optional<std::optional<std::string>> text);
  // The same for a backend acting on behalf of `client_id` (not device activity).
  Result<StatusView> SetStatusOf(std::string_view client_id, std::optional<Presence> status,
                                 std::optional<std::optional<std::string>> text);
  StatusView GetStatus(std::string_view client_id);
  // One device's own status (docs/protocol.md, "Per-device status"): kOnline returns the device
  // to automatic (from its idle time); away/dnd/offline are set by hand, offline hiding the
  // device. `connection_id`: absent = the calling connection; else another live connection of the
  // caller's user (not_found otherwise). Counts as activity of the calling device.
  Result<DeviceChange> SetDeviceStatus(ConnectionHandle connection,
                                       std::optional<std::string_view> connection_id,
                                       Presence status);
  // The same for a backend acting on behalf of `client_id` (no device's activity).
  Result<DeviceChange> SetDeviceStatusOf(std::string_view client_id, std::string_view connection_id,
                                         Presence status);
  // Adds watches; returns the watched users' current statuses.
  Result<std::vector<StatusView>> Watch(ConnectionHandle connection,
                                        std::span<const std::string> client_ids);
  Status Unwatch(ConnectionHandle connection, std::span<const std::string> client_ids);
  // Watches every user (an observer's `status.watch` with `all`): the connection gets each
  // user's status push as a watcher of that user would. Returns the users not offline (as Who).
  Result<std::vector<StatusView>> WatchAll(ConnectionHandle connection);
  Status UnwatchAll(ConnectionHandle connection);
  Status RecordActivity(ConnectionHandle connection, std::string_view kind,
                        std::string_view channel, JsonText data);
  // The same for a backend on behalf of `client_id`: the record has no connectionId, and it moves
  // the user's lastSeen (unless appearing offline) but no device's idle time.
  Result<ActivityRecord> RecordActivityOf(std::string_view client_id, std::string_view kind,
                                          std::string_view channel, JsonText data);
  // Newest first; `since` inclusive.
  std::vector<ActivityRecord> GetActivities(std::string_view client_id, size_t limit,
                                            std::optional<TimeMs> since);
  // The user's connections; empty for a user who appears offline unless `viewer` is that user.
  std::vector<DeviceView> Devices(std::string_view client_id, std::string_view viewer);
  // Pushes the user's current status to each of the user's live connections (`/presence sync`)
  // and reports which devices hold it.
  SyncReport SyncStatus(std::string_view client_id);
  // The same report without pushing anything.
  SyncReport SyncState(std::string_view client_id);
  // Users whose status is not offline; with `channel`, only users with a member there.
  std::vector<StatusView> Who(std::optional<std::string_view> channel);

  // --- Persistence hooks (the durable store) -------------------------------------------------
  struct UserSettings {
    Presence manual = Presence::kOnline;  // kOnline = automatic
    std::optional<std::string> text;
  };
  bool KnowsUser(std::string_view client_id) const { return users_.count(client_id) != 0; }
  // Gives the engine what the store remembers of a user it does not know (after a restart or an
  // eviction). Ignored when the engine knows the user: its own state is newer.
  void RestoreUser(std::string_view client_id, UserSettings settings, TimeMs last_seen);
  std::optional<UserSettings> SettingsOf(std::string_view client_id) const;
  // lastSeen to store for every connected user, as of now: a user with a live connection was seen
  // now; one whose every connection is in its grace period was last seen when the drop was
  // noticed; one appearing offline keeps the frozen value. Users never seen (0) are left out, so
  // a checkpoint never stores 0. No value exceeds the lastSeen the user will have once offline,
  // so a store that keeps the newest lastSeen (never moving it backwards) agrees with the engine.
  // After a crash the stored value is at most one checkpoint interval old.
  std::vector<std::pair<std::string, TimeMs>> LastSeenCheckpoint();

  // --- State snapshots (engine_state.cc) -----------------------------------------------------
  // Everything the engine holds, as bytes. An engine with the same config that loads them acts
  // exactly as this one from then on (handles, timers, serials, fan-out order), given the same
  // calls, clock and randomness: a cluster node joins from a snapshot and the log after it.
  std::string SaveState();
  // Replaces everything the engine holds with a saved state (emitting nothing). A state that is
  // not one (truncated, another version, inconsistent) is refused and leaves the engine empty.
  Status LoadState(std::string_view state);

  // --- Time ----------------------------------------------------------------------------------
  // Runs every deadline that is due, in deadline order, each at its own deadline.
  void Tick();
  std::optional<TimeMs> NextDeadline() const { return timers_.NextDeadline(); }

  // --- Introspection (metrics, tests) --------------------------------------------------------
  size_t channel_count() const { return channels_.size(); }
  size_t connection_count() const { return connection_count_; }
  size_t member_count() const { return member_count_; }
  // Users the engine holds, observers' not counted (identity.h).
  size_t user_count() const { return users_.size() - users_.count(kObserverClientId); }
  size_t timer_count() const { return timers_.size(); }
  // Bytes held by all channels' event rings (bounded by config().max_retained_event_bytes).
  size_t retained_event_bytes() const { return retained_.bytes(); }
  const EngineConfig& config() const { return config_; }

 private:
  struct Member;
  struct Subscriber;
  struct Channel;
  struct Membership;
  struct Subscription;
  struct Connection;
  struct User;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename T>
  using StringMap =
      std::unordered_map<std::string, std::unique_ptr<T>, StringHash, std::equal_to<>>;

  enum TimerKind : uint8_t { kTtlTimer, kGraceTimer, kIdleTimer };

  void Clear();  // back to a new engine's state (the time is kept)
  Status ReadState(std::string_view state);
  // Starts a public call: runs due timers and fixes `now_`.
  void Begin();
  Connection* Find(ConnectionHandle handle);
  Status ValidateChannel(std::string_view channel) const;
  Status ValidateData(const JsonText& data) const;
  static Status ValidateTtl(std::optional<TimeMs> ttl_ms);

  Channel& GetOrCreateChannel(std::string_view name);
  Channel* FindChannel(std::string_view name);
  void MaybeFreeChannel(Channel& channel);
  static Subscriber& SubscriberOf(Channel& channel, const Connection& connection);
  // Index of `connection`'s member in `channel`, or -1.
  int64_t FindMemberSlot(const Connection& connection, const Channel& channel) const;
  MemberView ViewOf(const Channel& channel, const Member& member) const;
  void Emit(Channel& channel, Action action, LeaveReason reason, const Connection& who,
            const JsonText& data, TimeMs timestamp, TimeMs expires_at);
  PresenceEvent EventView(const Channel& channel, uint64_t serial, const EventRecord& rec) const;
  // Removes a member and emits its leave. `fired_expiry`: the expiry to report when the member's
  // TTL timer has already fired.
  void RemoveMember(Channel& channel, size_t slot, LeaveReason reason,
                    const std::optional<JsonText>& leave_data, TimeMs fired_expiry = kNoExpiry);
  void SetExpiry(Member& member, Connection& connection, std::optional<TimeMs> expires_at);
  std::vector<MemberView> MembersOf(const Channel& channel, const MemberFilter& filter) const;
  std::vector<PresenceEvent> EventsAfter(const Channel& channel, uint64_t since,
                                         ActionMask actions) const;
  void RemoveSubscription(Connection& connection, size_t index);

  void Activity(Connection& connection);
  void ArmIdleTimer(Connection& connection);
  // The device's effective status (set by hand, else IdleStatus) and its status from idle time.
  Presence DeviceStatus(const Connection& connection) const;
  Presence IdleStatus(const Connection& connection) const;
  // The connection's activity as others may see it: frozen while it is set offline by hand.
  static TimeMs SeenOf(const Connection& connection);
  // The user's active device: the most recently active connection not set offline by hand.
  const Connection* ActiveConnection(const User& user) const;
  DeviceView DeviceViewOf(const Connection& connection, const Connection* active) const;
  // Resume: the status pushes `connection` missed since its drop (Resumed::statuses).
  void MissedStatuses(Connection& connection, std::vector<StatusChange>& out);
  Result<DeviceChange> ApplyDeviceStatus(Connection& target, Presence status);
  // Ends a connection: members leave with `reason`, subscriptions and watches end.
  void Teardown(Connection& connection, LeaveReason reason);

  User& GetOrCreateUser(std::string_view client_id);
  User* FindUser(std::string_view client_id);
  void UpdatePin(User& user);
  Presence EffectiveStatus(const User& user) const;
  // Latest activity or disconnect of the user (not frozen by appearing offline).
  TimeMs LastSeen(const User& user) const;
  StatusView ViewOf(const User& user) const;
  // Pushes a status change when the visible status (or, when `text_changed`, the text) changed;
  // with `device` (whose own status was just set), always to the user's own connections.
  void RefreshUser(User& user, bool text_changed = false, const Connection* device = nullptr);
  Status ApplyStatus(User& user, std::optional<Presence> status,
                     std::optional<std::optional<std::string>>& text);
  Status ValidateStatusText(const std::optional<std::optional<std::string>>& text) const;
  Status ValidateClientIds(std::span<const std::string> client_ids) const;
  Status ValidateActivity(std::string_view kind, std::string_view channel,
                          const JsonText& data) const;
  const ActivityRecord& AddActivity(User& user, std::string_view kind, std::string_view channel,
                                    JsonText data, std::string_view connection_id);

  void OnTtlTimer(Connection& connection, TimerQueue::TimerId id);
  void OnGraceTimer(Connection& connection);
  void OnIdleTimer(Connection& connection);

  EngineConfig config_;
  const Clock& clock_;
  RandomSource& random_;
  EventSink& sink_;
  TimeMs now_ = 0;

  TimerQueue timers_;
  RetainedBudget retained_;  // before channels_: every channel's ring uses it
  StringMap<Channel> channels_;
  StringMap<User> users_;
  std::list<User*> idle_users_;  // users with no connection and no watcher, oldest first
  std::unordered_map<std::string, Connection*, StringHash, std::equal_to<>> keys_;
  std::vector<std::unique_ptr<Connection>> connections_;  // slot per handle index
  std::vector<uint32_t> generations_;
  std::vector<uint32_t> free_slots_;
  size_t connection_count_ = 0;
  size_t member_count_ = 0;
  uint64_t serial_high_water_ = 0;  // highest serial ever assigned (new channels start above it)
  uint64_t visit_mark_ = 0;         // for de-duplicating users in one pass
  uint64_t status_seq_ = 0;         // status publications so far (User::published_seq)
  std::vector<ConnectionHandle> recipients_;  // scratch, reused for every fan-out
  std::vector<Connection*> all_watchers_;     // connections watching every user, in watch order
};

}  // namespace presenced::engine
