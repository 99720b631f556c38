// Every frame and field of the wire contract (codec.h); pure, thread-safe.
#include "protocol/codec.h"

#include <optional>

#include "protocol/commands.h"
#include "protocol/json_out.h"

namespace presenced::protocol {

using engine::MemberView;
using engine::PresenceEvent;
using engine::StatusView;

namespace {
// `[e1,e2,...]` with each element written by `append`.
template <typename T, typename Fn>
void AppendArray(std::string& out, std::span<const T> items, Fn append) {
  out.push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    append(out, items[i]);
  }
  out.push_back(']');
}
}  // namespace

void AppendMember(std::string& out, const MemberView& m) {
  out += R"({"clientId":)";
  AppendQuoted(out, m.client_id);
  out += R"(,"connectionId":)";
  AppendQuoted(out, m.connection_id);
  out += R"(,"data":)";
  out += m.data.text();
  out += R"(,"timestamp":)";
  AppendInt(out, m.timestamp);
  out += R"(,"expiresAt":)";
  if (m.expires_at == engine::kNoExpiry) {
    out += "null";
  } else {
    AppendInt(out, m.expires_at);
  }
  out.push_back('}');
}

void AppendMembers(std::string& out, std::span<const MemberView> members) {
  AppendArray(out, members, AppendMember);
}

void AppendEvent(std::string& out, const PresenceEvent& e) {
  out += R"({"type":"presence","channel":)";
  AppendQuoted(out, e.channel);
  out += R"(,"action":")";
  out += engine::ActionName(e.action);
  out += R"(","member":)";
  AppendMember(out, e.member);
  out += R"(,"serial":)";
  AppendUint(out, e.serial);
  if (e.action == engine::Action::kLeave) {
    out += R"(,"reason":")";
    out += engine::LeaveReasonName(e.reason);
    out.push_back('"');
  }
  out.push_back('}');
}

void AppendEvents(std::string& out, std::span<const PresenceEvent> events) {
  AppendArray(out, events, AppendEvent);
}

namespace {
void AppendStatusFields(std::string& out, const StatusView& s) {
  out += R"("clientId":)";
  AppendQuoted(out, s.client_id);
  out += R"(,"status":")";
  out += engine::PresenceName(s.status);
  out += R"(","text":)";
  AppendOptional(out, s.text);
  out += R"(,"lastSeen":)";
  AppendOptionalInt(out, s.last_seen);
  out += R"(,"activeDevice":)";
  AppendOptional(out, s.active_device);
}
}  // namespace

void AppendStatus(std::string& out, const StatusView& s) {
  out.push_back('{');
  AppendStatusFields(out, s);
  out.push_back('}');
}

void AppendStatuses(std::string& out, std::span<const StatusView> statuses) {
  AppendArray(out, statuses, AppendStatus);
}

void AppendDevice(std::string& out, const engine::DeviceView& d) {
  out += R"({"connectionId":)";
  AppendQuoted(out, d.connection_id);
  out += R"(,"device":)";
  AppendQuoted(out, d.device);
  out += R"(,"status":")";
  out += engine::PresenceName(d.status);
  out += R"(","lastSeen":)";
  AppendInt(out, d.last_seen);
  out += R"(,"active":)";
  AppendBool(out, d.active);
  out += R"(,"manual":)";
  AppendBool(out, d.manual);
  out.push_back('}');
}

void AppendDevices(std::string& out, std::span<const engine::DeviceView> devices) {
  AppendArray(out, devices, AppendDevice);
}

void AppendActivity(std::string& out, const storage::StoredActivity& a) {
  out += R"({"kind":)";
  AppendQuoted(out, a.kind);
  out += R"(,"channel":)";
  AppendOptional(out,
                 a.channel.empty() ? std::nullopt : std::optional<std::string_view>(a.channel));
  out += R"(,"data":)";
  out += a.data.text();
  out += R"(,"timestamp":)";
  AppendInt(out, a.timestamp);
  out += R"(,"connectionId":)";  // null: recorded by a backend (REST), on no connection
  AppendOptional(out, a.connection_id.empty() ? std::nullopt
                                              : std::optional<std::string_view>(a.connection_id));
  out.push_back('}');
}

void AppendActivities(std::string& out, std::span<const storage::StoredActivity> activities) {
  AppendArray(out, activities, AppendActivity);
}

std::string EventFrame(const PresenceEvent& e) {
  std::string out;
  out.reserve(192 + e.member.data.size());
  AppendEvent(out, e);
  return out;
}

std::string StatusFrame(const engine::StatusChange& change) {
  std::string out = R"({"type":"status","previous":")";
  out += engine::PresenceName(change.previous);
  out += "\",";
  AppendStatusFields(out, change.status);
  if (change.device) {
    out += R"(,"device":)";
    AppendDevice(out, *change.device);
  }
  out.push_back('}');
  return out;
}

void AppendSession(std::string& out, const engine::SessionView& s) {
  out += R"({"conversationId":)";
  AppendQuoted(out, s.conversation_id);
  out += R"(,"agentId":)";
  AppendQuoted(out, s.agent_id);
  out += R"(,"state":")";
  out += engine::NameOf(s.state);
  out += R"(","workerConnectionId":)";
  AppendOptional(out, s.worker_connection_id.empty()
                          ? std::nullopt
                          : std::optional<std::string_view>(s.worker_connection_id));
  out += R"(,"startedAt":)";
  AppendInt(out, s.started_at);
  out += R"(,"lastActivityAt":)";
  AppendInt(out, s.last_activity_at);
  out += R"(,"inactivityTimeoutMs":)";
  AppendInt(out, s.inactivity_timeout_ms);
  out += R"(,"abandonAfterMs":)";
  AppendInt(out, s.abandon_after_ms);
  out.push_back('}');
}

void AppendSessions(std::string& out, std::span<const engine::SessionView> sessions) {
  AppendArray(out, sessions, AppendSession);
}

std::string SessionEventFrame(engine::SessionAction action, const engine::SessionView& s,
                              std::optional<engine::StopReason> reason, std::string_view error) {
  std::string out = R"({"type":"session","action":")";
  out += engine::NameOf(action);
  out += R"(","session":)";
  AppendSession(out, s);
  if (reason) {
    out += R"(,"reason":")";
    out += engine::NameOf(*reason);
    out.push_back('"');
  }
  if (!error.empty()) {
    out += R"(,"error":)";
    AppendQuoted(out, error);
  }
  out.push_back('}');
  return out;
}

std::string SessionAssignFrame(const engine::SessionView& s, const JsonText& request) {
  std::string out = R"({"type":"session.assign","session":)";
  AppendSession(out, s);
  out += R"(,"request":)";
  out += request.is_null() ? std::string_view("null") : request.text();
  out.push_back('}');
  return out;
}

std::string SessionStopFrame(std::string_view conversation_id, engine::StopReason reason) {
  std::string out = R"({"type":"session.stop","conversationId":)";
  AppendQuoted(out, conversation_id);
  out += R"(,"reason":")";
  out += engine::NameOf(reason);
  out += "\"}";
  return out;
}

std::string ReplyOkPrefix(int64_t id) {
  std::string out = R"({"type":"reply","id":)";
  AppendInt(out, id);
  out += R"(,"ok":true)";
  return out;
}

namespace {
void AppendErrorObject(std::string& out, const Error& error) {
  out += R"({"code":")";
  out += ErrorCodeName(error.code);
  out += R"(","message":)";
  AppendQuoted(out, error.message);
  out.push_back('}');
}
}  // namespace

std::string ReplyError(std::optional<int64_t> id, const Error& error) {
  std::string out = R"({"type":"reply","id":)";
  AppendOptionalInt(out, id);
  out += R"(,"ok":false,"error":)";
  AppendErrorObject(out, error);
  out.push_back('}');
  return out;
}

std::string ErrorBody(const Error& error) {
  std::string out = R"({"error":)";
  AppendErrorObject(out, error);
  out.push_back('}');
  return out;
}

std::string ConnectedFrame(const engine::Attached& attached, TimeMs heartbeat_ms, bool resumed,
                           std::string_view epoch) {
  std::string frame = R"({"type":"connected","connectionId":)";
  AppendQuoted(frame, attached.connection_id);
  frame += R"(,"connectionKey":)";
  AppendQuoted(frame, attached.connection_key);
  frame += R"(,"clientId":)";
  AppendQuoted(frame, attached.client_id);
  frame += R"(,"heartbeatMs":)";
  AppendInt(frame, heartbeat_ms);
  frame += R"(,"remainPresentForMs":)";
  AppendInt(frame, attached.remain_present_for_ms);
  frame += R"(,"resumed":)";
  AppendBool(frame, resumed);
  frame += R"(,"epoch":)";
  AppendQuoted(frame, epoch);
  frame += '}';
  return frame;
}

namespace {
std::string Sync(std::string_view channel, std::span<const engine::MemberView> members,
                 uint64_t serial, std::optional<std::string_view> epoch = std::nullopt) {
  std::string sync = R"({"type":"sync","channel":)";
  AppendQuoted(sync, channel);
  sync += R"(,"members":)";
  AppendMembers(sync, members);
  sync += R"(,"serial":)";
  AppendUint(sync, serial);
  if (epoch) {
    sync += R"(,"epoch":)";
    AppendQuoted(sync, *epoch);
  }
  sync += '}';
  return sync;
}
}  // namespace

std::string SyncFrame(const engine::CatchUp& cu) { return Sync(cu.channel, cu.members, cu.serial); }

std::string SyncFrame(std::string_view channel, const engine::Snapshot& snapshot) {
  return Sync(channel, snapshot.members, snapshot.serial);
}

std::string SyncFrame(std::string_view channel, const engine::Snapshot& snapshot,
                      std::string_view epoch) {
  return Sync(channel, snapshot.members, snapshot.serial, epoch);
}

void AppendSnapshotFields(std::string& out, const engine::Snapshot& snap, std::string_view epoch) {
  out += R"("members":)";
  AppendMembers(out, snap.members);
  out += R"(,"serial":)";
  AppendUint(out, snap.serial);
  out += R"(,"epoch":)";
  AppendQuoted(out, epoch);
}

void AppendOccupancyFields(std::string& out, const engine::Occupancy& o) {
  out += R"("members":)";
  AppendUint(out, o.members);
  out += R"(,"clients":)";
  AppendUint(out, o.clients);
}

void AppendSubscribedFields(std::string& out, const engine::Subscribed& sub, bool since_given,
                            std::string_view epoch) {
  if (sub.has_events) {
    out += R"("events":)";
    AppendEvents(out, sub.events);
  } else {
    out += R"("members":)";
    AppendMembers(out, sub.members);
    if (since_given) out += R"(,"resynced":true)";
  }
  out += R"(,"serial":)";
  AppendUint(out, sub.serial);
  out += R"(,"epoch":)";
  AppendQuoted(out, epoch);
}

void AppendHistoryPageFields(std::string& out, const storage::HistoryPage& page) {
  out += R"("events":[)";
  for (size_t i = 0; i < page.events.size(); ++i) {
    if (i) out += ',';
    out += *page.events[i];
  }
  out += ']';
  if (page.next) {
    out += R"(,"next":)";
    AppendInt(out, *page.next);
  }
}

void AppendChannelListFields(std::string& out, std::span<const engine::ChannelSummary> list,
                             std::optional<std::string_view> next) {
  out += R"("channels":[)";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += ',';
    out += R"({"channel":)";
    AppendQuoted(out, list[i].channel);
    out += ',';
    AppendOccupancyFields(out, list[i].occupancy);
    out += '}';
  }
  out += ']';
  if (next) {
    out += R"(,"next":)";
    AppendQuoted(out, *next);
  }
}

void AppendTokenFields(std::string& out, std::string_view token, TimeMs expires_at) {
  out += R"("token":)";
  AppendQuoted(out, token);
  out += R"(,"expiresAt":)";
  AppendInt(out, expires_at);
}

std::string CommandFields(std::string_view text, std::string_view data) {
  std::string out = R"("text":)";
  AppendQuoted(out, text);
  out += R"(,"data":)";
  out += data;
  return out;
}

std::string CommandErrorData(std::string_view code, std::string_view message) {
  std::string data = R"({"error":{"code":)";
  AppendQuoted(data, code);
  data += R"(,"message":)";
  AppendQuoted(data, message);
  data += "}}";
  return data;
}

std::string CommandListJson() {
  std::string out = "[";
  for (const CommandHelp& h : CommandHelpList()) {
    if (out.size() > 1) out += ',';
    out += R"({"usage":)";
    AppendQuoted(out, h.usage);
    out += R"(,"description":)";
    AppendQuoted(out, h.description);
    out += '}';
  }
  return out + "]";
}

SyncSummary Summarize(const engine::SyncReport& report) {
  SyncSummary s;
  for (const auto& d : report.devices) {
    if (d.in_sync) ++s.in_sync;
    if (d.last_synced_at) s.last_synced = std::max(s.last_synced.value_or(0), *d.last_synced_at);
  }
  return s;
}

std::string SyncReportData(const engine::SyncReport& report) {
  const auto [in_sync, last_synced] = Summarize(report);
  std::string per = "[";
  for (const auto& d : report.devices) {
    if (per.size() > 1) per += ',';
    per += R"({"connectionId":)";
    AppendQuoted(per, d.connection_id);
    per += R"(,"device":)";
    AppendQuoted(per, d.device);
    per += R"(,"inSync":)";
    AppendBool(per, d.in_sync);
    per += R"(,"lastSyncedAt":)";
    AppendOptionalInt(per, d.last_synced_at);
    per += '}';
  }
  per += ']';
  std::string data = R"({"status":)";
  AppendStatus(data, report.status);
  data += R"(,"devices":)" + std::to_string(report.devices.size()) + R"(,"inSync":)" +
          std::to_string(in_sync) + R"(,"lastSyncedAt":)";
  AppendOptionalInt(data, last_synced);
  data += R"(,"perDevice":)" + per + "}";
  return data;
}

}  // namespace presenced::protocol
