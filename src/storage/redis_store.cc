// RedisStore (redis_store.h): history, statuses, lastSeen and activity on the cluster's Redis.
#include "storage/redis_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>

#include "common/byte_codec.h"

namespace presenced::storage {

namespace {

// A history page's cursor: the stream id's time and sequence in one number (the sequence counts
// entries within one millisecond of one channel: far below 2^20).
constexpr int kSeqBits = 20;

std::string IdOfCursor(int64_t cursor) {
  const auto c = static_cast<uint64_t>(cursor);
  return std::to_string(c >> kSeqBits) + "-" + std::to_string(c & ((uint64_t{1} << kSeqBits) - 1));
}

std::optional<int64_t> CursorOfId(const std::string& id) {
  const size_t dash = id.find('-');
  if (dash == std::string::npos) return std::nullopt;
  const uint64_t ms = std::strtoull(id.c_str(), nullptr, 10);
  const uint64_t seq = std::strtoull(id.c_str() + dash + 1, nullptr, 10);
  if (seq >= (uint64_t{1} << kSeqBits)) return std::nullopt;
  return static_cast<int64_t>((ms << kSeqBits) | seq);
}

constexpr const char* kNotStarted = "storage (redis) is not started";

Error Unreachable(const redis::Reply& r) {
  return MakeError(ErrorCode::kInternal, "storage (redis) failed: " + r.str);
}

// KEYS: history. ARGV: timestamp, serial, event, max entries (0: none), oldest time kept
// (0: none), age limit ms (0: none). The id's time is the event's, or the stream's last id's when
// that is later (ids must grow; a stream trimmed empty by age keeps its last id, hence XINFO).
const redis::Script& AppendEventScript() {
  static const redis::Script s(R"lua(
local function add(ms)
  local id = string.format('%d-*', ms)
  if tonumber(ARGV[4]) > 0 then
    return redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id, 's', ARGV[2], 'j', ARGV[3])
  end
  return redis.pcall('XADD', KEYS[1], id, 's', ARGV[2], 'j', ARGV[3])
end
local added = add(tonumber(ARGV[1]))
if type(added) == 'table' and added.err then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local last = 0
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = tonumber(string.match(info[i + 1], '^(%d+)')) end
  end
  added = add(last)
  if type(added) == 'table' and added.err then return added end
end
if tonumber(ARGV[5]) > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[5]) end
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return 1
)lua");
  return s;
}

// KEYS: user. ARGV: lastSeen. Never moves it backwards.
constexpr const char* kKeepLatestLastSeen = R"lua(
local function keep_latest(key, seen)
  seen = tonumber(seen)
  if seen <= 0 then return end
  local current = tonumber(redis.call('HGET', key, 'last_seen') or '0')
  if seen > current then redis.call('HSET', key, 'last_seen', seen) end
end
)lua";

const redis::Script& LastSeenScript() {
  static const redis::Script s(std::string(kKeepLatestLastSeen) +
                               "keep_latest(KEYS[1], ARGV[1])\nreturn 1\n");
  return s;
}

// KEYS: user. ARGV: manual, has text ("1"/"0"), text, lastSeen.
const redis::Script& StatusScript() {
  static const redis::Script s(std::string(kKeepLatestLastSeen) + R"lua(
redis.call('HSET', KEYS[1], 'manual', ARGV[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'text', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'text')
end
keep_latest(KEYS[1], ARGV[4])
return 1
)lua");
  return s;
}

std::string EncodeActivity(const StoredActivity& a) {
  ByteWriter w;
  w.Str(a.kind);
  w.Str(a.channel);
  w.Str(a.data.text());
  w.I64(a.timestamp);
  w.Str(a.connection_id);
  return std::move(w.bytes());
}

std::optional<StoredActivity> DecodeActivity(std::string_view bytes) {
  ByteReader r(bytes);
  StoredActivity a;
  a.kind = std::string(r.Str());
  a.channel = std::string(r.Str());
  const std::string_view data = r.Str();
  a.timestamp = r.I64();
  a.connection_id = std::string(r.Str());
  if (!r.done()) return std::nullopt;
  a.data = JsonText::FromSerialized(data);
  return a;
}

// HMGET manual text last_seen, as a record (nullopt: the user has none).
std::optional<UserRecord> RecordOf(const std::string& client_id, const redis::Reply& r) {
  if (r.type != redis::Reply::Type::kArray || r.elements.size() != 3) return std::nullopt;
  const auto has = [&r](size_t i) { return r.elements[i].type == redis::Reply::Type::kString; };
  if (!has(0) && !has(1) && !has(2)) return std::nullopt;
  UserRecord u;
  u.client_id = client_id;
  if (has(0)) u.manual = r.elements[0].str;
  if (has(1)) u.text = r.elements[1].str;
  if (has(2)) u.last_seen = std::strtoll(r.elements[2].str.c_str(), nullptr, 10);
  return u;
}

}  // namespace

std::string RedisStore::HistoryKey(std::string_view channel) {
  return "{c:" + std::string(channel) + "}:history";
}
std::string RedisStore::UserKey(std::string_view client_id) {
  return "{u:" + std::string(client_id) + "}:user";
}
std::string RedisStore::ActivityKey(std::string_view client_id) {
  return "{u:" + std::string(client_id) + "}:activity";
}

RedisStore::RedisStore(redis::ClientOptions options, const SqliteOptions& retention,
                       const Clock& clock)
    : options_(std::move(options)), retention_(retention), clock_(clock) {}

RedisStore::~RedisStore() { *alive_ = false; }

void RedisStore::Start(Reactor& reactor) {
  reactor_ = &reactor;
  client_ = std::make_unique<redis::Client>(reactor, options_);
  client_->Start();
}

void RedisStore::NotStarted() { write_errors_.fetch_add(1, std::memory_order_relaxed); }

redis::Client::Callback RedisStore::Written(std::function<void(const redis::Reply&)> then) {
  pending_.fetch_add(1, std::memory_order_relaxed);
  return [this, alive = alive_, then = std::move(then)](const redis::Reply& r) {
    if (!*alive) return;
    if (!r.ok()) write_errors_.fetch_add(1, std::memory_order_relaxed);
    if (then) then(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.fetch_sub(1, std::memory_order_relaxed);
    }
    drained_.notify_all();
  };
}

void RedisStore::AppendEvent(StoredEvent event) {
  if (client_ == nullptr) return NotStarted();
  const TimeMs now = clock_.NowMs();
  const TimeMs age = retention_.history_max_age_ms;
  client_->Eval(AppendEventScript(), {HistoryKey(event.channel)},
                {std::to_string(event.timestamp), std::to_string(event.serial), *event.json,
                 std::to_string(retention_.history_max_per_channel),
                 std::to_string(age > 0 ? now - age : 0), std::to_string(age)},
                Written());
}

void RedisStore::AppendActivity(std::string client_id, StoredActivity activity) {
  if (client_ == nullptr) return NotStarted();
  const std::string key = ActivityKey(client_id);
  client_->Command({"LPUSH", key, EncodeActivity(activity)}, Written());
  if (retention_.activity_max_per_user > 0) {
    client_->Command({"LTRIM", key, "0", std::to_string(retention_.activity_max_per_user - 1)},
                     Written());
  }
  if (retention_.activity_max_age_ms > 0) {
    client_->Command({"PEXPIRE", key, std::to_string(retention_.activity_max_age_ms)}, Written());
  }
}

void RedisStore::PutLastSeen(std::string client_id, TimeMs last_seen) {
  if (last_seen <= 0) return;
  if (client_ == nullptr) return NotStarted();
  client_->Eval(LastSeenScript(), {UserKey(client_id)}, {std::to_string(last_seen)}, Written());
}

void RedisStore::PutUserStatus(UserRecord record, std::function<void(Status)> durable) {
  if (client_ == nullptr) {
    NotStarted();
    if (durable) durable(MakeError(ErrorCode::kInternal, kNotStarted));
    return;
  }
  client_->Eval(StatusScript(), {UserKey(record.client_id)},
                {record.manual, record.text ? "1" : "0", record.text.value_or(""),
                 std::to_string(record.last_seen)},
                Written([durable = std::move(durable)](const redis::Reply& r) {
                  if (!durable) return;
                  if (r.ok()) {
                    durable(Status::Ok());
                  } else {
                    durable(Unreachable(r));
                  }
                }));
}

void RedisStore::QueryHistory(HistoryQuery q, std::function<void(Result<HistoryPage>)> done) {
  if (reactor_ == nullptr) return done(MakeError(ErrorCode::kInternal, kNotStarted));
  reactor_->Post([this, alive = alive_, q = std::move(q), done = std::move(done)]() mutable {
    if (!*alive) return;
    // Trimming by age is approximate (MINID ~ removes whole stream nodes): the query leaves out
    // what is older than the limit, so a reader never sees it.
    const TimeMs age = retention_.history_max_age_ms;
    const TimeMs oldest = std::max<TimeMs>(q.start.value_or(0), age > 0 ? clock_.NowMs() - age : 0);
    const std::string first = oldest > 0 ? std::to_string(oldest) + "-0" : "-";
    const std::string last = q.end ? std::to_string(*q.end) + "-18446744073709551615" : "+";
    // Forwards, a cursor older than the age limit (time passed since its page) starts at the
    // limit instead.
    const bool cursor_too_old =
        q.cursor && q.forwards && oldest > 0 &&
        (static_cast<uint64_t>(*q.cursor) >> kSeqBits) < static_cast<uint64_t>(oldest);
    const std::string after = q.cursor && !cursor_too_old ? "(" + IdOfCursor(*q.cursor) : "";
    std::vector<std::string> args;
    if (q.forwards) {
      args = {"XRANGE", HistoryKey(q.channel), !after.empty() ? after : first, last};
    } else {
      args = {"XREVRANGE", HistoryKey(q.channel), q.cursor ? after : last, first};
    }
    args.push_back("COUNT");
    args.push_back(std::to_string(q.limit + 1));  // one more: is there a next page?
    client_->Command(
        std::move(args), [limit = q.limit, done = std::move(done)](const redis::Reply& r) {
          if (!r.ok()) return done(Unreachable(r));
          HistoryPage page;
          std::string last_kept;
          for (const redis::Reply& entry : r.elements) {
            if (entry.elements.size() != 2) continue;
            if (page.events.size() == limit) {  // the one more: there is a next page
              page.next = CursorOfId(last_kept);
              break;
            }
            const auto& fields = entry.elements[1].elements;
            for (size_t i = 0; i + 1 < fields.size(); i += 2) {
              if (fields[i].str == "j") {
                page.events.push_back(std::make_shared<const std::string>(fields[i + 1].str));
                last_kept = entry.elements[0].str;
              }
            }
          }
          done(std::move(page));
        });
  });
}

void RedisStore::QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                                 std::function<void(Result<std::vector<StoredActivity>>)> done) {
  if (reactor_ == nullptr) return done(MakeError(ErrorCode::kInternal, kNotStarted));
  reactor_->Post([this, alive = alive_, client_id = std::move(client_id), limit, since,
                  done = std::move(done)]() mutable {
    if (!*alive) return;
    if (limit == 0) return done(std::vector<StoredActivity>{});
    const TimeMs age = retention_.activity_max_age_ms;
    const TimeMs oldest = age > 0 ? clock_.NowMs() - age : 0;
    client_->Command({"LRANGE", ActivityKey(client_id), "0", std::to_string(limit - 1)},
                     [since, oldest, done = std::move(done)](const redis::Reply& r) {
                       if (!r.ok()) return done(Unreachable(r));
                       std::vector<StoredActivity> out;
                       for (const redis::Reply& e : r.elements) {
                         std::optional<StoredActivity> a = DecodeActivity(e.str);
                         if (!a) continue;
                         if ((since && a->timestamp < *since) || a->timestamp < oldest)
                           break;  // newest first
                         out.push_back(std::move(*a));
                       }
                       done(std::move(out));
                     });
  });
}

void RedisStore::GetUsers(std::vector<std::string> client_ids,
                          std::function<void(Result<std::vector<UserRecord>>)> done) {
  if (reactor_ == nullptr) return done(MakeError(ErrorCode::kInternal, kNotStarted));
  reactor_->Post(
      [this, alive = alive_, ids = std::move(client_ids), done = std::move(done)]() mutable {
        if (!*alive) return;
        if (ids.empty()) return done(std::vector<UserRecord>{});
        struct Gather {
          std::vector<UserRecord> found;
          std::optional<Error> error;
          size_t left = 0;
          std::function<void(Result<std::vector<UserRecord>>)> done;
        };
        auto g = std::make_shared<Gather>();
        g->left = ids.size();
        g->done = std::move(done);
        for (const std::string& id : ids) {
          client_->Command({"HMGET", UserKey(id), "manual", "text", "last_seen"},
                           [g, id](const redis::Reply& r) {
                             if (!r.ok()) {
                               g->error = Unreachable(r);
                             } else if (auto u = RecordOf(id, r)) {
                               g->found.push_back(std::move(*u));
                             }
                             if (--g->left > 0) return;
                             if (g->error) return g->done(*g->error);
                             g->done(std::move(g->found));
                           });
        }
      });
}

Result<std::optional<UserRecord>> RedisStore::ReadUser(const std::string& client_id) {
  auto got = std::make_shared<std::promise<Result<std::optional<UserRecord>>>>();
  auto future = got->get_future();
  if (reactor_ == nullptr) return MakeError(ErrorCode::kInternal, kNotStarted);
  reactor_->Post([this, alive = alive_, client_id, got] {
    if (!*alive) return;
    client_->Command({"HMGET", UserKey(client_id), "manual", "text", "last_seen"},
                     [client_id, got](const redis::Reply& r) {
                       if (!r.ok()) return got->set_value(Unreachable(r));
                       got->set_value(RecordOf(client_id, r));
                     });
  });
  if (future.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
    return MakeError(ErrorCode::kInternal, "storage (redis) did not answer");
  }
  return future.get();
}

void RedisStore::Flush() {
  // Redis acknowledges each write: waiting means waiting for the replies still due (bounded, so
  // a Redis that is gone cannot hold a shutdown).
  std::unique_lock<std::mutex> lock(mu_);
  drained_.wait_for(lock, std::chrono::seconds(2),
                    [this] { return pending_.load(std::memory_order_relaxed) == 0; });
}

StoreCounters RedisStore::counters() const {
  StoreCounters c;
  c.write_errors = write_errors_.load(std::memory_order_relaxed);
  c.pending = pending_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace presenced::storage
