// The op table: every request the server answers is one row {name, flags, handler}, like
// Dragonfly's command families (hset_family.cc, Register) or centrifuge's dispatchCommand. The
// flags carry what would otherwise be repeated in each handler:
//   kChannelOp   the request's `channel` (required or optional) is a valid name allowed by the
//                caller's token;
//   kTouch       a read that counts as activity of the caller's device, once the request is valid
//                (after a synchronous answer, before a store-backed one starts);
//   kStoreBacked answered later (the store, the disk): the handler gets a Responder;
//   kRestOnly    reached through REST only: a WebSocket asking for it gets "unknown op".
//   kConversationOp the request's `conversationId` names a conversation whose channel
//                (conversation:{id}) the caller's token allows (agent sessions, protocol-ext §3).
//   kObserverOk  an observer connection (the API key, no user: presencectl watch, the
//                dashboard) may send it: reads and subscriptions, nothing that changes presence.
//   kSessionOp   about the WebSocket session itself (`auth`: its token), answered by the
//                Dispatcher on the node holding the socket; the row has no handler.
// Each handler takes its typed request (requests.h) and writes its reply fields; the WebSocket
// surface (Dispatcher::Message) and the REST routes (rest_routes.h) both run ops through this
// table. Adding an op: one row in ops.cc, one handler, its unit tests.
//
// Threading: the Dispatcher's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/engine.h"
#include "protocol/args.h"
#include "protocol/metrics.h"
#include "protocol/options.h"
#include "protocol/store_bridge.h"

namespace presenced::protocol {

enum OpFlag : uint32_t {
  kChannelOp = 1u << 0,
  kTouch = 1u << 1,
  kStoreBacked = 1u << 2,
  kRestOnly = 1u << 3,
  kConversationOp = 1u << 4,  // `conversationId`: its channel conversation:{id} is as kChannelOp
  kSessionOp = 1u << 5,
  kObserverOk = 1u << 6,
};

// What the admin REST routes ask of the Dispatcher (docs/protocol.md, "Admin"): its sessions,
// revocations and server-side members. On every node alike in cluster mode (each closes the
// sockets it holds).
class AdminControl {
 public:
  virtual ~AdminControl() = default;
  // Ends the connection at once: its members leave (reason disconnected), its socket closes
  // with 4002. not_found when no client connection has that id.
  virtual Status Disconnect(std::string_view connection_id) = 0;
  // The same for every connection of the user (live or in its grace period); how many.
  virtual size_t DisconnectUser(std::string_view client_id) = 0;
  // Tokens of the user issued before now (by `iat`) are refused from now on; live connections
  // of the user close with 4004. The time revoked before, and how many connections closed.
  virtual std::pair<TimeMs, size_t> Revoke(std::string_view client_id) = 0;
  // A server-side member of the user in the channel (PUT .../presence/{clientId}): entered, or
  // updated and its expiry renewed; reply fields `"member":M,"created":B`.
  virtual Result<std::string> PutMember(std::string_view client_id, std::string_view channel,
                                        std::optional<JsonText> data, TimeMs ttl_ms) = 0;
  // It leaves (reason left); not_found when there is none.
  virtual Status DeleteMember(std::string_view client_id, std::string_view channel) = 0;
};

// Who a request comes from.
struct Caller {
  std::string_view client_id;
  engine::ConnectionHandle handle = 0;  // 0: a backend over REST, acting for client_id
  // The token's channel patterns; null or nullopt: every channel.
  const std::optional<std::vector<std::string>>* patterns = nullptr;
  bool worker = false;  // the token's roles include "worker"

  bool AllChannels() const { return patterns == nullptr || !patterns->has_value(); }
  std::optional<std::vector<std::string>> Patterns() const {
    return AllChannels() ? std::nullopt : *patterns;
  }
};

// What handlers work with.
struct Core {
  const DispatcherOptions& options;
  const Clock& clock;
  engine::Engine& engine;
  StoreBridge& store;
  engine::SessionRegistry& sessions;
  AdminControl& admin;
  Metrics& metrics;
};

// One request being handled.
struct OpCall {
  Core& core;
  const Caller& caller;
  const Args& args;
  // kTouch counts as activity (false: a read a cluster node answers alone while Redis is down,
  // which must not change its engine apart from the others').
  bool touch = true;
};

// Receives a store-backed op's reply fields (or its error), once, on the Dispatcher's thread.
using Responder = std::function<void(Result<std::string>)>;

struct OpSpec {
  std::string_view name;
  uint32_t flags = 0;
  // Without kStoreBacked: the reply fields (`"a":..,"b":..`, no braces; may be empty).
  Result<std::string> (*sync)(OpCall&) = nullptr;
  // With kStoreBacked: an error now, or ok and `respond` is called later.
  Status (*async)(OpCall&, Responder respond) = nullptr;
};

// The row named `name`, or null.
const OpSpec* FindOp(std::string_view name);
std::span<const OpSpec> AllOps();
// The row's index in AllOps() (metrics).
inline size_t OpIndex(const OpSpec* op) { return static_cast<size_t>(op - AllOps().data()); }

// The checks of kChannelOp: a valid channel name the caller's token allows.
Status CheckChannel(const Core& core, const Caller& caller, std::string_view channel);

}  // namespace presenced::protocol
