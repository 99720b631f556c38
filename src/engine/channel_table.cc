// Engine's channel table: channels (members, subscribers, event rings, serials), enter / update
// / leave, snapshots, subscriptions, and the emit that hands each event to the sink once with its
// recipients. The engine's one thread only.
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
  PresenceEvent event{
      channel.name,
      serial,
      action,
      reason,
      MemberView{who.identity->client_id, who.identity->connection_id, data, timestamp, expires_at},
      channel.members.size()};
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

bool Engine::IsSubscribed(ConnectionHandle handle, std::string_view channel_name) {
  Connection* c = Find(handle);
  if (c == nullptr) return false;
  for (const Subscription& s : c->subscriptions) {
    if (s.channel->name == channel_name) return true;
  }
  return false;
}

std::vector<std::string_view> Engine::SubscriptionsOf(ConnectionHandle handle) {
  std::vector<std::string_view> out;
  if (Connection* c = Find(handle)) {
    for (const Subscription& s : c->subscriptions) out.push_back(s.channel->name);
  }
  return out;
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
}  // namespace presenced::engine
