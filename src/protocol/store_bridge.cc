// StoreBridge (store_bridge.h): store answers posted back to the Dispatcher's thread.
#include "protocol/store_bridge.h"

#include <algorithm>
#include <memory>

#include "protocol/auth.h"
#include "protocol/codec.h"

namespace presenced::protocol {

using engine::Presence;

StoreBridge::StoreBridge(storage::Store& store, engine::Engine& engine, const Clock& clock,
                         Poster post, TimeMs checkpoint_ms, Metrics& metrics)
    : store_(store),
      engine_(engine),
      clock_(clock),
      post_(std::move(post)),
      checkpoint_ms_(checkpoint_ms),
      metrics_(metrics),
      next_checkpoint_(clock.NowMs() + checkpoint_ms) {}

template <typename T>
std::function<void(T)> StoreBridge::OnThisThread(std::function<void(T)> done) {
  return [post = post_, done = std::move(done)](T value) {
    post([done, value = std::move(value)]() mutable { done(std::move(value)); });
  };
}

void StoreBridge::Remember(const storage::UserRecord& stored) {
  if (engine_.KnowsUser(stored.client_id)) return;  // the engine's own state is newer
  engine::Engine::UserSettings settings;
  settings.manual = engine::ParsePresence(stored.manual).value_or(Presence::kOnline);
  settings.text = stored.text;
  engine_.RestoreUser(stored.client_id, std::move(settings), stored.last_seen);
}

void StoreBridge::ReadUsers(std::vector<std::string> client_ids,
                            std::function<void(std::vector<storage::UserRecord>)> done) {
  if (client_ids.empty()) return done({});
  std::function<void(Result<std::vector<storage::UserRecord>>)> then =
      [this, done = std::move(done)](Result<std::vector<storage::UserRecord>> users) {
        if (users.ok()) return done(std::move(users).value());
        metrics_.storage_read_errors_total.fetch_add(1, std::memory_order_relaxed);
        done({});
      };
  store_.GetUsers(std::move(client_ids),
                  OnThisThread<Result<std::vector<storage::UserRecord>>>(std::move(then)));
}

void StoreBridge::RememberUsers(std::vector<std::string> client_ids, std::function<void()> done) {
  std::erase_if(client_ids, [&](const std::string& id) { return engine_.KnowsUser(id); });
  if (client_ids.empty()) return done();
  ReadUsers(std::move(client_ids),
            [this, done = std::move(done)](std::vector<storage::UserRecord> users) {
              for (const storage::UserRecord& u : users) Remember(u);
              done();
            });
}

void StoreBridge::AppendEvent(storage::StoredEvent event) {
  if (writing_) store_.AppendEvent(std::move(event));
}

void StoreBridge::AppendActivity(std::string client_id, storage::StoredActivity activity) {
  if (writing_) store_.AppendActivity(std::move(client_id), std::move(activity));
}

void StoreBridge::PersistLastSeen() {
  if (!writing_) {
    last_seen_due_.clear();
    return;
  }
  while (!last_seen_due_.empty()) {
    std::vector<std::string> users;
    users.swap(last_seen_due_);
    for (auto& id : users) {
      engine::StatusView v = engine_.GetStatus(id);  // may run timers, which may add users
      if (v.last_seen) store_.PutLastSeen(std::move(id), *v.last_seen);
    }
  }
}

void StoreBridge::Checkpoint() {
  if (clock_.NowMs() >= next_checkpoint_) CheckpointNow(nullptr);
  PersistLastSeen();
}

void StoreBridge::CheckpointNow(const std::function<bool(std::string_view)>& local) {
  for (auto& [client_id, last_seen] : engine_.LastSeenCheckpoint()) {
    if (!local || local(client_id)) store_.PutLastSeen(std::move(client_id), last_seen);
  }
  next_checkpoint_ = clock_.NowMs() + checkpoint_ms_;
}

void StoreBridge::PersistSettings(const std::string& client_id,
                                  std::function<void(Status)> durable) {
  if (!writing_) {  // stored by the node that asked
    if (durable) post_([durable = std::move(durable)] { durable(Status::Ok()); });
    return;
  }
  auto settings = engine_.SettingsOf(client_id);
  storage::UserRecord record;
  record.client_id = client_id;
  if (settings) {
    record.manual = settings->manual == Presence::kOnline
                        ? ""
                        : std::string(engine::PresenceName(settings->manual));
    record.text = settings->text;
  }
  // lastSeen goes in the same commit (it may have frozen: appear offline), so a status on disk
  // never lacks the lastSeen of its moment.
  if (auto last_seen = engine_.GetStatus(client_id).last_seen) record.last_seen = *last_seen;
  store_.PutUserStatus(std::move(record), OnThisThread<Status>(std::move(durable)));
}

void StoreBridge::StatusesOf(const std::vector<std::string>& ids,
                             std::function<void(Result<std::string>)> done) {
  // Users the engine knows are answered from memory now; the others from the store.
  auto parts = std::make_shared<std::vector<std::string>>(ids.size());
  std::vector<std::string> unknown;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (engine_.KnowsUser(ids[i])) {
      AppendStatus((*parts)[i], engine_.GetStatus(ids[i]));
    } else {
      unknown.push_back(ids[i]);
    }
  }
  std::function<void(Result<std::vector<storage::UserRecord>>)> finish =
      [parts, ids, done = std::move(done)](Result<std::vector<storage::UserRecord>> stored) {
        if (!stored.ok()) return done(stored.error());
        std::string out = "[";
        for (size_t i = 0; i < ids.size(); ++i) {
          if (i) out += ',';
          if ((*parts)[i].empty()) {
            engine::StatusView v;
            v.client_id = ids[i];
            for (const auto& r : *stored) {
              if (r.client_id != ids[i]) continue;
              if (r.text) v.text = *r.text;
              if (r.last_seen) v.last_seen = r.last_seen;
            }
            AppendStatus(out, v);
          } else {
            out += (*parts)[i];
          }
        }
        out += ']';
        done(std::move(out));
      };
  if (unknown.empty()) return finish(std::vector<storage::UserRecord>());
  store_.GetUsers(std::move(unknown),
                  OnThisThread<Result<std::vector<storage::UserRecord>>>(std::move(finish)));
}

void StoreBridge::VisibleActivities(
    std::string client_id, size_t limit, std::optional<TimeMs> since,
    std::optional<std::vector<std::string>> patterns,
    std::function<void(Result<std::vector<storage::StoredActivity>>)> done) {
  // Records of channels outside the patterns are left out, so ask for as many as may be returned.
  const size_t asked = patterns ? std::max<size_t>(limit, 1000) : limit;
  std::function<void(Result<std::vector<storage::StoredActivity>>)> filter =
      [limit, patterns = std::move(patterns),
       done = std::move(done)](Result<std::vector<storage::StoredActivity>> list) {
        if (list.ok() && patterns) {
          std::erase_if(*list, [&](const storage::StoredActivity& a) {
            return !a.channel.empty() && !AnyPatternMatches(*patterns, a.channel);
          });
        }
        if (list.ok() && list->size() > limit) list->resize(limit);
        done(std::move(list));
      };
  store_.QueryActivities(
      std::move(client_id), asked, since,
      OnThisThread<Result<std::vector<storage::StoredActivity>>>(std::move(filter)));
}

void StoreBridge::ActivitiesFor(
    std::string_view viewer, std::optional<std::vector<std::string>> patterns,
    std::string client_id, size_t limit, std::optional<TimeMs> since,
    std::function<void(Result<std::vector<storage::StoredActivity>>)> done) {
  if (client_id == viewer) {
    return VisibleActivities(std::move(client_id), limit, since, std::move(patterns),
                             std::move(done));
  }
  // Another user's activity would tell when they were around: hidden while they appear offline,
  // as their devices are.
  if (engine_.KnowsUser(client_id)) {
    const auto settings = engine_.SettingsOf(client_id);
    if (settings && settings->manual == Presence::kOffline) {
      return done(std::vector<storage::StoredActivity>());
    }
    return VisibleActivities(std::move(client_id), limit, since, std::move(patterns),
                             std::move(done));
  }
  // Not in memory: the store knows whether they chose to appear offline.
  std::function<void(Result<std::vector<storage::UserRecord>>)> then =
      [this, client_id, limit, since, patterns = std::move(patterns),
       done = std::move(done)](Result<std::vector<storage::UserRecord>> users) {
        if (!users.ok()) return done(users.error());
        for (const auto& u : *users) {
          if (u.client_id == client_id && u.manual == "offline") {
            return done(std::vector<storage::StoredActivity>());
          }
        }
        VisibleActivities(client_id, limit, since, patterns, done);
      };
  store_.GetUsers({client_id},
                  OnThisThread<Result<std::vector<storage::UserRecord>>>(std::move(then)));
}

void StoreBridge::QueryHistory(storage::HistoryQuery query,
                               std::function<void(Result<storage::HistoryPage>)> done) {
  store_.QueryHistory(std::move(query),
                      OnThisThread<Result<storage::HistoryPage>>(std::move(done)));
}

}  // namespace presenced::protocol
