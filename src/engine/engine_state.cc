// Engine state snapshots (engine.h, SaveState/LoadState): everything the engine holds, written so
// that an engine loaded from it behaves exactly as the saved one does from then on — the same
// handles, timer ids, fan-out order, serials and idle-eviction order. A cluster node that joins
// starts from a snapshot and the log after it (docs/operations.md, "Clustering").
//
// Layout, in order (ByteWriter: little-endian u64, length-prefixed strings):
//   magic, now, serial high-water, visit mark
//   connection slots: generations; free slots; live connections (slot, fields)
//   users (by clientId): fields, connections and watchers (handles), activities; the idle list
//   channels (by name): members, subscribers, event ring
//   per user: its channel counts; per live connection: memberships, subscriptions, watches
//   the connections watching every user (handles, in order)
//   timers: slot count, armed timers in heap order (target by handle), free ids, sequence
// The budget's per-size-class ring order is not kept: past the retained-event cap a loaded
// engine may trim a different ring first (a later `since` then gets a snapshot, not events).
#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/byte_codec.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace presenced::engine {

namespace {

// Version 2 added each connection's own status (set by hand) and the watchers of every user;
// version 1 states are still read (no device set by hand, nobody watching every user).
constexpr std::string_view kMagic = "presenced-engine-state-2";
constexpr std::string_view kMagicV1 = "presenced-engine-state-1";

// Within what one snapshot may hold, so a corrupt input cannot ask for unbounded memory.
constexpr uint64_t kMaxSlots = uint64_t{1} << 31;

void PutIdentity(ByteWriter& w, const Identity& id) {
  w.Str(id.client_id);
  w.Str(id.connection_id);
  w.Str(id.device);
}

void PutJson(ByteWriter& w, const JsonText& j) { w.Str(j.text()); }

// An enum's byte, or a failed reader when it is past the enum's last value.
template <typename E>
uint8_t Enum(ByteReader& r, E last) {
  const uint8_t v = r.U8();
  if (v > static_cast<uint8_t>(last)) r.Fail();
  return v;
}

JsonText GetJson(ByteReader& r) {
  std::string_view text = r.Str();
  return text.empty() ? JsonText() : JsonText::FromSerialized(text);
}

}  // namespace

std::string Engine::SaveState() {
  ByteWriter w;
  w.Str(kMagic);
  w.I64(now_);
  w.U64(serial_high_water_);
  w.U64(visit_mark_);
  w.U64(status_seq_);

  w.U64(connections_.size());
  for (uint32_t g : generations_) w.U64(g);
  w.U64(free_slots_.size());
  for (uint32_t s : free_slots_) w.U64(s);
  w.U64(connection_count_);
  for (size_t i = 1; i < connections_.size(); ++i) {
    const Connection* c = connections_[i].get();
    if (c == nullptr) continue;
    w.U64(i);
    w.U64(c->handle);
    PutIdentity(w, *c->identity);
    w.Str(c->key);
    w.I64(c->remain_present_for);
    w.I64(c->last_active);
    w.I64(c->dropped_at);
    w.I64(c->last_synced);
    w.U8(c->in_grace ? 1 : 0);
    w.U64(c->grace_timer);
    w.U64(c->idle_timer);
    w.U8(static_cast<uint8_t>(c->manual));
    w.I64(c->hidden_seen);
    w.U64(c->dropped_seq);
  }

  std::map<std::string_view, const User*> users;
  for (const auto& [id, u] : users_) users.emplace(id, u.get());
  w.U64(users.size());
  for (const auto& [id, u] : users) {
    w.Str(id);
    w.U8(static_cast<uint8_t>(u->manual));
    w.U8(u->text ? 1 : 0);
    w.Str(u->text ? *u->text : std::string());
    w.I64(u->last_activity);
    w.I64(u->last_disconnect);
    w.I64(u->frozen_last_seen);
    w.I64(u->last_checkpoint);
    w.U8(static_cast<uint8_t>(u->published));
    w.U8(static_cast<uint8_t>(u->published_previous));
    w.I64(u->published_at);
    w.U64(u->published_seq);
    w.U64(u->visit_mark);
    w.U64(u->connections.size());
    for (const Connection* c : u->connections) w.U64(c->handle);
    w.U64(u->watchers.size());
    for (const Connection* c : u->watchers) w.U64(c->handle);
    w.U64(u->activities.size());
    for (const ActivityRecord& a : u->activities) {
      w.Str(a.kind);
      w.Str(a.channel);
      PutJson(w, a.data);
      w.I64(a.timestamp);
      w.Str(a.connection_id);
    }
  }
  w.U64(idle_users_.size());
  for (const User* u : idle_users_) w.Str(u->client_id);

  std::map<std::string_view, const Channel*> channels;
  for (const auto& [name, ch] : channels_) channels.emplace(name, ch.get());
  w.U64(channels.size());
  for (const auto& [name, ch] : channels) {
    w.Str(name);
    w.U64(ch->clients);
    w.U64(ch->members.size());
    for (const Member& m : ch->members) {
      w.U64(m.connection->handle);
      PutJson(w, m.data);
      w.I64(m.timestamp);
      w.U64(m.ttl_timer);
    }
    w.U64(ch->subscribers.size());
    for (const Subscriber& s : ch->subscribers) {
      w.U64(s.handle);
      w.U64(s.actions);
      w.U8(s.in_grace ? 1 : 0);
    }
    w.U64(ch->ring.first_serial());
    w.U64(ch->ring.size());
    ch->ring.ForEachAfter(ch->ring.first_serial() - 1, [&w](uint64_t, const EventRecord& e) {
      PutIdentity(w, *e.who);
      PutJson(w, e.data);
      w.I64(e.timestamp);
      w.I64(e.expires_at);
      w.U8(static_cast<uint8_t>(e.action));
      w.U8(static_cast<uint8_t>(e.reason));
    });
  }

  for (const auto& [id, u] : users) {
    w.U64(u->channel_counts.size());
    for (const auto& [ch, n] : u->channel_counts) {
      w.Str(ch->name);
      w.U64(n);
    }
  }
  for (size_t i = 1; i < connections_.size(); ++i) {
    const Connection* c = connections_[i].get();
    if (c == nullptr) continue;
    w.U64(c->memberships.size());
    for (const Membership& m : c->memberships) {
      w.Str(m.channel->name);
      w.U64(m.slot);
    }
    w.U64(c->subscriptions.size());
    for (const Subscription& s : c->subscriptions) {
      w.Str(s.channel->name);
      w.U64(s.missed_after);
    }
    w.U64(c->watching.size());
    for (const User* u : c->watching) w.Str(u->client_id);
  }
  w.U64(all_watchers_.size());
  for (const Connection* c : all_watchers_) w.U64(c->handle);

  w.U64(timers_.slot_count());
  const std::vector<TimerQueue::Armed> armed = timers_.ListArmed();
  w.U64(armed.size());
  for (const TimerQueue::Armed& a : armed) {
    w.U64(a.id);
    w.U8(a.kind);
    w.U64(static_cast<const Connection*>(a.target)->handle);
    w.I64(a.deadline);
    w.U64(a.seq);
  }
  w.U64(timers_.free_ids().size());
  for (TimerQueue::TimerId id : timers_.free_ids()) w.U64(id);
  w.U64(timers_.next_seq());
  return std::move(w.bytes());
}

void Engine::Clear() {
  timers_ = TimerQueue();
  channels_.clear();
  idle_users_.clear();
  users_.clear();
  keys_.clear();
  connections_.clear();
  connections_.emplace_back();
  generations_.assign(1, 0);
  free_slots_.clear();
  connection_count_ = 0;
  member_count_ = 0;
  serial_high_water_ = 0;
  visit_mark_ = 0;
  status_seq_ = 0;
  all_watchers_.clear();
}

Status Engine::LoadState(std::string_view state) {
  Clear();
  Status st = ReadState(state);
  if (!st) Clear();
  return st;
}

Status Engine::ReadState(std::string_view state) {
  const auto corrupt = [](std::string_view what) {
    return MakeError(ErrorCode::kBadRequest, "engine state is corrupt: " + std::string(what));
  };
  ByteReader r(state);
  const std::string_view magic = r.Str();
  const bool v1 = magic == kMagicV1;
  if (magic != kMagic && !v1) return corrupt("not an engine state of this version");
  now_ = std::max(now_, r.I64());
  serial_high_water_ = r.U64();
  visit_mark_ = r.U64();
  status_seq_ = v1 ? 0 : r.U64();

  const uint64_t slots = r.Count(8);
  if (slots == 0 || slots > kMaxSlots) return corrupt("connection slots");
  connections_.clear();
  connections_.resize(slots);
  generations_.resize(slots);
  for (auto& g : generations_) g = static_cast<uint32_t>(r.U64());
  free_slots_.resize(r.Count(8));
  for (auto& s : free_slots_) {
    s = static_cast<uint32_t>(r.U64());
    if (s == 0 || s >= slots) return corrupt("free slot");
  }
  std::map<std::pair<std::string, std::string>, IdentityRef> identities;
  const uint64_t live = r.Count(8);
  for (uint64_t n = 0; n < live && r.ok(); ++n) {
    const uint64_t slot = r.U64();
    if (slot == 0 || slot >= slots || connections_[slot]) return corrupt("connection slot");
    auto c = std::make_unique<Connection>();
    c->handle = r.U64();
    if (static_cast<uint32_t>(c->handle) != slot ||
        static_cast<uint32_t>(c->handle >> 32) != generations_[slot]) {
      return corrupt("connection handle");
    }
    std::string client_id(r.Str());
    std::string connection_id(r.Str());
    std::string device(r.Str());
    c->identity = IdentityRef::Make(client_id, connection_id, std::move(device));
    identities.emplace(std::make_pair(std::move(client_id), std::move(connection_id)), c->identity);
    c->key = std::string(r.Str());
    c->remain_present_for = r.I64();
    c->last_active = r.I64();
    c->dropped_at = r.I64();
    c->last_synced = r.I64();
    c->in_grace = r.U8() != 0;
    c->grace_timer = static_cast<TimerQueue::TimerId>(r.U64());
    c->idle_timer = static_cast<TimerQueue::TimerId>(r.U64());
    if (!v1) {
      c->manual = static_cast<Presence>(Enum(r, Presence::kOffline));
      c->hidden_seen = r.I64();
      c->dropped_seq = r.U64();
    }
    if (!c->key.empty() && !keys_.emplace(c->key, c.get()).second) return corrupt("resume key");
    connections_[slot] = std::move(c);
    ++connection_count_;
  }
  auto find = [this](uint64_t handle) { return Find(handle); };

  const uint64_t user_count = r.Count(8);
  std::vector<User*> users_in_order;
  for (uint64_t n = 0; n < user_count && r.ok(); ++n) {
    auto u = std::make_unique<User>();
    u->client_id = std::string(r.Str());
    u->manual = static_cast<Presence>(Enum(r, Presence::kOffline));
    const bool has_text = r.U8() != 0;
    std::string text(r.Str());
    if (has_text) u->text = std::move(text);
    u->last_activity = r.I64();
    u->last_disconnect = r.I64();
    u->frozen_last_seen = r.I64();
    u->last_checkpoint = r.I64();
    u->published = static_cast<Presence>(Enum(r, Presence::kOffline));
    u->published_previous = v1 ? u->published : static_cast<Presence>(Enum(r, Presence::kOffline));
    u->published_at = r.I64();
    if (!v1) u->published_seq = r.U64();
    u->visit_mark = r.U64();
    for (uint64_t i = r.Count(8); i > 0 && r.ok(); --i) {
      Connection* c = find(r.U64());
      if (c == nullptr || c->user != nullptr) return corrupt("user connection");
      c->user = u.get();
      u->connections.push_back(c);
    }
    for (uint64_t i = r.Count(8); i > 0 && r.ok(); --i) {
      Connection* c = find(r.U64());
      if (c == nullptr) return corrupt("watcher");
      u->watchers.push_back(c);
    }
    for (uint64_t i = r.Count(8); i > 0 && r.ok(); --i) {
      ActivityRecord a;
      a.kind = std::string(r.Str());
      a.channel = std::string(r.Str());
      a.data = GetJson(r);
      a.timestamp = r.I64();
      a.connection_id = std::string(r.Str());
      u->activities.push_back(std::move(a));
    }
    User* ref = u.get();
    if (!users_.emplace(ref->client_id, std::move(u)).second) return corrupt("user repeated");
    users_in_order.push_back(ref);
  }
  for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
    User* u = FindUser(r.Str());
    if (u == nullptr || u->idle_listed || !u->connections.empty() || !u->watchers.empty()) {
      return corrupt("idle user");
    }
    u->idle_it = idle_users_.insert(idle_users_.end(), u);
    u->idle_listed = true;
  }
  for (User* u : users_in_order) {
    if (!u->idle_listed && u->connections.empty() && u->watchers.empty()) {
      return corrupt("user neither idle nor pinned");
    }
  }
  for (size_t i = 1; i < connections_.size(); ++i) {
    if (connections_[i] && connections_[i]->user == nullptr) return corrupt("connection's user");
  }

  const uint64_t channel_count = r.Count(8);
  for (uint64_t n = 0; n < channel_count && r.ok(); ++n) {
    std::string name(r.Str());
    const uint64_t clients = r.U64();
    std::vector<Member> members(r.Count(8));
    for (Member& m : members) {
      m.connection = find(r.U64());
      m.data = GetJson(r);
      m.timestamp = r.I64();
      m.ttl_timer = static_cast<TimerQueue::TimerId>(r.U64());
      if (m.connection == nullptr) return corrupt("member");
    }
    std::vector<Subscriber> subscribers(r.Count(8));
    for (Subscriber& s : subscribers) {
      s.handle = r.U64();
      s.connection = find(s.handle);
      s.actions = static_cast<ActionMask>(r.U64());
      s.in_grace = r.U8() != 0;
      if (s.connection == nullptr) return corrupt("subscriber");
    }
    const uint64_t first_serial = r.U64();
    if (first_serial == 0) return corrupt("ring serial");
    auto channel =
        std::make_unique<Channel>(name, config_.event_ring_capacity, first_serial - 1, retained_);
    for (uint64_t i = r.Count(8); i > 0 && r.ok(); --i) {
      EventRecord e;
      std::string client_id(r.Str());
      std::string connection_id(r.Str());
      std::string device(r.Str());
      auto [it, fresh] =
          identities.try_emplace(std::make_pair(client_id, connection_id), IdentityRef());
      if (fresh) it->second = IdentityRef::Make(client_id, connection_id, std::move(device));
      e.who = it->second;
      e.data = GetJson(r);
      e.timestamp = r.I64();
      e.expires_at = r.I64();
      e.action = static_cast<Action>(Enum(r, Action::kLeave));
      e.reason = static_cast<LeaveReason>(Enum(r, LeaveReason::kExpired));
      channel->ring.Push(std::move(e));
    }
    channel->members = std::move(members);
    channel->subscribers = std::move(subscribers);
    channel->clients = clients;
    member_count_ += channel->members.size();
    if (!r.ok() || !channels_.emplace(std::move(name), std::move(channel)).second) {
      return corrupt("channel");
    }
  }

  for (User* u : users_in_order) {
    for (uint64_t i = r.Count(8); i > 0 && r.ok(); --i) {
      Channel* ch = FindChannel(r.Str());
      const auto count = static_cast<uint32_t>(r.U64());
      if (ch == nullptr) return corrupt("channel count");
      u->channel_counts.emplace_back(ch, count);
    }
  }
  for (size_t i = 1; i < connections_.size() && r.ok(); ++i) {
    Connection* c = connections_[i].get();
    if (c == nullptr) continue;
    for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
      Channel* ch = FindChannel(r.Str());
      const uint64_t slot = r.U64();
      if (ch == nullptr || slot >= ch->members.size() || ch->members[slot].connection != c) {
        return corrupt("membership");
      }
      c->memberships.push_back(Membership{ch, static_cast<uint32_t>(slot)});
    }
    for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
      Channel* ch = FindChannel(r.Str());
      const uint64_t missed_after = r.U64();
      if (ch == nullptr) return corrupt("subscription");
      c->subscriptions.push_back(Subscription{ch, missed_after});
    }
    for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
      User* u = FindUser(r.Str());
      if (u == nullptr) return corrupt("watch");
      c->watching.push_back(u);
    }
  }
  if (!v1) {
    for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
      Connection* c = Find(r.U64());
      if (c == nullptr || c->watches_all) return corrupt("watcher of every user");
      c->watches_all = true;
      all_watchers_.push_back(c);
    }
  }

  const uint64_t timer_slots = r.U64();
  std::vector<TimerQueue::Armed> armed(r.Count(8));
  for (TimerQueue::Armed& a : armed) {
    a.id = static_cast<TimerQueue::TimerId>(r.U64());
    a.kind = r.U8();
    Connection* target = find(r.U64());
    a.target = target;
    a.deadline = r.I64();
    a.seq = r.U64();
    if (target == nullptr || a.kind > kIdleTimer) return corrupt("timer");
  }
  std::vector<TimerQueue::TimerId> free_timers(r.Count(8));
  for (auto& id : free_timers) id = static_cast<TimerQueue::TimerId>(r.U64());
  const uint64_t next_seq = r.U64();
  if (!r.done()) return corrupt(r.ok() ? "trailing bytes" : "truncated");
  if (timer_slots > kMaxSlots ||
      !timers_.Restore(timer_slots, armed, std::move(free_timers), next_seq)) {
    return corrupt("timers");
  }
  // Both sides of every link agree: a member is its connection's membership (checked above, and
  // counted here), a subscription is its channel's subscriber, a watch is its user's watcher.
  size_t memberships = 0;
  for (size_t i = 1; i < connections_.size(); ++i) {
    const Connection* c = connections_[i].get();
    if (c == nullptr) continue;
    memberships += c->memberships.size();
    for (const Subscription& sub : c->subscriptions) {
      const auto& subs = sub.channel->subscribers;
      if (std::count_if(subs.begin(), subs.end(),
                        [c](const Subscriber& x) { return x.connection == c; }) != 1) {
        return corrupt("subscription without its subscriber");
      }
    }
    for (const User* u : c->watching) {
      if (std::count(u->watchers.begin(), u->watchers.end(), c) != 1) {
        return corrupt("watch without its watcher");
      }
    }
  }
  size_t subscribers = 0;
  size_t subscriptions = 0;
  size_t watchers = 0;
  size_t watching = 0;
  for (const auto& [name, ch] : channels_) subscribers += ch->subscribers.size();
  for (const auto& [id, u] : users_) watchers += u->watchers.size();
  for (size_t i = 1; i < connections_.size(); ++i) {
    if (const Connection* c = connections_[i].get()) {
      subscriptions += c->subscriptions.size();
      watching += c->watching.size();
    }
  }
  if (memberships != member_count_ || subscribers != subscriptions || watchers != watching) {
    return corrupt("links");
  }
  // Every timer a record names is armed, for that record's connection.
  std::unordered_map<TimerQueue::TimerId, const TimerQueue::Armed*> by_id;
  for (const TimerQueue::Armed& a : armed) by_id.emplace(a.id, &a);
  auto armed_for = [&by_id](TimerQueue::TimerId id, const Connection* c, uint8_t kind) {
    if (id == TimerQueue::kNoTimer) return true;
    auto it = by_id.find(id);
    return it != by_id.end() && it->second->target == c && it->second->kind == kind;
  };
  for (const auto& [name, ch] : channels_) {
    for (const Member& m : ch->members) {
      if (!armed_for(m.ttl_timer, m.connection, kTtlTimer)) return corrupt("member timer");
    }
  }
  for (size_t i = 1; i < connections_.size(); ++i) {
    const Connection* c = connections_[i].get();
    if (c != nullptr &&
        (!armed_for(c->grace_timer, c, kGraceTimer) || !armed_for(c->idle_timer, c, kIdleTimer))) {
      return corrupt("connection timer");
    }
  }
  return Status::Ok();
}

}  // namespace presenced::engine
