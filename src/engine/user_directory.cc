// Engine's user directory: devices and their idle status, the status rules (automatic, set by
// hand, appear offline), watchers, activity records, lastSeen and its checkpoints, who is online.
// The engine's one thread only.
#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <unordered_set>
#include <utility>

#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "engine/json_merge.h"

namespace presenced::engine {

using detail::BitOf;
using detail::SwapRemove;
using detail::UnknownConnection;

// ----- Devices and user status ----------------------------------------------------------------

void Engine::Activity(Connection& c) {
  const Presence before = IdleStatus(c);
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
  return c.manual != Presence::kOnline ? c.manual : IdleStatus(c);
}

TimeMs Engine::SeenOf(const Connection& c) {
  return c.manual == Presence::kOffline ? c.hidden_seen : c.last_active;
}

Presence Engine::IdleStatus(const Connection& c) const {
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
  for (const Connection* c : user.connections) last = std::max(last, SeenOf(*c));
  return last;
}

namespace {

// How available a status says the user is, most available first: the user's status is the most
// available of its devices' (docs/protocol.md, "Per-device status").
int Availability(Presence p) {
  switch (p) {
    case Presence::kOnline:
      return 0;
    case Presence::kDnd:
      return 1;
    case Presence::kAway:
      return 2;
    case Presence::kOffline:
      break;
  }
  return 3;
}

}  // namespace

const Engine::Connection* Engine::ActiveConnection(const User& user) const {
  const Connection* active = nullptr;
  for (const Connection* c : user.connections) {
    if (c->manual == Presence::kOffline) continue;
    if (active == nullptr || c->last_active >= active->last_active) active = c;
  }
  return active;
}

Presence Engine::EffectiveStatus(const User& user) const {
  if (user.connections.empty()) return Presence::kOffline;
  if (user.manual != Presence::kOnline) return user.manual;
  Presence best = Presence::kOffline;
  for (const Connection* c : user.connections) {
    const Presence p = DeviceStatus(*c);
    if (Availability(p) < Availability(best)) best = p;
  }
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
    if (const Connection* active = ActiveConnection(user))
      v.active_device = active->identity->device;
  }
  return v;
}

void Engine::RefreshUser(User& user, bool text_changed, const Connection* device) {
  const Presence now_status = EffectiveStatus(user);
  const bool changed = now_status != user.published || text_changed;
  if (!changed && device == nullptr) return;
  StatusChange change{ViewOf(user), user.published, std::nullopt};
  if (changed) {
    user.published_previous = user.published;
    user.published = now_status;
    user.published_at = now_;
    user.published_seq = ++status_seq_;
  }
  recipients_.clear();
  for (Connection* c : user.connections) {
    if (c->in_grace) continue;
    recipients_.push_back(c->handle);
    c->last_synced = now_;
  }
  if (device != nullptr) {
    // The user's own devices hear which device changed (even when the user's status did not);
    // watchers get the plain push, and only for a change of the user's status.
    StatusChange own = change;
    own.device = DeviceViewOf(*device, ActiveConnection(user));
    if (!recipients_.empty()) sink_.OnStatus(own, recipients_);
    if (!changed) return;
    recipients_.clear();
  }
  for (const Connection* c : user.watchers) {
    if (!c->in_grace && c->user != &user && !c->watches_all) recipients_.push_back(c->handle);
  }
  if (user.client_id != kObserverClientId) {
    for (const Connection* c : all_watchers_) {
      if (!c->in_grace && c->user != &user) recipients_.push_back(c->handle);
    }
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

Status Engine::ValidateActivity(std::string_view kind, std::string_view channel,
                                const JsonText& data) const {
  if (kind.empty()) return MakeError(ErrorCode::kBadRequest, "kind must not be empty");
  if (kind.size() > config_.limits.max_id_bytes) {
    return MakeError(ErrorCode::kTooLarge, "kind too long");
  }
  if (!channel.empty()) {
    if (Status s = ValidateChannel(channel); !s) return s;
  }
  return ValidateData(data);
}

const ActivityRecord& Engine::AddActivity(User& user, std::string_view kind,
                                          std::string_view channel, JsonText data,
                                          std::string_view connection_id) {
  user.activities.push_back(ActivityRecord{std::string(kind), std::string(channel), std::move(data),
                                           now_, std::string(connection_id)});
  if (user.activities.size() > config_.activities_per_user) {
    user.activities.erase(
        user.activities.begin(),
        user.activities.end() - static_cast<std::ptrdiff_t>(config_.activities_per_user));
  }
  sink_.OnActivity(user.client_id, user.activities.back());
  return user.activities.back();
}

Status Engine::RecordActivity(ConnectionHandle handle, std::string_view kind,
                              std::string_view channel, JsonText data) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (Status s = ValidateActivity(kind, channel, data); !s) return s;
  Activity(*c);
  (void)AddActivity(*c->user, kind, channel, std::move(data), c->identity->connection_id);
  return Status::Ok();
}

Result<ActivityRecord> Engine::RecordActivityOf(std::string_view client_id, std::string_view kind,
                                                std::string_view channel, JsonText data) {
  Begin();
  if (client_id.empty()) return MakeError(ErrorCode::kBadRequest, "clientId must not be empty");
  if (client_id.size() > config_.limits.max_id_bytes) {
    return MakeError(ErrorCode::kTooLarge, "clientId too long");
  }
  if (Status s = ValidateActivity(kind, channel, data); !s) return s.error();
  User& user = GetOrCreateUser(client_id);
  // The user was active (lastSeen), though on no device of ours: no device's idle time moves.
  user.last_activity = std::max(user.last_activity, now_);
  ActivityRecord out = AddActivity(user, kind, channel, std::move(data), "");
  UpdatePin(user);  // never evicts the user just listed (max_idle_users >= 1)
  return out;
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
  User* user = FindUser(client_id);
  if (user != nullptr) {
    recipients_.clear();
    for (Connection* c : user->connections) {
      if (c->in_grace) continue;
      recipients_.push_back(c->handle);
      c->last_synced = now_;
    }
    // The same status again: `previous` equals `status`, which tells clients it is a resync.
    if (!recipients_.empty())
      sink_.OnStatus(StatusChange{ViewOf(*user), user->published, std::nullopt}, recipients_);
  }
  return SyncState(client_id);
}

SyncReport Engine::SyncState(std::string_view client_id) {
  Begin();
  SyncReport report;
  User* user = FindUser(client_id);
  if (user == nullptr) {
    report.status.client_id = client_id;
    return report;
  }
  report.status = ViewOf(*user);
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
  const bool self = viewer == user->client_id;
  if (user->manual == Presence::kOffline && !self) return out;
  const Connection* active = ActiveConnection(*user);
  for (const Connection* c : user->connections) {
    if (c->manual == Presence::kOffline && !self) continue;  // this device appears offline
    out.push_back(DeviceViewOf(*c, active));
  }
  return out;
}

DeviceView Engine::DeviceViewOf(const Connection& c, const Connection* active) const {
  DeviceView d;
  d.connection_id = c.identity->connection_id;
  d.device = c.identity->device;
  d.status = DeviceStatus(c);
  d.last_seen = c.in_grace ? std::max(c.last_active, c.dropped_at) : c.last_active;
  d.active = &c == active;
  d.manual = c.manual != Presence::kOnline;
  return d;
}

void Engine::MissedStatuses(Connection& c, std::vector<StatusChange>& out) {
  // Published after the drop (by sequence, not time: exact within one millisecond too).
  auto missed = [&c](const User& u) { return u.published_seq > c.dropped_seq; };
  std::vector<const User*> users;
  if (c.user->client_id != kObserverClientId && missed(*c.user)) {
    users.push_back(c.user);
    c.last_synced = now_;
  }
  if (c.watches_all) {
    for (const auto& [id, u] : users_) {
      if (u.get() != c.user && id != kObserverClientId && missed(*u)) users.push_back(u.get());
    }
  } else {
    for (const User* u : c.watching) {
      if (u != c.user && missed(*u)) users.push_back(u);
    }
  }
  std::sort(users.begin(), users.end(),
            [](const User* a, const User* b) { return a->published_seq < b->published_seq; });
  out.reserve(users.size());
  for (const User* u : users)
    out.push_back(StatusChange{ViewOf(*u), u->published_previous, std::nullopt});
}

Result<DeviceChange> Engine::ApplyDeviceStatus(Connection& target, Presence status) {
  User& user = *target.user;
  if (status == Presence::kOffline && target.manual != Presence::kOffline) {
    target.hidden_seen = target.last_active;  // what others saw of it, frozen from now on
  }
  target.manual = status;
  RefreshUser(user, false, &target);
  return DeviceChange{DeviceViewOf(target, ActiveConnection(user)), ViewOf(user)};
}

Result<DeviceChange> Engine::SetDeviceStatus(ConnectionHandle handle,
                                             std::optional<std::string_view> connection_id,
                                             Presence status) {
  Begin();
  Connection* caller = Find(handle);
  if (caller == nullptr) return UnknownConnection();
  Connection* target = caller;
  if (connection_id && *connection_id != caller->identity->connection_id) {
    target = nullptr;
    for (Connection* c : caller->user->connections) {
      if (c->identity->connection_id == *connection_id) target = c;
    }
    if (target == nullptr) {
      return MakeError(ErrorCode::kNotFound, "no live connection " + std::string(*connection_id) +
                                                 " of " + caller->user->client_id);
    }
  }
  Activity(*caller);
  return ApplyDeviceStatus(*target, status);
}

Result<DeviceChange> Engine::SetDeviceStatusOf(std::string_view client_id,
                                               std::string_view connection_id, Presence status) {
  Begin();
  User* user = FindUser(client_id);
  if (user != nullptr) {
    for (Connection* c : user->connections) {
      if (c->identity->connection_id == connection_id) return ApplyDeviceStatus(*c, status);
    }
  }
  return MakeError(ErrorCode::kNotFound, "no live connection " + std::string(connection_id) +
                                             " of " + std::string(client_id));
}

Result<std::vector<StatusView>> Engine::WatchAll(ConnectionHandle handle) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (!c->watches_all) {
    c->watches_all = true;
    all_watchers_.push_back(c);
  }
  return Who(std::nullopt);
}

Status Engine::UnwatchAll(ConnectionHandle handle) {
  Begin();
  Connection* c = Find(handle);
  if (c == nullptr) return UnknownConnection();
  if (c->watches_all) {
    c->watches_all = false;
    std::erase(all_watchers_, c);
  }
  return Status::Ok();
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
    if (user->connections.empty() || user->client_id == kObserverClientId) continue;
    TimeMs last_seen;
    if (user->manual == Presence::kOffline) {
      last_seen = user->frozen_last_seen;
    } else if (std::any_of(user->connections.begin(), user->connections.end(),
                           [](const Connection* c) {
                             return !c->in_grace && c->manual != Presence::kOffline;
                           })) {
      last_seen = now_;  // a live connection others see: seen now
    } else {
      // Every connection is in its grace period or hidden: if none returns, lastSeen will be
      // when the drop was noticed (or the hidden devices' frozen activity), so that is what a
      // crash must leave behind (not a later "now").
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
    if (!user->connections.empty() && EffectiveStatus(*user) != Presence::kOffline &&
        user->client_id != kObserverClientId) {
      out.push_back(ViewOf(*user));
    }
  }
  // By clientId: one answer whatever order the map holds them in (a node loaded from a snapshot).
  std::sort(out.begin(), out.end(),
            [](const StatusView& a, const StatusView& b) { return a.client_id < b.client_id; });
  return out;
}

}  // namespace presenced::engine
