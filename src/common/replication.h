// Replication: cluster mode's ordered log, as the Dispatcher sees it (docs/operations.md,
// "Clustering"). Every change to the engine goes through it: the Dispatcher appends an entry for
// each connection opened, closed or dropped, each request, each REST request and each due
// deadline, and applies every entry of the log, its own and other nodes', in the log's order
// (Dispatcher::Apply). Each node's engine thus holds the whole cluster's state; the node an entry
// came from answers its client. The implementation (cluster::Replicator) sets the engine's clock
// to the entry's time before each Apply and its randomness to the entry's seed (UseSeed).
//
// Threading: the Dispatcher's thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"

namespace presenced {

struct ReplicatedEntry {
  TimeMs time = 0;
  bool mine = false;        // appended by this node's current incarnation
  std::string_view origin;  // the appending node and incarnation ("node/incarnation")
  std::string_view body;
};

class Replication {
 public:
  virtual ~Replication() = default;
  // Appends `body`; `failed` runs on this thread if it could not be (Redis down, lease lost): the
  // entry will then never be applied.
  virtual void Append(std::string body, std::function<void(const Error&)> failed) = 0;
  // Fresh secret randomness (hex) for an entry that creates ids and keys.
  virtual std::string NewSeed() = 0;
  // The engine's randomness from now on: a deterministic stream from `seed` (the same on every
  // node).
  virtual void UseSeed(std::string_view seed) = 0;
  // The log's clock: the time of the last applied entry.
  virtual TimeMs LogTime() const = 0;
  // Whether appends can succeed now (Redis reachable, lease held).
  virtual bool Available() const = 0;
  // This node's current incarnation, as entries it appends carry it ("node/incarnation").
  virtual std::string Origin() const = 0;
};

}  // namespace presenced
