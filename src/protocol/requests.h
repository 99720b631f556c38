// One typed struct per request, each filled by one Parse from Args (args.h), so an op's WebSocket
// message and its REST route share the parse (and its error messages). Parse checks types, ranges
// and names that are not channels; channels are checked against the caller's token by the op table
// (ops.h, flag kChannelOp). Views point into the Args' object: a request lives no longer than it.
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json_text.h"
#include "engine/types.h"
#include "protocol/args.h"
#include "storage/store.h"

namespace presenced::protocol {

struct NoFields {
  static Result<NoFields> Parse(const Args&) { return NoFields{}; }
};

// Ops on one channel named by the required field `channel` (unsubscribe, occupancy).
struct ChannelRequest {
  std::string_view channel;
  static Result<ChannelRequest> Parse(const Args& a);
};

struct EnterRequest {
  std::string_view channel;
  std::optional<JsonText> data;
  std::optional<TimeMs> ttl_ms;
  static Result<EnterRequest> Parse(const Args& a);
};

struct UpdateRequest {
  std::string_view channel;
  JsonText data;
  bool merge = false;
  std::optional<TimeMs> ttl_ms;
  static Result<UpdateRequest> Parse(const Args& a);
};

struct LeaveRequest {
  std::string_view channel;
  std::optional<JsonText> data;
  static Result<LeaveRequest> Parse(const Args& a);
};

struct GetRequest {
  std::string_view channel;
  std::optional<std::string_view> client_id;
  std::optional<std::string_view> connection_id;
  static Result<GetRequest> Parse(const Args& a);
};

struct SubscribeRequest {
  std::string_view channel;
  engine::ActionMask actions = engine::kAllActions;
  std::optional<int64_t> since;
  std::optional<std::string_view> epoch;
  static Result<SubscribeRequest> Parse(const Args& a);
};

struct HistoryRequest {
  std::string_view channel;
  storage::HistoryQuery query;  // everything but the channel
  static Result<HistoryRequest> Parse(const Args& a);
};

// A status change as `status.set` and `PUT /v1/users/{id}/status` carry it.
struct StatusSetRequest {
  std::optional<engine::Presence> status;
  std::optional<std::optional<std::string>> text;  // absent = unchanged; nullopt inside = clear
  static Result<StatusSetRequest> Parse(const Args& a);
};

// status.get, status.watch, status.unwatch.
struct ClientIdsRequest {
  std::vector<std::string> client_ids;
  static Result<ClientIdsRequest> Parse(const Args& a);
};

// status.watch / status.unwatch: `clientIds`, or `all` (observers: every user).
struct WatchRequest {
  std::vector<std::string> client_ids;
  bool all = false;
  static Result<WatchRequest> Parse(const Args& a);
};

// device.status.set, and PUT /v1/users/{clientId}/devices/{connectionId}/status.
struct DeviceStatusRequest {
  engine::Presence status = engine::Presence::kOnline;
  std::optional<std::string_view> connection_id;  // absent: the calling connection
  static Result<DeviceStatusRequest> Parse(const Args& a);
};

struct ActivityRequest {
  std::string_view kind;
  std::optional<std::string_view> channel;
  JsonText data;
  static Result<ActivityRequest> Parse(const Args& a);
};

// An optional `clientId` naming another user (devices, activity.get): the caller's own when absent.
struct ActivityGetRequest {
  std::optional<std::string_view> client_id;
  size_t limit = 50;  // at most 1000
  std::optional<TimeMs> since;
  static Result<ActivityGetRequest> Parse(const Args& a, size_t max_id_bytes);
};

struct DevicesRequest {
  std::optional<std::string_view> client_id;
  static Result<DevicesRequest> Parse(const Args& a, size_t max_id_bytes);
};

struct WhoRequest {
  std::optional<std::string_view> channel;
  static Result<WhoRequest> Parse(const Args& a);
};

struct CommandRequest {
  std::string_view text;
  static Result<CommandRequest> Parse(const Args& a);
};

// GET /v1/channels.
struct ChannelListRequest {
  std::string_view after;
  size_t limit = 1000;  // at most 10000
  static Result<ChannelListRequest> Parse(const Args& a);
};

// DELETE /v1/connections/{connectionId}.
struct ConnectionIdRequest {
  std::string_view connection_id;
  static Result<ConnectionIdRequest> Parse(const Args& a);
};

// PUT /v1/channels/{channel}/presence/{clientId}: a server-side member.
struct ServerMemberRequest {
  std::string_view channel;
  std::optional<JsonText> data;
  TimeMs ttl_ms = 0;  // required: 1 s to a day
  static Result<ServerMemberRequest> Parse(const Args& a);
};
inline constexpr TimeMs kMinServerMemberTtlMs = 1000;
inline constexpr TimeMs kMaxServerMemberTtlMs = 86400 * 1000;

// POST /v1/tokens.
struct TokenRequest {
  std::optional<std::vector<std::string>> channels;
  std::vector<std::string> roles;
  int64_t ttl_ms = 3600 * 1000;
  static Result<TokenRequest> Parse(const Args& a);
};

// ----- Agent sessions (protocol-ext §3)
// -----------------------------------------------------------

// The conversation channel of a conversation id.
std::string ConversationChannel(std::string_view conversation_id);
inline constexpr std::string_view kConversationPrefix = "conversation:";

// session.get, session.stop, session.touch, session.ready.
struct ConversationRequest {
  std::string_view conversation_id;
  static Result<ConversationRequest> Parse(const Args& a, size_t max_id_bytes);
};

// session.start, session.ensure, PUT /v1/sessions/{conversationId}.
struct SessionStartRequest {
  std::string_view conversation_id;
  JsonText request;  // null when absent
  std::optional<TimeMs> inactivity_timeout_ms;
  std::optional<TimeMs> abandon_after_ms;
  static Result<SessionStartRequest> Parse(const Args& a, size_t max_id_bytes);
};

struct SessionFailRequest {
  std::string_view conversation_id;
  std::string_view error;  // "" when absent; at most 1024 bytes
  static Result<SessionFailRequest> Parse(const Args& a, size_t max_id_bytes);
};

struct SessionServeRequest {
  uint32_t capacity = 100;
  static Result<SessionServeRequest> Parse(const Args& a);
};

}  // namespace presenced::protocol
