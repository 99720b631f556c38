// MemoryStore (memory_store.h): bounded, not durable; thread-safe under one mutex.
#include "storage/memory_store.h"

#include <algorithm>

namespace presenced::storage {

void MemoryStore::AppendEvent(StoredEvent event) {
  MutexLock lock(mu_);
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
  events.emplace_back(next_position_++, std::move(event));
  while (events.size() > events_per_channel_) events.pop_front();
}

MemoryStore::UserData& MemoryStore::User(const std::string& client_id) {
  auto it = users_.find(client_id);
  if (it != users_.end()) return it->second;
  if (users_.size() >= max_users_) {
    users_.erase(user_order_.front());
    user_order_.pop_front();
  }
  user_order_.push_back(client_id);
  UserData& u = users_[client_id];
  u.record.client_id = client_id;
  return u;
}

void MemoryStore::AppendActivity(std::string client_id, StoredActivity activity) {
  MutexLock lock(mu_);
  auto& list = User(client_id).activities;
  list.push_front(std::move(activity));
  while (list.size() > activities_per_user_) list.pop_back();
}

void MemoryStore::PutLastSeen(std::string client_id, TimeMs last_seen) {
  if (last_seen <= 0) return;
  MutexLock lock(mu_);
  TimeMs& stored = User(client_id).record.last_seen;
  stored = std::max(stored, last_seen);  // never backwards, as in SqliteStore
}

void MemoryStore::PutUserStatus(UserRecord record, std::function<void(Status)> durable) {
  {
    MutexLock lock(mu_);
    UserRecord& r = User(record.client_id).record;
    r.manual = record.manual;
    r.text = record.text;
    r.last_seen = std::max(r.last_seen, record.last_seen);
  }
  durable(Status::Ok());
}

void MemoryStore::QueryHistory(HistoryQuery q, std::function<void(Result<HistoryPage>)> done) {
  HistoryPage page;
  {
    MutexLock lock(mu_);
    auto it = logs_.find(q.channel);
    if (it != logs_.end()) {
      auto take = [&](const std::pair<int64_t, StoredEvent>& e) {
        if (q.cursor && (q.forwards ? e.first <= *q.cursor : e.first >= *q.cursor)) return true;
        if (q.start && e.second.timestamp < *q.start) return true;
        if (q.end && e.second.timestamp > *q.end) return true;
        if (page.events.size() == q.limit) return false;
        page.events.push_back(e.second.json);
        page.next = e.first;
        return true;
      };
      const auto& events = it->second.events;
      bool more = false;
      if (q.forwards) {
        for (auto e = events.begin(); e != events.end(); ++e) {
          if (!take(*e)) {
            more = true;
            break;
          }
        }
      } else {
        for (auto e = events.rbegin(); e != events.rend(); ++e) {
          if (!take(*e)) {
            more = true;
            break;
          }
        }
      }
      if (!more) page.next.reset();
    }
  }
  done(std::move(page));
}

void MemoryStore::QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                                  std::function<void(Result<std::vector<StoredActivity>>)> done) {
  std::vector<StoredActivity> out;
  {
    MutexLock lock(mu_);
    auto it = users_.find(client_id);
    if (it != users_.end()) {
      for (const auto& a : it->second.activities) {
        if (out.size() >= limit || (since && a.timestamp < *since)) break;
        out.push_back(a);
      }
    }
  }
  done(std::move(out));
}

void MemoryStore::GetUsers(std::vector<std::string> client_ids,
                           std::function<void(Result<std::vector<UserRecord>>)> done) {
  std::vector<UserRecord> out;
  {
    MutexLock lock(mu_);
    for (const auto& id : client_ids) {
      auto it = users_.find(id);
      if (it != users_.end()) out.push_back(it->second.record);
    }
  }
  done(std::move(out));
}

Result<std::optional<UserRecord>> MemoryStore::ReadUser(const std::string& client_id) {
  MutexLock lock(mu_);
  auto it = users_.find(client_id);
  if (it == users_.end()) return std::optional<UserRecord>();
  return std::optional<UserRecord>(it->second.record);
}

void MemoryStore::PutWebhook(StoredWebhook webhook) {
  MutexLock lock(mu_);
  auto key = std::make_pair(webhook.endpoint, webhook.seq);
  webhooks_[std::move(key)] = std::move(webhook);
}

void MemoryStore::DeleteWebhook(std::string endpoint, uint64_t seq) {
  MutexLock lock(mu_);
  webhooks_.erase({std::move(endpoint), seq});
}

Result<std::vector<StoredWebhook>> MemoryStore::LoadWebhooks() {
  MutexLock lock(mu_);
  std::vector<StoredWebhook> out;
  for (const auto& [key, w] : webhooks_) out.push_back(w);
  return out;
}

void MemoryStore::PutRevocation(std::string client_id, TimeMs before) {
  MutexLock lock(mu_);
  TimeMs& at = revocations_[std::move(client_id)];
  at = std::max(at, before);
}

Result<std::vector<std::pair<std::string, TimeMs>>> MemoryStore::LoadRevocations() {
  MutexLock lock(mu_);
  return std::vector<std::pair<std::string, TimeMs>>(revocations_.begin(), revocations_.end());
}

}  // namespace presenced::storage
