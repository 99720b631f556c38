// The op table and one handler per op. Each handler runs on the Dispatcher's thread with its
// request already parsed and checked as its row's flags say (Prepare).
#include "protocol/ops.h"

#include <algorithm>
#include <array>
#include <memory>

#include "protocol/auth.h"
#include "protocol/chat_commands.h"
#include "protocol/codec.h"
#include "protocol/json_out.h"
#include "protocol/requests.h"

namespace presenced::protocol {

using engine::ConnectionHandle;

Status CheckChannel(const Core& core, const Caller& caller, std::string_view channel) {
  if (Status st = CheckName(channel, "channel", core.options.engine.limits.max_channel_bytes);
      !st) {
    return st;
  }
  if (caller.AllChannels() || AnyPatternMatches(**caller.patterns, channel)) return Status::Ok();
  return MakeError(ErrorCode::kForbidden, "channel not allowed by the token");
}

namespace {

// ----- Running a row ----------------------------------------------------------------------------

template <typename Req>
Result<Req> ParseRequest(const OpCall& c) {
  if constexpr (requires { Req::Parse(c.args, size_t{}); }) {
    return Req::Parse(c.args, c.core.options.engine.limits.max_id_bytes);
  } else {
    return Req::Parse(c.args);
  }
}

// Parses the request and applies the row's checks that come before the handler.
template <typename Req, uint32_t Flags>
Result<Req> Prepare(OpCall& c) {
  auto req = ParseRequest<Req>(c);
  if (!req.ok()) return req.error();
  if constexpr ((Flags & kChannelOp) != 0) {
    if constexpr (requires { req->channel.has_value(); }) {
      if (req->channel) {
        if (Status st = CheckChannel(c.core, c.caller, *req->channel); !st) return st.error();
      }
    } else {
      if (Status st = CheckChannel(c.core, c.caller, req->channel); !st) return st.error();
    }
  }
  if constexpr ((Flags & kConversationOp) != 0) {
    if (Status st = CheckChannel(c.core, c.caller, ConversationChannel(req->conversation_id)); !st)
      return st.error();
  }
  return req;
}

void Touch(OpCall& c) {
  if (c.touch && c.caller.handle != 0) (void)c.core.engine.Touch(c.caller.handle);
}

template <typename Req, Result<std::string> (*Handle)(OpCall&, Req&), uint32_t Flags>
Result<std::string> RunSync(OpCall& c) {
  auto req = Prepare<Req, Flags>(c);
  if (!req.ok()) return req.error();
  Result<std::string> fields = Handle(c, *req);
  if constexpr ((Flags & kTouch) != 0) {
    if (fields.ok()) Touch(c);
  }
  return fields;
}

template <typename Req, Status (*Handle)(OpCall&, Req&, Responder), uint32_t Flags>
Status RunAsync(OpCall& c, Responder respond) {
  auto req = Prepare<Req, Flags>(c);
  if (!req.ok()) return req.error();
  if constexpr ((Flags & kTouch) != 0) Touch(c);
  return Handle(c, *req, std::move(respond));
}

template <typename Req, Result<std::string> (*Handle)(OpCall&, Req&), uint32_t Flags = 0>
constexpr OpSpec Sync(std::string_view name) {
  return OpSpec{name, Flags, &RunSync<Req, Handle, Flags>, nullptr};
}

template <typename Req, Status (*Handle)(OpCall&, Req&, Responder), uint32_t Flags = 0>
constexpr OpSpec Async(std::string_view name) {
  return OpSpec{name, Flags | kStoreBacked, nullptr, &RunAsync<Req, Handle, Flags | kStoreBacked>};
}

// The fields of a one-field reply.
std::string Field(std::string_view key, auto append, const auto& value) {
  std::string out = "\"";
  out += key;
  out += "\":";
  append(out, value);
  return out;
}

// ----- Channel presence -----------------------------------------------------------------------

Result<std::string> Ping(OpCall&, NoFields&) { return std::string(); }

Result<std::string> Enter(OpCall& c, EnterRequest& r) {
  auto m = c.core.engine.Enter(c.caller.handle, r.channel, std::move(r.data), r.ttl_ms);
  if (!m.ok()) return m.error();
  return Field("member", AppendMember, *m);
}

Result<std::string> Update(OpCall& c, UpdateRequest& r) {
  auto m = c.core.engine.Update(c.caller.handle, r.channel, std::move(r.data), r.merge, r.ttl_ms);
  if (!m.ok()) return m.error();
  return Field("member", AppendMember, *m);
}

Result<std::string> Leave(OpCall& c, LeaveRequest& r) {
  if (Status st = c.core.engine.Leave(c.caller.handle, r.channel, std::move(r.data)); !st) {
    return st.error();
  }
  return std::string();
}

Result<std::string> Get(OpCall& c, GetRequest& r) {
  std::string out;
  AppendSnapshotFields(out, c.core.engine.Get(r.channel, {r.client_id, r.connection_id}),
                       c.core.options.epoch);
  return out;
}

Result<std::string> Subscribe(OpCall& c, SubscribeRequest& r) {
  std::optional<uint64_t> from;
  if (r.since && r.epoch && *r.epoch == c.core.options.epoch)
    from = static_cast<uint64_t>(*r.since);
  auto sub = c.core.engine.Subscribe(c.caller.handle, r.channel, r.actions, from);
  if (!sub.ok()) return sub.error();
  std::string out;
  AppendSubscribedFields(out, *sub, r.since.has_value(), c.core.options.epoch);
  return out;
}

Result<std::string> Unsubscribe(OpCall& c, ChannelRequest& r) {
  if (Status st = c.core.engine.Unsubscribe(c.caller.handle, r.channel); !st) return st.error();
  return std::string();
}

Result<std::string> Occupancy(OpCall& c, ChannelRequest& r) {
  std::string out;
  AppendOccupancyFields(out, c.core.engine.GetOccupancy(r.channel));
  return out;
}

Status History(OpCall& c, HistoryRequest& r, Responder respond) {
  r.query.channel = std::string(r.channel);
  c.core.store.QueryHistory(std::move(r.query),
                            [respond = std::move(respond)](Result<storage::HistoryPage> page) {
                              if (!page.ok()) return respond(page.error());
                              std::string out;
                              AppendHistoryPageFields(out, *page);
                              respond(std::move(out));
                            });
  return Status::Ok();
}

// GET /v1/channels (REST only).
Result<std::string> ListChannels(OpCall& c, ChannelListRequest& r) {
  const auto list = c.core.engine.ListChannels(r.after, r.limit + 1);
  std::string out;
  const bool more = list.size() > r.limit;  // the name to continue after
  AppendChannelListFields(
      out, std::span(list.data(), std::min(r.limit, list.size())),
      more ? std::optional<std::string_view>(list[r.limit - 1].channel) : std::nullopt);
  return out;
}

// ----- User status ------------------------------------------------------------------------------

Status StatusSet(OpCall& c, StatusSetRequest& r, Responder respond) {
  engine::Engine& e = c.core.engine;
  auto v = c.caller.handle != 0 ? e.SetStatus(c.caller.handle, r.status, std::move(r.text))
                                : e.SetStatusOf(c.caller.client_id, r.status, std::move(r.text));
  if (!v.ok()) return v.error();
  // A status set by hand is on disk before the reply goes out.
  c.core.store.PersistSettings(
      std::string(c.caller.client_id),
      [fields = Field("status", AppendStatus, *v), respond = std::move(respond)](Status st) {
        if (!st.ok()) return respond(st.error());
        respond(fields);
      });
  return Status::Ok();
}

Status StatusGet(OpCall& c, ClientIdsRequest& r, Responder respond) {
  c.core.store.StatusesOf(r.client_ids,
                          [respond = std::move(respond)](Result<std::string> statuses) {
                            if (!statuses.ok()) return respond(statuses.error());
                            respond("\"statuses\":" + *statuses);
                          });
  return Status::Ok();
}

Status CheckWatchesAll(const OpCall& c) {
  if (c.caller.client_id == engine::kObserverClientId) return Status::Ok();
  return MakeError(ErrorCode::kForbidden, "only an observer (the API key) may watch every user");
}

Result<std::string> StatusWatch(OpCall& c, WatchRequest& r) {
  if (r.all) {
    if (Status st = CheckWatchesAll(c); !st) return st.error();
    auto w = c.core.engine.WatchAll(c.caller.handle);
    if (!w.ok()) return w.error();
    return Field("statuses", AppendStatuses, *w);
  }
  auto w = c.core.engine.Watch(c.caller.handle, r.client_ids);
  if (!w.ok()) return w.error();
  return Field("statuses", AppendStatuses, *w);
}

Result<std::string> StatusUnwatch(OpCall& c, WatchRequest& r) {
  if (r.all) {
    if (Status st = CheckWatchesAll(c); !st) return st.error();
    if (Status st = c.core.engine.UnwatchAll(c.caller.handle); !st) return st.error();
    return std::string();
  }
  if (Status st = c.core.engine.Unwatch(c.caller.handle, r.client_ids); !st) return st.error();
  return std::string();
}

// device.status.set, and its REST route (on behalf of the user in the path).
Result<std::string> DeviceStatusSet(OpCall& c, DeviceStatusRequest& r) {
  engine::Engine& e = c.core.engine;
  Result<engine::DeviceChange> d = MakeError(ErrorCode::kInternal, "unset");
  if (c.caller.handle != 0) {
    d = e.SetDeviceStatus(c.caller.handle, r.connection_id, r.status);
  } else {
    if (!r.connection_id) return BadRequest("missing field connectionId");
    d = e.SetDeviceStatusOf(c.caller.client_id, *r.connection_id, r.status);
  }
  if (!d.ok()) return d.error();
  std::string out = Field("device", AppendDevice, d->device);
  out += ',';
  out += Field("status", AppendStatus, d->status);
  return out;
}

Result<std::string> RecordActivity(OpCall& c, ActivityRequest& r) {
  if (c.caller.handle == 0) {
    // POST /v1/users/{clientId}/activity: a backend records it for the user.
    auto a = c.core.engine.RecordActivityOf(c.caller.client_id, r.kind, r.channel.value_or(""),
                                            std::move(r.data));
    if (!a.ok()) return a.error();
    c.core.store.LastSeenDue(c.caller.client_id);
    return Field("activity", AppendActivity,
                 storage::StoredActivity{a->kind, a->channel, a->data, a->timestamp, ""});
  }
  Status st = c.core.engine.RecordActivity(c.caller.handle, r.kind, r.channel.value_or(""),
                                           std::move(r.data));
  if (!st) return st.error();
  return std::string();
}

Status ActivityGet(OpCall& c, ActivityGetRequest& r, Responder respond) {
  c.core.store.ActivitiesFor(
      c.caller.client_id, c.caller.Patterns(),
      std::string(r.client_id.value_or(c.caller.client_id)), r.limit, r.since,
      [respond = std::move(respond)](Result<std::vector<storage::StoredActivity>> list) {
        if (!list.ok()) return respond(list.error());
        respond(Field("activities", AppendActivities, *list));
      });
  return Status::Ok();
}

Result<std::string> Devices(OpCall& c, DevicesRequest& r) {
  const auto list =
      c.core.engine.Devices(r.client_id.value_or(c.caller.client_id), c.caller.client_id);
  return Field("devices", AppendDevices, list);
}

Result<std::string> Who(OpCall& c, WhoRequest& r) {
  return Field("users", AppendStatuses, c.core.engine.Who(r.channel));
}

// POST /v1/users/{clientId}/sync (pushes the current status to each live device) and GET (only
// reports).
std::string SyncFields(const engine::SyncReport& report) {
  std::string data = SyncReportData(report);
  return data.substr(1, data.size() - 2);  // the object's fields
}

Result<std::string> SyncOp(OpCall& c, NoFields&) {
  return SyncFields(c.core.engine.SyncStatus(c.caller.client_id));
}

Result<std::string> SyncGetOp(OpCall& c, NoFields&) {
  return SyncFields(c.core.engine.SyncState(c.caller.client_id));
}

Status Command(OpCall& c, CommandRequest& r, Responder respond) {
  RunCommand(c, r.text, std::move(respond));
  return Status::Ok();
}

// POST /v1/tokens (REST only): a token for the caller.
Result<std::string> MintTokenOp(OpCall& c, TokenRequest& r) {
  const TimeMs now = c.core.clock.NowMs();
  auto token = MintToken(c.core.options.jwt_secret, c.caller.client_id, r.ttl_ms / 1000, r.channels,
                         now, r.roles);
  if (!token.ok()) return token.error();
  std::string out;
  AppendTokenFields(out, *token, now / 1000 * 1000 + r.ttl_ms / 1000 * 1000);
  return out;
}

// ----- Admin (REST only) ------------------------------------------------------------------------

Result<std::string> DisconnectOp(OpCall& c, ConnectionIdRequest& r) {
  if (Status st = c.core.admin.Disconnect(r.connection_id); !st) return st.error();
  return std::string();
}

Result<std::string> DisconnectUserOp(OpCall& c, NoFields&) {
  return "\"closed\":" + std::to_string(c.core.admin.DisconnectUser(c.caller.client_id));
}

Result<std::string> RevokeOp(OpCall& c, NoFields&) {
  const auto [before, closed] = c.core.admin.Revoke(c.caller.client_id);
  return "\"revokedBefore\":" + std::to_string(before) + ",\"closed\":" + std::to_string(closed);
}

Result<std::string> PutMemberOp(OpCall& c, ServerMemberRequest& r) {
  return c.core.admin.PutMember(c.caller.client_id, r.channel, std::move(r.data), r.ttl_ms);
}

Result<std::string> DeleteMemberOp(OpCall& c, ChannelRequest& r) {
  if (Status st = c.core.admin.DeleteMember(c.caller.client_id, r.channel); !st) return st.error();
  return std::string();
}

// ----- Agent sessions (protocol-ext §3) ----------------------------------------------------------

Result<std::string> SessionStartFor(OpCall& c, SessionStartRequest& r, bool subscribe) {
  if (!r.request.is_null() && r.request.text().size() > c.core.options.engine.limits.max_data_bytes)
    return MakeError(ErrorCode::kTooLarge, "request is larger than the data limit");
  if (subscribe && c.caller.handle == 0) return BadRequest("session.ensure needs a connection");
  engine::SessionRegistry& reg = c.core.sessions;
  engine::SessionRegistry::StartOptions opts;
  opts.request = std::move(r.request);
  opts.inactivity_timeout_ms = r.inactivity_timeout_ms;
  opts.abandon_after_ms = r.abandon_after_ms;
  if (!reg.Has(r.conversation_id)) {
    const std::string agent = reg.AgentIdFor(r.conversation_id);
    const auto members = c.core.engine.Get(ConversationChannel(r.conversation_id)).members;
    opts.others_present = static_cast<size_t>(std::count_if(
        members.begin(), members.end(), [&](const auto& m) { return m.client_id != agent; }));
  }
  auto started = reg.Start(r.conversation_id, std::move(opts));
  if (!started.ok()) return started.error();
  std::string out = "\"session\":";
  AppendSession(out, started->session);
  out += ",\"created\":";
  AppendBool(out, started->created);
  if (subscribe) {
    if (Status st = reg.Subscribe(c.caller.handle, r.conversation_id); !st) return st.error();
  }
  return out;
}

Result<std::string> SessionStart(OpCall& c, SessionStartRequest& r) {
  return SessionStartFor(c, r, false);
}

Result<std::string> SessionEnsure(OpCall& c, SessionStartRequest& r) {
  return SessionStartFor(c, r, true);
}

Result<std::string> SessionGet(OpCall& c, ConversationRequest& r) {
  std::string out = "\"session\":";
  if (auto s = c.core.sessions.Get(r.conversation_id)) {
    AppendSession(out, *s);
  } else {
    out += "null";
  }
  return out;
}

Result<std::string> SessionStop(OpCall& c, ConversationRequest& r) {
  return Field("stopped", AppendBool, c.core.sessions.Stop(r.conversation_id));
}

Result<std::string> SessionServe(OpCall& c, SessionServeRequest& r) {
  if (!c.caller.worker) {
    return MakeError(ErrorCode::kForbidden, "only a token with the worker role may serve sessions");
  }
  const engine::Identity* who = c.core.engine.IdentityOf(c.caller.handle);
  if (who == nullptr) return MakeError(ErrorCode::kInternal, "unknown connection");
  const std::string connection_id = who->connection_id;
  if (Status st = c.core.sessions.Serve(c.caller.handle, connection_id, r.capacity); !st)
    return st.error();
  return std::string();
}

Result<std::string> SessionReady(OpCall& c, ConversationRequest& r) {
  if (Status st = c.core.sessions.Ready(c.caller.handle, r.conversation_id); !st) return st.error();
  return std::string();
}

Result<std::string> SessionFail(OpCall& c, SessionFailRequest& r) {
  if (Status st = c.core.sessions.Fail(c.caller.handle, r.conversation_id, r.error); !st)
    return st.error();
  return std::string();
}

Result<std::string> SessionTouch(OpCall& c, ConversationRequest& r) {
  if (Status st = c.core.sessions.Touch(r.conversation_id); !st) return st.error();
  return std::string();
}

// GET /v1/sessions (REST only).
Result<std::string> SessionList(OpCall& c, NoFields&) {
  const auto list = c.core.sessions.List();
  return Field("sessions", AppendSessions, std::span<const engine::SessionView>(list));
}

// ----- The table
// ----------------------------------------------------------------------------------

constexpr std::array kOps = {
    Sync<NoFields, Ping, kObserverOk>("ping"),
    Sync<EnterRequest, Enter, kChannelOp>("enter"),
    Sync<UpdateRequest, Update, kChannelOp>("update"),
    Sync<LeaveRequest, Leave, kChannelOp>("leave"),
    Sync<GetRequest, Get, kChannelOp | kTouch | kObserverOk>("get"),
    Sync<SubscribeRequest, Subscribe, kChannelOp | kObserverOk>("subscribe"),
    Sync<ChannelRequest, Unsubscribe, kChannelOp | kObserverOk>("unsubscribe"),
    Sync<ChannelRequest, Occupancy, kChannelOp | kTouch | kObserverOk>("occupancy"),
    Async<HistoryRequest, History, kChannelOp | kTouch | kObserverOk>("history"),
    Async<StatusSetRequest, StatusSet>("status.set"),
    Async<ClientIdsRequest, StatusGet, kTouch | kObserverOk>("status.get"),
    Sync<WatchRequest, StatusWatch, kObserverOk>("status.watch"),
    Sync<WatchRequest, StatusUnwatch, kObserverOk>("status.unwatch"),
    Sync<DeviceStatusRequest, DeviceStatusSet>("device.status.set"),
    Sync<ActivityRequest, RecordActivity, kChannelOp>("activity"),
    Async<ActivityGetRequest, ActivityGet, kTouch | kObserverOk>("activity.get"),
    Sync<DevicesRequest, Devices, kTouch | kObserverOk>("devices"),
    Sync<WhoRequest, Who, kChannelOp | kTouch | kObserverOk>("who"),
    Async<CommandRequest, Command, kTouch>("command"),
    Sync<ChannelListRequest, ListChannels, kRestOnly>("channels"),
    Sync<TokenRequest, MintTokenOp, kRestOnly>("tokens"),
    Sync<NoFields, SyncOp, kRestOnly>("sync"),
    Sync<NoFields, SyncGetOp, kRestOnly>("sync.get"),
    Sync<SessionStartRequest, SessionStart, kConversationOp>("session.start"),
    Sync<SessionStartRequest, SessionEnsure, kConversationOp>("session.ensure"),
    Sync<ConversationRequest, SessionGet, kConversationOp | kTouch | kObserverOk>("session.get"),
    Sync<ConversationRequest, SessionStop, kConversationOp>("session.stop"),
    Sync<SessionServeRequest, SessionServe>("session.serve"),
    Sync<ConversationRequest, SessionReady, kConversationOp>("session.ready"),
    Sync<SessionFailRequest, SessionFail, kConversationOp>("session.fail"),
    Sync<ConversationRequest, SessionTouch, kConversationOp>("session.touch"),
    Sync<NoFields, SessionList, kRestOnly>("sessions"),
    Sync<ConnectionIdRequest, DisconnectOp, kRestOnly>("admin.disconnect"),
    Sync<NoFields, DisconnectUserOp, kRestOnly>("admin.disconnect_user"),
    Sync<NoFields, RevokeOp, kRestOnly>("admin.revoke"),
    Sync<ServerMemberRequest, PutMemberOp, kRestOnly | kChannelOp>("admin.member.put"),
    Sync<ChannelRequest, DeleteMemberOp, kRestOnly | kChannelOp>("admin.member.delete"),
    // The WebSocket session's own token (Dispatcher::ReAuth); no handler.
    OpSpec{"auth", kSessionOp, nullptr, nullptr},
};

static_assert(kOps.size() <= Metrics::kMaxOps, "raise Metrics::kMaxOps");

}  // namespace

const OpSpec* FindOp(std::string_view name) {
  for (const OpSpec& op : kOps) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

std::span<const OpSpec> AllOps() { return kOps; }

}  // namespace presenced::protocol
