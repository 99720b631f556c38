// The engine's state records (channels, members, subscribers, connections, users), shared by
// the files that implement Engine along its sharding seams (docs/architecture.md):
//   engine.cc          the coordinator: construction, time (Tick and the timer queue), connections
//                      (slots, generations, resume keys, grace) and their teardown;
//   channel_table.cc   channels: members, subscribers, event rings, serials, emit and fan-out;
//   user_directory.cc  users: status rules, devices, idle LRU, watchers, activity, lastSeen.
// Internal to src/engine. Everything here runs on the engine's one thread.
#pragma once

#include <list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "engine/event_ring.h"
#include "engine/identity.h"

namespace presenced::engine {

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
  uint64_t dropped_seq = 0;  // Engine::status_seq_ at the drop: later publications were missed
  TimeMs last_synced = 0;    // when a status push of its own user last went to it (0 = never)
  bool in_grace = false;
  bool watches_all = false;             // in Engine::all_watchers_
  Presence manual = Presence::kOnline;  // the device's status set by hand; kOnline = automatic
  TimeMs hidden_seen = 0;               // last_active when it was set offline by hand
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
  Presence published_previous = Presence::kOffline;  // `previous` of the latest push
  TimeMs published_at = 0;                           // when `published` or the text last changed
  uint64_t published_seq = 0;            // Engine::status_seq_ of the latest publication
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

namespace detail {

inline ActionMask BitOf(Action a) { return ActionBit(a); }

// Removes v[i] by moving the last element into its place (order is not kept).
template <typename T>
void SwapRemove(std::vector<T>& v, size_t i) {
  if (i + 1 != v.size()) v[i] = std::move(v.back());
  v.pop_back();
}

inline Error UnknownConnection() { return MakeError(ErrorCode::kNotFound, "unknown connection"); }

}  // namespace detail

}  // namespace presenced::engine
