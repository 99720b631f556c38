// RedisStore: the Store (store.h) of a cluster, on its Redis (PRESENCED_STORAGE=redis, the
// default in cluster mode), so every node reads the same history, statuses, lastSeen and
// activity, and a node that joins later has all of it.
//
// Keys (each command touches one key, so Redis Cluster may place them anywhere; the hash tags
// keep a channel's and a user's keys together):
//   {c:<channel>}:history   stream, id <ms>-<n>: "s" serial, "j" the event as sent. Trimmed by
//                           count (MAXLEN ~) and by age (MINID ~) as the SQLite store is.
//   {u:<clientId>}:user     hash: "manual", "text" (absent: none), "last_seen"
//   {u:<clientId>}:activity list, newest first, at most activity_max_per_user
// lastSeen never moves backwards (a script keeps the larger). A write is acknowledged when Redis
// has it: what survives a Redis crash is what its persistence kept (docs/operations.md, AOF
// `everysec`: up to a second of writes; `always`: none).
//
// Writes while Redis is unreachable are lost and counted (write_errors); queries then fail with
// an error. In a cluster every node applies every change, so the Dispatcher writes only the
// changes of entries its node appended (StoreBridge::SetWriting).
//
// Threading: Start, Append*/Put* on the reactor's loop (the server's work loop, where the
// presence loop runs). Query*/GetUsers from any thread after Start (posted to the loop); `done`
// runs on the loop. ReadUser and Flush from any thread but the loop's (they wait for it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "common/reactor.h"
#include "redis/client.h"
#include "storage/sqlite_options.h"
#include "storage/store.h"

namespace presenced::storage {

class RedisStore final : public Store {
 public:
  // `retention`: the age and count limits of history and activity (SqliteOptions' fields).
  RedisStore(redis::ClientOptions options, const SqliteOptions& retention, const Clock& clock);
  ~RedisStore() override;

  // Connects, on `reactor`'s loop (called there), which it runs on from then on. Before it,
  // writes are lost (counted) and queries fail.
  void Start(Reactor& reactor);
  // Connected to Redis (on the loop).
  bool up() const { return client_ != nullptr && client_->up(); }

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
  void Flush() override;
  StoreCounters counters() const override;

  // Key names (tests, tools).
  static std::string HistoryKey(std::string_view channel);
  static std::string UserKey(std::string_view client_id);
  static std::string ActivityKey(std::string_view client_id);

 private:
  // One write sent: counted until its reply.
  redis::Client::Callback Written(std::function<void(const redis::Reply&)> then = nullptr);

  // A write before Start: lost, and counted.
  void NotStarted();

  const redis::ClientOptions options_;
  Reactor* reactor_ = nullptr;
  std::unique_ptr<redis::Client> client_;
  const SqliteOptions retention_;
  const Clock& clock_;
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> pending_{0};
  std::mutex mu_;
  std::condition_variable drained_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presenced::storage
