// cluster::Replicator: the Replication (common/replication.h) of a cluster node, on its Log.
// Appends are batched: everything appended in one turn of the loop leaves in one script call.
// Entries are read from the start of the log (a node that starts replays what the cluster did),
// each applied with the engine's clock at the entry's time and its randomness from the entry.
//
// Threading: the reactor's loop (the work loop, where the Dispatcher runs).
#pragma once

#include <functional>
#include <memory>
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

  // Reads the log from its start; `on_batch` gets the entries in order (apply each after
  // Prepare).
  void Start(std::function<void(std::vector<LogEntry>)> on_batch);
  // Sets the log's clock to `e`'s time and describes it for Dispatcher::Apply (valid until the
  // next call).
  ReplicatedEntry Prepare(const LogEntry& e);

  void Append(std::string body, std::function<void(const Error&)> failed) override;
  std::string NewSeed() override;
  void UseSeed(std::string_view seed) override { random_.Seed(seed); }
  TimeMs LogTime() const override { return clock_.NowMs(); }
  bool Available() const override { return node_.up(); }

  uint64_t gaps() const { return gaps_; }

 private:
  void Flush();

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
  std::string origin_;  // of the entry last prepared
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presenced::cluster
