// SqliteStore: the embedded, durable Store. One SQLite file in WAL mode, written by one storage
// thread that commits queued writes in batches (group commit) at least every `flush_interval_ms`,
// and serves queries after committing what was queued before them (read-your-writes). Retention
// (age and count per channel / per user) runs on the same thread in the background.
//
// Threading: Append*/Put* only lock a queue (engine thread safe, never waits for disk). Queries run
// on the storage thread. ReadUser uses its own read connection (WAL readers never block the
// writer) and may be called from any thread. Destroying the store flushes and joins the thread.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <variant>

#include "common/thread_annotations.h"
#include "storage/sqlite_options.h"
#include "storage/store.h"

namespace presenced::storage {

class SqliteStore final : public Store {
 public:
  static constexpr int kSchemaVersion = 3;

  // Opens or creates the database, checks and migrates its schema, and starts the storage thread.
  // A file that is not a database, is corrupt, or has a newer schema is refused untouched.
  static Result<std::unique_ptr<SqliteStore>> Open(SqliteOptions options, const Clock& clock);
  ~SqliteStore() override;

  void AppendEvent(StoredEvent event) override;
  void AppendActivity(std::string client_id, StoredActivity activity) override;
  void PutLastSeen(std::string client_id, TimeMs last_seen) override;
  void PutUserStatus(UserRecord record, std::function<void(Status)> durable) override;
  void QueryHistory(HistoryQuery query, std::function<void(Result<HistoryPage>)> done) override;
  void QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                       std::function<void(Result<std::vector<StoredActivity>>)> done) override;
  void GetUsers(std::vector<std::string> client_ids,
                std::function<void(Result<std::vector<UserRecord>>)> done) override;
  Result<std::optional<UserRecord>> ReadUser(const std::string& client_id) override;
  void PutWebhook(StoredWebhook webhook) override;
  void DeleteWebhook(std::string endpoint, uint64_t seq) override;
  Result<std::vector<StoredWebhook>> LoadWebhooks() override;
  void PutRevocation(std::string client_id, TimeMs before) override;
  Result<std::vector<std::pair<std::string, TimeMs>>> LoadRevocations() override;
  void Flush() override;
  StoreCounters counters() const override;

  // Runs retention now (it also runs every retention_interval_ms) and waits for it.
  void EnforceRetention();

 private:
  struct ActivityWrite {
    std::string client_id;
    StoredActivity activity;
  };
  struct LastSeenWrite {
    std::string client_id;
    TimeMs last_seen;
  };
  struct StatusWrite {
    UserRecord record;
  };
  struct WebhookDelete {
    std::string endpoint;
    uint64_t seq;
  };
  struct RevocationWrite {
    std::string client_id;
    TimeMs before;
  };
  // Events are the bulk of all writes and have their own queue of small elements; the rest share
  // one. Both are committed together.
  using Write = std::variant<ActivityWrite, LastSeenWrite, StatusWrite, StoredWebhook,
                             WebhookDelete, RevocationWrite>;
  using Task = std::function<void()>;

  SqliteStore(SqliteOptions options, const Clock& clock, sqlite3* db, sqlite3* reader);
  // Adds to a queue under the lock; false when the queue is full (counted as dropped).
  template <typename Fn>
  void Enqueue(Fn&& push) LOCKS_EXCLUDED(mu_);
  void Submit(Task task);
  void Run();
  // Commits `writes` in one transaction; false (and counted) when it failed.
  bool Commit(std::deque<StoredEvent>& events, std::vector<Write>& writes);
  void Retention();

  SqliteOptions options_;
  const Clock& clock_;
  sqlite3* db_;                       // storage thread only
  sqlite3_stmt* get_user_ = nullptr;  // GetUsers' (storage thread), prepared once
  // ReadUser (tools and tests: the server reads users with GetUsers, off its loop) has its own
  // read connection under one mutex: a SQLite connection may be used by one thread at a time.
  Mutex reader_mu_;
  sqlite3* reader_ GUARDED_BY(reader_mu_);
  sqlite3_stmt* read_user_ GUARDED_BY(reader_mu_) = nullptr;  // ReadUser's, prepared once

  // The queue between the engine thread (Append*/Put*) and the storage thread (Run).
  Mutex mu_;
  CondVar wake_;
  std::deque<StoredEvent> events_ GUARDED_BY(mu_);
  std::vector<Write> writes_ GUARDED_BY(mu_);
  std::deque<Task> tasks_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point first_pending_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> dropped_writes_{0};
  std::atomic<uint64_t> pending_{0};
  bool last_commit_ok_ = true;              // storage thread only
  std::set<std::string> touched_channels_;  // storage thread only, for count retention
  std::set<std::string> touched_users_;
  TimeMs next_retention_ = 0;
  std::thread thread_;
};

// The data directory: created when missing (its parent must exist), checked writable, and locked
// for the life of the process so two servers never share it. Exit code advice in `code`.
class DataDir {
 public:
  static Result<std::unique_ptr<DataDir>> Lock(const std::string& path);
  ~DataDir();
  const std::string& path() const { return path_; }

 private:
  DataDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

}  // namespace presenced::storage
