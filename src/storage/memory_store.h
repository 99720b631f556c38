// MemoryStore: a bounded in-memory Store. History keeps the newest `events_per_channel` events of
// each of the `channels` most recently written channels. Not durable. Thread-safe (one mutex:
// writers are the engine thread, readers any thread; critical sections are short copies).
#pragma once

#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "storage/store.h"

namespace presenced::storage {

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(size_t events_per_channel = 10000, size_t channels = 100000)
      : events_per_channel_(events_per_channel), max_channels_(channels) {}

  void AppendEvent(StoredEvent event) override;
  void QueryHistory(HistoryQuery query, std::function<void(HistoryResult)> done) override;

 private:
  struct ChannelLog {
    std::deque<StoredEvent> events;  // oldest first
    std::list<std::string>::iterator lru;
  };
  const size_t events_per_channel_;
  const size_t max_channels_;
  std::mutex mu_;
  std::unordered_map<std::string, ChannelLog> logs_;
  std::list<std::string> lru_;  // least recently written first
};

}  // namespace presenced::storage
