// The Dispatcher in cluster mode (replication.h): what it appends to the cluster's log, and how
// it applies each entry. Every node applies every entry to its engine alike; only the node the
// entry came from (`mine`) answers a client.
//
// Entries are JSON objects, "k" naming the kind:
//   open   {"s":session,"c":clientId,"d":device,"r":remainMs,"rk":resumeKey?,"x":seed,
//           "u":{"m":manual,"t":text?,"l":lastSeen}? (what the store remembers of the user)}
//   close / drop {"h":handle,"s":session}  (counts only from the connection's holder)
//   op     {"s":session,"h":handle,"c":clientId,"p":[patterns]|null,"i":id,"t":request text,
//           "n":the appending node's number for it, "w":1 (a worker's token)?,
//           "x":seed? (session.ready, which attaches the agent's connection)}
//   http   {"n":number,"m":method,"u":target,"b":body}  (a REST change, the key checked)
//   tick   {"cp":1?}  (a deadline is due: the entry's time moves every engine's clock; with "cp"
//          the lastSeen checkpoint runs at it)
//   mark   {"n":N}  (nothing: its node learns that what it appended before is applied)
//   hello / bye / wh  webhooks' deliverer and its reports (dispatcher_webhooks.cc)
//   reap   {"node":N,"inc":I,"at":T}  (written by the lease's scripts, cluster/node.cc: node N's
//          incarnation I is dead; each connection it held counts as dropped at T)
#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <optional>
#include <unordered_set>

#include "common/byte_codec.h"
#include "protocol/args.h"
#include "protocol/auth.h"
#include "protocol/codec.h"
#include "protocol/dispatcher.h"

namespace presenced::protocol {

namespace {

Error Unavailable(const Error& why) {
  return MakeError(ErrorCode::kInternal, "the cluster's log is unavailable: " + why.message);
}

std::string StringOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t IntOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->as_double());  // Lua's cjson
  return 0;
}

// A user's stored record in a log entry (`u` of `open`, `ur` of `http`), and back.
json::object UserRecordJson(const storage::UserRecord& stored) {
  json::object u;
  u["m"] = stored.manual;
  if (stored.text) u["t"] = *stored.text;
  u["l"] = stored.last_seen;
  return u;
}

storage::UserRecord UserRecordFrom(std::string client_id, const json::object& u) {
  storage::UserRecord stored;
  stored.client_id = std::move(client_id);
  stored.manual = StringOf(u, "m");
  if (u.contains("t")) stored.text = StringOf(u, "t");
  stored.last_seen = IntOf(u, "l");
  return stored;
}

}  // namespace

void Dispatcher::AppendOpen(SessionId id, PendingOpen open, const storage::UserRecord* stored) {
  const ConnectRequest& request = open.request;
  json::object o;
  o["k"] = "open";
  o["s"] = id;
  o["c"] = request.client_id;
  o["d"] = request.device;
  o["r"] = RemainFor(request);
  if (request.resume_key) o["rk"] = *request.resume_key;
  o["x"] = replication_->NewSeed();
  if (stored != nullptr) o["u"] = UserRecordJson(*stored);
  pending_.emplace(id, std::move(open));
  replication_->Append(json::serialize(o), [this, id](const Error& why) {
    auto p = pending_.find(id);
    if (p == pending_.end()) return;
    std::shared_ptr<Peer> peer = std::move(p->second.peer);
    pending_.erase(p);
    ClosePeer(peer, 1013, Unavailable(why).message);
  });
}

void Dispatcher::AppendOp(Session& s, int64_t req_id, std::string_view text, bool seeded) {
  json::object o;
  o["k"] = "op";
  o["s"] = s.id;
  o["h"] = s.handle;
  o["c"] = s.client_id;
  if (s.channel_patterns) {
    json::array patterns;
    for (const auto& p : *s.channel_patterns) patterns.emplace_back(p);
    o["p"] = std::move(patterns);
  } else {
    o["p"] = nullptr;
  }
  if (s.worker) o["w"] = 1;
  o["i"] = req_id;
  o["t"] = text;
  if (seeded) o["x"] = replication_->NewSeed();
  const uint64_t n = ++next_op_;
  o["n"] = n;
  replication_->Append(json::serialize(o), [this, sid = s.id, req_id, n](const Error& why) {
    RememberAnswered(n);
    metrics_.request_errors_total.fetch_add(1, std::memory_order_relaxed);
    if (Session* s = sessions_.ById(sid)) Reply(*s, ReplyError(req_id, Unavailable(why)));
  });
}

void Dispatcher::AppendEnd(engine::ConnectionHandle handle, SessionId session, bool clean) {
  json::object o;
  o["k"] = clean ? "close" : "drop";
  o["h"] = handle;
  o["s"] = session;
  // Lost (Redis down, lease lost): the cluster decides for this node's connections (their
  // node's lease); nothing more to do here.
  replication_->Append(json::serialize(o), [](const Error&) {});
}

void Dispatcher::AppendHttp(HttpRequest req, std::function<void(HttpResponse)> done,
                            const storage::UserRecord* stored) {
  const uint64_t n = ++next_http_;
  json::object o;
  o["k"] = "http";
  o["n"] = n;
  o["m"] = req.method;
  o["u"] = req.target;
  o["b"] = req.body;
  if (stored != nullptr) {
    o["uc"] = stored->client_id;
    o["ur"] = UserRecordJson(*stored);
  }
  http_waiting_.emplace(n, std::move(done));
  replication_->Append(json::serialize(o), [this, n](const Error& why) {
    auto w = http_waiting_.find(n);
    if (w == http_waiting_.end()) return;
    auto respond = std::move(w->second);
    http_waiting_.erase(w);
    const Error e = Unavailable(why);
    respond(HttpResponse{503, ErrorBody(e)});
  });
}

void Dispatcher::AppendTick(bool checkpoint) {
  tick_pending_ = true;
  json::object o;
  o["k"] = "tick";
  if (checkpoint) o["cp"] = 1;
  replication_->Append(json::serialize(o), [this](const Error&) { tick_pending_ = false; });
}

void Dispatcher::RememberAnswered(uint64_t op_number) {
  // Most failed appends never ran; the few that did come back within a renewal. Bounded.
  constexpr size_t kRemembered = 65536;
  answered_.insert(op_number);
  answered_order_.push_back(op_number);
  if (answered_order_.size() > kRemembered) {
    answered_.erase(answered_order_.front());
    answered_order_.pop_front();
  }
}

void Dispatcher::WhenApplied(std::function<void()> done) {
  if (replication_ == nullptr) return done();
  const uint64_t n = ++next_mark_;
  json::object o;
  o["k"] = "mark";
  o["n"] = n;
  marks_.emplace(n, std::move(done));
  replication_->Append(json::serialize(o), [this, n](const Error&) { FinishMark(n); });
}

void Dispatcher::FinishMark(uint64_t n) {
  if (auto m = marks_.find(n); m != marks_.end()) {
    auto done = std::move(m->second);
    marks_.erase(m);
    done();
  }
}

void Dispatcher::CheckpointLastSeen() {
  if (!shared_store_) return store_.CheckpointNow(nullptr);
  std::optional<std::unordered_set<std::string_view>> here;
  store_.CheckpointNow([&](std::string_view client_id) {
    if (!here) {
      here.emplace();
      sessions_.ForEach([&](Session& s) { here->insert(s.client_id); });
    }
    return here->contains(client_id);
  });
}

void Dispatcher::Apply(const ReplicatedEntry& e) {
  boost::system::error_code ec;
  json::value v = json::parse(e.body, ec);
  if (ec || !v.is_object()) return;  // not ours: written by no presenced
  const json::object& o = v.as_object();
  // What is due by the entry's time runs first, on every node alike. What the entry changes is
  // stored by the node that appended it.
  struct Writing {
    StoreBridge& store;
    bool otherwise;
    ~Writing() { store.SetWriting(otherwise); }
  } writing{store_, !shared_store_};
  store_.SetWriting(e.mine || !shared_store_);
  engine_.Tick();
  agents_.Tick();
  const std::string kind = StringOf(o, "k");
  if (kind == "open") {
    ApplyOpen(e, o);
  } else if (kind == "op") {
    ApplyOp(e, o);
  } else if (kind == "close" || kind == "drop") {
    const auto handle = static_cast<engine::ConnectionHandle>(IntOf(o, "h"));
    auto holder = holder_.find(handle);
    const std::string who = std::string(e.origin) + "/" + std::to_string(IntOf(o, "s"));
    if (holder == holder_.end() || holder->second != who) return;  // resumed elsewhere since
    if (kind == "close") {
      holder_.erase(holder);
      (void)engine_.Close(handle);
      ConnectionEnded(handle);
    } else {
      (void)engine_.Drop(handle);
      agents_.ConnectionDropped(handle);
    }
  } else if (kind == "http") {
    ApplyHttp(e, o);
  } else if (kind == "tick") {
    tick_pending_ = false;  // any tick moved the clock on; this node asks again if still due
    // The checkpoint marks what it stored in the engine (a user's frozen lastSeen depends on
    // it): at this entry on every node alike, never at a node's own moment.
    if (IntOf(o, "cp") != 0) CheckpointLastSeen();
  } else if (kind == "hello" || kind == "bye") {
    // Webhooks' deliverer: the first live incarnation to have said hello. A node has one
    // incarnation at a time: its earlier one (if never reaped) gives way.
    const std::string node = std::string(e.origin.substr(0, e.origin.find('/'))) + "/";
    std::erase_if(nodes_,
                  [&](const std::string& o) { return o.compare(0, node.size(), node) == 0; });
    if (kind == "hello") nodes_.emplace_back(e.origin);
    NodesChanged();
  } else if (kind == "wh") {
    PopWebhook(static_cast<size_t>(IntOf(o, "e")), static_cast<uint64_t>(IntOf(o, "s")));
  } else if (kind == "mark") {
    if (e.mine) FinishMark(static_cast<uint64_t>(IntOf(o, "n")));
  } else if (kind == "reap") {
    const std::string inc = StringOf(o, "inc");
    const std::string prefix = StringOf(o, "node") + "/" + (inc.empty() ? "" : inc + "/");
    const TimeMs at = IntOf(o, "at");
    std::vector<engine::ConnectionHandle> dead;
    for (const auto& [handle, who] : holder_) {
      if (who.compare(0, prefix.size(), prefix) == 0) dead.push_back(handle);
    }
    std::sort(dead.begin(), dead.end());  // the same order on every node
    for (engine::ConnectionHandle h : dead) {
      (void)engine_.DropAt(h, at);
      agents_.ConnectionDropped(h);
    }
    std::erase_if(nodes_, [&](const std::string& o) { return (o + "/").starts_with(prefix); });
    NodesChanged();
  }
  RunSessionNotes();  // at this entry on every node alike
  store_.PersistLastSeen();
}

namespace {
// 3 adds revocations and server-side members after the holders; 2 is still read.
constexpr std::string_view kStateMagic = "presenced-dispatcher-state-3";
constexpr std::string_view kStateMagic2 = "presenced-dispatcher-state-2";
}  // namespace

std::string Dispatcher::SaveState() {
  ByteWriter w;
  w.Str(kStateMagic);
  w.Str(engine_.SaveState());
  w.Str(agents_.SaveState());
  w.Str(webhooks_.SaveState());
  w.U64(nodes_.size());
  for (const std::string& n : nodes_) w.Str(n);
  std::vector<std::pair<engine::ConnectionHandle, std::string_view>> held(holder_.begin(),
                                                                          holder_.end());
  std::sort(held.begin(), held.end());
  w.U64(held.size());
  for (const auto& [handle, who] : held) {
    w.U64(handle);
    w.Str(who);
  }
  const std::map<std::string_view, TimeMs> revoked(revoked_.begin(), revoked_.end());
  w.U64(revoked.size());
  for (const auto& [client_id, before] : revoked) {
    w.Str(client_id);
    w.U64(static_cast<uint64_t>(before));
  }
  w.U64(server_members_.size());
  for (const auto& [key, handle] : server_members_) {
    w.Str(key.first);
    w.Str(key.second);
    w.U64(handle);
  }
  return std::move(w.bytes());
}

Status Dispatcher::LoadState(std::string_view state) {
  ByteReader r(state);
  const auto corrupt = [] { return MakeError(ErrorCode::kBadRequest, "cluster state is corrupt"); };
  const std::string_view magic = r.Str();
  if (magic != kStateMagic && magic != kStateMagic2) return corrupt();
  const std::string_view engine_state = r.Str();
  const std::string_view agents_state = r.Str();
  const std::string_view webhooks_state = r.Str();
  std::vector<std::string> nodes;
  for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) nodes.emplace_back(r.Str());
  std::unordered_map<engine::ConnectionHandle, std::string> holder;
  for (uint64_t n = r.Count(16); n > 0 && r.ok(); --n) {
    const engine::ConnectionHandle handle = r.U64();
    holder.emplace(handle, std::string(r.Str()));
  }
  std::unordered_map<std::string, TimeMs> revoked;
  std::map<std::pair<std::string, std::string>, engine::ConnectionHandle> members;
  if (magic == kStateMagic) {
    for (uint64_t n = r.Count(16); n > 0 && r.ok(); --n) {
      std::string client_id(r.Str());
      revoked[std::move(client_id)] = static_cast<TimeMs>(r.U64());
    }
    for (uint64_t n = r.Count(24); n > 0 && r.ok(); --n) {
      std::string client_id(r.Str());
      std::string channel(r.Str());
      members[{std::move(client_id), std::move(channel)}] = r.U64();
    }
  }
  if (!r.done()) return corrupt();
  {
    // Checked on an engine of its own first (loading emits nothing): a corrupt state leaves
    // this one as it was.
    engine::NullSink sink;
    SeededRandom random(0);
    engine::Engine scratch(engine_.config(), clock_, random, sink);
    if (Status st = scratch.LoadState(engine_state); !st) return st;
    engine::SessionRegistry agents(options_.sessions, clock_, *this);
    if (Status st = agents.LoadState(agents_state); !st) return st;
    webhooks::Outbox outbox(options_.webhooks);
    if (Status st = outbox.LoadState(webhooks_state); !st) return st;
  }
  if (sessions_.size() > 0 || !pending_.empty()) {
    CloseAll(4001, "node resynchronized with the cluster");
  }
  if (Status st = engine_.LoadState(engine_state); !st) return st;
  if (Status st = agents_.LoadState(agents_state); !st) return st;
  if (Status st = webhooks_.LoadState(webhooks_state); !st) return st;
  nodes_ = std::move(nodes);
  NodesChanged();
  expired_.clear();
  holder_ = std::move(holder);
  revoked_ = std::move(revoked);
  server_members_ = std::move(members);
  member_of_.clear();
  for (const auto& [key, handle] : server_members_) member_of_.emplace(handle, key);
  ended_members_.clear();
  tick_pending_ = false;
  return Status::Ok();
}

void Dispatcher::EpochChanged(std::string epoch) {
  SetEpoch(std::move(epoch));
  sessions_.ForEach([this](Session& s) {
    // Copied: a read runs due deadlines first, which may free a channel.
    const auto views = engine_.SubscriptionsOf(s.handle);
    const std::vector<std::string> channels(views.begin(), views.end());
    for (const std::string& channel : channels) {
      Reply(s, SyncFrame(channel, engine_.Get(channel), options_.epoch));
    }
  });
}

void Dispatcher::ApplyOpen(const ReplicatedEntry& e, const json::object& o) {
  replication_->UseSeed(StringOf(o, "x"));
  if (const json::value* u = o.if_contains("u"); u != nullptr && u->is_object()) {
    // When this engine still does not know the user (on every node alike).
    store_.Remember(UserRecordFrom(StringOf(o, "c"), u->as_object()));
  }
  std::optional<std::string> resume_key;
  if (o.contains("rk")) resume_key = StringOf(o, "rk");
  AttachResult r = AttachInEngine(StringOf(o, "c"), StringOf(o, "d"), IntOf(o, "r"), resume_key);
  const auto id = static_cast<SessionId>(IntOf(o, "s"));
  if (!r.error) holder_[r.attached.handle] = std::string(e.origin) + "/" + std::to_string(id);
  // A resumed worker gets its pending assignments again (after `connected`, on its own node).
  struct Resumed {
    engine::SessionRegistry& agents;
    engine::ConnectionHandle handle;
    ~Resumed() {
      if (handle != 0) agents.ConnectionResumed(handle);
    }
  } resumed{agents_, r.resumed ? r.attached.handle : 0};
  if (!e.mine) return;
  auto p = pending_.find(id);
  if (p == pending_.end()) {
    // The socket ended before its connection existed: end the connection too.
    if (!r.error) AppendEnd(r.attached.handle, id, /*clean=*/true);
    return;
  }
  PendingOpen open = std::move(p->second);
  pending_.erase(p);
  if (r.error) {
    outbox_.Queue(open.peer,
                  std::make_shared<const std::string>(ReplyError(std::nullopt, *r.error)));
    return ClosePeer(open.peer, 1008, r.error->message);
  }
  AttachSession(id, std::move(open.request), std::move(open.peer), r);
  for (const EarlyMessage& m : open.early) Message(id, m.text, m.received);
}

void Dispatcher::ApplyOp(const ReplicatedEntry& e, const json::object& o) {
  const auto sid = static_cast<SessionId>(IntOf(o, "s"));
  const auto handle = static_cast<engine::ConnectionHandle>(IntOf(o, "h"));
  const int64_t req_id = IntOf(o, "i");
  Result<json::object> parsed = ParseRequestObject(StringOf(o, "t"), /*finite=*/false);
  if (!parsed.ok()) return;  // checked where it was sent
  const json::value* opv = parsed->if_contains("op");
  const OpSpec* op = opv != nullptr && opv->is_string() ? FindOp(opv->as_string()) : nullptr;
  if (op == nullptr) return;
  std::optional<std::vector<std::string>> patterns;
  if (const json::value* pv = o.if_contains("p"); pv != nullptr && pv->is_array()) {
    patterns.emplace();
    for (const auto& p : pv->as_array()) {
      if (p.is_string()) patterns->emplace_back(p.as_string());
    }
  }
  const std::string client_id = StringOf(o, "c");
  const Caller caller{client_id, handle, &patterns, IntOf(o, "w") != 0};
  if (o.contains("x")) replication_->UseSeed(StringOf(o, "x"));
  const Args args(*parsed);
  OpCall call{core_, caller, args};
  // The answer goes to the session that asked, on the node it is on.
  Session* s = e.mine ? sessions_.ById(sid) : nullptr;
  if (s != nullptr && s->handle != handle) s = nullptr;
  if (e.mine && answered_.erase(static_cast<uint64_t>(IntOf(o, "n"))) > 0) {
    s = nullptr;  // answered already: its append was reported failed, yet Redis ran it
  }
  if (op->async != nullptr) {
    Status st = op->async(call, [this, sid, req_id, mine = s != nullptr](Result<std::string> f) {
      if (mine) ReplyLater(sid, req_id, std::move(f));
    });
    if (st) NoteConversationActivity(*parsed);
    if (!st && s != nullptr) {
      metrics_.request_errors_total.fetch_add(1, std::memory_order_relaxed);
      Reply(*s, ReplyError(req_id, st.error()));
    }
    return;
  }
  Result<std::string> fields = op->sync(call);
  if (fields.ok()) NoteConversationActivity(*parsed);
  if (s == nullptr) return;
  if (!fields.ok()) metrics_.request_errors_total.fetch_add(1, std::memory_order_relaxed);
  ReplyLater(sid, req_id, std::move(fields));
}

void Dispatcher::ApplyHttp(const ReplicatedEntry& e, const json::object& o) {
  const uint64_t n = static_cast<uint64_t>(IntOf(o, "n"));
  std::function<void(HttpResponse)> done = [](HttpResponse) {};
  if (e.mine) {
    if (auto w = http_waiting_.find(n); w != http_waiting_.end()) {
      done = std::move(w->second);
      http_waiting_.erase(w);
    }
  }
  if (const json::value* u = o.if_contains("ur"); u != nullptr && u->is_object()) {
    store_.Remember(UserRecordFrom(StringOf(o, "uc"), u->as_object()));
  }
  // The key was checked where the request arrived; every node runs it as authorized.
  HttpRequest req{StringOf(o, "m"), StringOf(o, "u"), "Bearer " + options_.api_key,
                  StringOf(o, "b"), std::string()};
  HandleRest(core_, req, std::move(done));
}

}  // namespace presenced::protocol
