#include "protocol/dispatcher.h"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <cmath>

#include "common/utf8.h"
#include "dashboard/assets.h"
#include "protocol/auth.h"
#include "protocol/codec.h"
#include "protocol/commands.h"
#include "protocol/json_out.h"

namespace presenced::protocol {

namespace json = boost::json;
using engine::Action;
using engine::ActionMask;
using engine::Presence;

namespace {

Error BadRequest(std::string why) { return MakeError(ErrorCode::kBadRequest, std::move(why)); }

// Boost.JSON reads a number too large for a double (1e400, a 5,000-digit integer) as infinity,
// which would be stored and sent on as text that no JSON parser accepts.
bool AllNumbersFinite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return std::isfinite(v.get_double());
    case json::kind::array:
      for (const json::value& e : v.get_array()) {
        if (!AllNumbersFinite(e)) return false;
      }
      return true;
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (!AllNumbersFinite(kv.value())) return false;
      }
      return true;
    default:
      return true;
  }
}

// Parses a request (a WebSocket message or a REST body) as one JSON object nested at most
// kMaxJsonDepth deep. Strings are valid UTF-8 (Boost.JSON checks). With `finite`, a number out of
// a double's range is refused too; without, the caller checks (CheckNumbers) once it knows the id.
Result<json::object> ParseRequestObject(std::string_view text, bool finite = true) {
  json::parse_options opts;
  opts.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return BadRequest("malformed JSON: " + ec.message());
  if (!v.is_object()) return BadRequest("a request must be a JSON object");
  if (finite && !AllNumbersFinite(v)) return BadRequest("a number is out of range");
  return std::move(v.as_object());
}

Status CheckNumbers(const json::object& o) {
  for (const auto& kv : o) {
    if (!AllNumbersFinite(kv.value())) return BadRequest("a number is out of range");
  }
  return Status::Ok();
}

// A name a client sends (channel, clientId, device): not empty, at most `max` bytes, valid UTF-8.
// Names reach other users' frames, so one that is not valid UTF-8 is refused at the edge.
Status CheckName(std::string_view value, std::string_view what, size_t max) {
  if (value.empty()) return BadRequest(std::string(what) + " must not be empty");
  if (value.size() > max) {
    return MakeError(ErrorCode::kTooLarge,
                     std::string(what) + " longer than " + std::to_string(max) + " bytes");
  }
  if (!IsValidUtf8(value)) return BadRequest(std::string(what) + " is not valid UTF-8");
  return Status::Ok();
}

JsonText ToJsonText(const json::value& v) {
  if (v.is_null()) return JsonText();
  return JsonText::FromSerialized(json::serialize(v));
}

std::optional<int64_t> AsInt(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.as_uint64());
  }
  if (v.is_double()) {
    const double d = v.as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// A status change as both `status.set` and `PUT /v1/users/{id}/status` carry it.
struct StatusFields {
  std::optional<Presence> status;
  std::optional<std::optional<std::string>> text;  // absent = unchanged; nullopt inside = clear
};

Result<StatusFields> ParseStatusFields(const json::object& o) {
  StatusFields f;
  if (const json::value* st = o.if_contains("status")) {
    if (!st->is_string()) return BadRequest("status must be a string");
    f.status = engine::ParsePresence(st->as_string());
    if (!f.status) return BadRequest("status must be online, away, dnd or offline");
  }
  if (const json::value* t = o.if_contains("text")) {
    if (t->is_null()) {
      f.text = std::optional<std::string>();
    } else if (t->is_string()) {
      f.text = std::optional<std::string>(std::string(t->as_string()));
    } else {
      return BadRequest("text must be a string or null");
    }
  }
  return f;
}

// `"members":[...],"serial":N,"epoch":S` (the fields of `get` and REST presence).
void AppendSnapshotFields(std::string& out, const engine::Snapshot& snap, std::string_view epoch) {
  out += R"("members":)";
  AppendMembers(out, snap.members);
  out += R"(,"serial":)";
  AppendUint(out, snap.serial);
  out += R"(,"epoch":)";
  AppendQuoted(out, epoch);
}

// `"members":N,"clients":N`.
void AppendOccupancyFields(std::string& out, const engine::Occupancy& o) {
  out += R"("members":)";
  AppendUint(out, o.members);
  out += R"(,"clients":)";
  AppendUint(out, o.clients);
}

}  // namespace

// Typed access to the fields of one request object; every failure is a bad_request naming the
// field.
class Dispatcher::Request {
 public:
  explicit Request(const json::object& o) : o_(o) {}

  bool Has(std::string_view key) const { return o_.contains(key); }

  Result<std::string_view> String(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) return BadRequest("missing field " + std::string(key));
    if (!v->is_string()) return BadRequest(std::string(key) + " must be a string");
    return std::string_view(v->as_string());
  }
  Result<std::optional<std::string_view>> OptString(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) return std::optional<std::string_view>();
    if (!v->is_string()) return BadRequest(std::string(key) + " must be a string");
    return std::optional<std::string_view>(std::string_view(v->as_string()));
  }
  Result<std::optional<int64_t>> OptInt(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) return std::optional<int64_t>();
    auto i = AsInt(*v);
    if (!i) return BadRequest(std::string(key) + " must be an integer");
    return std::optional<int64_t>(*i);
  }
  Result<bool> OptBool(std::string_view key, bool fallback) const {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) return fallback;
    if (!v->is_bool()) return BadRequest(std::string(key) + " must be a boolean");
    return v->as_bool();
  }
  Result<std::vector<std::string>> StringArray(std::string_view key) const {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) return BadRequest("missing field " + std::string(key));
    if (!v->is_array()) return BadRequest(std::string(key) + " must be an array of strings");
    std::vector<std::string> out;
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) return BadRequest(std::string(key) + " must be an array of strings");
      out.emplace_back(e.as_string());
    }
    return out;
  }
  const json::value* Get(std::string_view key) const { return o_.if_contains(key); }
  const json::object& object() const { return o_; }

 private:
  const json::object& o_;
};

Dispatcher::Dispatcher(DispatcherOptions options, const presenced::Clock& clock,
                       RandomSource& random, storage::Store& store, Metrics& metrics, Poster post)
    : options_(std::move(options)),
      clock_(clock),
      store_(store),
      metrics_(metrics),
      post_(std::move(post)),
      engine_(options_.engine, clock, random, *this) {
  next_checkpoint_ = clock_.NowMs() + options_.last_seen_checkpoint_ms;
}

void Dispatcher::Tick() {
  engine_.Tick();
  const TimeMs now = clock_.NowMs();
  if (now >= next_checkpoint_) {
    for (auto& [client_id, last_seen] : engine_.LastSeenCheckpoint()) {
      store_.PutLastSeen(std::move(client_id), last_seen);
    }
    next_checkpoint_ = now + options_.last_seen_checkpoint_ms;
  }
  PersistLastSeen();
  metrics_.PublishEngine(engine_.channel_count(), engine_.member_count(),
                         engine_.connection_count(), engine_.user_count());
}

std::optional<TimeMs> Dispatcher::NextDeadline() const {
  auto engine = engine_.NextDeadline();
  return engine ? std::min(*engine, next_checkpoint_) : next_checkpoint_;
}

void Dispatcher::Remember(const storage::UserRecord& stored) {
  if (engine_.KnowsUser(stored.client_id)) return;  // the engine's own state is newer
  engine::Engine::UserSettings settings;
  settings.manual = engine::ParsePresence(stored.manual).value_or(Presence::kOnline);
  settings.text = stored.text;
  engine_.RestoreUser(stored.client_id, std::move(settings), stored.last_seen);
}

void Dispatcher::PersistLastSeen() {
  while (!last_seen_due_.empty()) {
    std::vector<std::string> users;
    users.swap(last_seen_due_);
    for (auto& id : users) {
      engine::StatusView v = engine_.GetStatus(id);  // may run timers, which may add users
      if (v.last_seen) store_.PutLastSeen(std::move(id), *v.last_seen);
    }
  }
}

void Dispatcher::PersistSettings(const std::string& client_id,
                                 std::function<void(Status)> durable) {
  auto settings = engine_.SettingsOf(client_id);
  storage::UserRecord record;
  record.client_id = client_id;
  if (settings) {
    record.manual = settings->manual == Presence::kOnline
                        ? ""
                        : std::string(engine::PresenceName(settings->manual));
    record.text = settings->text;
  }
  // lastSeen goes in the same commit (it may have frozen: appear offline), so a status on disk
  // never lacks the lastSeen of its moment.
  if (auto last_seen = engine_.GetStatus(client_id).last_seen) record.last_seen = *last_seen;
  store_.PutUserStatus(std::move(record), std::move(durable));
}

// ----- Sessions -------------------------------------------------------------------------------

void Dispatcher::Open(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer) {
  if (shutting_down_) {
    ClosePeer(peer, 1001, "server shutting down");
    return;
  }
  const TimeMs remain = std::clamp<TimeMs>(
      request.remain_present_for_ms.value_or(options_.default_remain_present_for_ms), 0,
      options_.max_remain_present_for_ms);

  if (request.stored_user) Remember(*request.stored_user);

  engine::Attached attached;
  bool resumed = false;
  std::vector<engine::CatchUp> catch_up;
  std::optional<engine::Resumed> resumed_result;
  if (request.resume_key) {
    auto r = engine_.Resume(*request.resume_key, request.client_id, remain);
    if (r.ok()) {
      resumed = true;
      resumed_result = std::move(r).value();
      attached = resumed_result->connection;
      if (resumed_result->was_live) {
        // The old socket still looked alive: it is superseded. Forget it first, so its end is not
        // taken for this connection's.
        auto old = by_handle_.find(attached.handle);
        if (old != by_handle_.end()) {
          auto s = sessions_.find(old->second);
          if (s != sessions_.end()) {
            ClosePeer(s->second.peer, 4000, "resumed on another connection");
            sessions_.erase(s);
          }
          by_handle_.erase(old);
        }
      }
    }
  }
  if (!resumed) {
    auto r = engine_.Attach(request.client_id, request.device, remain);
    if (!r.ok()) {
      Queue(peer, std::make_shared<const std::string>(ReplyError(std::nullopt, r.error())));
      ClosePeer(peer, 1008, r.error().message);
      return;
    }
    attached = *r;
    PersistLastSeen();  // the user may have just come online
  }

  Session& s = sessions_[id];
  s.handle = attached.handle;
  s.peer = std::move(peer);
  s.client_id = request.client_id;
  s.channel_patterns = std::move(request.channel_patterns);
  s.tokens = options_.rate_burst;
  s.refilled_at = clock_.NowMs();
  by_handle_[attached.handle] = id;

  std::string frame = R"({"type":"connected","connectionId":)";
  AppendQuoted(frame, attached.connection_id);
  frame += R"(,"connectionKey":)";
  AppendQuoted(frame, attached.connection_key);
  frame += R"(,"clientId":)";
  AppendQuoted(frame, attached.client_id);
  frame += R"(,"heartbeatMs":)";
  AppendInt(frame, request.heartbeat_ms);
  frame += R"(,"remainPresentForMs":)";
  AppendInt(frame, attached.remain_present_for_ms);
  frame += R"(,"resumed":)";
  AppendBool(frame, resumed);
  frame += R"(,"epoch":)";
  AppendQuoted(frame, options_.epoch);
  frame += '}';
  Reply(s, std::move(frame));

  if (resumed_result) {
    for (const engine::CatchUp& cu : resumed_result->catch_up) {
      if (cu.snapshot) {
        std::string sync = R"({"type":"sync","channel":)";
        AppendQuoted(sync, cu.channel);
        sync += R"(,"members":)";
        AppendMembers(sync, cu.members);
        sync += R"(,"serial":)";
        AppendUint(sync, cu.serial);
        sync += '}';
        Reply(s, std::move(sync));
      } else {
        for (const engine::PresenceEvent& e : cu.events) Reply(s, EventFrame(e));
      }
    }
  }
}

void Dispatcher::Closed(SessionId id, bool clean) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;  // superseded, or never opened
  const engine::ConnectionHandle handle = it->second.handle;
  sessions_.erase(it);
  by_handle_.erase(handle);
  if (clean) {
    (void)engine_.Close(handle);
  } else {
    (void)engine_.Drop(handle);
  }
  PersistLastSeen();
}

void Dispatcher::Shutdown() {
  shutting_down_ = true;
  engine_.Shutdown();
  PersistLastSeen();
  FlushOutbound();  // every leave goes out before its socket's close frame
  for (auto& [id, s] : sessions_) s.peer->Close(1001, "server shutting down");
  sessions_.clear();
  by_handle_.clear();
}

void Dispatcher::Reply(Session& s, std::string frame) {
  Queue(s.peer, std::make_shared<const std::string>(std::move(frame)));
}

void Dispatcher::Queue(const std::shared_ptr<Peer>& peer,
                       std::shared_ptr<const std::string> frame) {
  Outbox& box = outbox_[peer.get()];
  if (!box.peer) box.peer = peer;
  box.frames.push_back(std::move(frame));
  ++outbox_frames_;
}

void Dispatcher::FlushOutbound() {
  for (auto& [raw, box] : outbox_) box.peer->SendBatch(std::move(box.frames));
  outbox_.clear();
  outbox_frames_ = 0;
}

void Dispatcher::ClosePeer(const std::shared_ptr<Peer>& peer, uint16_t code, std::string reason) {
  FlushOutbound();
  peer->Close(code, std::move(reason));
}

void Dispatcher::SendTo(engine::ConnectionHandle handle,
                        const std::shared_ptr<const std::string>& frame) {
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end()) return;
  auto s = sessions_.find(it->second);
  if (s == sessions_.end()) return;
  Queue(s->second.peer, frame);
  metrics_.deliveries_total.fetch_add(1, std::memory_order_relaxed);
}

bool Dispatcher::TakeToken(Session& s) {
  const TimeMs now = clock_.NowMs();
  if (now > s.refilled_at) {
    s.tokens = std::min(options_.rate_burst, s.tokens + static_cast<double>(now - s.refilled_at) *
                                                            options_.rate_per_second / 1000.0);
    s.refilled_at = now;
  }
  if (s.tokens < 1.0) return false;
  s.tokens -= 1.0;
  return true;
}

Status Dispatcher::CheckChannel(const Session& s, std::string_view channel) const {
  if (Status st = CheckName(channel, "channel", options_.engine.limits.max_channel_bytes); !st) {
    return st;
  }
  if (!s.channel_patterns || AnyPatternMatches(*s.channel_patterns, channel)) return Status::Ok();
  return MakeError(ErrorCode::kForbidden, "channel not allowed by the token");
}

// ----- WebSocket requests ---------------------------------------------------------------------

void Dispatcher::Message(SessionId id, std::string_view text, Clock::time_point received) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  metrics_.requests_total.fetch_add(1, std::memory_order_relaxed);

  auto fail = [&](std::optional<int64_t> req_id, const Error& e) {
    metrics_.request_errors_total.fetch_add(1, std::memory_order_relaxed);
    Reply(s, ReplyError(req_id, e));
  };

  Result<json::object> parsed = ParseRequestObject(text, /*finite=*/false);
  if (!parsed.ok()) return fail(std::nullopt, parsed.error());
  const json::object& o = *parsed;
  std::optional<int64_t> req_id;
  if (const json::value* idv = o.if_contains("id")) req_id = AsInt(*idv);
  if (Status st = CheckNumbers(o); !st) return fail(req_id, st.error());
  if (!TakeToken(s)) {
    metrics_.rate_limited_total.fetch_add(1, std::memory_order_relaxed);
    return fail(req_id, MakeError(ErrorCode::kRateLimited, "too many requests; slow down"));
  }
  if (!req_id) return fail(std::nullopt, BadRequest("id must be an integer"));
  const json::value* opv = o.if_contains("op");
  if (opv == nullptr || !opv->is_string()) return fail(req_id, BadRequest("op must be a string"));

  Request r(o);
  bool async = false;
  Result<std::string> fields = Handle(s, opv->as_string(), r, *req_id, async);
  PersistLastSeen();
  if (async) return;  // the handler replies itself
  if (!fields.ok()) return fail(req_id, fields.error());
  std::string frame = ReplyOkPrefix(*req_id);
  frame += *fields;
  frame += '}';
  Reply(s, std::move(frame));
  metrics_.request_latency.Observe(std::chrono::duration<double>(Clock::now() - received).count());
}

Result<std::string> Dispatcher::Handle(Session& s, std::string_view op, Request& r, int64_t id,
                                       bool& async) {
  std::string out;
  const engine::ConnectionHandle h = s.handle;

  // Channel ops share the channel field and the token check.
  auto channel_of = [&]() -> Result<std::string_view> {
    auto ch = r.String("channel");
    if (!ch.ok()) return ch.error();
    if (Status st = CheckChannel(s, *ch); !st) return st.error();
    return *ch;
  };
  // An optional clientId naming another user (activity.get, devices): the caller's own by default.
  auto client_of = [&]() -> Result<std::string_view> {
    auto client = r.OptString("clientId");
    if (!client.ok()) return client.error();
    if (!*client) return std::string_view(s.client_id);
    if (Status st = CheckName(**client, "clientId", options_.engine.limits.max_id_bytes); !st) {
      return st.error();
    }
    return **client;
  };
  auto optional_data = [&](std::string_view key) -> std::optional<JsonText> {
    const json::value* d = r.Get(key);
    if (d == nullptr) return std::nullopt;
    return ToJsonText(*d);
  };
  auto ttl = [&]() -> Result<std::optional<TimeMs>> { return r.OptInt("ttlMs"); };

  if (op == "ping") return out;

  if (op == "enter" || op == "update") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    auto t = ttl();
    if (!t.ok()) return t.error();
    Result<engine::MemberView> m = MakeError(ErrorCode::kInternal, "");
    if (op == "enter") {
      m = engine_.Enter(h, *ch, optional_data("data"), *t);
    } else {
      if (!r.Has("data")) return BadRequest("missing field data");
      auto merge = r.OptBool("merge", false);
      if (!merge.ok()) return merge.error();
      m = engine_.Update(h, *ch, *optional_data("data"), *merge, *t);
    }
    if (!m.ok()) return m.error();
    out += R"(,"member":)";
    AppendMember(out, *m);
    return out;
  }
  if (op == "leave") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    if (Status st = engine_.Leave(h, *ch, optional_data("data")); !st) return st.error();
    return out;
  }
  if (op == "get") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    auto client = r.OptString("clientId");
    if (!client.ok()) return client.error();
    auto conn = r.OptString("connectionId");
    if (!conn.ok()) return conn.error();
    out += ',';
    AppendSnapshotFields(out, engine_.Get(*ch, {*client, *conn}), options_.epoch);
    (void)engine_.Touch(h);
    return out;
  }
  if (op == "subscribe") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    ActionMask mask = engine::kAllActions;
    if (r.Has("actions")) {
      auto actions = r.StringArray("actions");
      if (!actions.ok()) return actions.error();
      if (actions->empty()) return BadRequest("actions must not be empty");
      mask = 0;
      for (const auto& a : *actions) {
        auto parsed = engine::ParseAction(a);
        if (!parsed) return BadRequest("unknown action " + a);
        mask |= engine::ActionBit(*parsed);
      }
    }
    auto since = r.OptInt("since");
    if (!since.ok()) return since.error();
    if (*since && **since < 0) return BadRequest("since must not be negative");
    auto epoch = r.OptString("epoch");
    if (!epoch.ok()) return epoch.error();
    std::optional<uint64_t> from;
    if (*since && *epoch && **epoch == options_.epoch) from = static_cast<uint64_t>(**since);
    auto sub = engine_.Subscribe(h, *ch, mask, from);
    if (!sub.ok()) return sub.error();
    if (sub->has_events) {
      out += R"(,"events":)";
      AppendEvents(out, sub->events);
    } else {
      out += R"(,"members":)";
      AppendMembers(out, sub->members);
      if (*since) out += R"(,"resynced":true)";
    }
    out += R"(,"serial":)";
    AppendUint(out, sub->serial);
    out += R"(,"epoch":)";
    AppendQuoted(out, options_.epoch);
    return out;
  }
  if (op == "unsubscribe") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    if (Status st = engine_.Unsubscribe(h, *ch); !st) return st.error();
    return out;
  }
  if (op == "occupancy") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    out += ',';
    AppendOccupancyFields(out, engine_.GetOccupancy(*ch));
    (void)engine_.Touch(h);
    return out;
  }
  if (op == "history") {
    auto ch = channel_of();
    if (!ch.ok()) return ch.error();
    async = true;
    History(s, id, r);
    return out;
  }
  if (op == "status.set") {
    auto fields = ParseStatusFields(r.object());
    if (!fields.ok()) return fields.error();
    auto v = engine_.SetStatus(h, fields->status, std::move(fields->text));
    if (!v.ok()) return v.error();
    // A status set by hand is on disk before the reply goes out.
    std::string frame = ReplyOkPrefix(id) + R"(,"status":)";
    AppendStatus(frame, *v);
    frame += '}';
    async = true;
    PersistSettings(s.client_id, [peer = s.peer, id, frame = std::move(frame)](Status st) mutable {
      peer->Send(std::make_shared<const std::string>(st.ok() ? std::move(frame)
                                                             : ReplyError(id, st.error())));
    });
    return out;
  }
  if (op == "status.get") {
    auto ids = r.StringArray("clientIds");
    if (!ids.ok()) return ids.error();
    (void)engine_.Touch(h);
    async = true;
    StatusGet(s, id, *ids);
    return out;
  }
  if (op == "status.watch" || op == "status.unwatch") {
    auto ids = r.StringArray("clientIds");
    if (!ids.ok()) return ids.error();
    if (op == "status.watch") {
      auto w = engine_.Watch(h, *ids);
      if (!w.ok()) return w.error();
      out += R"(,"statuses":)";
      AppendStatuses(out, *w);
    } else if (Status st = engine_.Unwatch(h, *ids); !st) {
      return st.error();
    }
    return out;
  }
  if (op == "activity") {
    auto kind = r.String("kind");
    if (!kind.ok()) return kind.error();
    auto ch = r.OptString("channel");
    if (!ch.ok()) return ch.error();
    if (*ch) {
      if (Status st = CheckChannel(s, **ch); !st) return st.error();
    }
    Status st = engine_.RecordActivity(h, *kind, ch->value_or(""),
                                       optional_data("data").value_or(JsonText()));
    if (!st) return st.error();
    return out;
  }
  if (op == "activity.get") {
    auto client = client_of();
    if (!client.ok()) return client.error();
    auto limit = r.OptInt("limit");
    if (!limit.ok()) return limit.error();
    if (*limit && **limit < 1) return BadRequest("limit must be at least 1");
    auto since = r.OptInt("since");
    if (!since.ok()) return since.error();
    (void)engine_.Touch(h);
    async = true;
    ActivityOf(s, std::string(*client), *limit, *since,
               [peer = s.peer, id](Result<std::string> fields) {
                 peer->Send(std::make_shared<const std::string>(
                     fields.ok() ? ReplyOkPrefix(id) + "," + *fields + "}"
                                 : ReplyError(id, fields.error())));
               });
    return out;
  }
  if (op == "devices") {
    auto client = client_of();
    if (!client.ok()) return client.error();
    auto list = engine_.Devices(*client, s.client_id);
    out += R"(,"devices":)";
    AppendDevices(out, list);
    (void)engine_.Touch(h);
    return out;
  }
  if (op == "who") {
    auto ch = r.OptString("channel");
    if (!ch.ok()) return ch.error();
    if (*ch) {
      if (Status st = CheckChannel(s, **ch); !st) return st.error();
    }
    auto users = engine_.Who(*ch);
    out += R"(,"users":)";
    AppendStatuses(out, users);
    (void)engine_.Touch(h);
    return out;
  }
  if (op == "command") {
    auto text = r.String("text");
    if (!text.ok()) return text.error();
    (void)engine_.Touch(h);
    auto fields = RunCommand(
        s.client_id, h, s.channel_patterns, *text, [peer = s.peer, id](std::string later) {
          peer->Send(std::make_shared<const std::string>(ReplyOkPrefix(id) + "," + later + "}"));
        });
    if (!fields) async = true;
    return fields ? "," + *fields : out;
  }
  return BadRequest("unknown op " + std::string(op));
}

namespace {
// Validates history parameters shared by the WebSocket op and REST.
Result<storage::HistoryQuery> HistoryParams(std::string channel, std::optional<int64_t> start,
                                            std::optional<int64_t> end,
                                            std::optional<int64_t> limit,
                                            std::optional<std::string_view> direction,
                                            std::optional<int64_t> cursor) {
  storage::HistoryQuery q;
  q.cursor = cursor;
  q.channel = std::move(channel);
  q.start = start;
  q.end = end;
  if (limit && *limit < 1) return BadRequest("limit must be at least 1");
  q.limit = static_cast<size_t>(std::min<int64_t>(limit.value_or(100), 1000));
  if (direction && *direction != "backwards" && *direction != "forwards") {
    return BadRequest("direction must be backwards or forwards");
  }
  q.forwards = direction && *direction == "forwards";
  return q;
}

// `"events":[...]` and, when there may be more, `,"next":CURSOR`.
std::string PageFields(const storage::HistoryPage& page) {
  std::string out = R"("events":[)";
  for (size_t i = 0; i < page.events.size(); ++i) {
    if (i) out += ',';
    out += *page.events[i];
  }
  out += ']';
  if (page.next) {
    out += R"(,"next":)";
    AppendInt(out, *page.next);
  }
  return out;
}
}  // namespace

void Dispatcher::StatusesOf(const std::vector<std::string>& ids,
                            std::function<void(Result<std::string>)> done) {
  // Users the engine knows are answered from memory now; the others from the store.
  auto parts = std::make_shared<std::vector<std::string>>(ids.size());
  std::vector<std::string> unknown;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (engine_.KnowsUser(ids[i])) {
      AppendStatus((*parts)[i], engine_.GetStatus(ids[i]));
    } else {
      unknown.push_back(ids[i]);
    }
  }
  auto finish = [parts, ids,
                 done = std::move(done)](Result<std::vector<storage::UserRecord>> stored) {
    if (!stored.ok()) return done(stored.error());
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ',';
      if ((*parts)[i].empty()) {
        engine::StatusView v;
        v.client_id = ids[i];
        for (const auto& r : *stored) {
          if (r.client_id != ids[i]) continue;
          if (r.text) v.text = *r.text;
          if (r.last_seen) v.last_seen = r.last_seen;
        }
        AppendStatus(out, v);
      } else {
        out += (*parts)[i];
      }
    }
    out += ']';
    done(std::move(out));
  };
  if (unknown.empty()) return finish(std::vector<storage::UserRecord>());
  store_.GetUsers(std::move(unknown), std::move(finish));
}

void Dispatcher::StatusGet(Session& s, int64_t id, const std::vector<std::string>& ids) {
  StatusesOf(ids, [peer = s.peer, id](Result<std::string> statuses) {
    if (!statuses.ok()) {
      peer->Send(std::make_shared<const std::string>(ReplyError(id, statuses.error())));
      return;
    }
    std::string frame = ReplyOkPrefix(id) + R"(,"statuses":)" + *statuses + "}";
    peer->Send(std::make_shared<const std::string>(std::move(frame)));
  });
}

void Dispatcher::History(Session& s, int64_t id, Request& r) {
  auto fail = [&](const Error& e) {
    metrics_.request_errors_total.fetch_add(1, std::memory_order_relaxed);
    Reply(s, ReplyError(id, e));
  };
  auto start = r.OptInt("start");
  if (!start.ok()) return fail(start.error());
  auto end = r.OptInt("end");
  if (!end.ok()) return fail(end.error());
  auto limit = r.OptInt("limit");
  if (!limit.ok()) return fail(limit.error());
  auto direction = r.OptString("direction");
  if (!direction.ok()) return fail(direction.error());
  auto cursor = r.OptInt("cursor");
  if (!cursor.ok()) return fail(cursor.error());
  auto q =
      HistoryParams(std::string(*r.String("channel")), *start, *end, *limit, *direction, *cursor);
  if (!q.ok()) return fail(q.error());
  (void)engine_.Touch(s.handle);
  std::shared_ptr<Peer> peer = s.peer;
  store_.QueryHistory(std::move(q).value(), [peer, id](Result<storage::HistoryPage> result) {
    if (!result.ok()) {
      peer->Send(std::make_shared<const std::string>(ReplyError(id, result.error())));
      return;
    }
    std::string frame = ReplyOkPrefix(id);
    frame += ',';
    frame += PageFields(*result);
    frame += '}';
    peer->Send(std::make_shared<const std::string>(std::move(frame)));
  });
}

// ----- Events out -----------------------------------------------------------------------------

void Dispatcher::OnPresence(const engine::PresenceEvent& event,
                            std::span<const engine::ConnectionHandle> recipients) {
  metrics_.events_total.fetch_add(1, std::memory_order_relaxed);
  auto frame = std::make_shared<const std::string>(EventFrame(event));
  for (engine::ConnectionHandle h : recipients) SendTo(h, frame);
  store_.AppendEvent(storage::StoredEvent{std::string(event.channel), event.serial,
                                          event.member.timestamp, std::move(frame)});
}

void Dispatcher::OnStatus(const engine::StatusChange& change,
                          std::span<const engine::ConnectionHandle> recipients) {
  if (recipients.empty()) return;
  auto frame = std::make_shared<const std::string>(StatusFrame(change));
  for (engine::ConnectionHandle h : recipients) SendTo(h, frame);
}

void Dispatcher::OnUserConnectivity(std::string_view client_id, bool /*online*/, TimeMs) {
  // Coming online is stored promptly too (within flush_interval_ms), not only at the next
  // checkpoint: a crash soon after a login must not leave lastSeen unset. Stored after the call
  // (PersistLastSeen), so the value is the engine's (frozen for a user appearing offline).
  last_seen_due_.emplace_back(client_id);
}

void Dispatcher::OnActivity(std::string_view client_id, const engine::ActivityRecord& a) {
  store_.AppendActivity(
      std::string(client_id),
      storage::StoredActivity{a.kind, a.channel, a.data, a.timestamp, a.connection_id});
}

void Dispatcher::OnConnectionExpired(engine::ConnectionHandle connection) {
  by_handle_.erase(connection);
}

// ----- REST -----------------------------------------------------------------------------------

unsigned HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kMethodNotAllowed:
      return 405;
    case ErrorCode::kNotPresent:
      return 409;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kRateLimited:
      return 429;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

namespace {
HttpResponse ErrorResponse(const Error& e) {
  return HttpResponse{HttpStatusFor(e.code), ErrorBody(e)};
}

Result<std::optional<int64_t>> QueryInt(const std::unordered_map<std::string, std::string>& q,
                                        const std::string& key) {
  auto it = q.find(key);
  if (it == q.end()) return std::optional<int64_t>();
  int64_t v = 0;
  const char* b = it->second.data();
  const char* e = b + it->second.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e) return BadRequest(key + " must be an integer");
  return std::optional<int64_t>(v);
}
}  // namespace

void Dispatcher::Http(const HttpRequest& req, std::optional<storage::UserRecord> stored,
                      std::function<void(HttpResponse)> done) {
  metrics_.http_requests_total.fetch_add(1, std::memory_order_relaxed);
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) return done(ErrorResponse(BadRequest("malformed request target")));
  const boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.emplace_back(s);
  std::unordered_map<std::string, std::string> query;
  for (auto p : url.params()) query[std::string(p.key)] = std::string(p.value);
  // Percent-decoding can yield any bytes; names from the path reach replies and other users.
  for (const std::string& part : seg) {
    if (!IsValidUtf8(part)) return done(ErrorResponse(BadRequest("the path is not valid UTF-8")));
  }
  for (const auto& [key, value] : query) {
    if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
      return done(ErrorResponse(BadRequest("a query parameter is not valid UTF-8")));
    }
  }

  auto method_not_allowed = [&] {
    done(ErrorResponse(MakeError(ErrorCode::kMethodNotAllowed, "method not allowed")));
  };
  if (req.method == "GET" && (seg.empty() || (seg.size() == 2 && seg[0] == "dashboard"))) {
    // The web dashboard's files need no key: the page asks for it and sends it on each call.
    const std::string path = seg.empty() ? "/index.html" : "/" + seg[1];
    if (const dashboard::Asset* a = dashboard::FindAsset(path)) {
      return done(HttpResponse{200, std::string(a->body), std::string(a->content_type)});
    }
  }
  if (seg == std::vector<std::string>{"v1", "healthz"}) {
    if (req.method != "GET") return method_not_allowed();
    return done(HttpResponse{200, R"({"ok":true})"});
  }
  if (seg == std::vector<std::string>{"metrics"}) {
    if (req.method != "GET") return method_not_allowed();
    const storage::StoreCounters sc = store_.counters();
    Gauges g{engine_.channel_count(),
             engine_.member_count(),
             engine_.connection_count(),
             engine_.user_count(),
             sc.write_errors,
             sc.dropped_writes,
             sc.pending};
    return done(HttpResponse{200, metrics_.Render(g), "text/plain; version=0.0.4"});
  }

  if (HttpMore(req, stored, seg, query, done)) return;

  const bool channel_route = seg.size() == 4 && seg[0] == "v1" && seg[1] == "channels" &&
                             (seg[3] == "presence" || seg[3] == "history" || seg[3] == "occupancy");
  const bool status_route =
      seg.size() == 4 && seg[0] == "v1" && seg[1] == "users" && seg[3] == "status";
  if (!channel_route && !status_route) {
    return done(ErrorResponse(MakeError(ErrorCode::kNotFound, "no such route")));
  }
  if (!BearerMatches(req.authorization, options_.api_key)) {
    return done(ErrorResponse(MakeError(ErrorCode::kUnauthorized, "missing or wrong API key")));
  }
  const std::string& name = seg[2];
  if (Status st = channel_route
                      ? CheckName(name, "channel", options_.engine.limits.max_channel_bytes)
                      : CheckName(name, "clientId", options_.engine.limits.max_id_bytes);
      !st) {
    return done(ErrorResponse(st.error()));
  }

  if (channel_route) {
    if (req.method != "GET") return method_not_allowed();
    if (seg[3] == "presence") {
      engine::MemberFilter filter;
      if (auto c = query.find("clientId"); c != query.end()) filter.client_id = c->second;
      if (auto c = query.find("connectionId"); c != query.end()) filter.connection_id = c->second;
      std::string body = "{";
      AppendSnapshotFields(body, engine_.Get(name, filter), options_.epoch);
      body += '}';
      return done(HttpResponse{200, std::move(body)});
    }
    if (seg[3] == "occupancy") {
      std::string body = "{";
      AppendOccupancyFields(body, engine_.GetOccupancy(name));
      body += '}';
      return done(HttpResponse{200, std::move(body)});
    }
    return HttpHistory(name, query, std::move(done));
  }

  // /v1/users/{clientId}/status
  if (req.method == "GET") {
    return StatusesOf({name}, [done = std::move(done)](Result<std::string> statuses) {
      if (!statuses.ok()) return done(ErrorResponse(statuses.error()));
      // A one-element array: strip the brackets.
      done(HttpResponse{200, statuses->substr(1, statuses->size() - 2)});
    });
  }
  if (req.method != "PUT") return method_not_allowed();
  Result<json::object> request = ParseRequestObject(req.body);
  if (!request.ok()) return done(ErrorResponse(request.error()));
  auto fields = ParseStatusFields(*request);
  if (!fields.ok()) return done(ErrorResponse(fields.error()));
  // Keep what the store remembers (lastSeen, the other half of status/text) before changing it.
  if (stored) Remember(*stored);
  auto r = engine_.SetStatusOf(name, fields->status, std::move(fields->text));
  if (!r.ok()) return done(ErrorResponse(r.error()));
  std::string body;
  AppendStatus(body, *r);
  PersistSettings(name, [done = std::move(done), body = std::move(body)](Status st) mutable {
    if (!st.ok()) return done(ErrorResponse(st.error()));
    done(HttpResponse{200, std::move(body)});
  });
  PersistLastSeen();
}

void Dispatcher::HttpHistory(std::string channel,
                             const std::unordered_map<std::string, std::string>& query,
                             std::function<void(HttpResponse)> done) {
  auto start = QueryInt(query, "start");
  if (!start.ok()) return done(ErrorResponse(start.error()));
  auto end = QueryInt(query, "end");
  if (!end.ok()) return done(ErrorResponse(end.error()));
  auto limit = QueryInt(query, "limit");
  if (!limit.ok()) return done(ErrorResponse(limit.error()));
  auto cursor = QueryInt(query, "cursor");
  if (!cursor.ok()) return done(ErrorResponse(cursor.error()));
  std::optional<std::string_view> direction;
  if (auto d = query.find("direction"); d != query.end()) direction = d->second;
  auto q = HistoryParams(std::move(channel), *start, *end, *limit, direction, *cursor);
  if (!q.ok()) return done(ErrorResponse(q.error()));
  store_.QueryHistory(std::move(q).value(),
                      [done = std::move(done)](Result<storage::HistoryPage> r) {
                        if (!r.ok()) return done(ErrorResponse(r.error()));
                        done(HttpResponse{200, "{" + PageFields(*r) + "}"});
                      });
}

// ----- Upgrade --------------------------------------------------------------------------------

Result<ConnectRequest> ParseUpgrade(std::string_view target, std::string_view secret, TimeMs now,
                                    size_t max_id_bytes) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return BadRequest("malformed request target");
  const boost::urls::url_view url = *parsed;
  std::string token;
  ConnectRequest req;
  for (auto p : url.params()) {
    if (p.key == "token") {
      token = std::string(p.value);
    } else if (p.key == "device") {
      req.device = std::string(p.value);
    } else if (p.key == "resume") {
      req.resume_key = std::string(p.value);
    } else if (p.key == "remainPresentForMs") {
      int64_t v = 0;
      std::string s(p.value);
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || end != s.data() + s.size() || v < 0) {
        return BadRequest("remainPresentForMs must be a non-negative integer");
      }
      req.remain_present_for_ms = v;
    }
  }
  auto claims = VerifyToken(token, secret, now);
  if (!claims.ok()) return claims.error();
  if (Status st = CheckName(claims->client_id, "clientId", max_id_bytes); !st) return st.error();
  if (!req.device.empty()) {
    if (Status st = CheckName(req.device, "device", max_id_bytes); !st) return st.error();
  }
  req.client_id = claims->client_id;
  req.channel_patterns = std::move(claims->channels);
  return req;
}

namespace {
// The newest `limit` activity records of `client_id` that `patterns` allow (records without a
// channel always; all of them without patterns). `done` may run on the storage thread.
void QueryVisibleActivities(
    storage::Store& store, std::string client_id, size_t limit, std::optional<TimeMs> since,
    std::optional<std::vector<std::string>> patterns,
    std::function<void(Result<std::vector<storage::StoredActivity>>)> done) {
  // Records of channels outside the patterns are left out, so ask for as many as may be returned.
  const size_t asked = patterns ? std::max<size_t>(limit, 1000) : limit;
  store.QueryActivities(std::move(client_id), asked, since,
                        [limit, patterns = std::move(patterns), done = std::move(done)](
                            Result<std::vector<storage::StoredActivity>> list) {
                          if (list.ok() && patterns) {
                            std::erase_if(*list, [&](const storage::StoredActivity& a) {
                              return !a.channel.empty() && !AnyPatternMatches(*patterns, a.channel);
                            });
                          }
                          if (list.ok() && list->size() > limit) list->resize(limit);
                          done(std::move(list));
                        });
}
}  // namespace

// `"activities":[...]` for activity.get and its REST route: `limit` defaults to 50, at most 1000.
void Dispatcher::ActivityFields(std::string client_id, std::optional<int64_t> limit,
                                std::optional<TimeMs> since,
                                std::optional<std::vector<std::string>> patterns,
                                std::function<void(Result<std::string>)> done) {
  QueryVisibleActivities(
      store_, std::move(client_id),
      static_cast<size_t>(std::min<int64_t>(limit.value_or(50), 1000)), since, std::move(patterns),
      [done = std::move(done)](Result<std::vector<storage::StoredActivity>> list) {
        if (!list.ok()) return done(list.error());
        std::string fields = R"("activities":)";
        AppendActivities(fields, *list);
        done(std::move(fields));
      });
}

void Dispatcher::ActivityOf(const Session& s, std::string client_id, std::optional<int64_t> limit,
                            std::optional<TimeMs> since,
                            std::function<void(Result<std::string>)> done) {
  auto patterns = s.channel_patterns;
  if (client_id == s.client_id) {
    return ActivityFields(std::move(client_id), limit, since, std::move(patterns), std::move(done));
  }
  // Another user's activity would tell when they were around: hidden while they appear offline,
  // as their devices are.
  static constexpr std::string_view kNone = R"("activities":[])";
  if (engine_.KnowsUser(client_id)) {
    const auto settings = engine_.SettingsOf(client_id);
    if (settings && settings->manual == Presence::kOffline) return done(std::string(kNone));
    return ActivityFields(std::move(client_id), limit, since, std::move(patterns), std::move(done));
  }
  // Not in memory: the store knows whether they chose to appear offline.
  store_.GetUsers({client_id}, [this, client_id, limit, since, patterns = std::move(patterns),
                                done = std::move(done)](
                                   Result<std::vector<storage::UserRecord>> users) mutable {
    if (!users.ok()) return done(users.error());
    for (const auto& u : *users) {
      if (u.client_id == client_id && u.manual == "offline") return done(std::string(kNone));
    }
    // On the storage thread: ActivityFields only queues a query (the store is thread-safe).
    ActivityFields(std::move(client_id), limit, since, std::move(patterns), std::move(done));
  });
}

// ----- Chat commands ----------------------------------------------------------------------------

namespace {

std::string Ago(TimeMs t, TimeMs now) {
  const int64_t s = std::max<int64_t>(0, (now - t) / 1000);
  if (s < 10) return "just now";
  if (s < 60) return std::to_string(s) + "s ago";
  if (s < 3600) return std::to_string(s / 60) + "m ago";
  if (s < 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

std::string ClockTime(TimeMs t) {  // HH:MM:SS UTC
  const int64_t s = (t / 1000) % 86400;
  char b[16];
  snprintf(b, sizeof b, "%02d:%02d:%02d", static_cast<int>(s / 3600), static_cast<int>(s / 60 % 60),
           static_cast<int>(s % 60));
  return b;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// "alice is away ("lunch") - active on phone - last seen 5m ago", from a serialized STATUS.
std::string StatusSentence(std::string_view status_json, TimeMs now) {
  boost::system::error_code ec;
  const json::value v = json::parse(status_json, ec);
  const json::object* st = ec ? nullptr : v.if_object();
  const json::value* id = st ? st->if_contains("clientId") : nullptr;
  const json::value* status = st ? st->if_contains("status") : nullptr;
  if (!id || !id->is_string() || !status || !status->is_string()) return "Status unavailable.";
  std::string out = std::string(id->get_string()) + " is " + std::string(status->get_string());
  if (const json::value* t = st->if_contains("text"); t && t->is_string()) {
    out += " (" + Quote(t->get_string()) + ")";
  }
  if (const json::value* d = st->if_contains("activeDevice"); d && d->is_string()) {
    out += " - active on " + std::string(d->get_string());
  }
  if (const json::value* l = st->if_contains("lastSeen"); l && l->is_int64()) {
    out += " - last seen " + Ago(l->get_int64(), now);
  }
  return out;
}

// `"text":S,"data":D` (the fields of every command reply).
std::string CommandFields(std::string_view text, std::string_view data) {
  std::string out = R"("text":)";
  AppendQuoted(out, text);
  out += R"(,"data":)";
  out += data;
  return out;
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

std::string CommandError(std::string_view code, std::string_view message) {
  std::string data = R"({"error":{"code":)";
  AppendQuoted(data, code);
  data += R"(,"message":)";
  AppendQuoted(data, message);
  data += "}}";
  return data;
}

}  // namespace

std::optional<std::string> Dispatcher::RunCommand(
    const std::string& client_id, engine::ConnectionHandle handle,
    const std::optional<std::vector<std::string>>& patterns, std::string_view line,
    std::function<void(std::string)> later) {
  const Command cmd = ParseCommand(line);
  const TimeMs now = clock_.NowMs();
  switch (cmd.kind) {
    case CommandKind::kInvalid: {
      std::string data = CommandError("bad_command", cmd.problem);
      data.pop_back();  // reopen the object to add the command list
      data += R"(,"commands":)" + CommandListJson() + "}";
      return CommandFields("Sorry, " + cmd.problem + ".\n" + HelpText(), data);
    }
    case CommandKind::kHelp:
      return CommandFields(HelpText(), R"({"commands":)" + CommandListJson() + "}");
    case CommandKind::kSelf:
      StatusesOf({client_id}, [now, later = std::move(later)](Result<std::string> statuses) {
        if (!statuses.ok()) {
          return later(CommandFields("Could not read your status: " + statuses.error().message,
                                     CommandError("internal", statuses.error().message)));
        }
        // A one-element array of the server's own serialization: strip the brackets.
        const std::string one = statuses->substr(1, statuses->size() - 2);
        later(CommandFields(StatusSentence(one, now), one));
      });
      return std::nullopt;
    case CommandKind::kWho: {
      if (cmd.channel) {  // the checks of op `who`
        Status st = CheckName(*cmd.channel, "channel", options_.engine.limits.max_channel_bytes);
        if (st && patterns && !AnyPatternMatches(*patterns, *cmd.channel)) {
          st = MakeError(ErrorCode::kForbidden, "channel not allowed by the token");
        }
        if (!st) {
          return CommandFields("Cannot show who is in " + *cmd.channel + ": " + st.error().message,
                               CommandError(ErrorCodeName(st.error().code), st.error().message));
        }
      }
      const auto users = engine_.Who(cmd.channel);
      std::string data = R"({"channel":)";
      AppendOptional(data, cmd.channel);
      data += R"(,"users":)";
      AppendStatuses(data, users);
      data += '}';
      const std::string where = cmd.channel ? " in " + *cmd.channel : "";
      if (users.empty()) return CommandFields("Nobody is online" + where + ".", data);
      std::string text = std::to_string(users.size()) + " online" + where + ": ";
      const size_t shown = std::min<size_t>(users.size(), 20);
      for (size_t i = 0; i < shown; ++i) {
        if (i) text += ", ";
        text += users[i].client_id;
        if (users[i].status != Presence::kOnline)
          text += " (" + std::string(PresenceName(users[i].status)) + ")";
      }
      if (shown < users.size()) text += " and " + std::to_string(users.size() - shown) + " more";
      return CommandFields(text, data);
    }
    case CommandKind::kActivity:  // as activity.get for oneself
      QueryVisibleActivities(
          store_, client_id, 10, std::nullopt, patterns,
          [later = std::move(later)](Result<std::vector<storage::StoredActivity>> list) {
            if (!list.ok()) {
              return later(CommandFields("Could not read your activity: " + list.error().message,
                                         CommandError("internal", list.error().message)));
            }
            std::string data = R"({"activities":)";
            AppendActivities(data, *list);
            data += '}';
            if (list->empty()) return later(CommandFields("No recent activity.", data));
            std::string text = "Recent activity:";
            for (const auto& a : *list) {
              text += "\n  " + ClockTime(a.timestamp) + " " + a.kind;
              if (!a.channel.empty()) text += " in " + a.channel;
            }
            later(CommandFields(text, data));
          });
      return std::nullopt;
    case CommandKind::kSetStatus:
    case CommandKind::kSetText: {
      std::optional<Presence> status;
      std::optional<std::optional<std::string>> text;
      if (cmd.kind == CommandKind::kSetStatus) {
        status = cmd.status;
      } else {
        text = cmd.text;
      }
      auto v = handle != 0 ? engine_.SetStatus(handle, status, std::move(text))
                           : engine_.SetStatusOf(client_id, status, std::move(text));
      if (!v.ok()) {
        return CommandFields("Could not set your status: " + v.error().message,
                             CommandError(ErrorCodeName(v.error().code), v.error().message));
      }
      std::string data;
      AppendStatus(data, *v);
      std::string reply;
      if (cmd.kind == CommandKind::kSetText) {
        reply = cmd.text ? "Status text set to " + Quote(*cmd.text) + "." : "Status text cleared.";
      } else if (cmd.status == Presence::kOnline) {
        reply = "Status set to automatic: you are " + std::string(PresenceName(v->status)) + ".";
      } else if (cmd.status == Presence::kOffline) {
        reply = "You now appear offline.";
      } else {
        reply = "Status set to " + std::string(PresenceName(*status)) + ".";
      }
      // Set by hand: on disk before the reply, as for status.set.
      PersistSettings(client_id, [later = std::move(later),
                                  fields = CommandFields(reply, data)](Status st) mutable {
        if (!st.ok()) {
          return later(CommandFields("Could not save your status: " + st.error().message,
                                     CommandError("internal", st.error().message)));
        }
        later(std::move(fields));
      });
      return std::nullopt;
    }
    case CommandKind::kDevices: {
      const auto devices = engine_.Devices(client_id, client_id);
      std::string data = R"({"devices":)";
      AppendDevices(data, devices);
      data += '}';
      if (devices.empty()) return CommandFields("No devices connected.", data);
      std::string text =
          std::to_string(devices.size()) + (devices.size() == 1 ? " device: " : " devices: ");
      for (size_t i = 0; i < devices.size(); ++i) {
        const auto& d = devices[i];
        if (i) text += ", ";
        text += std::string(d.device) + " (" + (d.active ? "active, " : "") +
                std::string(PresenceName(d.status)) + ", last seen " + Ago(d.last_seen, now) + ")";
      }
      return CommandFields(text, data);
    }
    case CommandKind::kSync: {
      const engine::SyncReport report = engine_.SyncStatus(client_id);
      size_t in_sync = 0;
      std::optional<TimeMs> last;
      std::string per = "[";
      for (const auto& d : report.devices) {
        if (d.in_sync) ++in_sync;
        if (d.last_synced_at) last = std::max(last.value_or(0), *d.last_synced_at);
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
      AppendOptionalInt(data, last);
      data += R"(,"perDevice":)" + per + "}";
      if (report.devices.empty()) {
        return CommandFields("Nothing to sync: none of your devices is connected.", data);
      }
      std::string text = "Synced " + std::string(PresenceName(report.status.status)) + " to " +
                         std::to_string(in_sync) + " of " + std::to_string(report.devices.size()) +
                         (report.devices.size() == 1 ? " device" : " devices");
      text += last ? ", at " + ClockTime(*last) + " UTC." : ".";
      for (const auto& d : report.devices) {
        if (d.in_sync) continue;
        text += "\n  " + std::string(d.device) + " is reconnecting; last synced " +
                (d.last_synced_at ? Ago(*d.last_synced_at, now) : std::string("never")) + ".";
      }
      return CommandFields(text, data);
    }
  }
  return CommandFields(HelpText(), "null");
}

// ----- REST beyond the core contract ------------------------------------------------------------

bool Dispatcher::HttpMore(const HttpRequest& req, const std::optional<storage::UserRecord>& stored,
                          const std::vector<std::string>& seg,
                          const std::unordered_map<std::string, std::string>& query,
                          std::function<void(HttpResponse)>& done) {
  const bool channels = seg == std::vector<std::string>{"v1", "channels"};
  const bool who = seg == std::vector<std::string>{"v1", "who"};
  const bool commands = seg == std::vector<std::string>{"v1", "commands"};
  const bool tokens = seg == std::vector<std::string>{"v1", "tokens"};
  const bool user_route = seg.size() == 4 && seg[0] == "v1" && seg[1] == "users" &&
                          (seg[3] == "devices" || seg[3] == "activity");
  if (!channels && !who && !commands && !tokens && !user_route) return false;
  auto fail = [&](const Error& e) {
    done(ErrorResponse(e));
    return true;
  };
  if (!BearerMatches(req.authorization, options_.api_key)) {
    return fail(MakeError(ErrorCode::kUnauthorized, "missing or wrong API key"));
  }
  const std::string wanted = commands || tokens ? "POST" : "GET";
  if (req.method != wanted)
    return fail(MakeError(ErrorCode::kMethodNotAllowed, "method not allowed"));
  auto query_string = [&](const char* key) -> std::optional<std::string_view> {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return std::string_view(it->second);
  };

  if (channels) {
    auto limit = QueryInt(query, "limit");
    if (!limit.ok()) return fail(limit.error());
    const int64_t n = limit->value_or(1000);
    if (n < 1) return fail(BadRequest("limit must be at least 1"));
    const size_t page = static_cast<size_t>(std::min<int64_t>(n, 10000));
    const auto list = engine_.ListChannels(query_string("after").value_or(""), page + 1);
    std::string body = R"({"channels":[)";
    for (size_t i = 0; i < std::min(page, list.size()); ++i) {
      if (i) body += ',';
      body += R"({"channel":)";
      AppendQuoted(body, list[i].channel);
      body += ',';
      AppendOccupancyFields(body, list[i].occupancy);
      body += '}';
    }
    body += ']';
    if (list.size() > page) {  // more: the name to continue after
      body += R"(,"next":)";
      AppendQuoted(body, list[page - 1].channel);
    }
    body += '}';
    done(HttpResponse{200, std::move(body)});
    return true;
  }
  if (who) {
    const auto channel = query_string("channel");
    if (channel) {
      Status st = CheckName(*channel, "channel", options_.engine.limits.max_channel_bytes);
      if (!st) return fail(st.error());
    }
    const auto users = engine_.Who(channel);
    std::string body = R"({"users":)";
    AppendStatuses(body, users);
    body += '}';
    done(HttpResponse{200, std::move(body)});
    return true;
  }
  if (user_route) {
    const std::string& id = seg[2];
    if (Status st = CheckName(id, "clientId", options_.engine.limits.max_id_bytes); !st) {
      return fail(st.error());
    }
    if (seg[3] == "devices") {
      std::string body = R"({"devices":)";
      AppendDevices(body, engine_.Devices(id, id));
      body += '}';
      done(HttpResponse{200, std::move(body)});
      return true;
    }
    auto limit = QueryInt(query, "limit");
    if (!limit.ok()) return fail(limit.error());
    if (*limit && **limit < 1) return fail(BadRequest("limit must be at least 1"));
    auto since = QueryInt(query, "since");
    if (!since.ok()) return fail(since.error());
    ActivityFields(id, *limit, *since, std::nullopt,
                   [done = std::move(done)](Result<std::string> fields) {
                     if (!fields.ok()) return done(ErrorResponse(fields.error()));
                     done(HttpResponse{200, "{" + *fields + "}"});
                   });
    return true;
  }

  Result<json::object> request = ParseRequestObject(req.body);
  if (!request.ok()) return fail(request.error());
  const json::object& o = *request;
  const json::value* client = o.if_contains("clientId");
  if (client == nullptr || !client->is_string())
    return fail(BadRequest("clientId must be a string"));
  const std::string client_id(client->as_string());
  if (Status st = CheckName(client_id, "clientId", options_.engine.limits.max_id_bytes); !st) {
    return fail(st.error());
  }

  if (commands) {
    const json::value* text = o.if_contains("text");
    if (text == nullptr || !text->is_string()) {
      return fail(BadRequest("text must be a string"));
    }
    if (stored) Remember(*stored);
    auto finish = [done](std::string fields) { done(HttpResponse{200, "{" + fields + "}"}); };
    if (auto now = RunCommand(client_id, 0, std::nullopt, text->as_string(), finish)) {
      finish(std::move(*now));
    }
    PersistLastSeen();
    return true;
  }

  // tokens
  std::optional<std::vector<std::string>> patterns;
  if (const json::value* c = o.if_contains("channels")) {
    if (!c->is_array()) return fail(BadRequest("channels must be an array"));
    patterns.emplace();
    for (const auto& p : c->as_array()) {
      if (!p.is_string()) return fail(BadRequest("channels must hold strings"));
      patterns->emplace_back(p.as_string());
    }
  }
  int64_t ttl_ms = 3600 * 1000;
  if (const json::value* t = o.if_contains("ttlMs")) {
    if (!t->is_int64() || t->as_int64() < 1000 || t->as_int64() > 30LL * 86400 * 1000) {
      return fail(BadRequest("ttlMs must be an integer from 1000 to 2592000000"));
    }
    ttl_ms = t->as_int64();
  }
  const TimeMs now = clock_.NowMs();
  auto token = MintToken(options_.jwt_secret, client_id, ttl_ms / 1000, patterns, now);
  if (!token.ok()) return fail(token.error());
  std::string body = R"({"token":)";
  AppendQuoted(body, *token);
  body += R"(,"expiresAt":)";
  AppendInt(body, now / 1000 * 1000 + ttl_ms / 1000 * 1000);
  body += '}';
  done(HttpResponse{200, std::move(body)});
  return true;
}

std::optional<std::string> HttpRouteUser(const HttpRequest& req) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) return std::nullopt;
  std::vector<std::string> seg;
  for (auto s : parsed->segments()) seg.emplace_back(s);
  if (req.method == "PUT" && seg.size() == 4 && seg[0] == "v1" && seg[1] == "users" &&
      seg[3] == "status" && !seg[2].empty() && IsValidUtf8(seg[2])) {
    return seg[2];
  }
  if (req.method == "POST" && seg == std::vector<std::string>{"v1", "commands"}) {
    Result<json::object> body = ParseRequestObject(req.body);
    if (!body.ok()) return std::nullopt;
    const json::value* c = body->if_contains("clientId");
    if (c != nullptr && c->is_string() && !c->as_string().empty())
      return std::string(c->as_string());
  }
  return std::nullopt;
}

}  // namespace presenced::protocol
