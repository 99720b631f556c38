#include "engine/engine.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <deque>
#include <unordered_set>
#include <utility>

#include "engine/event_ring.h"
#include "engine/identity.h"
#include "engine/json_merge.h"

namespace presenced::engine {

// One member of a channel: a connection's presence there. 32 bytes; the expiry lives in the
// timer (no timer = no expiry).
struct Engine::Member {
  Connection* connection;
  JsonText data;
  TimeMs timestamp;
  TimerQueue::TimerId ttl_timer;
};

// A subscription as its channel sees it. The handle and grace flag are copied here so a fan-out
// reads only this array, not every subscriber's connection.
struct Engine::Subscriber {
  Connection* connection;
  ConnectionHandle handle;
  ActionMask actions;
  bool in_grace;
};

struct Engine::Channel {
  Channel(std::string n, size_t ring_capacity, uint64_t last_serial, RetainedBudget& budget)
      : name(std::move(n)), ring(ring_capacity, last_serial, &budget) {}
  std::string name;
  std::vector<Member> members;  // unordered; a member's index is kept in its Membership
  std::vector<Subscriber> subscribers;
  uint64_t clients = 0;  // distinct clientIds among members
  EventRing ring;
  uint64_t serial() const { return ring.last_serial(); }
};

// A connection's side of a member: which channel, and the member's index there.
struct Engine::Membership {
  Channel* channel;
  uint32_t slot;
};

struct Engine::Subscription {
  Channel* channel;
  uint64_t missed_after;  // while in grace: the last serial the connection was sent
};

struct Engine::Connection {
  ConnectionHandle handle = 0;
  IdentityRef identity;
  User* user = nullptr;
  std::string key;
  TimeMs remain_present_for = 0;
  TimeMs last_active = 0;
  TimeMs dropped_at = 0;
  TimeMs last_synced = 0;  // when a status push of its own user last went to it (0 = never)
  bool in_grace = false;
  TimerQueue::TimerId grace_timer = TimerQueue::kNoTimer;
  TimerQueue::TimerId idle_timer = TimerQueue::kNoTimer;
  std::vector<Membership> memberships;
  std::vector<Subscription> subscriptions;
  std::vector<User*> watching;
};

struct Engine::User {
  std::string client_id;
  Presence manual = Presence::kOnline;  // kOnline = automatic
  std::optional<std::string> text;
  TimeMs last_activity = 0;  // of connections that are gone; live ones hold their own
  TimeMs last_disconnect = 0;
  TimeMs frozen_last_seen = 0;  // lastSeen while appearing offline
  TimeMs last_checkpoint = 0;   // the latest lastSeen LastSeenCheckpoint handed to the store
  Presence published = Presence::kOffline;
  TimeMs published_at = 0;               // when `published` or the text last changed
  std::vector<Connection*> connections;  // live or in grace, in attach order
  std::vector<Connection*> watchers;
  // Channels where this user has members, with how many (for distinct-client counts).
  std::vector<std::pair<Channel*, uint32_t>> channel_counts;
  // Oldest first; a vector, since a deque allocates ~600 B even while empty.
  std::vector<ActivityRecord> activities;
  bool idle_listed = false;
  std::list<User*>::iterator idle_it;
  uint64_t visit_mark = 0;
};

namespace {

ActionMask BitOf(Action a) { return ActionBit(a); }

template <typename T>
void SwapRemove(std::vector<T>& v, size_t i) {
  if (i + 1 != v.size()) v[i] = std::move(v.back());
  v.pop_back();
}

}  // namespace

Engine::Engine(EngineConfig config, const Clock& clock, RandomSource& random, EventSink& sink)
    : config_(config),
      clock_(clock),
      random_(random),
      sink_(sink),
      retained_(config.max_retained_event_bytes) {
  config_.event_ring_capacity = std::max<size_t>(config_.event_ring_capacity, 1);
  config_.offline_after_ms = std::max(config_.offline_after_ms, config_.away_after_ms);
  config_.max_idle_users = std::max<size_t>(config_.max_idle_users, 1);
  connections_.emplace_back();  // slot 0 is never used, so no handle is 0
  generations_.push_back(0);
  now_ = clock_.NowMs();
}

Engine::~Engine() = default;

// ----- Helpers --------------------------------------------------------------------------------

void Engine::Begin() { Tick(); }

void Engine::Tick() {
  // Engine time never runs backwards, even if the wall clock is stepped back.
  const TimeMs now = std::max(clock_.NowMs(), now_);
  while (auto due = timers_.PopDue(now)) {
    // Each deadline runs as if at its own time, so results do not depend on when Tick is called.
    now_ = due->deadline;
    auto* connection = static_cast<Connection*>(due->target);
    switch (due->kind) {
      case kTtlTimer:
        OnTtlTimer(*connection, due->id);
        break;
      case kGraceTimer:
        connection->grace_timer = TimerQueue::kNoTimer;
        OnGraceTimer(*connection);
        break;
      case kIdleTimer:
        connection->idle_timer = TimerQueue::kNoTimer;
        OnIdleTimer(*connection);
        break;
    }
  }
  now_ = now;
}

Engine::Connection* Engine::Find(ConnectionHandle handle) {
  const uint32_t index = static_cast<uint32_t>(handle);
  const uint32_t generation = static_cast<uint32_t>(handle >> 32);
  if (index == 0 || index >= connections_.size() || generations_[index] != generation) {
    return nullptr;
  }
  return connections_[index].get();
}

namespace {
Error UnknownConnection() { return MakeError(ErrorCode::kNotFound, "unknown connection"); }
}  // namespace

Status Engine::ValidateChannel(std::string_view channel) const {
  if (channel.empty()) return MakeError(ErrorCode::kBadRequest, "channel must not be empty");
  if (channel.size() > config_.limits.max_channel_bytes) {
    return MakeError(
        ErrorCode::kTooLarge,
        "channel name longer than " + std::to_string(config_.limits.max_channel_bytes) + " bytes");
  }
  return Status::Ok();
}

Status Engine::ValidateData(const JsonText& data) const {
  if (data.size() > config_.limits.max_data_bytes) {
    return MakeError(
        ErrorCode::kTooLarge,
        "data larger than " + std::to_string(config_.limits.max_data_bytes) + " bytes");
  }
  return Status::Ok();
}

Status Engine::ValidateTtl(std::optional<TimeMs> ttl_ms) {
  // Bounded so now + ttl can never overflow: a year is longer than any presence should last.
  constexpr TimeMs kMaxTtlMs = 366LL * 24 * 3600 * 1000;
  if (ttl_ms && *ttl_ms <= 0) return MakeError(ErrorCode::kBadRequest, "ttlMs must be positive");
  if (ttl_ms && *ttl_ms > kMaxTtlMs) {
    return MakeError(ErrorCode::kBadRequest, "ttlMs must be at most " + std::to_string(kMaxTtlMs));
  }
  return Status::Ok();
}

// ----- Connections ----------------------------------------------------------------------------

Result<Attached> Engine::Attach(std::string_view client_id, std::string_view device,
                                TimeMs remain_present_for_ms) {
  Begin();
  if (client_id.empty()) return MakeError(ErrorCode::kBadRequest, "clientId must not be empty");
  if (client_id.size() > config_.limits.max_id_bytes ||
      device.size() > config_.limits.max_id_bytes) {
    return MakeError(
        ErrorCode::kTooLarge,
        "clientId or device longer than " + std::to_string(config_.limits.max_id_bytes) + " bytes");
  }
  if (remain_present_for_ms < 0) {
    return MakeError(ErrorCode::kBadRequest, "remainPresentForMs must not be negative");
  }

  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = static_cast<uint32_t>(connections_.size());
    connections_.emplace_back();
    generations_.push_back(0);
  }
  ++generations_[index];
  auto connection = std::make_unique<Connection>();
  Connection& c = *connection;
  connections_[index] = std::move(connection);
  ++connection_count_;

  c.handle = (static_cast<uint64_t>(generations_[index]) << 32) | index;
  User& user = GetOrCreateUser(client_id);
  c.user = &user;
  c.identity = IdentityRef::Make(std::string(client_id), RandomId(random_, 16),
                                 device.empty() ? std::string("unknown") : std::string(device));
  c.key = RandomHex(random_, 16);
  keys_.emplace(c.key, &c);
  c.remain_present_for = remain_present_for_ms;
  c.last_active = now_;
  ArmIdleTimer(c);

  user.connections.push_back(&c);
  UpdatePin(user);
  if (user.connections.size() == 1) sink_.OnUserConnectivity(user.client_id, true, now_);
  RefreshUser(user);
  return Attached{c.handle, c.identity->client_id, c.identity->connection_id, c.key,
                  c.remain_present_for};
}

Status Engine::Close(ConnectionHandle handle) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  Teardown(*c, LeaveReason::kDisconnected);
  return Status::Ok();
}

Status Engine::Drop(ConnectionHandle handle) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (c->in_grace) return Status::Ok();
  c->user->last_disconnect = std::max(c->user->last_disconnect, now_);
  if (c->remain_present_for == 0) {
    const ConnectionHandle gone = c->handle;
    Teardown(*c, LeaveReason::kTimeout);
    sink_.OnConnectionExpired(gone);
    return Status::Ok();
  }
  c->in_grace = true;
  c->dropped_at = now_;
  for (Subscription& s : c->subscriptions) {
    s.missed_after = s.channel->serial();
    SubscriberOf(*s.channel, *c).in_grace = true;
  }
  c->grace_timer = timers_.Add(now_ + c->remain_present_for, kGraceTimer, c);
  return Status::Ok();
}

Result<Resumed> Engine::Resume(std::string_view connection_key, std::string_view client_id,
                               TimeMs remain_present_for_ms) {
  Begin();
  auto it = keys_.find(connection_key);
  if (it == keys_.end() || it->second->identity->client_id != client_id) {
    return MakeError(ErrorCode::kNotFound, "unknown or expired connection key");
  }
  if (remain_present_for_ms < 0) {
    return MakeError(ErrorCode::kBadRequest, "remainPresentForMs must not be negative");
  }
  Connection& c = *it->second;
  keys_.erase(it);
  c.key = RandomHex(random_, 16);
  keys_.emplace(c.key, &c);
  c.remain_present_for = remain_present_for_ms;

  Resumed out;
  out.was_live = !c.in_grace;
  if (c.in_grace) {
    c.in_grace = false;
    timers_.Cancel(c.grace_timer);
    c.grace_timer = TimerQueue::kNoTimer;
    for (const Subscription& s : c.subscriptions) {
      CatchUp cu;
      cu.channel = s.channel->name;
      cu.serial = s.channel->serial();
      Subscriber& subscriber = SubscriberOf(*s.channel, c);
      subscriber.in_grace = false;
      const ActionMask actions = subscriber.actions;
      if (s.channel->ring.Covers(s.missed_after)) {
        cu.events = EventsAfter(*s.channel, s.missed_after, actions);
      } else {
        cu.snapshot = true;
        cu.members = MembersOf(*s.channel, {});
      }
      out.catch_up.push_back(std::move(cu));
    }
  }
  Activity(c);
  out.connection = Attached{c.handle, c.identity->client_id, c.identity->connection_id, c.key,
                            c.remain_present_for};
  return out;
}

Status Engine::Touch(ConnectionHandle handle) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  Activity(*c);
  return Status::Ok();
}

void Engine::Shutdown() {
  Begin();
  // Every member leaves first, so subscribers (whatever their place in the table) see each leave;
  // then the connections end.
  for (auto& slot : connections_) {
    if (!slot) continue;
    std::vector<Membership> memberships = slot->memberships;
    for (const Membership& m : memberships) {
      RemoveMember(*m.channel, static_cast<size_t>(FindMemberSlot(*slot, *m.channel)),
                   LeaveReason::kDisconnected, std::nullopt);
    }
  }
  for (auto& slot : connections_) {
    if (slot) Teardown(*slot, LeaveReason::kDisconnected);
  }
}

void Engine::Teardown(Connection& c, LeaveReason reason) {
  // Members leave in the order they entered their channels.
  std::vector<Membership> memberships = c.memberships;
  for (const Membership& m : memberships) {
    int64_t slot = FindMemberSlot(c, *m.channel);
    assert(slot >= 0);
    RemoveMember(*m.channel, static_cast<size_t>(slot), reason, std::nullopt);
  }
  while (!c.subscriptions.empty()) RemoveSubscription(c, c.subscriptions.size() - 1);
  for (User* watched : c.watching) {
    std::erase(watched->watchers, &c);
    UpdatePin(*watched);
  }
  c.watching.clear();
  if (c.grace_timer != TimerQueue::kNoTimer) timers_.Cancel(c.grace_timer);
  if (c.idle_timer != TimerQueue::kNoTimer) timers_.Cancel(c.idle_timer);
  keys_.erase(c.key);

  User& user = *c.user;
  user.last_activity = std::max(user.last_activity, c.last_active);
  std::erase(user.connections, &c);
  if (!c.in_grace) user.last_disconnect = std::max(user.last_disconnect, now_);
  const ConnectionHandle handle = c.handle;
  const uint32_t index = static_cast<uint32_t>(handle);
  connections_[index].reset();  // `c` is gone from here on
  free_slots_.push_back(index);
  --connection_count_;

  if (user.connections.empty()) sink_.OnUserConnectivity(user.client_id, false, now_);
  RefreshUser(user);
  UpdatePin(user);
}

void Engine::OnGraceTimer(Connection& c) {
  const ConnectionHandle handle = c.handle;
  Teardown(c, LeaveReason::kTimeout);
  sink_.OnConnectionExpired(handle);
}

// ----- Channels -------------------------------------------------------------------------------

Engine::Channel* Engine::FindChannel(std::string_view name) {
  auto it = channels_.find(name);
  return it == channels_.end() ? nullptr : it->second.get();
}

Engine::Channel& Engine::GetOrCreateChannel(std::string_view name) {
  auto it = channels_.find(name);
  if (it != channels_.end()) return *it->second;
  auto channel = std::make_unique<Channel>(std::string(name), config_.event_ring_capacity,
                                           serial_high_water_, retained_);
  Channel& ref = *channel;
  channels_.emplace(ref.name, std::move(channel));
  return ref;
}

void Engine::MaybeFreeChannel(Channel& channel) {
  if (channel.members.empty() && channel.subscribers.empty()) {
    channels_.erase(channel.name);  // `channel` is gone from here on
  }
}

Engine::Subscriber& Engine::SubscriberOf(Channel& channel, const Connection& c) {
  for (Subscriber& s : channel.subscribers) {
    if (s.connection == &c) return s;
  }
  assert(false && "subscription without its subscriber");
  std::abort();
}

int64_t Engine::FindMemberSlot(const Connection& c, const Channel& channel) const {
  for (const Membership& m : c.memberships) {
    if (m.channel == &channel) return m.slot;
  }
  return -1;
}

MemberView Engine::ViewOf(const Channel&, const Member& m) const {
  return MemberView{
      m.connection->identity->client_id, m.connection->identity->connection_id, m.data, m.timestamp,
      m.ttl_timer == TimerQueue::kNoTimer ? kNoExpiry : timers_.Deadline(m.ttl_timer)};
}

PresenceEvent Engine::EventView(const Channel& channel, uint64_t serial,
                                const EventRecord& rec) const {
  return PresenceEvent{channel.name, serial, rec.action, rec.reason,
                       MemberView{rec.who->client_id, rec.who->connection_id, rec.data,
                                  rec.timestamp, rec.expires_at}};
}

void Engine::Emit(Channel& channel, Action action, LeaveReason reason, const Connection& who,
                  const JsonText& data, TimeMs timestamp, TimeMs expires_at) {
  channel.ring.Push(EventRecord{who.identity, data, timestamp, expires_at, action, reason});
  const uint64_t serial = channel.serial();
  serial_high_water_ = std::max(serial_high_water_, serial);

  recipients_.clear();
  const ActionMask bit = BitOf(action);
  for (const Subscriber& s : channel.subscribers) {
    if ((s.actions & bit) && !s.in_grace) recipients_.push_back(s.handle);
  }
  PresenceEvent event{channel.name, serial, action, reason,
                      MemberView{who.identity->client_id, who.identity->connection_id, data,
                                 timestamp, expires_at}};
  sink_.OnPresence(event, recipients_);
}

void Engine::SetExpiry(Member& member, Connection& c, std::optional<TimeMs> expires_at) {
  if (!expires_at) {
    if (member.ttl_timer != TimerQueue::kNoTimer) timers_.Cancel(member.ttl_timer);
    member.ttl_timer = TimerQueue::kNoTimer;
  } else if (member.ttl_timer == TimerQueue::kNoTimer) {
    member.ttl_timer = timers_.Add(*expires_at, kTtlTimer, &c);
  } else {
    timers_.Move(member.ttl_timer, *expires_at);
  }
}

Result<MemberView> Engine::Enter(ConnectionHandle handle, std::string_view channel_name,
                                 std::optional<JsonText> data, std::optional<TimeMs> ttl_ms) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateChannel(channel_name); !s) return s.error();
  if (data) {
    if (Status s = ValidateData(*data); !s) return s.error();
  }
  if (Status s = ValidateTtl(ttl_ms); !s) return s.error();
  const std::optional<TimeMs> expires_at =
      ttl_ms ? std::optional<TimeMs>(now_ + *ttl_ms) : std::nullopt;

  Channel* existing = FindChannel(channel_name);
  if (existing != nullptr) {
    int64_t slot = FindMemberSlot(*c, *existing);
    if (slot >= 0) {  // entering again is an update
      Activity(*c);
      Member& m = existing->members[static_cast<size_t>(slot)];
      if (data) m.data = std::move(*data);
      m.timestamp = now_;
      SetExpiry(m, *c, expires_at);
      Emit(*existing, Action::kUpdate, LeaveReason::kNone, *c, m.data, m.timestamp,
           expires_at.value_or(kNoExpiry));
      return ViewOf(*existing, existing->members[static_cast<size_t>(slot)]);
    }
  }
  if (c->memberships.size() >= config_.limits.max_channels_per_connection) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "connection is present in " +
                         std::to_string(config_.limits.max_channels_per_connection) +
                         " channels already");
  }
  if (existing != nullptr && existing->members.size() >= config_.limits.max_members_per_channel) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "channel has " + std::to_string(config_.limits.max_members_per_channel) +
                         " members already");
  }

  Activity(*c);
  Channel& channel = existing ? *existing : GetOrCreateChannel(channel_name);
  const uint32_t slot = static_cast<uint32_t>(channel.members.size());
  channel.members.push_back(
      Member{c, data ? std::move(*data) : JsonText(), now_, TimerQueue::kNoTimer});
  Member& m = channel.members.back();
  SetExpiry(m, *c, expires_at);
  c->memberships.push_back(Membership{&channel, slot});
  ++member_count_;

  auto& counts = c->user->channel_counts;
  auto count = std::find_if(counts.begin(), counts.end(),
                            [&](const auto& p) { return p.first == &channel; });
  if (count == counts.end()) {
    counts.emplace_back(&channel, 1);
    ++channel.clients;
  } else {
    ++count->second;
  }
  Emit(channel, Action::kEnter, LeaveReason::kNone, *c, m.data, m.timestamp,
       expires_at.value_or(kNoExpiry));
  return ViewOf(channel, channel.members[slot]);
}

Result<MemberView> Engine::Update(ConnectionHandle handle, std::string_view channel_name,
                                  JsonText data, bool merge, std::optional<TimeMs> ttl_ms) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateChannel(channel_name); !s) return s.error();
  if (Status s = ValidateTtl(ttl_ms); !s) return s.error();
  Channel* channel = FindChannel(channel_name);
  int64_t slot = channel ? FindMemberSlot(*c, *channel) : -1;
  if (slot < 0) return MakeError(ErrorCode::kNotPresent, "not present in channel");
  Member& m = channel->members[static_cast<size_t>(slot)];
  JsonText next = merge ? ShallowMerge(m.data, data) : std::move(data);
  if (Status s = ValidateData(next); !s) return s.error();

  Activity(*c);
  m.data = std::move(next);
  m.timestamp = now_;
  if (ttl_ms) SetExpiry(m, *c, now_ + *ttl_ms);
  const TimeMs expires_at =
      m.ttl_timer == TimerQueue::kNoTimer ? kNoExpiry : timers_.Deadline(m.ttl_timer);
  Emit(*channel, Action::kUpdate, LeaveReason::kNone, *c, m.data, m.timestamp, expires_at);
  return ViewOf(*channel, channel->members[static_cast<size_t>(slot)]);
}

Status Engine::Leave(ConnectionHandle handle, std::string_view channel_name,
                     std::optional<JsonText> data) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateChannel(channel_name); !s) return s;
  if (data) {
    if (Status s = ValidateData(*data); !s) return s;
  }
  Channel* channel = FindChannel(channel_name);
  int64_t slot = channel ? FindMemberSlot(*c, *channel) : -1;
  if (slot < 0) return MakeError(ErrorCode::kNotPresent, "not present in channel");
  Activity(*c);
  RemoveMember(*channel, static_cast<size_t>(slot), LeaveReason::kLeft, data);
  return Status::Ok();
}

void Engine::RemoveMember(Channel& channel, size_t slot, LeaveReason reason,
                          const std::optional<JsonText>& leave_data, TimeMs fired_expiry) {
  Member gone = std::move(channel.members[slot]);
  Connection& c = *gone.connection;
  const TimeMs expires_at =
      gone.ttl_timer == TimerQueue::kNoTimer ? fired_expiry : timers_.Deadline(gone.ttl_timer);
  if (gone.ttl_timer != TimerQueue::kNoTimer) timers_.Cancel(gone.ttl_timer);

  // Swap-remove, and tell the moved member's connection where it now is.
  if (slot + 1 != channel.members.size()) {
    channel.members[slot] = std::move(channel.members.back());
    for (Membership& m : channel.members[slot].connection->memberships) {
      if (m.channel == &channel) m.slot = static_cast<uint32_t>(slot);
    }
  }
  channel.members.pop_back();
  for (size_t i = 0; i < c.memberships.size(); ++i) {
    if (c.memberships[i].channel == &channel) {
      c.memberships.erase(c.memberships.begin() + static_cast<ptrdiff_t>(i));
      break;
    }
  }
  --member_count_;

  auto& counts = c.user->channel_counts;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i].first == &channel) {
      if (--counts[i].second == 0) {
        SwapRemove(counts, i);
        --channel.clients;
      }
      break;
    }
  }
  Emit(channel, Action::kLeave, reason, c, leave_data ? *leave_data : gone.data, now_, expires_at);
  MaybeFreeChannel(channel);
}

std::vector<MemberView> Engine::MembersOf(const Channel& channel,
                                          const MemberFilter& filter) const {
  std::vector<MemberView> out;
  out.reserve(filter.client_id || filter.connection_id ? 0 : channel.members.size());
  for (const Member& m : channel.members) {
    const Identity& who = *m.connection->identity;
    if (filter.client_id && who.client_id != *filter.client_id) continue;
    if (filter.connection_id && who.connection_id != *filter.connection_id) continue;
    out.push_back(ViewOf(channel, m));
  }
  return out;
}

std::vector<PresenceEvent> Engine::EventsAfter(const Channel& channel, uint64_t since,
                                               ActionMask actions) const {
  std::vector<PresenceEvent> out;
  channel.ring.ForEachAfter(since, [&](uint64_t serial, const EventRecord& rec) {
    if (actions & BitOf(rec.action)) out.push_back(EventView(channel, serial, rec));
  });
  return out;
}

Snapshot Engine::Get(std::string_view channel_name, const MemberFilter& filter) {
  Begin();
  Channel* channel = FindChannel(channel_name);
  if (channel == nullptr) return Snapshot{{}, serial_high_water_};
  return Snapshot{MembersOf(*channel, filter), channel->serial()};
}

Occupancy Engine::GetOccupancy(std::string_view channel_name) {
  Begin();
  Channel* channel = FindChannel(channel_name);
  if (channel == nullptr) return Occupancy{};
  return Occupancy{channel->members.size(), channel->clients};
}

std::vector<ChannelSummary> Engine::ListChannels(std::string_view after, size_t limit) {
  Begin();
  std::vector<ChannelSummary> out;
  out.reserve(std::min(limit, channels_.size()));
  for (const auto& [name, channel] : channels_) {
    if (channel->members.empty() || std::string_view(name) <= after) continue;
    out.push_back(ChannelSummary{name, Occupancy{channel->members.size(), channel->clients}});
  }
  // The map is unordered: sort by name, keep the first page.
  const size_t keep = std::min(limit, out.size());
  std::partial_sort(
      out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
      [](const ChannelSummary& a, const ChannelSummary& b) { return a.channel < b.channel; });
  out.resize(keep);
  return out;
}

Result<Subscribed> Engine::Subscribe(ConnectionHandle handle, std::string_view channel_name,
                                     ActionMask actions, std::optional<uint64_t> since) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateChannel(channel_name); !s) return s.error();
  actions &= kAllActions;
  if (actions == 0) return MakeError(ErrorCode::kBadRequest, "actions must not be empty");

  Channel* channel = FindChannel(channel_name);
  Subscriber* existing = nullptr;
  if (channel != nullptr) {
    for (Subscriber& s : channel->subscribers) {
      if (s.connection == c) existing = &s;
    }
  }
  if (existing == nullptr &&
      c->subscriptions.size() >= config_.limits.max_channels_per_connection) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "connection is subscribed to " +
                         std::to_string(config_.limits.max_channels_per_connection) +
                         " channels already");
  }
  Activity(*c);
  if (existing != nullptr) {
    existing->actions = actions;
  } else {
    channel = &GetOrCreateChannel(channel_name);
    channel->subscribers.push_back(Subscriber{c, c->handle, actions, false});
    c->subscriptions.push_back(Subscription{channel, 0});
  }

  Subscribed out;
  out.serial = channel->serial();
  if (since && channel->ring.Covers(*since)) {
    out.has_events = true;
    out.events = EventsAfter(*channel, *since, actions);
  } else {
    out.resynced = since.has_value();
    out.members = MembersOf(*channel, {});
  }
  return out;
}

void Engine::RemoveSubscription(Connection& c, size_t index) {
  Channel& channel = *c.subscriptions[index].channel;
  c.subscriptions.erase(c.subscriptions.begin() + static_cast<ptrdiff_t>(index));
  for (size_t i = 0; i < channel.subscribers.size(); ++i) {
    if (channel.subscribers[i].connection == &c) {
      SwapRemove(channel.subscribers, i);
      break;
    }
  }
  MaybeFreeChannel(channel);
}

Status Engine::Unsubscribe(ConnectionHandle handle, std::string_view channel_name) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateChannel(channel_name); !s) return s;
  Activity(*c);
  for (size_t i = 0; i < c->subscriptions.size(); ++i) {
    if (c->subscriptions[i].channel->name == channel_name) {
      RemoveSubscription(*c, i);
      break;
    }
  }
  return Status::Ok();
}

void Engine::OnTtlTimer(Connection& c, TimerQueue::TimerId id) {
  for (const Membership& m : c.memberships) {
    Member& member = m.channel->members[m.slot];
    if (member.ttl_timer != id) continue;
    // The timer has fired (and is disarmed): the leave reports the expiry that was due.
    member.ttl_timer = TimerQueue::kNoTimer;
    RemoveMember(*m.channel, m.slot, LeaveReason::kExpired, std::nullopt, now_);
    return;
  }
  assert(false && "TTL timer without its member");
}

// ----- Devices and user status ----------------------------------------------------------------

void Engine::Activity(Connection& c) {
  const Presence before = DeviceStatus(c);
  c.last_active = now_;  // the user's lastSeen is derived from it (LastSeen), not copied
  if (before != Presence::kOnline) {
    // The armed idle timer (if any) points at a later threshold than the new away time.
    if (c.idle_timer != TimerQueue::kNoTimer) {
      timers_.Cancel(c.idle_timer);
      c.idle_timer = TimerQueue::kNoTimer;
    }
    ArmIdleTimer(c);
    RefreshUser(*c.user);
  }
}

Presence Engine::DeviceStatus(const Connection& c) const {
  const TimeMs idle = now_ - c.last_active;
  if (idle >= config_.offline_after_ms) return Presence::kOffline;
  if (idle >= config_.away_after_ms) return Presence::kAway;
  return Presence::kOnline;
}

void Engine::ArmIdleTimer(Connection& c) {
  // Lazy: activity does not move the timer; when it fires it re-arms at the next threshold.
  if (c.idle_timer != TimerQueue::kNoTimer) return;
  const TimeMs idle = now_ - c.last_active;
  TimeMs next;
  if (idle < config_.away_after_ms) {
    next = c.last_active + config_.away_after_ms;
  } else if (idle < config_.offline_after_ms) {
    next = c.last_active + config_.offline_after_ms;
  } else {
    return;  // offline until the next activity
  }
  c.idle_timer = timers_.Add(next, kIdleTimer, &c);
}

void Engine::OnIdleTimer(Connection& c) {
  ArmIdleTimer(c);
  RefreshUser(*c.user);
}

Engine::User* Engine::FindUser(std::string_view client_id) {
  auto it = users_.find(client_id);
  return it == users_.end() ? nullptr : it->second.get();
}

Engine::User& Engine::GetOrCreateUser(std::string_view client_id) {
  auto it = users_.find(client_id);
  if (it != users_.end()) return *it->second;
  auto user = std::make_unique<User>();
  user->client_id = std::string(client_id);
  User& ref = *user;
  users_.emplace(ref.client_id, std::move(user));
  return ref;  // the caller pins it or lists it as idle (UpdatePin)
}

void Engine::UpdatePin(User& user) {
  const bool idle = user.connections.empty() && user.watchers.empty();
  if (idle && !user.idle_listed) {
    user.idle_it = idle_users_.insert(idle_users_.end(), &user);
    user.idle_listed = true;
  } else if (!idle && user.idle_listed) {
    idle_users_.erase(user.idle_it);
    user.idle_listed = false;
  }
  while (idle_users_.size() > config_.max_idle_users) {
    User* oldest = idle_users_.front();
    idle_users_.pop_front();
    users_.erase(oldest->client_id);  // forgets the oldest idle user
  }
}

TimeMs Engine::LastSeen(const User& user) const {
  TimeMs last = std::max(user.last_activity, user.last_disconnect);
  for (const Connection* c : user.connections) last = std::max(last, c->last_active);
  return last;
}

Presence Engine::EffectiveStatus(const User& user) const {
  if (user.connections.empty()) return Presence::kOffline;
  if (user.manual != Presence::kOnline) return user.manual;
  Presence best = Presence::kOffline;
  for (const Connection* c : user.connections) best = std::min(best, DeviceStatus(*c));
  return best;
}

StatusView Engine::ViewOf(const User& user) const {
  StatusView v;
  v.client_id = user.client_id;
  v.status = EffectiveStatus(user);
  if (user.text) v.text = *user.text;
  const TimeMs last_seen =
      user.manual == Presence::kOffline ? user.frozen_last_seen : LastSeen(user);
  if (last_seen != 0) v.last_seen = last_seen;
  if (v.status != Presence::kOffline) {
    const Connection* active = nullptr;
    for (const Connection* c : user.connections) {
      if (active == nullptr || c->last_active >= active->last_active) active = c;
    }
    if (active != nullptr) v.active_device = active->identity->device;
  }
  return v;
}

void Engine::RefreshUser(User& user, bool text_changed) {
  const Presence now_status = EffectiveStatus(user);
  if (now_status == user.published && !text_changed) return;
  StatusChange change{ViewOf(user), user.published};
  user.published = now_status;
  user.published_at = now_;
  recipients_.clear();
  for (Connection* c : user.connections) {
    if (c->in_grace) continue;
    recipients_.push_back(c->handle);
    c->last_synced = now_;
  }
  for (const Connection* c : user.watchers) {
    if (!c->in_grace && c->user != &user) recipients_.push_back(c->handle);
  }
  sink_.OnStatus(change, recipients_);
}

Status Engine::ValidateStatusText(const std::optional<std::optional<std::string>>& text) const {
  if (text && *text && (*text)->size() > config_.limits.max_text_bytes) {
    return MakeError(
        ErrorCode::kTooLarge,
        "status text longer than " + std::to_string(config_.limits.max_text_bytes) + " bytes");
  }
  return Status::Ok();
}

Status Engine::ApplyStatus(User& user, std::optional<Presence> status,
                           std::optional<std::optional<std::string>>& text) {
  if (status) {
    if (*status == Presence::kOffline && user.manual != Presence::kOffline) {
      // Appearing offline freezes lastSeen at the moment it begins. A checkpoint may already have
      // stored a later "seen now" for a connected user, and the store never moves lastSeen
      // backwards, so the frozen value is no older than that: memory and disk agree.
      user.frozen_last_seen = std::max(LastSeen(user), user.last_checkpoint);
    }
    user.manual = *status;
  }
  bool text_changed = false;
  if (text && *text != user.text) {
    user.text = std::move(*text);
    text_changed = true;
  }
  RefreshUser(user, text_changed);
  return Status::Ok();
}

Result<StatusView> Engine::SetStatus(ConnectionHandle handle, std::optional<Presence> status,
                                     std::optional<std::optional<std::string>> text) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateStatusText(text); !s) return s.error();
  Activity(*c);
  (void)ApplyStatus(*c->user, status, text);
  return ViewOf(*c->user);
}

Result<StatusView> Engine::SetStatusOf(std::string_view client_id, std::optional<Presence> status,
                                       std::optional<std::optional<std::string>> text) {
  Begin();
  if (client_id.empty()) return MakeError(ErrorCode::kBadRequest, "clientId must not be empty");
  if (client_id.size() > config_.limits.max_id_bytes) {
    return MakeError(ErrorCode::kTooLarge, "clientId too long");
  }
  if (Status s = ValidateStatusText(text); !s) return s.error();
  User& user = GetOrCreateUser(client_id);
  (void)ApplyStatus(user, status, text);
  UpdatePin(user);  // never evicts the user just listed (max_idle_users >= 1)
  return ViewOf(user);
}

StatusView Engine::GetStatus(std::string_view client_id) {
  Begin();
  User* user = FindUser(client_id);
  if (user == nullptr) {
    StatusView v;
    v.client_id = client_id;
    return v;
  }
  return ViewOf(*user);
}

Status Engine::ValidateClientIds(std::span<const std::string> client_ids) const {
  for (const std::string& id : client_ids) {
    if (id.empty()) return MakeError(ErrorCode::kBadRequest, "clientIds must not be empty");
    if (id.size() > config_.limits.max_id_bytes) {
      return MakeError(ErrorCode::kTooLarge, "clientId too long");
    }
  }
  return Status::Ok();
}

Result<std::vector<StatusView>> Engine::Watch(ConnectionHandle handle,
                                              std::span<const std::string> client_ids) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateClientIds(client_ids); !s) return s.error();
  // Each user once, in first-seen order: watching the same id twice is one watch. Hash sets keep
  // this linear in the request and the connection's watches, however the ids repeat.
  std::unordered_set<std::string_view> seen;
  std::vector<std::string_view> distinct;
  for (const std::string& id : client_ids) {
    if (seen.insert(id).second) distinct.push_back(id);
  }
  std::unordered_set<std::string_view> watched;
  for (const User* u : c->watching) watched.insert(u->client_id);
  // Count the new distinct watches first, so an over-limit request changes nothing.
  size_t fresh = 0;
  for (std::string_view id : distinct) fresh += watched.count(id) == 0 ? 1 : 0;
  if (c->watching.size() + fresh > config_.limits.max_watches_per_connection) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "a connection may watch at most " +
                         std::to_string(config_.limits.max_watches_per_connection) + " users");
  }
  Activity(*c);
  for (std::string_view id : distinct) {
    if (watched.count(id) != 0) continue;
    User& user = GetOrCreateUser(id);
    user.watchers.push_back(c);
    c->watching.push_back(&user);
    UpdatePin(user);  // pinned now (it has a watcher), so nothing watched here is evicted
  }
  std::vector<StatusView> out;
  out.reserve(distinct.size());
  for (std::string_view id : distinct) out.push_back(ViewOf(*FindUser(id)));
  return out;
}

Status Engine::Unwatch(ConnectionHandle handle, std::span<const std::string> client_ids) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateClientIds(client_ids); !s) return s;
  Activity(*c);
  const std::unordered_set<std::string_view> ids(client_ids.begin(), client_ids.end());
  for (size_t i = 0; i < c->watching.size();) {
    User* user = c->watching[i];
    if (ids.count(user->client_id) == 0) {
      ++i;
      continue;
    }
    SwapRemove(c->watching, i);
    std::erase(user->watchers, c);
    UpdatePin(*user);
  }
  return Status::Ok();
}

Status Engine::RecordActivity(ConnectionHandle handle, std::string_view kind,
                              std::string_view channel, JsonText data) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (kind.empty()) return MakeError(ErrorCode::kBadRequest, "kind must not be empty");
  if (kind.size() > config_.limits.max_id_bytes) {
    return MakeError(ErrorCode::kTooLarge, "kind too long");
  }
  if (!channel.empty()) {
    if (Status s = ValidateChannel(channel); !s) return s;
  }
  if (Status s = ValidateData(data); !s) return s;
  Activity(*c);
  User& user = *c->user;
  user.activities.push_back(ActivityRecord{std::string(kind), std::string(channel), std::move(data),
                                           now_, c->identity->connection_id});
  if (user.activities.size() > config_.activities_per_user) {
    user.activities.erase(
        user.activities.begin(),
        user.activities.end() - static_cast<std::ptrdiff_t>(config_.activities_per_user));
  }
  sink_.OnActivity(user.client_id, user.activities.back());
  return Status::Ok();
}

std::vector<ActivityRecord> Engine::GetActivities(std::string_view client_id, size_t limit,
                                                  std::optional<TimeMs> since) {
  Begin();
  std::vector<ActivityRecord> out;
  User* user = FindUser(client_id);
  if (user == nullptr) return out;
  for (auto it = user->activities.rbegin(); it != user->activities.rend(); ++it) {
    const ActivityRecord& a = *it;
    if (out.size() >= limit || (since && a.timestamp < *since)) break;
    out.push_back(a);
  }
  return out;
}

SyncReport Engine::SyncStatus(std::string_view client_id) {
  Begin();
  SyncReport report;
  User* user = FindUser(client_id);
  if (user == nullptr) {
    report.status.client_id = client_id;
    return report;
  }
  report.status = ViewOf(*user);
  recipients_.clear();
  for (Connection* c : user->connections) {
    if (c->in_grace) continue;
    recipients_.push_back(c->handle);
    c->last_synced = now_;
  }
  // The same status again: `previous` equals `status`, which tells clients it is a resync.
  if (!recipients_.empty())
    sink_.OnStatus(StatusChange{report.status, user->published}, recipients_);
  for (const Connection* c : user->connections) {
    SyncedDevice d;
    d.connection_id = c->identity->connection_id;
    d.device = c->identity->device;
    d.in_sync = !c->in_grace && c->last_synced >= user->published_at;
    if (c->last_synced != 0) d.last_synced_at = c->last_synced;
    report.devices.push_back(d);
  }
  return report;
}

std::vector<DeviceView> Engine::Devices(std::string_view client_id, std::string_view viewer) {
  Begin();
  std::vector<DeviceView> out;
  User* user = FindUser(client_id);
  if (user == nullptr) return out;
  if (user->manual == Presence::kOffline && viewer != user->client_id) return out;
  const Connection* active = nullptr;
  for (const Connection* c : user->connections) {
    if (active == nullptr || c->last_active >= active->last_active) active = c;
  }
  for (const Connection* c : user->connections) {
    out.push_back(DeviceView{c->identity->connection_id, c->identity->device, DeviceStatus(*c),
                             c->in_grace ? std::max(c->last_active, c->dropped_at) : c->last_active,
                             c == active});
  }
  return out;
}

void Engine::RestoreUser(std::string_view client_id, UserSettings settings, TimeMs last_seen) {
  if (client_id.empty() || client_id.size() > config_.limits.max_id_bytes || KnowsUser(client_id)) {
    return;
  }
  User& user = GetOrCreateUser(client_id);
  user.manual = settings.manual;
  user.text = std::move(settings.text);
  user.last_activity = last_seen;
  user.frozen_last_seen = last_seen;
  UpdatePin(user);  // never evicts the user just listed (max_idle_users >= 1)
}

std::optional<Engine::UserSettings> Engine::SettingsOf(std::string_view client_id) const {
  auto it = users_.find(client_id);
  if (it == users_.end()) return std::nullopt;
  return UserSettings{it->second->manual, it->second->text};
}

std::vector<std::pair<std::string, TimeMs>> Engine::LastSeenCheckpoint() {
  Begin();
  std::vector<std::pair<std::string, TimeMs>> out;
  for (const auto& [id, user] : users_) {
    if (user->connections.empty()) continue;
    TimeMs last_seen;
    if (user->manual == Presence::kOffline) {
      last_seen = user->frozen_last_seen;
    } else if (std::any_of(user->connections.begin(), user->connections.end(),
                           [](const Connection* c) { return !c->in_grace; })) {
      last_seen = now_;  // a live connection: seen now
    } else {
      // Every connection is in its grace period: if none returns, lastSeen will be when the drop
      // was noticed, so that is what a crash must leave behind (not a later "now").
      last_seen = LastSeen(*user);
    }
    if (last_seen == 0) continue;  // never seen: nothing to store (0 would read as null)
    user->last_checkpoint = std::max(user->last_checkpoint, last_seen);
    out.emplace_back(id, last_seen);
  }
  return out;
}

std::vector<StatusView> Engine::Who(std::optional<std::string_view> channel_name) {
  Begin();
  std::vector<StatusView> out;
  if (channel_name) {
    Channel* channel = FindChannel(*channel_name);
    if (channel == nullptr) return out;
    const uint64_t mark = ++visit_mark_;
    for (const Member& m : channel->members) {
      User& user = *m.connection->user;
      if (user.visit_mark == mark) continue;
      user.visit_mark = mark;
      if (EffectiveStatus(user) != Presence::kOffline) out.push_back(ViewOf(user));
    }
    return out;
  }
  for (const auto& [id, user] : users_) {
    if (!user->connections.empty() && EffectiveStatus(*user) != Presence::kOffline) {
      out.push_back(ViewOf(*user));
    }
  }
  return out;
}

}  // namespace presenced::engine
