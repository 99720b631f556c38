// StoreBridge: the Dispatcher's side of the durable store. It gives the engine what the store
// remembers of users it does not hold, stores what must survive a restart (status set by hand,
// lastSeen), and answers the reads that need the store (statuses of users the engine does not
// know, activity records, history).
//
// Threading: lives on the Dispatcher's thread. The store answers on its own thread; every answer
// is posted back (Poster) before `done` runs, so `done` always runs on the Dispatcher's thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "engine/engine.h"
#include "protocol/metrics.h"
#include "protocol/options.h"
#include "storage/store.h"

namespace presenced::protocol {

class StoreBridge {
 public:
  StoreBridge(storage::Store& store, engine::Engine& engine, const Clock& clock, Poster post,
              TimeMs checkpoint_ms, Metrics& metrics);

  storage::Store& store() { return store_; }

  // Whether this node writes what the current call changes (default: yes). In a cluster every
  // node applies every change, and the store is shared: only the node whose log entry it is
  // writes, so each change is stored once (Dispatcher::Apply sets it per entry).
  void SetWriting(bool writing) { writing_ = writing; }
  bool writing() const { return writing_; }
  // The store's writes, when this node writes.
  void AppendEvent(storage::StoredEvent event);
  void AppendActivity(std::string client_id, storage::StoredActivity activity);
  // A single node's webhook outbox (written whatever SetWriting says: cluster mode has none).
  void PutWebhook(storage::StoredWebhook webhook) { store_.PutWebhook(std::move(webhook)); }
  // A revocation: written when this node writes (SetWriting); a cluster's are in its state.
  void PutRevocation(std::string client_id, TimeMs before) {
    if (writing_) store_.PutRevocation(std::move(client_id), before);
  }
  void DeleteWebhook(std::string endpoint, uint64_t seq) {
    store_.DeleteWebhook(std::move(endpoint), seq);
  }

  // Gives the engine what the store remembers of a user it does not hold.
  void Remember(const storage::UserRecord& stored);
  // What the store remembers of each of `client_ids` (those it has a record of), read on the
  // store's thread; `done` runs on this thread. A failed read is counted and gives nothing.
  void ReadUsers(std::vector<std::string> client_ids,
                 std::function<void(std::vector<storage::UserRecord>)> done);
  // Gives the engine what the store remembers of each of `client_ids` it does not hold, then runs
  // `done` on this thread: at once when the engine holds them all (its user directory is the
  // cache), else after one read on the store's thread for all of them, so this thread never waits
  // for the disk. A failed read is counted (`presenced_storage_read_errors_total`) and treated as
  // "nothing remembered".
  void RememberUsers(std::vector<std::string> client_ids, std::function<void()> done);
  // Stores the user's status set by hand (with its lastSeen, in one commit); `durable` runs (on
  // this thread) once it is on disk.
  void PersistSettings(const std::string& client_id, std::function<void(Status)> durable);
  // The user came online or went offline during the current call: its lastSeen is stored by
  // PersistLastSeen at the end of the call (the engine's value, frozen while appearing offline).
  void LastSeenDue(std::string_view client_id) { last_seen_due_.emplace_back(client_id); }
  void PersistLastSeen();
  // Stores every connected user's lastSeen when the checkpoint interval has passed.
  void Checkpoint();
  // The checkpoint now (cluster mode: at a tick entry that asks for it, on every node alike),
  // storing the lastSeen of the users `local` allows (all without it).
  void CheckpointNow(const std::function<bool(std::string_view)>& local);
  TimeMs next_checkpoint() const { return next_checkpoint_; }

  // Serializes the STATUS of each id, in the order of `ids`: from the engine when it knows the
  // user, otherwise from the store. `done` gets `[S,S,...]`.
  void StatusesOf(const std::vector<std::string>& ids,
                  std::function<void(Result<std::string>)> done);
  // The newest `limit` activity records of `client_id` that `patterns` allow (records without a
  // channel always; all of them without patterns).
  void VisibleActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                         std::optional<std::vector<std::string>> patterns,
                         std::function<void(Result<std::vector<storage::StoredActivity>>)> done);
  // VisibleActivities as `viewer` may see them: nothing of another user who appears offline.
  void ActivitiesFor(std::string_view viewer, std::optional<std::vector<std::string>> patterns,
                     std::string client_id, size_t limit, std::optional<TimeMs> since,
                     std::function<void(Result<std::vector<storage::StoredActivity>>)> done);
  void QueryHistory(storage::HistoryQuery query,
                    std::function<void(Result<storage::HistoryPage>)> done);

 private:
  // Wraps `done` so that it runs on this thread, posted, whichever thread the store answers on.
  template <typename T>
  std::function<void(T)> OnThisThread(std::function<void(T)> done);

  storage::Store& store_;
  engine::Engine& engine_;
  const Clock& clock_;
  Poster post_;
  TimeMs checkpoint_ms_;
  Metrics& metrics_;
  TimeMs next_checkpoint_;
  std::vector<std::string> last_seen_due_;  // came online or went offline during the current call
  bool writing_ = true;
};

}  // namespace presenced::protocol
