// Store: what presenced keeps beyond a connection and beyond a restart: presence history, each
// user's status set by hand, lastSeen, and activity records. One interface, several
// implementations: SqliteStore (the embedded default, durable), MemoryStore (bounded, not durable;
// tests and ephemeral deployments), and later a Redis one for clusters.
//
// Threading contract:
// - Append*/Put* are called on the presence loop and never wait for I/O: they queue.
// - Query*/GetUsers may be called from any thread; `done` runs on an unspecified thread (the
//   store's own, or the caller's when it answers at once) and must only do thread-safe work.
//   Queries see every write queued before them (read-your-writes).
// - ReadUser reads committed data synchronously, from any thread (tools and tests; the server
//   reads users with GetUsers, so its loop never waits for the disk).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json_text.h"

namespace presenced::storage {

struct StoredEvent {
  std::string channel;
  uint64_t serial = 0;
  TimeMs timestamp = 0;
  std::shared_ptr<const std::string> json;  // the event exactly as sent to subscribers
};

struct HistoryQuery {
  std::string channel;
  std::optional<TimeMs> start;  // inclusive
  std::optional<TimeMs> end;    // inclusive
  size_t limit = 100;
  bool forwards = false;          // false: newest first
  std::optional<int64_t> cursor;  // continue after this position (from HistoryPage::next)
};

struct HistoryPage {
  std::vector<std::shared_ptr<const std::string>> events;
  std::optional<int64_t> next;  // set when there may be more
};

struct StoredActivity {
  std::string kind;
  std::string channel;  // empty = none
  JsonText data;
  TimeMs timestamp = 0;
  std::string connection_id;
};

// What survives a restart of one user.
struct UserRecord {
  std::string client_id;
  std::string manual;  // "" (automatic), "away", "dnd" or "offline"
  std::optional<std::string> text;
  TimeMs last_seen = 0;  // 0 = never
};

// One event waiting for one webhook endpoint (protocol-ext §4), in a single node's outbox.
struct StoredWebhook {
  std::string endpoint;  // its URL
  uint64_t seq = 0;      // the outbox's order
  std::string id;
  TimeMs created_at = 0;
  std::string body;
};

struct StoreCounters {
  uint64_t write_errors = 0;    // failed commits (disk full, I/O error); the batch is lost
  uint64_t dropped_writes = 0;  // writes refused because the queue was full
  uint64_t pending = 0;         // writes queued, not yet committed
};

class Store {
 public:
  virtual ~Store() = default;

  virtual void AppendEvent(StoredEvent event) = 0;
  virtual void AppendActivity(std::string client_id, StoredActivity activity) = 0;
  // lastSeen never moves backwards: the stored value becomes max(stored, last_seen), so writes
  // may commit in any order; 0 (never seen) changes nothing.
  virtual void PutLastSeen(std::string client_id, TimeMs last_seen) = 0;
  // A status set by hand (`manual`, `text`), together with `last_seen` (as PutLastSeen; 0 = keep)
  // in the same commit, so a status on disk never lacks the lastSeen of its moment. `durable`
  // runs once it is on disk (or failed).
  virtual void PutUserStatus(UserRecord record, std::function<void(Status)> durable) = 0;

  virtual void QueryHistory(HistoryQuery query, std::function<void(Result<HistoryPage>)> done) = 0;
  // Newest first; `since` inclusive.
  virtual void QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                               std::function<void(Result<std::vector<StoredActivity>>)> done) = 0;
  // The records of the users that have one, in no particular order.
  virtual void GetUsers(std::vector<std::string> client_ids,
                        std::function<void(Result<std::vector<UserRecord>>)> done) = 0;
  virtual Result<std::optional<UserRecord>> ReadUser(const std::string& client_id) = 0;

  // The webhook outbox of a single node (a cluster keeps it in its replicated state): queued with
  // the writes (committed within the flush interval), deleted once delivered or given up, and
  // loaded at start. The default keeps nothing.
  virtual void PutWebhook(StoredWebhook) {}
  virtual void DeleteWebhook(std::string /*endpoint*/, uint64_t /*seq*/) {}
  virtual Result<std::vector<StoredWebhook>> LoadWebhooks() { return std::vector<StoredWebhook>(); }
  // Token revocations (POST /v1/users/{id}/revoke): the user's tokens issued before `before` are
  // refused. A single node's, restored at start; a cluster keeps them in its replicated state.
  virtual void PutRevocation(std::string /*client_id*/, TimeMs /*before*/) {}
  virtual Result<std::vector<std::pair<std::string, TimeMs>>> LoadRevocations() {
    return std::vector<std::pair<std::string, TimeMs>>();
  }

  // Blocks until every write queued so far is committed (graceful shutdown).
  virtual void Flush() = 0;
  virtual StoreCounters counters() const = 0;
};

}  // namespace presenced::storage
