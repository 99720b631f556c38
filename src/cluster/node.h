// cluster::Node: this process's membership of a cluster on one Redis (protocol-ext section 2):
// its lease, renewed on the server's own loop, the cluster's epoch, and whether Redis is
// reachable.
//
// Keys (one hash tag, so every script touches one slot and the scripts run on Redis Cluster too):
//   {presenced}:nodes    ZSET node -> lease deadline (Redis TIME, ms)
//   {presenced}:inc      HASH node -> incarnation (random per registration: a restarted node with
//                        the same PRESENCED_NODE_ID is a new incarnation, and the old one's
//                        renewals are refused)
//   {presenced}:epoch    the cluster's data set: set once by the first registration after Redis
//                        starts empty (it changes when Redis loses its data)
//   {presenced}:last     when any node last renewed (ms)
//   {presenced}:served   since when Redis has been serving the nodes without a gap of a lease
//
// A lease is lost only while Redis is serving: a renewal after a gap of a whole lease in which
// no node renewed (Redis down or cut off from every node) moves `served` to now, and a deadline
// that passed before `served` is renewed, not refused. A deadline that passed while others
// renewed is lost: the node is fenced (it must close its connections with 4001 and register
// again as a new incarnation; it never renews the old one).
//
// Threading: everything on the reactor's loop; callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/reactor.h"
#include "redis/client.h"

namespace presenced::cluster {

// The cluster's log (cluster/log.h): reaps are written to it by the lease's scripts.
inline constexpr const char* kLogKey = "{presenced}:log";
// Numbers the log's entries 1, 2, 3, ... (field q): a reader that sees a number skipped knows it
// missed entries (trimmed unread, or Redis lost its data).
inline constexpr const char* kLogNumberKey = "{presenced}:logq";

struct NodeOptions {
  std::string redis_url;  // set: cluster mode
  std::string node_id;    // empty: generated per start
  int64_t lease_ms = 3000;
  // Every this many log entries a node saves the cluster's state (cluster/replicator.h), so a
  // node that joins replays at most this many.
  int64_t snapshot_entries = 100000;
};

class Node {
 public:
  struct Callbacks {
    // Registered and renewing (true), or Redis unreachable (false). Starts false.
    std::function<void(bool up)> health;
    // The lease was found lost while Redis was serving: this incarnation's connections must be
    // closed with 4001; the node registers again by itself, as a new incarnation.
    std::function<void()> fenced;
    // The epoch this node registered under, at the first registration and whenever it changed
    // (Redis lost its data).
    std::function<void(const std::string& epoch)> epoch;
  };

  // `clock` (monotonic) measures this node's own stalls: a renewal due more than a lease ago on a
  // connection to Redis that never dropped means the process stalled (paused, starved) while
  // Redis served; the node then counts itself fenced without asking.
  Node(Reactor& reactor, const Clock& clock, NodeOptions options, redis::Url url,
       Callbacks callbacks);
  ~Node();

  void Start();
  // Removes this node's lease (graceful shutdown); `done` runs when Redis answered or could not.
  void Leave(std::function<void()> done);

  const std::string& node_id() const { return node_id_; }
  const std::string& incarnation() const { return incarnation_; }
  const std::string& epoch() const { return epoch_; }
  const NodeOptions& options() const { return options_; }
  bool up() const { return registered_ && client_.up(); }
  uint64_t fenced_count() const { return fenced_count_; }
  // Dead nodes this node reaped (each one `reap` entry in the log).
  uint64_t reaped() const { return reaped_; }
  // The client, for the cluster's other commands (it is the node's command connection).
  redis::Client& client() { return client_; }

 private:
  // A new incarnation's lease (the previous one, if any, is reaped by the script).
  void Register();
  void Renew();
  // After a reconnect: the incarnation that held a lease renews it, so its connections stay (no
  // reap); a lease lost meanwhile is FENCED, a new epoch registers again.
  void Rejoin();
  void SendRenewal();
  void Fenced();
  void Reap();
  void SetHealth(bool up);
  std::vector<std::string> Keys() const;

  Reactor& reactor_;
  const Clock& clock_;
  const NodeOptions options_;
  redis::Client client_;
  Callbacks callbacks_;
  std::unique_ptr<Reactor::Timer> renew_timer_;
  std::string node_id_;
  std::string incarnation_;
  std::string epoch_;
  bool registered_ = false;  // holds its lease now (and the connection it renews on is up)
  bool held_ = false;        // incarnation_ held a lease (until fenced)
  bool healthy_ = false;
  bool leaving_ = false;
  uint64_t fenced_count_ = 0;
  uint64_t reaped_ = 0;
  TimeMs last_renewed_ = 0;           // clock_ time of the last accepted registration or renewal
  uint64_t connects_at_renewal_ = 0;  // client_.connects() then
};

// A fresh random id (lower-case hex of `bytes` random bytes).
std::string RandomHex(size_t bytes);

}  // namespace presenced::cluster
