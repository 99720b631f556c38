#include "storage/memory_store.h"

namespace presenced::storage {

void MemoryStore::AppendEvent(StoredEvent event) {
  std::lock_guard lock(mu_);
  auto it = logs_.find(event.channel);
  if (it == logs_.end()) {
    if (logs_.size() >= max_channels_) {
      logs_.erase(lru_.front());
      lru_.pop_front();
    }
    it = logs_.emplace(event.channel, ChannelLog{}).first;
    it->second.lru = lru_.insert(lru_.end(), event.channel);
  } else {
    lru_.splice(lru_.end(), lru_, it->second.lru);
  }
  auto& events = it->second.events;
  events.push_back(std::move(event));
  while (events.size() > events_per_channel_) events.pop_front();
}

void MemoryStore::QueryHistory(HistoryQuery q, std::function<void(HistoryResult)> done) {
  std::vector<std::shared_ptr<const std::string>> out;
  {
    std::lock_guard lock(mu_);
    auto it = logs_.find(q.channel);
    if (it != logs_.end()) {
      const auto& events = it->second.events;
      auto take = [&](const StoredEvent& e) {
        if (q.start && e.timestamp < *q.start) return true;
        if (q.end && e.timestamp > *q.end) return true;
        out.push_back(e.json);
        return out.size() < q.limit;
      };
      if (q.forwards) {
        for (auto e = events.begin(); e != events.end() && take(*e); ++e) {
        }
      } else {
        for (auto e = events.rbegin(); e != events.rend() && take(*e); ++e) {
        }
      }
    }
  }
  done(std::move(out));
}

}  // namespace presenced::storage
