// Serialization of the wire contract's objects (docs/protocol.md): members, presence events,
// statuses, replies and errors. Pure functions over engine views; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
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

std::string EventFrame(const engine::PresenceEvent& e);
std::string StatusFrame(const engine::StatusChange& change);

// `{"type":"reply","id":ID,"ok":true` — the caller appends more fields, then "}".
std::string ReplyOkPrefix(int64_t id);
// A complete error reply. `id` may be absent when the frame had none.
std::string ReplyError(std::optional<int64_t> id, const Error& error);
// `{"error":{"code":..,"message":..}}` for HTTP bodies and 401 refusals.
std::string ErrorBody(const Error& error);

}  // namespace presenced::protocol
