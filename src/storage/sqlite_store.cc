// SqliteStore (sqlite_store.h): the durable store and its storage thread.
#include "storage/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

namespace presenced::storage {

namespace {

Error DbError(sqlite3* db, const std::string& what) {
  return MakeError(ErrorCode::kInternal, what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return s_; }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, std::string_view v) {
    // SQLITE_STATIC: every bound value outlives the step that uses it (callers keep it alive).
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  int Step() { return sqlite3_step(s_); }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

bool Exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// Schema migrations: kMigrations[i] takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE events(
      id INTEGER PRIMARY KEY,
      channel TEXT NOT NULL,
      serial INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      body TEXT NOT NULL);
    CREATE INDEX events_by_channel ON events(channel, id);
    CREATE INDEX events_by_time ON events(ts);
    CREATE TABLE users(
      client_id TEXT PRIMARY KEY,
      manual TEXT NOT NULL DEFAULT '',
      text TEXT,
      last_seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
    CREATE TABLE activities(
      id INTEGER PRIMARY KEY,
      client_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      channel TEXT NOT NULL,
      data TEXT NOT NULL,
      ts INTEGER NOT NULL,
      connection_id TEXT NOT NULL);
    CREATE INDEX activities_by_user ON activities(client_id, id);
    CREATE INDEX activities_by_time ON activities(ts);
    )sql",
    // 2: the webhook outbox (protocol-ext §4).
    R"sql(
    CREATE TABLE webhooks(
      endpoint TEXT NOT NULL,
      seq INTEGER NOT NULL,
      id TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      body TEXT NOT NULL,
      PRIMARY KEY(endpoint, seq)) WITHOUT ROWID;
    )sql",
    // 3: token revocations (admin REST).
    R"sql(
    CREATE TABLE revocations(
      client_id TEXT PRIMARY KEY,
      before INTEGER NOT NULL) WITHOUT ROWID;
    )sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

constexpr const char* kReadUserSql =
    "SELECT manual, text, last_seen FROM users WHERE client_id = ?";

// Reads one user with `st`, the statement of `db` kept for it: prepared at its first use (a
// connect reads its user, and parsing the SQL each time cost more than the lookup itself), reset
// after each read.
Result<std::optional<UserRecord>> ReadUserWith(sqlite3* db, sqlite3_stmt*& st,
                                               const std::string& client_id) {
  if (!st && sqlite3_prepare_v3(db, kReadUserSql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) !=
                 SQLITE_OK) {
    st = nullptr;
    return DbError(db, "read user");
  }
  sqlite3_bind_text(st, 1, client_id.data(), static_cast<int>(client_id.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(st);
  Result<std::optional<UserRecord>> out = std::optional<UserRecord>();
  if (rc == SQLITE_ROW) {
    UserRecord r;
    r.client_id = client_id;
    auto text = [st](int col) {
      const auto* p = sqlite3_column_text(st, col);
      return p ? std::string(reinterpret_cast<const char*>(p),
                             static_cast<size_t>(sqlite3_column_bytes(st, col)))
               : std::string();
    };
    r.manual = text(0);
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) r.text = text(1);
    r.last_seen = sqlite3_column_int64(st, 2);
    out = std::optional<UserRecord>(std::move(r));
  } else if (rc != SQLITE_DONE) {
    out = DbError(db, "read user");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return out;
}

}  // namespace

// ----- Opening --------------------------------------------------------------------------------

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteOptions options, const Clock& clock) {
  sqlite3* db = nullptr;
  const bool exists = std::filesystem::exists(options.path);
  // An existing file is opened without create, and nothing is written until it has proved to be
  // a presenced database of a schema this build understands.
  int rc = sqlite3_open_v2(
      options.path.c_str(), &db,
      SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, nullptr);
  auto fail = [&](const std::string& why) -> Error {
    Error e = MakeError(ErrorCode::kInternal, why);
    sqlite3_close_v2(db);
    return e;
  };
  if (rc != SQLITE_OK)
    return fail("cannot open database " + options.path + ": " + sqlite3_errstr(rc));
  sqlite3_busy_timeout(db, 5000);

  int version = -1;
  {
    Stmt s(db, "PRAGMA user_version");
    if (!s.ok() || s.Step() != SQLITE_ROW) {
      return fail("database " + options.path +
                  " is not a presenced database or is corrupt: " + sqlite3_errmsg(db));
    }
    version = static_cast<int>(s.Int(0));
  }
  {
    // Reading the schema touches every schema page: a damaged file fails here.
    Stmt s(db, "SELECT count(*) FROM sqlite_master");
    if (!s.ok() || s.Step() != SQLITE_ROW) {
      return fail("database " + options.path + " is corrupt: " + sqlite3_errmsg(db));
    }
  }
  if (version > kSchemaVersion) {
    return fail("database " + options.path + " has schema version " + std::to_string(version) +
                ", newer than this presenced understands (" + std::to_string(kSchemaVersion) +
                "); run a newer presenced");
  }
  // WAL + synchronous=NORMAL: a commit survives a crash of the process (kill -9); a larger
  // page cache and auto-checkpoint keep index inserts and WAL copies cheap under sustained writes.
  if (!Exec(db, "PRAGMA journal_mode=WAL") || !Exec(db, "PRAGMA synchronous=NORMAL") ||
      !Exec(db, "PRAGMA cache_size=-65536") || !Exec(db, "PRAGMA wal_autocheckpoint=8192")) {
    return fail("cannot enable WAL on " + options.path + ": " + sqlite3_errmsg(db));
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    const std::string sql = std::string("BEGIN;") + kMigrations[v] +
                            "PRAGMA user_version=" + std::to_string(v + 1) + ";COMMIT;";
    if (!Exec(db, sql.c_str())) {
      const std::string why = sqlite3_errmsg(db);
      Exec(db, "ROLLBACK");
      return fail("cannot migrate " + options.path + " to schema " + std::to_string(v + 1) + ": " +
                  why);
    }
  }
  if (options.max_bytes > 0) {
    const std::string sql =
        "PRAGMA max_page_count=" + std::to_string(std::max<int64_t>(options.max_bytes / 4096, 16));
    Exec(db, sql.c_str());
  }

  sqlite3* reader = nullptr;
  rc = sqlite3_open_v2(options.path.c_str(), &reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                       nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_close_v2(reader);
    return fail("cannot open a reader on " + options.path);
  }
  sqlite3_busy_timeout(reader, 5000);
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(options), clock, db, reader));
}

SqliteStore::SqliteStore(SqliteOptions options, const Clock& clock, sqlite3* db, sqlite3* reader)
    : options_(std::move(options)), clock_(clock), db_(db), reader_(reader) {
  next_retention_ = clock_.NowMs() + options_.retention_interval_ms;
  thread_ = std::thread([this] { Run(); });
}

SqliteStore::~SqliteStore() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  sqlite3_finalize(read_user_);
  sqlite3_finalize(get_user_);
  sqlite3_close_v2(reader_);
  sqlite3_close_v2(db_);
}

// ----- Queueing (any thread) -----------------------------------------------------------------

template <typename Fn>
void SqliteStore::Enqueue(Fn&& push) {
  {
    MutexLock lock(mu_);
    const size_t queued = events_.size() + writes_.size();
    if (queued >= options_.max_pending) {
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (queued == 0) first_pending_ = std::chrono::steady_clock::now();
    push();
    pending_.fetch_add(1, std::memory_order_relaxed);
    // Wake the thread for the first write (to arm its flush timer) and for a full batch; in
    // between, it wakes on that timer.
    if (queued != 0 && queued + 1 < options_.max_batch) return;
  }
  wake_.notify_one();
}

void SqliteStore::Submit(Task task) {
  {
    MutexLock lock(mu_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void SqliteStore::AppendEvent(StoredEvent event) {
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) { events_.push_back(std::move(event)); });
}

void SqliteStore::AppendActivity(std::string client_id, StoredActivity activity) {
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.push_back(ActivityWrite{std::move(client_id), std::move(activity)});
  });
}

void SqliteStore::PutLastSeen(std::string client_id, TimeMs last_seen) {
  if (last_seen <= 0) return;  // "never seen" changes nothing
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.push_back(LastSeenWrite{std::move(client_id), last_seen});
  });
}

void SqliteStore::PutUserStatus(UserRecord record, std::function<void(Status)> durable) {
  {
    // The write and its barrier go in together, so the barrier runs after the write's commit.
    MutexLock lock(mu_);
    if (writes_.empty() && events_.empty()) first_pending_ = std::chrono::steady_clock::now();
    writes_.push_back(StatusWrite{std::move(record)});
    pending_.fetch_add(1, std::memory_order_relaxed);
    tasks_.push_back([this, durable = std::move(durable)] {
      durable(last_commit_ok_
                  ? Status::Ok()
                  : Status(MakeError(ErrorCode::kInternal, "status could not be stored")));
    });
  }
  wake_.notify_one();
}

void SqliteStore::PutWebhook(StoredWebhook webhook) {
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) { writes_.push_back(std::move(webhook)); });
}

void SqliteStore::DeleteWebhook(std::string endpoint, uint64_t seq) {
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.push_back(WebhookDelete{std::move(endpoint), seq});
  });
}

void SqliteStore::PutRevocation(std::string client_id, TimeMs before) {
  Enqueue([&]() EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.push_back(RevocationWrite{std::move(client_id), before});
  });
}

Result<std::vector<std::pair<std::string, TimeMs>>> SqliteStore::LoadRevocations() {
  MutexLock lock(reader_mu_);
  Stmt s(reader_, "SELECT client_id, before FROM revocations ORDER BY client_id");
  if (!s.ok()) return DbError(reader_, "load revocations");
  std::vector<std::pair<std::string, TimeMs>> out;
  int rc = SQLITE_ROW;
  while ((rc = s.Step()) == SQLITE_ROW) out.emplace_back(s.Text(0), s.Int(1));
  if (rc != SQLITE_DONE) return DbError(reader_, "load revocations");
  return out;
}

Result<std::vector<StoredWebhook>> SqliteStore::LoadWebhooks() {
  MutexLock lock(reader_mu_);
  Stmt s(reader_,
         "SELECT endpoint, seq, id, created_at, body FROM webhooks ORDER BY endpoint, seq");
  if (!s.ok()) return DbError(reader_, "load webhooks");
  std::vector<StoredWebhook> out;
  int rc = SQLITE_ROW;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(
        StoredWebhook{s.Text(0), static_cast<uint64_t>(s.Int(1)), s.Text(2), s.Int(3), s.Text(4)});
  }
  if (rc != SQLITE_DONE) return DbError(reader_, "load webhooks");
  return out;
}

void SqliteStore::Flush() {
  std::promise<void> done;
  Submit([&] { done.set_value(); });
  done.get_future().wait();
}

void SqliteStore::EnforceRetention() {
  std::promise<void> done;
  Submit([&] {
    Retention();
    done.set_value();
  });
  done.get_future().wait();
}

StoreCounters SqliteStore::counters() const {
  return StoreCounters{write_errors_.load(std::memory_order_relaxed),
                       dropped_writes_.load(std::memory_order_relaxed),
                       pending_.load(std::memory_order_relaxed)};
}

// ----- The storage thread ---------------------------------------------------------------------

void SqliteStore::Run() {
  // Background priority for this thread only (Linux nice values are per thread); failing to lower
  // it changes nothing else.
  if (options_.storage_nice > 0) (void)setpriority(PRIO_PROCESS, gettid(), options_.storage_nice);
  std::deque<StoredEvent> events;
  std::vector<Write> writes;
  std::deque<Task> tasks;
  const auto interval = std::chrono::milliseconds(options_.flush_interval_ms);
  while (true) {
    bool stop = false;
    {
      MutexLock lock(mu_);
      // Sleep until there is work: a task, a full batch, the oldest write's flush deadline, or
      // retention. Every notify re-evaluates, so the first write arms the flush timer.
      while (!stopping_ && tasks_.empty() && events_.size() + writes_.size() < options_.max_batch) {
        const auto now = std::chrono::steady_clock::now();
        if (!writes_.empty() || !events_.empty()) {
          if (now >= first_pending_ + interval) break;
          wake_.wait_until(mu_, first_pending_ + interval);
        } else {
          const TimeMs until_retention = next_retention_ - clock_.NowMs();
          if (until_retention <= 0) break;
          wake_.wait_for(mu_, std::chrono::milliseconds(until_retention));
        }
      }
      events.swap(events_);
      writes.swap(writes_);
      tasks.swap(tasks_);
      stop = stopping_;
    }
    if (!writes.empty() || !events.empty()) {
      Commit(events, writes);
      pending_.fetch_sub(events.size() + writes.size(), std::memory_order_relaxed);
      events.clear();
      writes.clear();
    }
    for (auto& t : tasks) t();
    tasks.clear();
    if (clock_.NowMs() >= next_retention_) {
      Retention();
      next_retention_ = clock_.NowMs() + options_.retention_interval_ms;
    }
    if (stop) {
      MutexLock lock(mu_);
      if (events_.empty() && writes_.empty() && tasks_.empty()) return;
    }
  }
}

bool SqliteStore::Commit(std::deque<StoredEvent>& events, std::vector<Write>& writes) {
  Stmt event(db_, "INSERT INTO events(channel, serial, ts, body) VALUES(?, ?, ?, ?)");
  Stmt activity(db_,
                "INSERT INTO activities(client_id, kind, channel, data, ts, connection_id) "
                "VALUES(?, ?, ?, ?, ?, ?)");
  // lastSeen only moves forwards, whatever order its writes commit in: a late or stale write
  // (an older checkpoint, a value read before the last commit) never replaces a newer one.
  Stmt last_seen(db_,
                 "INSERT INTO users(client_id, last_seen) VALUES(?, ?) "
                 "ON CONFLICT(client_id) DO UPDATE SET "
                 "last_seen = max(users.last_seen, excluded.last_seen)");
  Stmt status(
      db_,
      "INSERT INTO users(client_id, manual, text, last_seen) VALUES(?, ?, ?, ?) "
      "ON CONFLICT(client_id) DO UPDATE SET manual = excluded.manual, text = excluded.text, "
      "last_seen = max(users.last_seen, excluded.last_seen)");
  Stmt webhook(db_,
               "INSERT OR REPLACE INTO webhooks(endpoint, seq, id, created_at, body) "
               "VALUES(?, ?, ?, ?, ?)");
  Stmt webhook_delete(db_, "DELETE FROM webhooks WHERE endpoint = ? AND seq = ?");
  Stmt revocation(db_,
                  "INSERT INTO revocations(client_id, before) VALUES(?, ?) "
                  "ON CONFLICT(client_id) DO UPDATE SET "
                  "before = max(revocations.before, excluded.before)");
  bool ok = event.ok() && activity.ok() && last_seen.ok() && status.ok() && webhook.ok() &&
            webhook_delete.ok() && revocation.ok() && Exec(db_, "BEGIN");
  const std::string* last_channel = nullptr;
  for (size_t i = 0; ok && i < events.size(); ++i) {
    const StoredEvent& e = events[i];
    event.Bind(1, e.channel).Bind(2, static_cast<int64_t>(e.serial)).Bind(3, e.timestamp);
    event.Bind(4, *e.json);
    ok = event.Step() == SQLITE_DONE;
    event.Reset();
    if (last_channel == nullptr || *last_channel != e.channel) touched_channels_.insert(e.channel);
    last_channel = &e.channel;
  }
  for (size_t i = 0; ok && i < writes.size(); ++i) {
    Write& w = writes[i];
    int rc = SQLITE_DONE;
    if (auto* a = std::get_if<ActivityWrite>(&w)) {
      activity.Bind(1, a->client_id).Bind(2, a->activity.kind).Bind(3, a->activity.channel);
      activity.Bind(4, a->activity.data.text()).Bind(5, a->activity.timestamp);
      activity.Bind(6, a->activity.connection_id);
      rc = activity.Step();
      activity.Reset();
      touched_users_.insert(a->client_id);
    } else if (auto* l = std::get_if<LastSeenWrite>(&w)) {
      last_seen.Bind(1, l->client_id).Bind(2, l->last_seen);
      rc = last_seen.Step();
      last_seen.Reset();
    } else if (auto* s = std::get_if<StatusWrite>(&w)) {
      status.Bind(1, s->record.client_id).Bind(2, s->record.manual);
      if (s->record.text) {
        status.Bind(3, *s->record.text);
      } else {
        status.BindNull(3);
      }
      status.Bind(4, s->record.last_seen);
      rc = status.Step();
      status.Reset();
    } else if (auto* h = std::get_if<StoredWebhook>(&w)) {
      webhook.Bind(1, h->endpoint).Bind(2, static_cast<int64_t>(h->seq)).Bind(3, h->id);
      webhook.Bind(4, h->created_at).Bind(5, h->body);
      rc = webhook.Step();
      webhook.Reset();
    } else if (auto* d = std::get_if<WebhookDelete>(&w)) {
      webhook_delete.Bind(1, d->endpoint).Bind(2, static_cast<int64_t>(d->seq));
      rc = webhook_delete.Step();
      webhook_delete.Reset();
    } else if (auto* v = std::get_if<RevocationWrite>(&w)) {
      revocation.Bind(1, v->client_id).Bind(2, v->before);
      rc = revocation.Step();
      revocation.Reset();
    }
    ok = rc == SQLITE_DONE;
  }
  if (ok) ok = Exec(db_, "COMMIT");
  if (!ok) {
    // Disk full or an I/O error: this batch is lost; live presence goes on. Counted in /metrics.
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_error) {
      options_.on_error("commit of " + std::to_string(events.size() + writes.size()) +
                        " writes failed: " + sqlite3_errmsg(db_));
    }
    Exec(db_, "ROLLBACK");
  }
  last_commit_ok_ = ok;
  return ok;
}

void SqliteStore::Retention() {
  const TimeMs now = clock_.NowMs();
  Exec(db_, "BEGIN");
  if (options_.history_max_age_ms > 0) {
    Stmt s(db_, "DELETE FROM events WHERE ts < ?");
    s.Bind(1, now - options_.history_max_age_ms).Step();
  }
  if (options_.activity_max_age_ms > 0) {
    Stmt s(db_, "DELETE FROM activities WHERE ts < ?");
    s.Bind(1, now - options_.activity_max_age_ms).Step();
  }
  if (options_.history_max_per_channel > 0) {
    Stmt s(
        db_,
        "DELETE FROM events WHERE channel = ?1 AND id <= (SELECT id FROM events WHERE channel = ?1 "
        "ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    for (const auto& ch : touched_channels_) {
      s.Bind(1, ch).Bind(2, static_cast<int64_t>(options_.history_max_per_channel));
      s.Step();
      s.Reset();
    }
  }
  if (options_.activity_max_per_user > 0) {
    Stmt s(db_,
           "DELETE FROM activities WHERE client_id = ?1 AND id <= (SELECT id FROM activities WHERE "
           "client_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    for (const auto& u : touched_users_) {
      s.Bind(1, u).Bind(2, static_cast<int64_t>(options_.activity_max_per_user));
      s.Step();
      s.Reset();
    }
  }
  if (!Exec(db_, "COMMIT")) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    Exec(db_, "ROLLBACK");
  }
  touched_channels_.clear();
  touched_users_.clear();
}

// ----- Queries (run on the storage thread) ---------------------------------------------------

void SqliteStore::QueryHistory(HistoryQuery q, std::function<void(Result<HistoryPage>)> done) {
  Submit([this, q = std::move(q), done = std::move(done)] {
    const std::string sql =
        std::string(
            "SELECT id, body FROM events WHERE channel = ?1 AND ts >= ?2 AND ts <= ?3 AND id ") +
        (q.forwards ? "> ?4 ORDER BY id ASC" : "< ?4 ORDER BY id DESC") + " LIMIT ?5";
    Stmt s(db_, sql.c_str());
    if (!s.ok()) return done(DbError(db_, "history"));
    s.Bind(1, q.channel).Bind(2, q.start.value_or(INT64_MIN)).Bind(3, q.end.value_or(INT64_MAX));
    s.Bind(4, q.cursor.value_or(q.forwards ? INT64_MIN : INT64_MAX));
    s.Bind(5, static_cast<int64_t>(q.limit + 1));  // one more tells whether there is a next page
    HistoryPage page;
    int64_t last_id = 0;
    bool more = false;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      if (page.events.size() == q.limit) {
        more = true;
        break;
      }
      page.events.push_back(std::make_shared<const std::string>(s.Text(1)));
      last_id = s.Int(0);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return done(DbError(db_, "history"));
    if (more) page.next = last_id;
    done(std::move(page));
  });
}

void SqliteStore::QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                                  std::function<void(Result<std::vector<StoredActivity>>)> done) {
  Submit([this, client_id = std::move(client_id), limit, since, done = std::move(done)] {
    Stmt s(db_,
           "SELECT kind, channel, data, ts, connection_id FROM activities WHERE client_id = ? AND "
           "ts >= ? ORDER BY id DESC LIMIT ?");
    if (!s.ok()) return done(DbError(db_, "activity"));
    s.Bind(1, client_id).Bind(2, since.value_or(INT64_MIN)).Bind(3, static_cast<int64_t>(limit));
    std::vector<StoredActivity> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      out.push_back(StoredActivity{s.Text(0), s.Text(1), JsonText::FromSerialized(s.Text(2)),
                                   s.Int(3), s.Text(4)});
    }
    if (rc != SQLITE_DONE) return done(DbError(db_, "activity"));
    done(std::move(out));
  });
}

void SqliteStore::GetUsers(std::vector<std::string> client_ids,
                           std::function<void(Result<std::vector<UserRecord>>)> done) {
  Submit([this, ids = std::move(client_ids), done = std::move(done)] {
    std::vector<UserRecord> out;
    for (const auto& id : ids) {
      auto r = ReadUserWith(db_, get_user_, id);
      if (!r.ok()) return done(r.error());
      if (*r) out.push_back(std::move(**r));
    }
    done(std::move(out));
  });
}

Result<std::optional<UserRecord>> SqliteStore::ReadUser(const std::string& client_id) {
  MutexLock lock(reader_mu_);
  return ReadUserWith(reader_, read_user_, client_id);
}

// ----- Data directory -------------------------------------------------------------------------

Result<std::unique_ptr<DataDir>> DataDir::Lock(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir(path);
  if (!fs::exists(dir, ec)) {
    const fs::path parent = fs::absolute(dir, ec).parent_path();
    if (!fs::is_directory(parent, ec)) {
      return MakeError(
          ErrorCode::kInternal,
          "data directory " + path + " is missing and so is its parent " + parent.string());
    }
    if (!fs::create_directory(dir, ec) || ec) {
      return MakeError(ErrorCode::kInternal,
                       "cannot create data directory " + path + ": " + ec.message());
    }
    ::chmod(dir.c_str(), 0700);
  }
  if (!fs::is_directory(dir, ec)) {
    return MakeError(ErrorCode::kInternal, "data directory " + path + " is not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return MakeError(ErrorCode::kInternal,
                     "data directory " + path + " is not writable: " + std::strerror(errno));
  }
  const std::string lock_path = (dir / "LOCK").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(ErrorCode::kInternal, "data directory " + path +
                                               " is not writable: cannot create " + lock_path +
                                               ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return MakeError(
        ErrorCode::kInternal,
        "data directory " + path + " is in use by another presenced (locked: " + lock_path + ")");
  }
  return std::unique_ptr<DataDir>(new DataDir(path, fd));
}

DataDir::~DataDir() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace presenced::storage
