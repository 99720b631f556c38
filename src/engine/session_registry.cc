// SessionRegistry (session_registry.h): sessions, workers, assignment, hand-over and the session
// deadlines. Runs on its owner's thread (the Dispatcher's).
#include "engine/session_registry.h"

#include <algorithm>

#include "common/byte_codec.h"

namespace presenced::engine {

std::string_view NameOf(SessionState state) {
  return state == SessionState::kRunning ? "running" : "starting";
}

std::string_view NameOf(SessionAction action) {
  switch (action) {
    case SessionAction::kStarted:
      return "started";
    case SessionAction::kRunning:
      return "running";
    case SessionAction::kReassigned:
      return "reassigned";
    case SessionAction::kStopped:
      return "stopped";
  }
  return "stopped";
}

std::string_view NameOf(StopReason reason) {
  switch (reason) {
    case StopReason::kStopped:
      return "stopped";
    case StopReason::kIdle:
      return "idle";
    case StopReason::kAbandoned:
      return "abandoned";
    case StopReason::kFailed:
      return "failed";
    case StopReason::kWorkerLost:
      return "worker_lost";
  }
  return "stopped";
}

SessionRegistry::SessionRegistry(SessionSettings settings, const Clock& clock, SessionSink& sink)
    : settings_(std::move(settings)), clock_(clock), sink_(sink) {}

SessionRegistry::~SessionRegistry() = default;

std::string SessionRegistry::AgentIdFor(std::string_view conversation_id) const {
  static constexpr std::string_view kVar = "{conversationId}";
  std::string out;
  std::string_view t = settings_.agent_id_template;
  for (size_t at = t.find(kVar); at != std::string_view::npos; at = t.find(kVar)) {
    out.append(t.substr(0, at));
    out.append(conversation_id);
    t.remove_prefix(at + kVar.size());
  }
  out.append(t);
  return out;
}

void SessionRegistry::Begin() {
  now_ = std::max(now_, clock_.NowMs());
  // Each due deadline runs at its own time, earliest first (ties by conversation id).
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_) {
    Session* s = Find(deadlines_.begin()->second);
    if (s == nullptr) {  // cannot happen: a session's key leaves with it
      deadlines_.erase(deadlines_.begin());
      continue;
    }
    const TimeMs at = s->deadline;
    const TimeMs saved = now_;
    now_ = at;
    if (s->start_deadline >= 0 && s->start_deadline <= at) {
      StopSession(*s, StopReason::kFailed, "no worker got the agent running in time");
    } else if (s->empty_since >= 0 && s->empty_since + s->abandon_after_ms <= at) {
      StopSession(*s, StopReason::kAbandoned);
    } else {
      StopSession(*s, StopReason::kIdle);
    }
    now_ = saved;
  }
}

SessionRegistry::Session* SessionRegistry::Find(std::string_view conversation_id) {
  auto it = sessions_.find(conversation_id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

bool SessionRegistry::Has(std::string_view conversation_id) const {
  return sessions_.find(conversation_id) != sessions_.end();
}

SessionView SessionRegistry::ViewOf(const Session& s) const {
  SessionView v;
  v.conversation_id = s.conversation_id;
  v.agent_id = s.agent_id;
  v.state = s.state;
  if (s.worker != 0) {
    if (auto w = workers_.find(s.worker); w != workers_.end()) {
      v.worker_connection_id = w->second.connection_id;
    }
  }
  v.started_at = s.started_at;
  v.last_activity_at = s.last_activity_at;
  v.inactivity_timeout_ms = s.inactivity_timeout_ms;
  v.abandon_after_ms = s.abandon_after_ms;
  return v;
}

void SessionRegistry::Emit(SessionAction action, const Session& s, std::optional<StopReason> reason,
                           std::string_view error) {
  static const std::vector<ConnectionHandle> kNone;
  auto subs = subscribers_.find(s.conversation_id);
  sink_.OnSessionEvent(action, ViewOf(s), reason, error,
                       subs == subscribers_.end() ? kNone : subs->second);
}

void SessionRegistry::Schedule(Session& s) {
  if (s.deadline >= 0) deadlines_.erase({s.deadline, s.conversation_id});
  TimeMs d = s.last_activity_at + s.inactivity_timeout_ms;
  if (s.empty_since >= 0) d = std::min(d, s.empty_since + s.abandon_after_ms);
  if (s.start_deadline >= 0) d = std::min(d, s.start_deadline);
  s.deadline = d;
  deadlines_.emplace(d, s.conversation_id);
}

void SessionRegistry::NoteActivity(Session& s) {
  s.last_activity_at = now_;
  Schedule(s);
  if (s.agent != 0) sink_.OnAgentActive(s.agent);
}

ConnectionHandle SessionRegistry::PickWorker() const {
  ConnectionHandle best = 0;
  int64_t best_free = 0;
  uint64_t best_seq = 0;
  for (const auto& [handle, w] : workers_) {
    if (!w.live) continue;
    const int64_t free = int64_t{w.capacity} - int64_t{w.sessions};
    if (free <= 0) continue;
    if (best == 0 || free > best_free || (free == best_free && w.serve_seq < best_seq)) {
      best = handle;
      best_free = free;
      best_seq = w.serve_seq;
    }
  }
  return best;
}

void SessionRegistry::AssignTo(Session& s, ConnectionHandle worker) {
  if (s.wait_seq != 0) {
    waiting_.erase(s.wait_seq);
    s.wait_seq = 0;
  }
  s.worker = worker;
  s.state = SessionState::kStarting;
  s.start_deadline = now_ + settings_.start_timeout_ms;
  ++workers_.at(worker).sessions;
  Schedule(s);
  if (s.handed_over) {
    s.handed_over = false;
    Emit(SessionAction::kReassigned, s);
  }
  sink_.OnAssign(worker, ViewOf(s), s.request);
}

void SessionRegistry::Wait(Session& s) {
  s.worker = 0;
  s.state = SessionState::kStarting;
  s.start_deadline = now_ + settings_.start_timeout_ms;
  s.wait_seq = ++next_wait_seq_;
  waiting_.emplace(s.wait_seq, &s);
  Schedule(s);
}

void SessionRegistry::AssignWaiting() {
  while (!waiting_.empty()) {
    const ConnectionHandle w = PickWorker();
    if (w == 0) return;
    AssignTo(*waiting_.begin()->second, w);
  }
}

void SessionRegistry::Release(Session& s) {
  if (s.wait_seq != 0) {
    waiting_.erase(s.wait_seq);
    s.wait_seq = 0;
  }
  if (s.worker != 0) {
    if (auto w = workers_.find(s.worker); w != workers_.end() && w->second.sessions > 0) {
      --w->second.sessions;
    }
  }
}

void SessionRegistry::StopSession(Session& session, StopReason reason, std::string_view error) {
  // Detached first: what the sink's calls report back (members leaving the channel) finds no
  // session any more.
  auto it = sessions_.find(session.conversation_id);
  std::unique_ptr<Session> s = std::move(it->second);
  sessions_.erase(it);
  if (s->deadline >= 0) deadlines_.erase({s->deadline, s->conversation_id});
  const SessionView view = ViewOf(*s);  // before Release: the worker still shows
  const std::string err(error);
  Release(*s);
  if (s->worker != 0 && reason != StopReason::kWorkerLost) {
    sink_.OnWorkerStop(s->worker, s->conversation_id, reason);
  }
  if (s->agent != 0) sink_.OnAgentLeave(view, s->agent);
  static const std::vector<ConnectionHandle> kNone;
  auto subs = subscribers_.find(s->conversation_id);
  sink_.OnSessionEvent(SessionAction::kStopped, view, reason, err,
                       subs == subscribers_.end() ? kNone : subs->second);
  AssignWaiting();  // its worker may have room now
}

Result<SessionRegistry::Started> SessionRegistry::Start(std::string_view conversation_id,
                                                        StartOptions options) {
  Begin();
  if (Session* s = Find(conversation_id)) {
    NoteActivity(*s);
    return Started{ViewOf(*s), false};
  }
  if (sessions_.size() >= settings_.max_sessions) {
    return MakeError(ErrorCode::kLimitExceeded, "too many agent sessions");
  }
  auto owned = std::make_unique<Session>();
  Session& s = *owned;
  s.conversation_id = std::string(conversation_id);
  s.agent_id = AgentIdFor(conversation_id);
  s.started_at = now_;
  s.last_activity_at = now_;
  s.inactivity_timeout_ms = options.inactivity_timeout_ms.value_or(settings_.inactivity_timeout_ms);
  s.abandon_after_ms = options.abandon_after_ms.value_or(settings_.abandon_after_ms);
  s.request = std::move(options.request);
  s.others = options.others_present;
  s.empty_since = s.others == 0 ? now_ : -1;
  sessions_.emplace(s.conversation_id, std::move(owned));
  const ConnectionHandle w = PickWorker();
  if (w == 0) {
    Wait(s);
    Emit(SessionAction::kStarted, s);
  } else {
    // The worker is chosen before `started` goes out, so the event shows it; the assignment
    // follows the event.
    s.worker = w;
    ++workers_.at(w).sessions;
    s.start_deadline = now_ + settings_.start_timeout_ms;
    Schedule(s);
    Emit(SessionAction::kStarted, s);
    sink_.OnAssign(w, ViewOf(s), s.request);
  }
  return Started{ViewOf(s), true};
}

std::optional<SessionView> SessionRegistry::Get(std::string_view conversation_id) {
  Begin();
  Session* s = Find(conversation_id);
  if (s == nullptr) return std::nullopt;
  return ViewOf(*s);
}

bool SessionRegistry::Stop(std::string_view conversation_id) {
  Begin();
  Session* s = Find(conversation_id);
  if (s == nullptr) return false;
  StopSession(*s, StopReason::kStopped);
  return true;
}

std::vector<SessionView> SessionRegistry::List() {
  Begin();
  std::vector<SessionView> out;
  out.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) out.push_back(ViewOf(*s));
  return out;
}

Status SessionRegistry::Subscribe(ConnectionHandle connection, std::string_view conversation_id) {
  Begin();
  auto& mine = subscribed_[connection];
  if (mine.contains(conversation_id)) return Status::Ok();
  if (mine.size() >= settings_.max_subscriptions_per_connection) {
    if (mine.empty()) subscribed_.erase(connection);
    return MakeError(ErrorCode::kLimitExceeded, "too many session subscriptions");
  }
  mine.emplace(conversation_id);
  subscribers_[std::string(conversation_id)].push_back(connection);
  return Status::Ok();
}

Status SessionRegistry::Serve(ConnectionHandle worker, std::string_view connection_id,
                              uint32_t capacity) {
  Begin();
  auto [it, fresh] = workers_.try_emplace(worker);
  if (fresh) {
    it->second.connection_id = std::string(connection_id);
    it->second.serve_seq = ++next_serve_seq_;
  }
  it->second.capacity = capacity;
  AssignWaiting();
  return Status::Ok();
}

Status SessionRegistry::Ready(ConnectionHandle worker, std::string_view conversation_id) {
  Begin();
  Session* s = Find(conversation_id);
  if (s == nullptr || s->worker != worker) {
    return MakeError(ErrorCode::kNotPresent, "no session of this worker for that conversation");
  }
  if (s->state == SessionState::kRunning) return Status::Ok();
  s->state = SessionState::kRunning;
  s->start_deadline = -1;
  Schedule(*s);
  if (s->agent == 0) s->agent = sink_.OnAgentEnter(ViewOf(*s));
  Emit(SessionAction::kRunning, *s);
  return Status::Ok();
}

Status SessionRegistry::Fail(ConnectionHandle worker, std::string_view conversation_id,
                             std::string_view error) {
  Begin();
  Session* s = Find(conversation_id);
  if (s == nullptr || s->worker != worker) {
    return MakeError(ErrorCode::kNotPresent, "no session of this worker for that conversation");
  }
  StopSession(*s, StopReason::kFailed, error);
  return Status::Ok();
}

Status SessionRegistry::Touch(std::string_view conversation_id) {
  Begin();
  Session* s = Find(conversation_id);
  if (s == nullptr) return MakeError(ErrorCode::kNotPresent, "no session for that conversation");
  NoteActivity(*s);
  return Status::Ok();
}

void SessionRegistry::Activity(std::string_view conversation_id) {
  if (Session* s = Find(conversation_id)) {
    now_ = std::max(now_, clock_.NowMs());
    NoteActivity(*s);
  }
}

void SessionRegistry::MembersChanged(std::string_view conversation_id, int delta) {
  Session* s = Find(conversation_id);
  if (s == nullptr) return;
  now_ = std::max(now_, clock_.NowMs());
  if (delta < 0) {
    const auto d = static_cast<uint64_t>(-int64_t{delta});
    s->others = s->others > d ? s->others - d : 0;
  } else {
    s->others += static_cast<uint64_t>(delta);
  }
  if (s->others == 0 && s->empty_since < 0) {
    s->empty_since = now_;
  } else if (s->others > 0) {
    s->empty_since = -1;
  }
  Schedule(*s);
}

void SessionRegistry::ConnectionDropped(ConnectionHandle connection) {
  if (auto w = workers_.find(connection); w != workers_.end()) w->second.live = false;
}

void SessionRegistry::ConnectionResumed(ConnectionHandle connection) {
  auto w = workers_.find(connection);
  if (w == workers_.end()) return;
  Begin();
  w->second.live = true;
  // Assignments it may have missed while away are sent again.
  for (auto& [id, s] : sessions_) {
    if (s->worker == connection && s->state == SessionState::kStarting) {
      sink_.OnAssign(connection, ViewOf(*s), s->request);
    }
  }
  AssignWaiting();
}

void SessionRegistry::ConnectionEnded(ConnectionHandle connection) {
  if (auto sub = subscribed_.find(connection); sub != subscribed_.end()) {
    for (const std::string& conv : sub->second) {
      auto list = subscribers_.find(conv);
      if (list == subscribers_.end()) continue;
      std::erase(list->second, connection);
      if (list->second.empty()) subscribers_.erase(list);
    }
    subscribed_.erase(sub);
  }
  auto w = workers_.find(connection);
  if (w == workers_.end()) return;
  Begin();
  workers_.erase(w);
  std::vector<Session*> orphans;
  for (auto& [id, s] : sessions_) {
    if (s->worker == connection) orphans.push_back(s.get());
  }
  bool any_worker = false;
  for (const auto& [h, other] : workers_) any_worker = any_worker || other.live;
  for (Session* s : orphans) {
    s->worker = 0;
    if (!any_worker) {
      StopSession(*s, StopReason::kWorkerLost);
      continue;
    }
    s->handed_over = true;
    const ConnectionHandle next = PickWorker();
    if (next != 0) {
      AssignTo(*s, next);
    } else {
      Wait(*s);
    }
  }
}

void SessionRegistry::Tick() { Begin(); }

std::optional<TimeMs> SessionRegistry::NextDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

// ----- State snapshots ----------------------------------------------------------------------

namespace {
constexpr std::string_view kMagic = "presenced-sessions-1";
}  // namespace

std::string SessionRegistry::SaveState() const {
  ByteWriter w;
  w.Str(kMagic);
  w.I64(now_);
  w.U64(next_serve_seq_);
  w.U64(next_wait_seq_);
  w.U64(workers_.size());
  for (const auto& [handle, wk] : workers_) {
    w.U64(handle);
    w.Str(wk.connection_id);
    w.U64(wk.capacity);
    w.U64(wk.sessions);
    w.U64(wk.serve_seq);
    w.U8(wk.live ? 1 : 0);
  }
  w.U64(sessions_.size());
  for (const auto& [id, s] : sessions_) {
    w.Str(s->conversation_id);
    w.Str(s->agent_id);
    w.U8(static_cast<uint8_t>(s->state));
    w.U64(s->worker);
    w.I64(s->started_at);
    w.I64(s->last_activity_at);
    w.I64(s->inactivity_timeout_ms);
    w.I64(s->abandon_after_ms);
    w.U8(s->request.is_null() ? 0 : 1);
    w.Str(s->request.is_null() ? std::string_view() : s->request.text());
    w.U64(s->others);
    w.I64(s->empty_since);
    w.I64(s->start_deadline);
    w.U64(s->wait_seq);
    w.U64(s->agent);
    w.U8(s->handed_over ? 1 : 0);
  }
  w.U64(subscribers_.size());
  for (const auto& [conv, list] : subscribers_) {
    w.Str(conv);
    w.U64(list.size());
    for (ConnectionHandle h : list) w.U64(h);
  }
  return std::move(w.bytes());
}

Status SessionRegistry::LoadState(std::string_view state) {
  const auto corrupt = [this] {
    sessions_.clear();
    workers_.clear();
    waiting_.clear();
    deadlines_.clear();
    subscribers_.clear();
    subscribed_.clear();
    return MakeError(ErrorCode::kBadRequest, "session state is corrupt");
  };
  sessions_.clear();
  workers_.clear();
  waiting_.clear();
  deadlines_.clear();
  subscribers_.clear();
  subscribed_.clear();
  ByteReader r(state);
  if (r.Str() != kMagic) return corrupt();
  now_ = r.I64();
  next_serve_seq_ = r.U64();
  next_wait_seq_ = r.U64();
  for (uint64_t n = r.Count(8); n > 0 && r.ok(); --n) {
    const ConnectionHandle h = r.U64();
    Worker wk;
    wk.connection_id = std::string(r.Str());
    wk.capacity = static_cast<uint32_t>(r.U64());
    wk.sessions = static_cast<uint32_t>(r.U64());
    wk.serve_seq = r.U64();
    wk.live = r.U8() != 0;
    if (!workers_.emplace(h, std::move(wk)).second) return corrupt();
  }
  for (uint64_t n = r.Count(16); n > 0 && r.ok(); --n) {
    auto s = std::make_unique<Session>();
    s->conversation_id = std::string(r.Str());
    s->agent_id = std::string(r.Str());
    const uint8_t st = r.U8();
    if (st > 1) return corrupt();
    s->state = static_cast<SessionState>(st);
    s->worker = r.U64();
    s->started_at = r.I64();
    s->last_activity_at = r.I64();
    s->inactivity_timeout_ms = r.I64();
    s->abandon_after_ms = r.I64();
    const bool has_request = r.U8() != 0;
    const std::string_view request = r.Str();
    if (has_request) s->request = JsonText::FromSerialized(request);
    s->others = r.U64();
    s->empty_since = r.I64();
    s->start_deadline = r.I64();
    s->wait_seq = r.U64();
    s->agent = r.U64();
    s->handed_over = r.U8() != 0;
    if (!r.ok()) return corrupt();
    if (s->worker != 0 && !workers_.contains(s->worker)) return corrupt();
    Session* raw = s.get();
    const std::string key = s->conversation_id;
    if (!sessions_.emplace(key, std::move(s)).second) return corrupt();
    if (raw->wait_seq != 0 && !waiting_.emplace(raw->wait_seq, raw).second) return corrupt();
    Schedule(*raw);
  }
  for (uint64_t n = r.Count(16); n > 0 && r.ok(); --n) {
    const std::string conv(r.Str());
    auto& list = subscribers_[conv];
    for (uint64_t m = r.Count(8); m > 0 && r.ok(); --m) {
      const ConnectionHandle h = r.U64();
      list.push_back(h);
      subscribed_[h].insert(conv);
    }
  }
  if (!r.done()) return corrupt();
  return Status::Ok();
}

bool SessionRegistry::IsAgent(ConnectionHandle handle) const {
  if (handle == 0) return false;
  for (const auto& [id, s] : sessions_) {
    if (s->agent == handle) return true;
  }
  return false;
}

}  // namespace presenced::engine
