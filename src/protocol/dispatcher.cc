// The Dispatcher (dispatcher.h): sessions in and out, the engine's EventSink; its one thread.
#include "protocol/dispatcher.h"

#include <algorithm>
#include <unordered_set>

#include "protocol/args.h"
#include "protocol/auth.h"
#include "protocol/codec.h"
#include "protocol/json_out.h"
#include "protocol/requests.h"

namespace presenced::protocol {

Dispatcher::Dispatcher(DispatcherOptions options, const presenced::Clock& clock,
                       RandomSource& random, storage::Store& store, Metrics& metrics, Poster post)
    : options_(std::move(options)),
      clock_(clock),
      metrics_(metrics),
      post_(post),
      engine_(options_.engine, clock, random, *this),
      agents_(options_.sessions, clock, *this),
      webhooks_(options_.webhooks),
      store_(store, engine_, clock, std::move(post), options_.last_seen_checkpoint_ms, metrics),
      core_{options_, clock, engine_, store_, agents_, *this, metrics},
      outbox_(options_.max_batch_bytes) {}

void Dispatcher::Tick() {
  ExpireAuth();
  if (replication_ != nullptr) {
    // The engine's time is the log's: a deadline due by the wall clock is asked of the log (one
    // tick entry at a time), and runs on every node when that entry is applied.
    if (!tick_pending_) {
      TimeMs due = store_.next_checkpoint();
      if (const auto engine = engine_.NextDeadline()) due = std::min(due, *engine);
      if (const auto agents = agents_.NextDeadline()) due = std::min(due, *agents);
      const TimeMs now = SystemClock().NowMs();
      if (due <= now) AppendTick(store_.next_checkpoint() <= now);
    }
    // Webhooks: this incarnation says hello once it can append (the first live one delivers).
    if (webhooks_.enabled() && replication_->Available() &&
        hello_origin_ != replication_->Origin()) {
      hello_origin_ = replication_->Origin();
      replication_->Append(R"({"k":"hello"})", [this](const Error&) { hello_origin_.clear(); });
    }
  } else {
    engine_.Tick();
    agents_.Tick();
    RunSessionNotes();
    store_.Checkpoint();
  }
  metrics_.PublishEngine(engine_.channel_count(), engine_.member_count(),
                         engine_.connection_count(), engine_.user_count());
  PumpWebhooks();
  metrics_.webhook_queue_depth.store(webhooks_.total_depth(), std::memory_order_relaxed);
  metrics_.agent_sessions.store(agents_.size(), std::memory_order_relaxed);
  metrics_.session_workers.store(agents_.worker_count(), std::memory_order_relaxed);
}

std::optional<TimeMs> Dispatcher::NextDeadline() const {
  // A connection's `auth` deadline is this node's own (LocalNow), in either mode.
  const std::optional<TimeMs> auth =
      auth_deadlines_.empty() ? std::nullopt : std::optional<TimeMs>(auth_deadlines_.front().first);
  if (replication_ != nullptr && tick_pending_) return auth;  // woken by the tick's entry
  TimeMs due = store_.next_checkpoint();
  if (auth) due = std::min(due, *auth);
  if (const auto engine = engine_.NextDeadline()) due = std::min(due, *engine);
  if (const auto agents = agents_.NextDeadline()) due = std::min(due, *agents);
  if (delivering_webhooks()) {
    if (const auto retry = deliverer_->NextDeadline()) due = std::min(due, *retry);
  }
  return due;
}

// ----- Sessions -------------------------------------------------------------------------------

void Dispatcher::Open(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer) {
  if (shutting_down_) return ClosePeer(peer, 1001, "server shutting down");
  if (request.awaiting_auth) {
    auth_deadlines_.emplace_back(LocalNow() + kAuthTimeoutMs, id);
    awaiting_auth_.emplace(id, AwaitingAuth{std::move(request), std::move(peer)});
    return;
  }
  if (TokenRevoked(request)) return ClosePeer(peer, 4004, "token revoked");
  if (engine_.KnowsUser(request.client_id)) return Attach(id, std::move(request), std::move(peer));
  // What the store remembers of the user (status set by hand, lastSeen) is read first, off this
  // thread and once for every session opened in this round. In cluster mode it goes into the
  // connection's entry, so that every node's engine restores the same.
  unread_.push_back(id);
  pending_.emplace(id, PendingOpen{std::move(request), std::move(peer), {}});
  if (!read_posted_) {
    read_posted_ = true;
    post_([this] { ReadPendingUsers(); });
  }
}

void Dispatcher::ReadPendingUsers() {
  read_posted_ = false;
  std::vector<SessionId> batch;
  batch.swap(unread_);
  std::vector<std::string> users;
  for (SessionId id : batch) {
    if (auto p = pending_.find(id); p != pending_.end())
      users.push_back(p->second.request.client_id);
  }
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  if (replication_ != nullptr) {
    store_.ReadUsers(std::move(users), [this, batch = std::move(batch)](
                                           std::vector<storage::UserRecord> records) {
      for (SessionId id : batch) {
        auto p = pending_.find(id);
        if (p == pending_.end()) continue;  // closed (or refused) meanwhile
        PendingOpen open = std::move(p->second);
        pending_.erase(p);
        if (shutting_down_) {
          ClosePeer(open.peer, 1001, "server shutting down");
          continue;
        }
        const auto record = std::find_if(records.begin(), records.end(), [&](const auto& r) {
          return r.client_id == open.request.client_id;
        });
        AppendOpen(id, std::move(open), record == records.end() ? nullptr : &*record);
      }
    });
    return;
  }
  store_.RememberUsers(std::move(users), [this, batch = std::move(batch)] {
    for (SessionId id : batch) {
      auto p = pending_.find(id);
      if (p == pending_.end()) continue;  // closed (or refused) meanwhile
      PendingOpen open = std::move(p->second);
      pending_.erase(p);
      Attach(id, std::move(open.request), std::move(open.peer));
      for (const EarlyMessage& m : open.early) Message(id, m.text, m.received);
    }
  });
}

TimeMs Dispatcher::RemainFor(const ConnectRequest& request) const {
  return std::clamp<TimeMs>(
      request.remain_present_for_ms.value_or(options_.default_remain_present_for_ms), 0,
      options_.max_remain_present_for_ms);
}

void Dispatcher::Attach(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer) {
  if (shutting_down_) return ClosePeer(peer, 1001, "server shutting down");
  if (replication_ != nullptr) {
    return AppendOpen(id, PendingOpen{std::move(request), std::move(peer), {}}, nullptr);
  }
  AttachResult r =
      AttachInEngine(request.client_id, request.device, RemainFor(request), request.resume_key);
  if (r.error) {
    outbox_.Queue(peer, std::make_shared<const std::string>(ReplyError(std::nullopt, *r.error)));
    return ClosePeer(peer, 1008, r.error->message);
  }
  AttachSession(id, std::move(request), std::move(peer), r);
  if (r.resumed) agents_.ConnectionResumed(r.attached.handle);
}

Dispatcher::AttachResult Dispatcher::AttachInEngine(const std::string& client_id,
                                                    const std::string& device, TimeMs remain,
                                                    const std::optional<std::string>& resume_key) {
  AttachResult out;
  if (resume_key) {
    auto r = engine_.Resume(*resume_key, client_id, remain);
    if (r.ok()) {
      out.resumed = std::move(r).value();
      out.attached = out.resumed->connection;
      if (out.resumed->was_live) {
        // The old socket still looked alive: it is superseded. Forget it first, so its end is not
        // taken for this connection's.
        if (Session* old = sessions_.ByHandle(out.attached.handle)) {
          std::shared_ptr<Peer> old_peer = old->peer;
          Forget(sessions_.Remove(old->id));
          ClosePeer(old_peer, 4000, "resumed on another connection");
        }
      }
    }
  }
  if (!out.resumed) {
    auto r = engine_.Attach(client_id, device, remain);
    if (!r.ok()) {
      out.error = r.error();
      return out;
    }
    out.attached = *r;
    store_.PersistLastSeen();  // the user may have just come online
  }
  return out;
}

void Dispatcher::AttachSession(SessionId id, ConnectRequest request, std::shared_ptr<Peer> peer,
                               AttachResult& r) {
  const engine::Attached& attached = r.attached;
  if (Session* stale = sessions_.AtSlot(engine::ConnectionSlot(attached.handle))) {
    Forget(sessions_.Remove(stale->id));
  }
  Session& s = sessions_.Add(Session{id, attached.handle, std::move(peer), request.client_id,
                                     std::move(request.channel_patterns),
                                     RateLimiter(options_.rate_burst, clock_.NowMs())});
  s.batch = request.batch;
  s.worker = request.worker;
  s.observer = request.observer;
  Reply(s, ConnectedFrame(attached, request.heartbeat_ms, r.resumed.has_value(), options_.epoch));
  if (on_attached_) {
    if (const engine::Identity* who = engine_.IdentityOf(attached.handle)) {
      on_attached_(id, *who, r.resumed.has_value());
    }
  }
  outbox_.Seal(s);  // `connected` is never packed into a batch
  if (r.resumed) {
    for (const engine::CatchUp& cu : r.resumed->catch_up) {
      if (cu.snapshot) {
        Reply(s, SyncFrame(cu));
      } else {
        for (const engine::PresenceEvent& e : cu.events) Reply(s, EventFrame(e));
      }
    }
    for (const engine::StatusChange& change : r.resumed->statuses) Reply(s, StatusFrame(change));
  }
}

void Dispatcher::Closed(SessionId id, bool clean) {
  if (pending_.erase(id) != 0) return;  // never attached: nothing to undo
  if (awaiting_auth_.erase(id) != 0) return;
  std::unique_ptr<Session> s = sessions_.Remove(id);
  if (!s) return;  // superseded, or never opened
  const engine::ConnectionHandle handle = s->handle;
  Forget(std::move(s));
  if (replication_ != nullptr) return AppendEnd(handle, id, clean);
  if (clean) {
    (void)engine_.Close(handle);
    ConnectionEnded(handle);
  } else {
    (void)engine_.Drop(handle);
    agents_.ConnectionDropped(handle);
  }
  store_.PersistLastSeen();
}

std::string Dispatcher::Describe(SessionId id) {
  Session* s = sessions_.ById(id);
  if (s == nullptr) return {};
  const engine::Identity* who = engine_.IdentityOf(s->handle);
  return s->client_id + "/" + (who != nullptr ? who->connection_id : std::string("?"));
}

void Dispatcher::Forget(std::unique_ptr<Session> s) {
  if (s) outbox_.Forget(*s);
}

void Dispatcher::Shutdown() {
  shutting_down_ = true;
  if (replication_ != nullptr) {
    // Only this node's connections end, on every node, when their entries are applied: each
    // leaves at once (a clean close), not after a grace period.
    sessions_.ForEach([&](Session& s) { AppendEnd(s.handle, s.id, /*clean=*/true); });
    // Another node delivers the webhooks from here on.
    if (!hello_origin_.empty()) replication_->Append(R"({"k":"bye"})", [](const Error&) {});
  } else {
    engine_.Shutdown();
  }
  store_.PersistLastSeen();
  FlushOutbound();  // every leave goes out before its socket's close frame
  for (auto& s : sessions_.TakeAll()) s->peer->Close(1001, "server shutting down");
  for (auto& [id, open] : pending_) open.peer->Close(1001, "server shutting down");
  pending_.clear();
  for (auto& [id, waiting] : awaiting_auth_) waiting.peer->Close(1001, "server shutting down");
  awaiting_auth_.clear();
}

void Dispatcher::CloseAll(uint16_t code, const std::string& reason) {
  FlushOutbound();
  sessions_.ForEach([&](Session& s) { s.peer->Close(code, reason, /*abrupt=*/true); });
  for (auto& [id, open] : pending_) open.peer->Close(code, reason, /*abrupt=*/true);
  for (auto& [id, waiting] : awaiting_auth_) waiting.peer->Close(code, reason, /*abrupt=*/true);
}

void Dispatcher::ClosePeer(const std::shared_ptr<Peer>& peer, uint16_t code, std::string reason) {
  FlushOutbound();
  peer->Close(code, std::move(reason));
}

void Dispatcher::Drained(SessionId id) {
  Session* s = sessions_.ById(id);
  if (s == nullptr) return;
  s->drain_requested = false;
  for (const std::string& channel : s->conflated) {
    // Unsubscribed meanwhile: nothing is owed.
    if (!engine_.IsSubscribed(s->handle, channel)) continue;
    Reply(*s, SyncFrame(channel, engine_.Get(channel)));
    metrics_.sync_conflations_total.fetch_add(1, std::memory_order_relaxed);
  }
  s->conflated.clear();
}

void Dispatcher::DeliverEvent(engine::ConnectionHandle handle, std::string_view channel,
                              const Frame& frame) {
  Session* s = sessions_.ByHandle(handle);
  if (s == nullptr) return;
  if (!s->conflated.empty() &&
      std::find(s->conflated.begin(), s->conflated.end(), channel) != s->conflated.end()) {
    return;  // already owed a sync for this channel: the sync will carry this event's effect
  }
  if (!s->peer->HasRoomFor(outbox_.QueuedBytes(*s), frame->size())) {
    // A slow subscriber (protocol-ext §1): its output does not grow; the channel's events are
    // replaced by one `sync` once it drained below half the bound.
    s->conflated.emplace_back(channel);
    if (!s->drain_requested) {
      s->drain_requested = true;
      s->peer->NotifyWhenDrained();
    }
    return;
  }
  outbox_.Queue(*s, frame);
  metrics_.deliveries_total.fetch_add(1, std::memory_order_relaxed);
}

void Dispatcher::SendTo(engine::ConnectionHandle handle, const Frame& frame) {
  Session* s = sessions_.ByHandle(handle);
  if (s == nullptr) return;
  outbox_.Queue(*s, frame);
  metrics_.deliveries_total.fetch_add(1, std::memory_order_relaxed);
}

// ----- WebSocket requests ---------------------------------------------------------------------

void Dispatcher::Message(SessionId id, std::string_view text, Clock::time_point received) {
  Session* found = sessions_.ById(id);
  if (found == nullptr && awaiting_auth_.count(id) != 0) return Authenticate(id, text);
  if (found == nullptr) {
    // Sent before `connected` (a client may pipeline its first requests): kept until the session
    // is attached, then handled in order. Bounded: a client that sends more this early is closed.
    auto p = pending_.find(id);
    if (p == pending_.end()) return;
    PendingOpen& open = p->second;
    if (open.early.size() >= kMaxEarlyMessages || open.early_bytes + text.size() > kMaxEarlyBytes) {
      std::shared_ptr<Peer> peer = std::move(open.peer);
      pending_.erase(p);
      return ClosePeer(peer, 1008, "too many messages before connected");
    }
    open.early_bytes += text.size();
    open.early.push_back(EarlyMessage{std::string(text), received});
    return;
  }
  Session& s = *found;
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
  if (!s.limiter.Take(clock_.NowMs(), options_.rate_per_second, options_.rate_burst)) {
    metrics_.rate_limited_total.fetch_add(1, std::memory_order_relaxed);
    return fail(req_id, MakeError(ErrorCode::kRateLimited, "too many requests; slow down"));
  }
  if (!req_id) return fail(std::nullopt, BadRequest("id must be an integer"));
  const json::value* opv = o.if_contains("op");
  if (opv == nullptr || !opv->is_string()) return fail(req_id, BadRequest("op must be a string"));
  const OpSpec* op = FindOp(opv->as_string());
  if (op == nullptr || (op->flags & kRestOnly) != 0) {
    return fail(req_id, BadRequest("unknown op " + std::string(opv->as_string())));
  }
  if (s.observer && (op->flags & kObserverOk) == 0) {
    return fail(req_id, MakeError(ErrorCode::kForbidden,
                                  "an observer (API key) may only read and subscribe: " +
                                      std::string(op->name)));
  }
  if ((op->flags & kSessionOp) != 0) {  // the socket's own token
    ReAuth(s, *req_id, o);
    metrics_.op_latency[OpIndex(op)].Observe(
        std::chrono::duration<double>(Clock::now() - received).count());
    return;
  }

  // Cluster mode: every request goes through the log (in order with the connection's others),
  // except that while the log is unavailable a read is answered from what this node holds.
  if (replication_ != nullptr) {
    const bool local_read = (op->flags & kTouch) != 0 && op->name != "command";
    if (replication_->Available() || !local_read) {
      return AppendOp(s, *req_id, text, op->name == "session.ready");
    }
  }
  const Caller caller{s.client_id, s.handle, &s.channel_patterns, s.worker};
  const Args args(o);
  OpCall call{core_, caller, args, /*touch=*/replication_ == nullptr};
  if (op->async != nullptr) {
    Status st = op->async(
        call, [this, sid = s.id, rid = *req_id, op, received](Result<std::string> fields) {
          ReplyLater(sid, rid, std::move(fields));
          metrics_.op_latency[OpIndex(op)].Observe(
              std::chrono::duration<double>(Clock::now() - received).count());
        });
    store_.PersistLastSeen();
    if (!st) return fail(req_id, st.error());
    if (replication_ == nullptr) NoteConversationActivity(o);
    return;
  }
  Result<std::string> fields = op->sync(call);
  store_.PersistLastSeen();
  if (!fields.ok()) return fail(req_id, fields.error());
  if (replication_ == nullptr) NoteConversationActivity(o);
  std::string frame = ReplyOkPrefix(*req_id);
  if (!fields->empty()) {
    frame += ',';
    frame += *fields;
  }
  frame += '}';
  Reply(s, std::move(frame));
  metrics_.op_latency[OpIndex(op)].Observe(
      std::chrono::duration<double>(Clock::now() - received).count());
}

void Dispatcher::ReplyLater(SessionId sid, int64_t id, Result<std::string> fields) {
  Session* s = sessions_.ById(sid);
  if (s == nullptr) return;  // the socket has gone; a resumed connection's new one never asked
  if (!fields.ok()) return Reply(*s, ReplyError(id, fields.error()));
  std::string frame = ReplyOkPrefix(id);
  if (!fields->empty()) {
    frame += ',';
    frame += *fields;
  }
  frame += '}';
  Reply(*s, std::move(frame));
}

// ----- REST -----------------------------------------------------------------------------------

void Dispatcher::Http(HttpRequest req, std::function<void(HttpResponse)> done) {
  metrics_.http_requests_total.fetch_add(1, std::memory_order_relaxed);
  // Keep what the store remembers of the user the request acts for (lastSeen, the other half of
  // status/text) before changing it: read first, off this thread, for an authorized request only.
  if (replication_ != nullptr && req.method != "GET" &&
      BearerMatches(req.authorization, options_.api_key)) {
    // A change: on every node, in order; with the user's stored record when it works on one.
    std::optional<std::string> user = HttpRouteUser(req);
    if (!user || engine_.KnowsUser(*user))
      return AppendHttp(std::move(req), std::move(done), nullptr);
    std::string client_id = *user;
    store_.ReadUsers({std::move(*user)}, [this, client_id = std::move(client_id),
                                          req = std::move(req), done = std::move(done)](
                                             std::vector<storage::UserRecord> records) mutable {
      const auto record = std::find_if(records.begin(), records.end(),
                                       [&](const auto& r) { return r.client_id == client_id; });
      AppendHttp(std::move(req), std::move(done), record == records.end() ? nullptr : &*record);
    });
    return;
  }
  std::optional<std::string> user;
  if (replication_ == nullptr && BearerMatches(req.authorization, options_.api_key)) {
    user = HttpRouteUser(req);
  }
  auto run = [this, req = std::move(req), done = std::move(done)] {
    HandleRest(core_, req, done);
    store_.PersistLastSeen();
  };
  if (!user) return run();
  store_.RememberUsers({std::move(*user)}, std::move(run));
}

// ----- Events out -----------------------------------------------------------------------------

void Dispatcher::OnPresence(const engine::PresenceEvent& event,
                            std::span<const engine::ConnectionHandle> recipients) {
  metrics_.events_total.fetch_add(1, std::memory_order_relaxed);
  if (!recipients.empty() && fanout_started_.size() < kMaxFanoutSamples) {
    fanout_started_.push_back(Clock::now());
  }
  if (webhooks_.enabled()) PresenceWebhooks(event);
  if (!server_members_.empty() && event.action == engine::Action::kLeave &&
      event.reason == engine::LeaveReason::kExpired) {
    // A server-side member not renewed in time: its connection ends after the engine's call.
    auto it = server_members_.find(
        std::make_pair(std::string(event.member.client_id), std::string(event.channel)));
    if (it != server_members_.end()) ended_members_.push_back(it->second);
  }
  if (agents_.size() != 0 && event.action != engine::Action::kUpdate &&
      event.channel.starts_with(kConversationPrefix)) {
    const std::string_view conversation = event.channel.substr(kConversationPrefix.size());
    if (agents_.Has(conversation) && event.member.client_id != agents_.AgentIdFor(conversation)) {
      agents_.MembersChanged(conversation, event.action == engine::Action::kEnter ? 1 : -1);
    }
  }
  auto frame = std::make_shared<const std::string>(EventFrame(event));
  for (engine::ConnectionHandle h : recipients) DeliverEvent(h, event.channel, frame);
  store_.AppendEvent(storage::StoredEvent{std::string(event.channel), event.serial,
                                          event.member.timestamp, std::move(frame)});
}

void Dispatcher::ObserveFanout() {
  const Clock::time_point now = Clock::now();
  for (const Clock::time_point t : fanout_started_) {
    metrics_.fanout_latency.Observe(std::chrono::duration<double>(now - t).count());
  }
  fanout_started_.clear();
}

void Dispatcher::OnStatus(const engine::StatusChange& change,
                          std::span<const engine::ConnectionHandle> recipients) {
  if (recipients.empty()) return;
  auto frame = std::make_shared<const std::string>(StatusFrame(change));
  for (engine::ConnectionHandle h : recipients) SendTo(h, frame);
}

void Dispatcher::OnUserConnectivity(std::string_view client_id, bool online, TimeMs) {
  if (webhooks_.Wants(online ? webhooks::kUserOnline : webhooks::kUserOffline)) {
    std::string data = "{\"clientId\":";
    AppendQuoted(data, client_id);
    data += '}';
    Webhook(online ? webhooks::kUserOnline : webhooks::kUserOffline, data);
  }
  // Coming online is stored promptly too (within flush_interval_ms), not only at the next
  // checkpoint: a crash soon after a login must not leave lastSeen unset. Stored after the call
  // (PersistLastSeen), so the value is the engine's (frozen for a user appearing offline).
  store_.LastSeenDue(client_id);
}

void Dispatcher::OnActivity(std::string_view client_id, const engine::ActivityRecord& a) {
  store_.AppendActivity(
      std::string(client_id),
      storage::StoredActivity{a.kind, a.channel, a.data, a.timestamp, a.connection_id});
}

void Dispatcher::OnConnectionExpired(engine::ConnectionHandle connection) {
  // A connection in its grace period has no session (Closed removed it): nothing to forget but
  // who held it (cluster mode), and what it was to agent sessions (after the engine's call).
  holder_.erase(connection);
  if (!agents_.empty()) expired_.push_back(connection);
}

// ----- Agent sessions ---------------------------------------------------------------------------

void Dispatcher::RunSessionNotes() {
  EndServerMembers();
  while (!expired_.empty()) {
    std::vector<engine::ConnectionHandle> ended;
    ended.swap(expired_);
    for (engine::ConnectionHandle h : ended) ConnectionEnded(h);
  }
}

void Dispatcher::NoteConversationActivity(const json::object& request) {
  if (agents_.size() == 0) return;
  const json::value* ch = request.if_contains("channel");
  if (ch == nullptr || !ch->is_string()) return;
  const std::string_view channel = ch->as_string();
  if (channel.starts_with(kConversationPrefix)) {
    agents_.Activity(channel.substr(kConversationPrefix.size()));
  }
}

void Dispatcher::OnAssign(engine::ConnectionHandle worker, const engine::SessionView& session,
                          const JsonText& request) {
  SendTo(worker, std::make_shared<const std::string>(SessionAssignFrame(session, request)));
}

void Dispatcher::OnWorkerStop(engine::ConnectionHandle worker, std::string_view conversation_id,
                              engine::StopReason reason) {
  SendTo(worker, std::make_shared<const std::string>(SessionStopFrame(conversation_id, reason)));
}

void Dispatcher::OnSessionEvent(engine::SessionAction action, const engine::SessionView& session,
                                std::optional<engine::StopReason> reason, std::string_view error,
                                std::span<const engine::ConnectionHandle> subscribers) {
  const bool started = action == engine::SessionAction::kStarted;
  if ((started || action == engine::SessionAction::kStopped) &&
      webhooks_.Wants(started ? webhooks::kSessionStarted : webhooks::kSessionStopped)) {
    std::string data = "{\"session\":";
    AppendSession(data, session);
    if (reason) {
      data += ",\"reason\":\"";
      data += engine::NameOf(*reason);
      data += '"';
    }
    data += '}';
    Webhook(started ? webhooks::kSessionStarted : webhooks::kSessionStopped, data);
  }
  if (subscribers.empty()) return;
  auto frame =
      std::make_shared<const std::string>(SessionEventFrame(action, session, reason, error));
  for (engine::ConnectionHandle h : subscribers) SendTo(h, frame);
}

engine::ConnectionHandle Dispatcher::OnAgentEnter(const engine::SessionView& session) {
  // The agent is a connection of its own (device "agent"), held by no node: it stays present
  // through hand-overs and node losses until the session stops.
  auto attached = engine_.Attach(session.agent_id, "agent", 0);
  if (!attached.ok()) return 0;
  static const JsonText kData = JsonText::FromSerialized(R"({"agent":true,"state":"running"})");
  auto m = engine_.Enter(attached->handle, ConversationChannel(session.conversation_id), kData,
                         std::nullopt);
  if (!m.ok()) {
    (void)engine_.Close(attached->handle);
    return 0;
  }
  return attached->handle;
}

void Dispatcher::OnAgentLeave(const engine::SessionView& session, engine::ConnectionHandle agent) {
  (void)engine_.Leave(agent, ConversationChannel(session.conversation_id), std::nullopt);
  (void)engine_.Close(agent);
}

}  // namespace presenced::protocol
