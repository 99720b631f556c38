#include "protocol/codec.h"

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
  out += R"(,"connectionId":)";
  AppendQuoted(out, a.connection_id);
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
  out.push_back('}');
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

}  // namespace presenced::protocol
