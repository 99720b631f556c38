// MemoryStore: a bounded in-memory Store, not durable. History keeps the newest
// `events_per_channel` events of each of the `channels` most recently written channels; activity
// keeps `activities_per_user` per user. Thread-safe (one mutex; every call is a short copy), and
// answers queries at once on the caller's thread.
#pragma once

#include <deque>
#include <list>
#include <map>
#include <string>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "storage/store.h"

namespace presenced::storage {

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(size_t events_per_channel = 10000, size_t channels = 100000,
                       size_t activities_per_user = 1000, size_t users = 1000000)
      : events_per_channel_(events_per_channel),
        max_channels_(channels),
        activities_per_user_(activities_per_user),
        max_users_(users) {}

  void AppendEvent(StoredEvent event) override;
  void AppendActivity(std::string client_id, StoredActivity activity) override;
  void PutLastSeen(std::string client_id, TimeMs last_seen) override;
  void PutUserStatus(UserRecord record, std::function<void(Status)> durable) override;
  void QueryHistory(HistoryQuery query, std::function<void(Result<HistoryPage>)> done) override;
  void QueryActivities(std::string client_id, size_t limit, std::optional<TimeMs> since,
                       std::function<void(Result<std::vector<StoredActivity>>)> done) override;
  void GetUsers(std::vector<std::string> client_ids,
                std::function<void(Result<std::vector<UserRecord>>)> done) override;
  Result<std::optional<UserRecord>> ReadUser(const std::string& client_id) override;
  // The webhook outbox, kept for as long as the process lives (tests read it back).
  void PutWebhook(StoredWebhook webhook) override;
  void DeleteWebhook(std::string endpoint, uint64_t seq) override;
  Result<std::vector<StoredWebhook>> LoadWebhooks() override;
  void PutRevocation(std::string client_id, TimeMs before) override;
  Result<std::vector<std::pair<std::string, TimeMs>>> LoadRevocations() override;
  void Flush() override {}
  StoreCounters counters() const override { return {}; }

 private:
  struct ChannelLog {
    std::deque<std::pair<int64_t, StoredEvent>> events;  // (position, event), oldest first
    std::list<std::string>::iterator lru;
  };
  struct UserData {
    UserRecord record;
    std::deque<StoredActivity> activities;  // newest first
  };
  UserData& User(const std::string& client_id) EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t events_per_channel_;
  const size_t max_channels_;
  const size_t activities_per_user_;
  const size_t max_users_;
  mutable Mutex mu_;
  int64_t next_position_ GUARDED_BY(mu_) = 1;
  std::unordered_map<std::string, ChannelLog> logs_ GUARDED_BY(mu_);
  std::list<std::string> lru_ GUARDED_BY(mu_);  // least recently written first
  std::map<std::pair<std::string, uint64_t>, StoredWebhook> webhooks_ GUARDED_BY(mu_);
  std::map<std::string, TimeMs> revocations_ GUARDED_BY(mu_);
  std::unordered_map<std::string, UserData> users_ GUARDED_BY(mu_);
  std::deque<std::string> user_order_ GUARDED_BY(mu_);  // insertion order, for the bound
};

}  // namespace presenced::storage
