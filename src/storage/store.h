// Store: where presenced keeps what outlives a connection (presence history today; last seen,
// manual status and activity with the durable store). One interface, several implementations:
// MemoryStore (bounded, for tests and ephemeral deployments), SQLite (embedded default) and Redis
// (clusters) behind it.
//
// Threading: Append* is called on the engine's thread and must never block on I/O. Query* may be
// called from any thread; `done` runs on an unspecified thread (an implementation may answer
// before returning), so it must only do thread-safe work.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

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
  bool forwards = false;  // false: newest first
};

using HistoryResult = Result<std::vector<std::shared_ptr<const std::string>>>;

class Store {
 public:
  virtual ~Store() = default;
  virtual void AppendEvent(StoredEvent event) = 0;
  virtual void QueryHistory(HistoryQuery query, std::function<void(HistoryResult)> done) = 0;
};

}  // namespace presenced::storage
