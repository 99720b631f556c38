// The typed requests and their one Parse each (requests.h); pure.
#include "protocol/requests.h"

#include <algorithm>

namespace presenced::protocol {

namespace {

// Fetches field `key` of `a` into `out`, or returns its error from the enclosing Parse.
#define PRESENCED_FIELD(out, expr)           \
  do {                                       \
    auto field_ = (expr);                    \
    if (!field_.ok()) return field_.error(); \
    out = std::move(field_).value();         \
  } while (false)

Result<std::optional<std::string_view>> OptClientId(const Args& a, size_t max_id_bytes) {
  auto client = a.OptString("clientId");
  if (!client.ok()) return client.error();
  if (*client) {
    if (Status st = CheckName(**client, "clientId", max_id_bytes); !st) return st.error();
  }
  return *client;
}

Result<size_t> Limit(const Args& a, size_t fallback, size_t max) {
  auto limit = a.OptInt("limit");
  if (!limit.ok()) return limit.error();
  if (*limit && **limit < 1) return BadRequest("limit must be at least 1");
  return static_cast<size_t>(std::min<int64_t>(limit->value_or(static_cast<int64_t>(fallback)),
                                               static_cast<int64_t>(max)));
}

}  // namespace

Result<ChannelRequest> ChannelRequest::Parse(const Args& a) {
  ChannelRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  return r;
}

Result<EnterRequest> EnterRequest::Parse(const Args& a) {
  EnterRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  PRESENCED_FIELD(r.ttl_ms, a.OptInt("ttlMs"));
  r.data = a.OptJson("data");
  return r;
}

Result<UpdateRequest> UpdateRequest::Parse(const Args& a) {
  UpdateRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  PRESENCED_FIELD(r.ttl_ms, a.OptInt("ttlMs"));
  auto data = a.OptJson("data");
  if (!data) return BadRequest("missing field data");
  r.data = std::move(*data);
  PRESENCED_FIELD(r.merge, a.OptBool("merge", false));
  return r;
}

Result<LeaveRequest> LeaveRequest::Parse(const Args& a) {
  LeaveRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  r.data = a.OptJson("data");
  return r;
}

Result<GetRequest> GetRequest::Parse(const Args& a) {
  GetRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  PRESENCED_FIELD(r.client_id, a.OptString("clientId"));
  PRESENCED_FIELD(r.connection_id, a.OptString("connectionId"));
  return r;
}

Result<SubscribeRequest> SubscribeRequest::Parse(const Args& a) {
  SubscribeRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  if (a.Has("actions")) {
    std::vector<std::string> actions;
    PRESENCED_FIELD(actions, a.StringArray("actions"));
    if (actions.empty()) return BadRequest("actions must not be empty");
    r.actions = 0;
    for (const auto& name : actions) {
      auto action = engine::ParseAction(name);
      if (!action) return BadRequest("unknown action " + name);
      r.actions |= engine::ActionBit(*action);
    }
  }
  PRESENCED_FIELD(r.since, a.OptInt("since"));
  if (r.since && *r.since < 0) return BadRequest("since must not be negative");
  PRESENCED_FIELD(r.epoch, a.OptString("epoch"));
  return r;
}

Result<HistoryRequest> HistoryRequest::Parse(const Args& a) {
  HistoryRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  storage::HistoryQuery& q = r.query;
  PRESENCED_FIELD(q.start, a.OptInt("start"));
  PRESENCED_FIELD(q.end, a.OptInt("end"));
  std::optional<int64_t> limit;
  PRESENCED_FIELD(limit, a.OptInt("limit"));
  std::optional<std::string_view> direction;
  PRESENCED_FIELD(direction, a.OptString("direction"));
  PRESENCED_FIELD(q.cursor, a.OptInt("cursor"));
  if (limit && *limit < 1) return BadRequest("limit must be at least 1");
  q.limit = static_cast<size_t>(std::min<int64_t>(limit.value_or(100), 1000));
  if (direction && *direction != "backwards" && *direction != "forwards") {
    return BadRequest("direction must be backwards or forwards");
  }
  q.forwards = direction && *direction == "forwards";
  return r;
}

Result<StatusSetRequest> StatusSetRequest::Parse(const Args& a) {
  StatusSetRequest r;
  if (const json::value* st = a.Get("status")) {
    if (!st->is_string()) return BadRequest("status must be a string");
    r.status = engine::ParsePresence(st->as_string());
    if (!r.status) return BadRequest("status must be online, away, dnd or offline");
  }
  if (const json::value* t = a.Get("text")) {
    if (t->is_null()) {
      r.text = std::optional<std::string>();
    } else if (t->is_string()) {
      r.text = std::optional<std::string>(std::string(t->as_string()));
    } else {
      return BadRequest("text must be a string or null");
    }
  }
  return r;
}

Result<ClientIdsRequest> ClientIdsRequest::Parse(const Args& a) {
  ClientIdsRequest r;
  PRESENCED_FIELD(r.client_ids, a.StringArray("clientIds"));
  return r;
}

Result<WatchRequest> WatchRequest::Parse(const Args& a) {
  WatchRequest r;
  PRESENCED_FIELD(r.all, a.OptBool("all", false));
  if (r.all) {
    if (a.Has("clientIds")) return BadRequest("give clientIds or all, not both");
    return r;
  }
  PRESENCED_FIELD(r.client_ids, a.StringArray("clientIds"));
  return r;
}

Result<DeviceStatusRequest> DeviceStatusRequest::Parse(const Args& a) {
  DeviceStatusRequest r;
  const json::value* st = a.Get("status");
  if (st == nullptr) return BadRequest("missing field status");
  if (!st->is_string()) return BadRequest("status must be a string");
  auto status = engine::ParsePresence(st->as_string());
  if (!status) return BadRequest("status must be online, away, dnd or offline");
  r.status = *status;
  PRESENCED_FIELD(r.connection_id, a.OptString("connectionId"));
  return r;
}

Result<ActivityRequest> ActivityRequest::Parse(const Args& a) {
  ActivityRequest r;
  PRESENCED_FIELD(r.kind, a.String("kind"));
  PRESENCED_FIELD(r.channel, a.OptString("channel"));
  r.data = a.OptJson("data").value_or(JsonText());
  return r;
}

Result<ActivityGetRequest> ActivityGetRequest::Parse(const Args& a, size_t max_id_bytes) {
  ActivityGetRequest r;
  PRESENCED_FIELD(r.client_id, OptClientId(a, max_id_bytes));
  PRESENCED_FIELD(r.limit, Limit(a, 50, 1000));
  PRESENCED_FIELD(r.since, a.OptInt("since"));
  return r;
}

Result<DevicesRequest> DevicesRequest::Parse(const Args& a, size_t max_id_bytes) {
  DevicesRequest r;
  PRESENCED_FIELD(r.client_id, OptClientId(a, max_id_bytes));
  return r;
}

Result<WhoRequest> WhoRequest::Parse(const Args& a) {
  WhoRequest r;
  PRESENCED_FIELD(r.channel, a.OptString("channel"));
  return r;
}

Result<CommandRequest> CommandRequest::Parse(const Args& a) {
  CommandRequest r;
  PRESENCED_FIELD(r.text, a.String("text"));
  return r;
}

Result<ChannelListRequest> ChannelListRequest::Parse(const Args& a) {
  ChannelListRequest r;
  std::optional<std::string_view> after;
  PRESENCED_FIELD(after, a.OptString("after"));
  r.after = after.value_or("");
  PRESENCED_FIELD(r.limit, Limit(a, 1000, 10000));
  return r;
}

Result<ConnectionIdRequest> ConnectionIdRequest::Parse(const Args& a) {
  ConnectionIdRequest r;
  PRESENCED_FIELD(r.connection_id, a.String("connectionId"));
  return r;
}

Result<ServerMemberRequest> ServerMemberRequest::Parse(const Args& a) {
  ServerMemberRequest r;
  PRESENCED_FIELD(r.channel, a.String("channel"));
  const json::value* t = a.Get("ttlMs");
  if (t == nullptr) return BadRequest("missing field ttlMs");
  if (!t->is_int64() || t->as_int64() < kMinServerMemberTtlMs ||
      t->as_int64() > kMaxServerMemberTtlMs) {
    return BadRequest("ttlMs must be an integer from 1000 to 86400000");
  }
  r.ttl_ms = t->as_int64();
  r.data = a.OptJson("data");
  return r;
}

Result<TokenRequest> TokenRequest::Parse(const Args& a) {
  TokenRequest r;
  if (const json::value* c = a.Get("channels")) {
    if (!c->is_array()) return BadRequest("channels must be an array");
    r.channels.emplace();
    for (const auto& p : c->as_array()) {
      if (!p.is_string()) return BadRequest("channels must hold strings");
      r.channels->emplace_back(p.as_string());
    }
  }
  if (const json::value* t = a.Get("ttlMs")) {
    if (!t->is_int64() || t->as_int64() < 1000 || t->as_int64() > 30LL * 86400 * 1000) {
      return BadRequest("ttlMs must be an integer from 1000 to 2592000000");
    }
    r.ttl_ms = t->as_int64();
  }
  if (const json::value* roles = a.Get("roles")) {
    if (!roles->is_array()) return BadRequest("roles must be an array");
    for (const auto& p : roles->as_array()) {
      if (!p.is_string()) return BadRequest("roles must hold strings");
      r.roles.emplace_back(p.as_string());
    }
  }
  return r;
}

// ----- Agent sessions ---------------------------------------------------------------------------

std::string ConversationChannel(std::string_view conversation_id) {
  std::string out(kConversationPrefix);
  out += conversation_id;
  return out;
}

namespace {

Result<std::string_view> ConversationId(const Args& a, size_t max_id_bytes) {
  auto id = a.String("conversationId");
  if (!id.ok()) return id.error();
  if (Status st = CheckName(*id, "conversationId", max_id_bytes); !st) return st.error();
  return *id;
}

Result<std::optional<TimeMs>> Timeout(const Args& a, std::string_view key) {
  auto v = a.OptInt(key);
  if (!v.ok()) return v.error();
  constexpr int64_t kYear = 365LL * 86400 * 1000;
  if (*v && (**v < 1 || **v > kYear)) {
    return BadRequest(std::string(key) + " must be from 1 to " + std::to_string(kYear));
  }
  return *v;
}

}  // namespace

Result<ConversationRequest> ConversationRequest::Parse(const Args& a, size_t max_id_bytes) {
  auto id = ConversationId(a, max_id_bytes);
  if (!id.ok()) return id.error();
  return ConversationRequest{*id};
}

Result<SessionStartRequest> SessionStartRequest::Parse(const Args& a, size_t max_id_bytes) {
  SessionStartRequest r;
  auto id = ConversationId(a, max_id_bytes);
  if (!id.ok()) return id.error();
  r.conversation_id = *id;
  if (auto req = a.OptJson("request")) r.request = std::move(*req);
  auto inactivity = Timeout(a, "inactivityTimeoutMs");
  if (!inactivity.ok()) return inactivity.error();
  r.inactivity_timeout_ms = *inactivity;
  auto abandon = Timeout(a, "abandonAfterMs");
  if (!abandon.ok()) return abandon.error();
  r.abandon_after_ms = *abandon;
  return r;
}

Result<SessionFailRequest> SessionFailRequest::Parse(const Args& a, size_t max_id_bytes) {
  SessionFailRequest r;
  auto id = ConversationId(a, max_id_bytes);
  if (!id.ok()) return id.error();
  r.conversation_id = *id;
  auto error = a.OptString("error");
  if (!error.ok()) return error.error();
  if (*error) {
    if ((*error)->size() > 1024) {
      return MakeError(ErrorCode::kTooLarge, "error is longer than 1024 bytes");
    }
    r.error = **error;
  }
  return r;
}

Result<SessionServeRequest> SessionServeRequest::Parse(const Args& a) {
  SessionServeRequest r;
  auto capacity = a.OptInt("capacity");
  if (!capacity.ok()) return capacity.error();
  if (*capacity) {
    if (**capacity < 0 || **capacity > 1000000) {
      return BadRequest("capacity must be from 0 to 1000000");
    }
    r.capacity = static_cast<uint32_t>(**capacity);
  }
  return r;
}

#undef PRESENCED_FIELD

}  // namespace presenced::protocol
