#include "cluster/replicator.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace presenced::cluster {

void ReplayRandom::Seed(std::string_view seed) {
  key_.assign(seed);
  counter_ = 0;
}

void ReplayRandom::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    unsigned char block[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    uint8_t counter[8];
    for (int i = 0; i < 8; ++i) counter[i] = static_cast<uint8_t>(counter_ >> (8 * i));
    ++counter_;
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), counter, sizeof counter, block,
         &len);
    const size_t n = std::min<size_t>(len, out.size() - done);
    std::memcpy(out.data() + done, block, n);
    done += n;
  }
}

Replicator::Replicator(Reactor& reactor, Node& node, redis::ClientOptions reader_options,
                       ManualClock& log_clock, ReplayRandom& random)
    : reactor_(reactor),
      node_(node),
      log_(reactor, node.client(), std::move(reader_options)),
      clock_(log_clock),
      random_(random) {}

namespace {

constexpr const char* kSnapshotKey = "{presenced}:snap";

// KEYS: the snapshot. ARGV: entry id, entry number, time, state. Keeps the newest: a snapshot of an
// earlier entry (a slow node's) never replaces a later one. Returns 1 when stored.
const redis::Script& SaveScript() {
  static const redis::Script script(R"lua(
local function after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local current = redis.call('HGET', KEYS[1], 'id')
if current and not after(ARGV[1], current) then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'number', ARGV[2], 'time', ARGV[3], 'state', ARGV[4])
return 1
)lua");
  return script;
}

}  // namespace

void Replicator::Start(StateHooks hooks, std::function<void(std::vector<LogEntry>)> on_batch) {
  hooks_ = std::move(hooks);
  FetchSnapshot([this, on_batch = std::move(on_batch)](std::optional<Saved> saved) mutable {
    std::string after = "0-0";
    std::optional<uint64_t> number = 0;
    if (saved && Load(*saved)) {
      after = saved->id;
      number = saved->number;
    }
    ready_ = true;
    log_.Read(
        after, number,
        [on_batch = std::move(on_batch)](std::vector<LogEntry>& entries) {
          on_batch(std::move(entries));
        },
        [this](bool restarted) {
          // The log started over (Redis lost its data): this node keeps what it holds and reads
          // on; the epoch's change tells subscribers (Dispatcher::EpochChanged).
          if (restarted) return false;
          OnGap();
          return true;  // waits for the snapshot
        });
  });
}

void Replicator::FetchSnapshot(std::function<void(std::optional<Saved>)> done) {
  node_.client().Command(
      {"HMGET", kSnapshotKey, "id", "number", "time", "state"},
      [this, alive = alive_, done = std::move(done)](const redis::Reply& r) mutable {
        if (!*alive) return;
        if (r.type != redis::Reply::Type::kArray || r.elements.size() != 4) {
          // Redis does not answer yet: ask again shortly.
          retry_ = reactor_.MakeTimer(
              [this, done = std::move(done)]() mutable { FetchSnapshot(std::move(done)); });
          retry_->Arm(std::chrono::milliseconds(200));
          return;
        }
        if (r.elements[0].type != redis::Reply::Type::kString) return done(std::nullopt);
        Saved saved;
        saved.id = r.elements[0].str;
        if (!r.elements[1].str.empty()) {
          saved.number = std::strtoull(r.elements[1].str.c_str(), nullptr, 10);
        }
        saved.time = std::strtoll(r.elements[2].str.c_str(), nullptr, 10);
        saved.state = r.elements[3].str;
        done(std::move(saved));
      });
}

bool Replicator::Load(const Saved& saved) {
  clock_.Set(std::max(clock_.NowMs(), saved.time));
  if (!hooks_.load || !hooks_.load(saved.state)) return false;
  ++loaded_;
  return true;
}

void Replicator::OnGap() {
  FetchSnapshot([this](std::optional<Saved> found) {
    auto saved = std::make_shared<std::optional<Saved>>(std::move(found));
    auto resync = [this, alive = alive_, saved] {
      if (!*alive) return;
      // Only a snapshot past what this node applied helps (one at its position would find the
      // same gap again).
      if (*saved && IdBefore(log_.position(), (*saved)->id) && Load(**saved)) {
        return log_.Resume((*saved)->id, (*saved)->number);
      }
      ++gaps_;  // nothing covers what was missed: read on
      if (hooks_.uncovered_gap) hooks_.uncovered_gap();
      log_.Resume(log_.position(), std::nullopt);
    };
    if (hooks_.in_order) return hooks_.in_order(std::move(resync));
    resync();
  });
}

void Replicator::Applied(const LogEntry& e) {
  last_id_ = e.id;
  last_time_ = e.time;
  const auto every = static_cast<uint64_t>(node_.options().snapshot_entries);
  if (every == 0 || e.number == 0 || e.number % every != 0) return;
  if (e.node != node_.node_id() || e.incarnation != node_.incarnation()) return;
  Save(e.id, e.number, e.time);
}

void Replicator::SaveNow() {
  auto save = [this, alive = alive_] {
    if (*alive) Save(last_id_, std::nullopt, last_time_);
  };
  if (hooks_.in_order) return hooks_.in_order(std::move(save));
  save();
}

void Replicator::Save(const std::string& id, std::optional<uint64_t> number, TimeMs time) {
  if (!hooks_.save) return;
  std::string state = hooks_.save();
  ++saved_;
  node_.client().Eval(SaveScript(), {kSnapshotKey},
                      {id, number ? std::to_string(*number) : std::string(), std::to_string(time),
                       std::move(state)},
                      [](const redis::Reply&) {});
}

ReplicatedEntry Replicator::Prepare(const LogEntry& e) {
  clock_.Set(std::max(clock_.NowMs(), e.time));
  origin_ = e.node + "/" + e.incarnation;
  return ReplicatedEntry{e.time, e.node == node_.node_id() && e.incarnation == node_.incarnation(),
                         origin_, e.body};
}

void Replicator::Append(std::string body, std::function<void(const Error&)> failed) {
  queue_.push_back(std::move(body));
  failed_.push_back(std::move(failed));
  if (flush_posted_) return;
  flush_posted_ = true;
  reactor_.Post([this, alive = alive_] {
    if (*alive) Flush();
  });
}

void Replicator::Flush() {
  flush_posted_ = false;
  std::vector<std::string> bodies;
  bodies.swap(queue_);
  auto failed = std::make_shared<std::vector<std::function<void(const Error&)>>>();
  failed->swap(failed_);
  // The Dispatcher answers the failures: in a round of its loop (hooks_.in_order), so what it
  // queues for its sockets leaves at the round's end rather than at the next round.
  auto fail_all = [failed, in_order = hooks_.in_order](const std::string& why) {
    auto fail = [failed, e = MakeError(ErrorCode::kInternal, why)] {
      for (auto& f : *failed) f(e);
    };
    if (in_order) return in_order(std::move(fail));
    fail();
  };
  if (!node_.up()) return fail_all("redis is down: " + node_.client().DownReason());
  log_.Append(node_.node_id(), node_.incarnation(), std::move(bodies),
              [fail_all](const redis::Reply& r) {
                if (!r.ok()) fail_all(r.str);
              });
}

std::string Replicator::NewSeed() { return RandomHex(secure_, 16); }

}  // namespace presenced::cluster
