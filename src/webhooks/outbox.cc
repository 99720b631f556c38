// Outbox and Deliverer (outbox.h); the owner's thread.
#include "webhooks/outbox.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>

#include "common/byte_codec.h"

namespace presenced::webhooks {

namespace {

constexpr std::array<std::pair<Type, std::string_view>, 8> kTypes = {{
    {kChannelOccupied, "channel.occupied"},
    {kChannelVacated, "channel.vacated"},
    {kMemberEntered, "member.entered"},
    {kMemberLeft, "member.left"},
    {kUserOnline, "user.online"},
    {kUserOffline, "user.offline"},
    {kSessionStarted, "session.started"},
    {kSessionStopped, "session.stopped"},
}};

void AppendQuoted(std::string& out, std::string_view s) {
  // Type names and ids are plain ASCII without quotes or backslashes.
  out.push_back('"');
  out.append(s);
  out.push_back('"');
}

}  // namespace

std::string_view TypeName(Type type) {
  for (const auto& [t, name] : kTypes) {
    if (t == type) return name;
  }
  return "unknown";
}

Result<uint32_t> ParseTypes(std::string_view list) {
  uint32_t mask = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) continue;
    const auto* found =
        std::find_if(kTypes.begin(), kTypes.end(), [&](const auto& t) { return t.second == name; });
    if (found == kTypes.end()) {
      return MakeError(ErrorCode::kBadRequest, "unknown webhook event type " + std::string(name));
    }
    mask |= found->first;
  }
  return mask == 0 ? kDefaultTypes : mask;
}

// ----- Outbox -----------------------------------------------------------------------------------

const Event* Outbox::Add(Type type, std::string_view data, TimeMs at, std::string_view epoch) {
  if (!Wants(type)) return nullptr;
  auto e = std::make_shared<Event>();
  e->seq = next_seq_++;
  e->id = std::string(epoch) + "-" + std::to_string(e->seq);
  e->created_at = at;
  std::string body = R"({"id":)";
  AppendQuoted(body, e->id);
  body += R"(,"type":)";
  AppendQuoted(body, TypeName(type));
  body += R"(,"timestamp":)";
  body += std::to_string(at);
  body += R"(,"data":)";
  body += data;
  body.push_back('}');
  e->body = std::make_shared<const std::string>(std::move(body));
  std::shared_ptr<const Event> shared = std::move(e);
  for (auto& q : queues_) {
    if (q.size() >= options_.max_queue) {
      q.pop_front();
      ++overflowed_;
    }
    q.push_back(shared);
  }
  return shared.get();
}

const Event* Outbox::Head(size_t endpoint) const {
  const auto& q = queues_[endpoint];
  return q.empty() ? nullptr : q.front().get();
}

bool Outbox::Pop(size_t endpoint, uint64_t seq) {
  if (endpoint >= queues_.size()) return false;
  auto& q = queues_[endpoint];
  if (q.empty() || q.front()->seq != seq) return false;
  q.pop_front();
  return true;
}

size_t Outbox::total_depth() const {
  size_t n = 0;
  for (const auto& q : queues_) n += q.size();
  return n;
}

void Outbox::Restore(std::vector<StoredEvent> events) {
  std::sort(events.begin(), events.end(), [](const StoredEvent& a, const StoredEvent& b) {
    return a.endpoint != b.endpoint ? a.endpoint < b.endpoint : a.event.seq < b.event.seq;
  });
  for (StoredEvent& s : events) {
    if (s.endpoint >= queues_.size()) continue;  // an endpoint no longer configured
    next_seq_ = std::max(next_seq_, s.event.seq + 1);
    queues_[s.endpoint].push_back(std::make_shared<const Event>(std::move(s.event)));
  }
}

namespace {
constexpr std::string_view kMagic = "presenced-webhooks-1";
}  // namespace

std::string Outbox::SaveState() const {
  ByteWriter w;
  w.Str(kMagic);
  w.U64(next_seq_);
  w.U64(overflowed_);
  w.U64(queues_.size());
  for (const auto& q : queues_) {
    w.U64(q.size());
    for (const auto& e : q) {
      w.U64(e->seq);
      w.Str(e->id);
      w.I64(e->created_at);
      w.Str(*e->body);
    }
  }
  return std::move(w.bytes());
}

Status Outbox::LoadState(std::string_view state) {
  ByteReader r(state);
  const auto corrupt = [this] {
    for (auto& q : queues_) q.clear();
    return MakeError(ErrorCode::kBadRequest, "webhook state is corrupt");
  };
  for (auto& q : queues_) q.clear();
  if (r.Str() != kMagic) return corrupt();
  next_seq_ = r.U64();
  overflowed_ = r.U64();
  const uint64_t endpoints = r.Count(8);
  for (uint64_t i = 0; i < endpoints && r.ok(); ++i) {
    for (uint64_t n = r.Count(32); n > 0 && r.ok(); --n) {
      auto e = std::make_shared<Event>();
      e->seq = r.U64();
      e->id = std::string(r.Str());
      e->created_at = r.I64();
      e->body = std::make_shared<const std::string>(r.Str());
      // Endpoints beyond this node's configuration are skipped (the cluster's nodes should agree
      // on PRESENCED_WEBHOOK_URL; docs/operations.md).
      if (i < queues_.size()) queues_[i].push_back(std::move(e));
    }
  }
  if (!r.done()) return corrupt();
  return Status::Ok();
}

// ----- Signature
// ----------------------------------------------------------------------------------

std::string Signature(std::string_view secret, std::string_view id, int64_t timestamp_s,
                      std::string_view body) {
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id);
  content.push_back('.');
  content.append(std::to_string(timestamp_s));
  content.push_back('.');
  content.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len);
  std::string b64(4 * ((mac_len + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), mac, static_cast<int>(mac_len));
  b64.resize(static_cast<size_t>(n));
  return "v1," + b64;
}

// ----- Deliverer
// ----------------------------------------------------------------------------------

Deliverer::Deliverer(Outbox& outbox, const Clock& clock, HttpClient& client, Callbacks callbacks)
    : outbox_(outbox),
      clock_(clock),
      client_(client),
      callbacks_(std::move(callbacks)),
      states_(outbox.endpoint_count()),
      alive_(std::make_shared<bool>(true)) {}

Deliverer::~Deliverer() { *alive_ = false; }

void Deliverer::Pump() {
  const TimeMs now = clock_.NowMs();
  for (size_t i = 0; i < states_.size(); ++i) {
    State& st = states_[i];
    if (st.in_flight) continue;
    const Event* head = outbox_.Head(i);
    if (head == nullptr) continue;
    if (head->seq == st.reported) continue;  // done; waiting for the owner to pop it
    if (head->seq != st.seq) st = State{false, head->seq, 0, now, st.reported};
    if (now < st.next_try_at) continue;
    if (now >= head->created_at + outbox_.options().retry_ms) {
      st.reported = head->seq;
      callbacks_.count("dropped");
      callbacks_.done(i, head->seq, false);
      continue;
    }
    Send(i, *head);
  }
}

std::optional<TimeMs> Deliverer::NextDeadline() const {
  std::optional<TimeMs> next;
  for (size_t i = 0; i < states_.size(); ++i) {
    const State& st = states_[i];
    const Event* head = outbox_.Head(i);
    if (st.in_flight || head == nullptr || head->seq == st.reported) continue;
    const TimeMs at = head->seq == st.seq ? st.next_try_at : 0;
    next = next ? std::min(*next, at) : at;
  }
  return next;
}

void Deliverer::Settled(size_t endpoint, uint64_t seq) {
  if (endpoint < states_.size() && states_[endpoint].reported == seq) {
    states_[endpoint].reported = 0;
  }
}

void Deliverer::Send(size_t endpoint, const Event& e) {
  State& st = states_[endpoint];
  st.in_flight = true;
  ++st.attempts;
  const int64_t ts = clock_.NowMs() / 1000;
  HttpCall call;
  call.url = outbox_.options().endpoints[endpoint];
  call.headers = {{"webhook-id", e.id},
                  {"webhook-timestamp", std::to_string(ts)},
                  {"webhook-signature", Signature(outbox_.options().secret, e.id, ts, *e.body)}};
  call.body = *e.body;
  call.timeout = std::chrono::milliseconds(outbox_.options().timeout_ms);
  client_.Post(std::move(call), [this, alive = alive_, endpoint, seq = e.seq](HttpOutcome out) {
    callbacks_.post([this, alive, endpoint, seq, out = std::move(out)] {
      if (*alive) Answered(endpoint, seq, out);
    });
  });
}

void Deliverer::Answered(size_t endpoint, uint64_t seq, const HttpOutcome& outcome) {
  State& st = states_[endpoint];
  st.in_flight = false;
  const Event* head = outbox_.Head(endpoint);
  if (head == nullptr || head->seq != seq) return;  // popped meanwhile (another deliverer)
  if (outcome.status >= 200 && outcome.status < 300) {
    st.reported = seq;
    callbacks_.count("ok");
    callbacks_.done(endpoint, seq, true);
    Pump();  // the next one, if the owner has popped this one already
    return;
  }
  callbacks_.count("error");
  const Options& o = outbox_.options();
  TimeMs backoff = o.first_backoff_ms;
  for (int i = 1; i < st.attempts && backoff < o.max_backoff_ms; ++i) backoff *= 2;
  st.next_try_at = clock_.NowMs() + std::min(backoff, o.max_backoff_ms);
  Pump();
}

}  // namespace presenced::webhooks
