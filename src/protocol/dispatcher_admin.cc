// The Dispatcher's part of authentication and administration (dispatcher.h): connections that send
// their token in the first frame (`auth`), token refresh, revocations, admin disconnects and
// server-side members. The Dispatcher's thread.
#include <algorithm>

#include "protocol/args.h"
#include "protocol/auth.h"
#include "protocol/codec.h"
#include "protocol/dispatcher.h"
#include "protocol/json_out.h"

namespace presenced::protocol {

namespace {
constexpr uint16_t kAuthFailedCode = 4003;
constexpr uint16_t kDisconnectedCode = 4002;
constexpr uint16_t kRevokedCode = 4004;
constexpr std::string_view kAuthFailed = "authentication failed";
constexpr std::string_view kServerDevice = "server";  // a server-side member's device
}  // namespace

TimeMs Dispatcher::LocalNow() const {
  return replication_ != nullptr ? SystemClock().NowMs() : clock_.NowMs();
}

bool Dispatcher::TokenRevoked(const ConnectRequest& request) const {
  auto it = revoked_.find(request.client_id);
  if (it == revoked_.end()) return false;
  // A token without `iat` cannot show it was issued after the revocation.
  return !request.issued_at_ms || *request.issued_at_ms < it->second;
}

// ----- First-frame authentication -------------------------------------------------------------

void Dispatcher::Authenticate(SessionId id, std::string_view text) {
  auto it = awaiting_auth_.find(id);
  AwaitingAuth waiting = std::move(it->second);
  awaiting_auth_.erase(it);
  Result<json::object> parsed = ParseRequestObject(text, /*finite=*/false);
  const json::value* op = parsed.ok() ? parsed->if_contains("op") : nullptr;
  const json::value* token = parsed.ok() ? parsed->if_contains("token") : nullptr;
  const json::value* key = parsed.ok() ? parsed->if_contains("apiKey") : nullptr;
  if (op == nullptr || !op->is_string() || op->as_string() != "auth") {
    return ClosePeer(waiting.peer, kAuthFailedCode, std::string(kAuthFailed));
  }
  if (key != nullptr && key->is_string() && token == nullptr) {
    // An observer: the API key instead of a token (a browser cannot set the header).
    if (!BearerMatches("Bearer " + std::string(key->as_string()), options_.api_key)) {
      return ClosePeer(waiting.peer, kAuthFailedCode, std::string(kAuthFailed));
    }
    MakeObserver(waiting.request);
    return Open(id, std::move(waiting.request), std::move(waiting.peer));
  }
  if (token == nullptr || !token->is_string()) {
    return ClosePeer(waiting.peer, kAuthFailedCode, std::string(kAuthFailed));
  }
  if (Status st = ApplyToken(waiting.request, token->as_string(), options_.jwt_secret, LocalNow(),
                             options_.engine.limits.max_id_bytes);
      !st) {
    return ClosePeer(waiting.peer, kAuthFailedCode, std::string(kAuthFailed));
  }
  Open(id, std::move(waiting.request), std::move(waiting.peer));
}

void Dispatcher::ExpireAuth() {
  const TimeMs now = LocalNow();
  while (!auth_deadlines_.empty() && auth_deadlines_.front().first <= now) {
    const SessionId id = auth_deadlines_.front().second;
    auth_deadlines_.pop_front();
    auto it = awaiting_auth_.find(id);
    if (it == awaiting_auth_.end()) continue;  // authenticated or gone meanwhile
    std::shared_ptr<Peer> peer = std::move(it->second.peer);
    awaiting_auth_.erase(it);
    ClosePeer(peer, kAuthFailedCode, std::string(kAuthFailed));
  }
}

void Dispatcher::ReAuth(Session& s, int64_t req_id, const json::object& request) {
  const json::value* token = request.if_contains("token");
  if (token == nullptr || !token->is_string()) {
    return Reply(s, ReplyError(req_id, BadRequest("token must be a string")));
  }
  ConnectRequest fresh;
  const TimeMs now = LocalNow();
  if (Status st = ApplyToken(fresh, token->as_string(), options_.jwt_secret, now,
                             options_.engine.limits.max_id_bytes);
      !st) {
    return Reply(s, ReplyError(req_id, st.error()));
  }
  if (fresh.client_id != s.client_id) {
    return Reply(s, ReplyError(req_id, MakeError(ErrorCode::kForbidden,
                                                 "the token is for another clientId")));
  }
  if (TokenRevoked(fresh)) return EndConnection(s.handle, kRevokedCode, "token revoked");
  s.channel_patterns = std::move(fresh.channel_patterns);
  s.worker = fresh.worker;
  std::string frame = ReplyOkPrefix(req_id);
  frame += ",\"expiresAt\":";
  frame += std::to_string(fresh.expires_at_ms);
  frame += '}';
  Reply(s, std::move(frame));
}

// ----- Admin ----------------------------------------------------------------------------------

bool Dispatcher::Socketless(engine::ConnectionHandle handle) const {
  return member_of_.count(handle) != 0 || agents_.IsAgent(handle);
}

void Dispatcher::EndConnection(engine::ConnectionHandle handle, uint16_t code,
                               const std::string& reason) {
  if (Session* s = sessions_.ByHandle(handle)) {
    std::shared_ptr<Peer> peer = s->peer;
    Forget(sessions_.Remove(s->id));
    ClosePeer(peer, code, reason);
  }
  (void)engine_.Close(handle);
  holder_.erase(handle);
  ConnectionEnded(handle);
  store_.PersistLastSeen();
}

Status Dispatcher::Disconnect(std::string_view connection_id) {
  const auto handle = engine_.FindConnectionById(connection_id);
  if (!handle || Socketless(*handle)) {
    return MakeError(ErrorCode::kNotFound, "no such connection: " + std::string(connection_id));
  }
  EndConnection(*handle, kDisconnectedCode, "disconnected by the server");
  return Status::Ok();
}

size_t Dispatcher::DisconnectUser(std::string_view client_id) {
  size_t closed = 0;
  for (engine::ConnectionHandle h : engine_.ConnectionsOf(client_id)) {
    if (Socketless(h)) continue;
    EndConnection(h, kDisconnectedCode, "disconnected by the server");
    ++closed;
  }
  return closed;
}

std::pair<TimeMs, size_t> Dispatcher::Revoke(std::string_view client_id) {
  // The engine's clock: the log's in cluster mode, so every node records the same time.
  const TimeMs before = clock_.NowMs();
  TimeMs& at = revoked_[std::string(client_id)];
  at = std::max(at, before);
  store_.PutRevocation(std::string(client_id), at);
  size_t closed = 0;
  for (engine::ConnectionHandle h : engine_.ConnectionsOf(client_id)) {
    if (Socketless(h)) continue;
    EndConnection(h, kRevokedCode, "token revoked");
    ++closed;
  }
  return {before, closed};
}

void Dispatcher::RestoreRevocations(const std::vector<std::pair<std::string, TimeMs>>& rows) {
  for (const auto& [client_id, before] : rows) {
    TimeMs& at = revoked_[client_id];
    at = std::max(at, before);
  }
}

Result<std::string> Dispatcher::PutMember(std::string_view client_id, std::string_view channel,
                                          std::optional<JsonText> data, TimeMs ttl_ms) {
  auto key = std::make_pair(std::string(client_id), std::string(channel));
  auto found = server_members_.find(key);
  const bool created = found == server_members_.end();
  engine::ConnectionHandle handle = 0;
  if (created) {
    auto attached = engine_.Attach(client_id, kServerDevice, 0);
    if (!attached.ok()) return attached.error();
    handle = attached->handle;
  } else {
    handle = found->second;
  }
  auto member = engine_.Enter(handle, channel, std::move(data), ttl_ms);
  if (!member.ok()) {
    if (created) (void)engine_.Close(handle);
    return member.error();
  }
  std::string out = "\"member\":";
  AppendMember(out, *member);
  out += created ? ",\"created\":true" : ",\"created\":false";
  if (created) {
    member_of_.emplace(handle, key);
    server_members_.emplace(std::move(key), handle);
  }
  store_.PersistLastSeen();
  return out;
}

Status Dispatcher::DeleteMember(std::string_view client_id, std::string_view channel) {
  auto found = server_members_.find(std::make_pair(std::string(client_id), std::string(channel)));
  if (found == server_members_.end()) {
    return MakeError(ErrorCode::kNotFound, "no server-side member of " + std::string(client_id) +
                                               " in " + std::string(channel));
  }
  const engine::ConnectionHandle handle = found->second;
  member_of_.erase(handle);
  server_members_.erase(found);
  (void)engine_.Leave(handle, channel, std::nullopt);
  (void)engine_.Close(handle);
  store_.PersistLastSeen();
  return Status::Ok();
}

void Dispatcher::EndServerMembers() {
  while (!ended_members_.empty()) {
    std::vector<engine::ConnectionHandle> ended;
    ended.swap(ended_members_);
    for (engine::ConnectionHandle h : ended) {
      auto it = member_of_.find(h);
      if (it == member_of_.end()) continue;
      server_members_.erase(it->second);
      member_of_.erase(it);
      (void)engine_.Close(h);
    }
  }
}

}  // namespace presenced::protocol
