// Engine, the coordinator (engine.h): construction, time (Tick runs the shared timer queue and
// dispatches each deadline to its table), connections (slots, generations, resume keys, grace)
// and their teardown. Channels are in channel_table.cc, users in user_directory.cc. The engine's
// one thread only.
#include "engine/engine.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <limits>
#include <unordered_set>
#include <utility>

#include "engine/engine_internal.h"
#include "engine/json_merge.h"

namespace presenced::engine {

using detail::BitOf;
using detail::SwapRemove;
using detail::UnknownConnection;

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
  if (user.connections.size() == 1 && user.client_id != kObserverClientId) {
    sink_.OnUserConnectivity(user.client_id, true, now_);
  }
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
  return DropAt(handle, std::numeric_limits<TimeMs>::max());
}

Status Engine::DropAt(ConnectionHandle handle, TimeMs at) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (c->in_grace) return Status::Ok();
  const TimeMs when = std::min(at, now_);
  // A device set offline by hand is not seen leaving either.
  if (c->manual != Presence::kOffline)
    c->user->last_disconnect = std::max(c->user->last_disconnect, when);
  if (c->remain_present_for == 0) {
    const ConnectionHandle gone = c->handle;
    Teardown(*c, LeaveReason::kTimeout);
    sink_.OnConnectionExpired(gone);
    return Status::Ok();
  }
  c->in_grace = true;
  c->dropped_at = when;
  c->dropped_seq = status_seq_;
  for (Subscription& s : c->subscriptions) {
    s.missed_after = s.channel->serial();
    SubscriberOf(*s.channel, *c).in_grace = true;
  }
  // A grace period that already ended (a drop dated back) runs at the next call or Tick.
  c->grace_timer = timers_.Add(when + c->remain_present_for, kGraceTimer, c);
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
  Activity(c);  // may change the user's status: the missed pushes below then carry the new one
  if (!out.was_live) MissedStatuses(c, out.statuses);
  out.connection = Attached{c.handle, c.identity->client_id, c.identity->connection_id, c.key,
                            c.remain_present_for};
  return out;
}

const Identity* Engine::IdentityOf(ConnectionHandle handle) {
  Connection* c = Find(handle);
  return c == nullptr ? nullptr : &*c->identity;
}

std::optional<ConnectionHandle> Engine::FindConnectionById(std::string_view connection_id) const {
  for (const auto& c : connections_) {
    if (c != nullptr && c->identity->connection_id == connection_id) return c->handle;
  }
  return std::nullopt;
}

std::vector<ConnectionHandle> Engine::ConnectionsOf(std::string_view client_id) const {
  std::vector<ConnectionHandle> out;
  auto it = users_.find(client_id);
  if (it == users_.end()) return out;
  for (const Connection* c : it->second->connections) out.push_back(c->handle);
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
  if (c.watches_all) std::erase(all_watchers_, &c);
  if (c.grace_timer != TimerQueue::kNoTimer) timers_.Cancel(c.grace_timer);
  if (c.idle_timer != TimerQueue::kNoTimer) timers_.Cancel(c.idle_timer);
  keys_.erase(c.key);

  User& user = *c.user;
  user.last_activity = std::max(user.last_activity, SeenOf(c));
  std::erase(user.connections, &c);
  if (!c.in_grace && c.manual != Presence::kOffline)
    user.last_disconnect = std::max(user.last_disconnect, now_);
  const ConnectionHandle handle = c.handle;
  const uint32_t index = static_cast<uint32_t>(handle);
  connections_[index].reset();  // `c` is gone from here on
  free_slots_.push_back(index);
  --connection_count_;

  if (user.connections.empty() && user.client_id != kObserverClientId) {
    sink_.OnUserConnectivity(user.client_id, false, now_);
  }
  RefreshUser(user);
  UpdatePin(user);
}

void Engine::OnGraceTimer(Connection& c) {
  const ConnectionHandle handle = c.handle;
  Teardown(c, LeaveReason::kTimeout);
  sink_.OnConnectionExpired(handle);
}

}  // namespace presenced::engine
