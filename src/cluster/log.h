// cluster::Log: the cluster's one ordered log on a Redis stream, the sequencer of the planned
// state-machine replication (docs/operations.md, "Clustering").
//
// - Append: one script appends a batch of entries for this node's incarnation, and only while its
//   lease is current: a fenced incarnation (replaced or reaped) gets FENCED, a lease that ran out
//   and was not renewed yet gets LEASE. Nothing is appended then, so a node never writes with a
//   lost lease.
// - Read: a connection of its own blocks in XREAD and hands every entry, in the stream's order,
//   to the reader; after a reconnect it continues after the last entry it handed over (no loss,
//   no duplicate). Every entry carries its number in the log (1, 2, 3, ...): a number skipped is
//   a gap (entries trimmed before they were read, or lost with Redis's data), and the reader is
//   told (it resynchronizes from a snapshot).
// - An entry's id is Redis's time (ms) and a sequence number: one clock for the whole cluster.
//
// Threading: everything on the reactor's loop; callbacks run there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/reactor.h"
#include "redis/client.h"

namespace presenced::cluster {

struct LogEntry {
  std::string id;  // "ms-seq", as Redis names it
  TimeMs time = 0;
  uint64_t seq = 0;
  std::string node;
  std::string incarnation;
  std::string body;
  uint64_t number = 0;  // 1, 2, 3, ... in the log's order (0: not numbered)
};

struct LogOptions {
  std::string key = "{presenced}:log";
  std::string number_key = "{presenced}:logq";  // numbers the entries (cluster/node.h)
  size_t max_entries = 1000000;                 // approximate trimming (MAXLEN ~)
  int block_ms = 1000;       // one XREAD waits at most this long, then is sent again
  size_t read_count = 1000;  // entries per XREAD at most
};

// Whether stream id `a` comes before `b` ("ms-seq" numerically).
bool IdBefore(const std::string& a, const std::string& b);

class Log {
 public:
  using EntriesCallback = std::function<void(std::vector<LogEntry>& entries)>;

  // `writer` is the node's command connection; the log opens its reading connection itself with
  // `reader_options`.
  Log(Reactor& reactor, redis::Client& writer, redis::ClientOptions reader_options,
      LogOptions options = {});
  ~Log();

  // Appends `bodies` in order; `done` gets the ids (an array) or the error (FENCED, LEASE,
  // kUnavailable). `node`/`incarnation`: the appending node's current registration.
  void Append(const std::string& node, const std::string& incarnation,
              std::vector<std::string> bodies, std::function<void(const redis::Reply&)> done);

  // Reads every entry after `after` ("0-0": from the start) from now on; `number` is that
  // entry's (0 for "0-0"; nullopt: unknown, the next entry is taken as it comes). An entry whose
  // number is not the one after the last is a gap: entries were missed (trimmed unread, or
  // Redis lost its data). The entries before it are handed over, then `on_gap` says whether to
  // go on past it at once (false) or to wait until the reader calls Resume (true: it
  // resynchronizes first). `restarted`: the numbers start again at 1 (Redis lost its data).
  void Read(std::string after, std::optional<uint64_t> number, EntriesCallback on_entries,
            std::function<bool(bool restarted)> on_gap);
  // After a gap: reads on after `after` (a snapshot's entry, with its number; "0-0" and nullopt:
  // whatever the stream holds now).
  void Resume(std::string after, std::optional<uint64_t> number);
  // The id of the last entry handed to the reader.
  const std::string& position() const { return position_; }
  bool reading_up() const { return reader_.up(); }

 private:
  void ReadMore();

  Reactor& reactor_;
  redis::Client& writer_;
  redis::Client reader_;
  const LogOptions options_;
  std::string position_ = "0-0";
  EntriesCallback on_entries_;
  std::function<bool(bool restarted)> on_gap_;
  bool paused_ = false;               // at a gap, until Resume
  std::optional<uint64_t> expected_;  // the next entry's number, when known
  bool reading_ = false;              // Read was called
  bool in_flight_ = false;            // an XREAD (or the gap check) is pending
  uint64_t generation_ = 0;           // per reader connection: a reply for an older one is ignored
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presenced::cluster
