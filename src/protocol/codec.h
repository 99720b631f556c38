// Serialization of the wire contract's objects (docs/protocol.md): members, presence events,
// statuses, replies and errors. Pure functions over engine views; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/engine.h"
#include "engine/session_registry.h"
#include "engine/types.h"
#include "storage/store.h"

namespace presenced::protocol {

void AppendMember(std::string& out, const engine::MemberView& m);
void AppendMembers(std::string& out, std::span<const engine::MemberView> members);
// The presence event object: {"type":"presence","channel":..,"action":..,"member":..,"serial":..}
void AppendEvent(std::string& out, const engine::PresenceEvent& e);
void AppendEvents(std::string& out, std::span<const engine::PresenceEvent> events);
// The STATUS object.
void AppendStatus(std::string& out, const engine::StatusView& s);
void AppendStatuses(std::string& out, std::span<const engine::StatusView> statuses);
// Elements of the `devices` and `activity.get` replies.
void AppendDevice(std::string& out, const engine::DeviceView& d);
void AppendDevices(std::string& out, std::span<const engine::DeviceView> devices);
void AppendActivity(std::string& out, const storage::StoredActivity& a);
void AppendActivities(std::string& out, std::span<const storage::StoredActivity> activities);

// Agent sessions (protocol-ext §3): SESSION, and the frames that carry it.
void AppendSession(std::string& out, const engine::SessionView& s);
void AppendSessions(std::string& out, std::span<const engine::SessionView> sessions);
std::string SessionEventFrame(engine::SessionAction action, const engine::SessionView& s,
                              std::optional<engine::StopReason> reason, std::string_view error);
std::string SessionAssignFrame(const engine::SessionView& s, const JsonText& request);
std::string SessionStopFrame(std::string_view conversation_id, engine::StopReason reason);

std::string EventFrame(const engine::PresenceEvent& e);
std::string StatusFrame(const engine::StatusChange& change);

// `{"type":"reply","id":ID,"ok":true` — the caller appends more fields, then "}".
std::string ReplyOkPrefix(int64_t id);
// A complete error reply. `id` may be absent when the frame had none.
std::string ReplyError(std::optional<int64_t> id, const Error& error);
// `{"error":{"code":..,"message":..}}` for HTTP bodies and 401 refusals.
std::string ErrorBody(const Error& error);

// A connection's first frame: {"type":"connected",...}.
std::string ConnectedFrame(const engine::Attached& attached, TimeMs heartbeat_ms, bool resumed,
                           std::string_view epoch);
// What a resumed connection missed on a channel whose events are gone: a fresh snapshot,
// {"type":"sync","channel":..,"members":[..],"serial":N}.
std::string SyncFrame(const engine::CatchUp& catch_up);
// The same for a channel's current state (a slow subscriber's conflated events).
std::string SyncFrame(std::string_view channel, const engine::Snapshot& snapshot);
// The same with the data set's `epoch` (sent to every subscription when the cluster's changed).
std::string SyncFrame(std::string_view channel, const engine::Snapshot& snapshot,
                      std::string_view epoch);

// Reply fields (`"a":..,"b":..`, no braces), as both a WebSocket reply and a REST body carry them.
// `"members":[...],"serial":N,"epoch":S` (get, REST presence).
void AppendSnapshotFields(std::string& out, const engine::Snapshot& snap, std::string_view epoch);
// `"members":N,"clients":N`.
void AppendOccupancyFields(std::string& out, const engine::Occupancy& o);
// subscribe: `"events":[..]` or `"members":[..]` (with `"resynced":true` when `since` was given),
// then `"serial":N,"epoch":S`.
void AppendSubscribedFields(std::string& out, const engine::Subscribed& sub, bool since_given,
                            std::string_view epoch);
// `"events":[...]` (the stored frames as they were sent) and, when there may be more,
// `"next":CURSOR`.
void AppendHistoryPageFields(std::string& out, const storage::HistoryPage& page);
// `"channels":[{"channel":..,"members":N,"clients":N},..]`, then `"next":NAME` when `next`.
void AppendChannelListFields(std::string& out, std::span<const engine::ChannelSummary> list,
                             std::optional<std::string_view> next);
// `"token":T,"expiresAt":MS`.
void AppendTokenFields(std::string& out, std::string_view token, TimeMs expires_at);

// Chat command replies (`/presence ...`): `"text":S,"data":D`.
std::string CommandFields(std::string_view text, std::string_view data);
// The `data` of a command that failed: {"error":{"code":..,"message":..}}.
std::string CommandErrorData(std::string_view code, std::string_view message);
// [{"usage":..,"description":..},...]
std::string CommandListJson();
// How many of a user's devices hold its current status, and when the latest push reached one.
struct SyncSummary {
  size_t in_sync = 0;
  std::optional<TimeMs> last_synced;
};
SyncSummary Summarize(const engine::SyncReport& report);
// The `data` of `/presence sync` (and of the sync REST routes).
std::string SyncReportData(const engine::SyncReport& report);

}  // namespace presenced::protocol
