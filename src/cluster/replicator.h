// cluster::Replicator: the Replication (common/replication.h) of a cluster node, on its Log.
// Appends are batched: everything appended in one turn of the loop leaves in one script call.
// Each entry is applied with the engine's clock at the entry's time and its randomness from the
// entry.
//
// Snapshots: at every entry whose number (cluster/log.h) is a multiple of `snapshot_entries`, the
// node that appended it saves the state it has after applying it to {presenced}:snap (id,
// number, time, state; a script keeps only the newest). A node that starts
// loads the snapshot and reads the log after its entry, so it replays at most that many entries
// however long the cluster has run (the stream itself is trimmed, cluster/log.h). A reader that
// finds a gap (entries trimmed unread) waits, loads the newest snapshot if it is not older than
// its position, and reads on after it; with none, it reads on and counts the gap.
//
// Threading: the reactor's loop (the work loop, where the Dispatcher runs).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/log.h"
#include "cluster/node.h"
#include "common/random.h"
#include "common/replication.h"

namespace presenced::cluster {

// A RandomSource that replays: the same seed gives the same bytes on every node (HMAC-SHA256 of a
// counter under the seed; the seed itself comes from the kernel on the node that appends).
class ReplayRandom final : public RandomSource {
 public:
  void Seed(std::string_view seed);
  void Fill(std::span<uint8_t> out) override;

 private:
  std::string key_;
  uint64_t counter_ = 0;
};

class Replicator final : public Replication {
 public:
  Replicator(Reactor& reactor, Node& node, redis::ClientOptions reader_options,
             ManualClock& log_clock, ReplayRandom& random);

  // The state the log builds (the Dispatcher's), on the loop.
  struct StateHooks {
    std::function<std::string()> save;  // as of the entry last applied
    // Replaces the state with a saved one (joining, or resynchronizing at a gap).
    std::function<Status(std::string_view)> load;
    // Runs a task after every batch already handed to `on_batch` was applied (they are applied
    // in the loop's rounds): a snapshot replaces the state only behind the entries before it.
    std::function<void(std::function<void()>)> in_order;
    // Entries were missed and no snapshot covered them (optional).
    std::function<void()> uncovered_gap;
  };

  // Loads the newest snapshot, if any, then reads the log after it; `on_batch` gets the entries
  // in order (apply each after Prepare, then call Applied). Appends are refused until then.
  void Start(StateHooks hooks, std::function<void(std::vector<LogEntry>)> on_batch);
  // Sets the log's clock to `e`'s time and describes it for Dispatcher::Apply (valid until the
  // next call).
  ReplicatedEntry Prepare(const LogEntry& e);
  // After `e` was applied: saves a snapshot when one is due and `e` was this node's.
  void Applied(const LogEntry& e);
  // Saves a snapshot now, as of the entry last applied (the epoch changed: Redis lost its data,
  // snapshot included, and a node joining must not start from nothing). Its number is left
  // unknown, since the log's numbering started again.
  void SaveNow();

  void Append(std::string body, std::function<void(const Error&)> failed) override;
  std::string NewSeed() override;
  void UseSeed(std::string_view seed) override { random_.Seed(seed); }
  TimeMs LogTime() const override { return clock_.NowMs(); }
  bool Available() const override { return ready_ && node_.up(); }
  std::string Origin() const override { return node_.node_id() + "/" + node_.incarnation(); }

  uint64_t gaps() const { return gaps_; }  // gaps no snapshot covered (the state may differ)
  uint64_t snapshots_saved() const { return saved_; }
  uint64_t snapshots_loaded() const { return loaded_; }

 private:
  struct Saved {
    std::string id;
    std::optional<uint64_t> number;  // unknown: the next entry is taken as it comes
    TimeMs time = 0;
    std::string state;
  };
  void Flush();
  // The newest snapshot (nullopt: none), retried while Redis does not answer.
  void FetchSnapshot(std::function<void(std::optional<Saved>)> done);
  bool Load(const Saved& saved);
  void OnGap();
  void Save(const std::string& id, std::optional<uint64_t> number, TimeMs time);

  Reactor& reactor_;
  Node& node_;
  Log log_;
  ManualClock& clock_;
  ReplayRandom& random_;
  SecureRandom secure_;
  std::vector<std::string> queue_;
  std::vector<std::function<void(const Error&)>> failed_;
  bool flush_posted_ = false;
  uint64_t gaps_ = 0;
  uint64_t saved_ = 0;
  uint64_t loaded_ = 0;
  StateHooks hooks_;
  bool ready_ = false;           // the snapshot (if any) is loaded: appends may go
  std::string last_id_ = "0-0";  // the entry last applied
  TimeMs last_time_ = 0;
  std::unique_ptr<Reactor::Timer> retry_;
  std::string origin_;  // of the entry last prepared
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presenced::cluster
