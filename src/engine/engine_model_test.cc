// Randomized model test: random operation sequences run against the Engine and against a
// deliberately simple reference model (plain maps, and a full scan for every deadline), compared
// after every step: members of every channel, the events each step emitted, occupancy and status.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

namespace presenced::engine {
namespace {

struct ModelMember {
  std::string data;
  TimeMs timestamp;
  TimeMs expires_at;  // kNoExpiry = none
};

struct ModelConnection {
  std::string client;
  std::string connection_id;
  std::string key;
  ConnectionHandle handle;
  TimeMs remain;
  bool in_grace = false;
  TimeMs grace_end = 0;
  std::map<std::string, ModelMember> members;  // by channel
};

// What the model expects of one event; ordering within a step is checked separately.
struct Expected {
  std::string channel;
  Action action;
  LeaveReason reason;  // kNone on a leave = either expired or timeout (equal deadlines)
  std::string connection_id;
  std::string data;
  TimeMs timestamp;
  auto Key() const { return std::tie(channel, connection_id, action, timestamp, data); }
};

class Model {
 public:
  std::map<int, ModelConnection> connections;
  std::vector<Expected> expected;

  // Runs every deadline <= now, in time order, as the engine does.
  void RunDue(TimeMs now) {
    while (true) {
      // Earliest pending deadline: a TTL or a grace end.
      TimeMs best = now + 1;
      for (auto& [id, c] : connections) {
        if (c.in_grace) best = std::min(best, c.grace_end);
        for (auto& [ch, m] : c.members) {
          if (m.expires_at != kNoExpiry) best = std::min(best, m.expires_at);
        }
      }
      if (best > now) return;
      for (auto it = connections.begin(); it != connections.end();) {
        ModelConnection& c = it->second;
        for (auto m = c.members.begin(); m != c.members.end();) {
          bool ttl = m->second.expires_at == best;
          bool grace = c.in_grace && c.grace_end == best;
          if (ttl && !grace) {
            expected.push_back({m->first, Action::kLeave, LeaveReason::kExpired, c.connection_id,
                                m->second.data, best});
            m = c.members.erase(m);
          } else {
            ++m;
          }
        }
        if (c.in_grace && c.grace_end == best) {
          for (auto& [ch, m] : c.members) {
            LeaveReason r = m.expires_at == best ? LeaveReason::kNone : LeaveReason::kTimeout;
            expected.push_back({ch, Action::kLeave, r, c.connection_id, m.data, best});
          }
          it = connections.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  void LeaveAll(ModelConnection& c, LeaveReason reason, TimeMs now) {
    for (auto& [ch, m] : c.members) {
      expected.push_back({ch, Action::kLeave, reason, c.connection_id, m.data, now});
    }
    c.members.clear();
  }

  std::set<std::string> Channels() const {
    std::set<std::string> out;
    for (auto& [id, c] : connections) {
      for (auto& [ch, m] : c.members) out.insert(ch);
    }
    return out;
  }
};

class ModelTest : public EngineTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  static EngineConfig Config() {
    EngineConfig c;
    c.away_after_ms = 1000000000;  // status here is about connections, not idleness
    c.offline_after_ms = 1000000000;
    c.event_ring_capacity = 8;
    return c;
  }
  ModelTest() : EngineTest(Config()) {}
};

TEST_P(ModelTest, EngineMatchesTheReferenceModel) {
  std::mt19937 rng(GetParam());
  Model model;
  const std::vector<std::string> clients{"ann", "ben", "cat"};
  const std::vector<std::string> channels{"x", "y", "z"};
  std::map<std::string, uint64_t> last_serial;
  std::set<std::string> live_channels;
  int next_id = 0;
  auto pick = [&](auto& v) -> auto& { return v[rng() % v.size()]; };
  auto random_connection = [&]() -> ModelConnection* {
    if (model.connections.empty()) return nullptr;
    auto it = std::next(model.connections.begin(), rng() % model.connections.size());
    return &it->second;
  };

  for (int step = 0; step < 3000; ++step) {
    sink_.Clear();
    model.expected.clear();
    const int op = rng() % 100;
    std::string what;
    if (op < 10 && model.connections.size() < 6) {
      what = "attach";
      clock_.Advance(0);
      model.RunDue(clock_.NowMs());
      const TimeMs remain = std::vector<TimeMs>{0, 100, 400}[rng() % 3];
      const std::string& client = pick(clients);
      auto r = engine_.Attach(client, "dev", remain);
      ASSERT_TRUE(r.ok());
      model.connections[next_id++] = ModelConnection{client,
                                                     std::string(r->connection_id),
                                                     std::string(r->connection_key),
                                                     r->handle,
                                                     remain,
                                                     false,
                                                     0,
                                                     {}};
    } else if (op < 40) {
      what = "enter";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr || c->in_grace) continue;
      const std::string& ch = pick(channels);
      std::optional<JsonText> data;
      if (rng() % 4) data = J(std::to_string(rng() % 100));
      std::optional<TimeMs> ttl;
      if (rng() % 2) ttl = 50 + static_cast<TimeMs>(rng() % 300);
      const TimeMs now = clock_.NowMs();
      auto r = engine_.Enter(c->handle, ch, data, ttl);
      ASSERT_TRUE(r.ok());
      auto it = c->members.find(ch);
      const TimeMs exp = ttl ? now + *ttl : kNoExpiry;
      if (it == c->members.end()) {
        c->members[ch] = {data ? std::string(data->text()) : "null", now, exp};
        model.expected.push_back(
            {ch, Action::kEnter, LeaveReason::kNone, c->connection_id, c->members[ch].data, now});
      } else {
        if (data) it->second.data = std::string(data->text());
        it->second.timestamp = now;
        it->second.expires_at = exp;
        model.expected.push_back(
            {ch, Action::kUpdate, LeaveReason::kNone, c->connection_id, it->second.data, now});
      }
    } else if (op < 55) {
      what = "update";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr || c->in_grace) continue;
      const std::string& ch = pick(channels);
      JsonText data = J(std::to_string(rng() % 100));
      std::optional<TimeMs> ttl;
      if (rng() % 3 == 0) ttl = 50 + static_cast<TimeMs>(rng() % 300);
      const TimeMs now = clock_.NowMs();
      auto r = engine_.Update(c->handle, ch, data, false, ttl);
      auto it = c->members.find(ch);
      if (it == c->members.end()) {
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.error().code, ErrorCode::kNotPresent);
      } else {
        ASSERT_TRUE(r.ok());
        it->second.data = std::string(data.text());
        it->second.timestamp = now;
        if (ttl) it->second.expires_at = now + *ttl;
        model.expected.push_back(
            {ch, Action::kUpdate, LeaveReason::kNone, c->connection_id, it->second.data, now});
      }
    } else if (op < 65) {
      what = "leave";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr || c->in_grace) continue;
      const std::string& ch = pick(channels);
      std::optional<JsonText> data;
      if (rng() % 2) data = J(R"("bye")");
      Status s = engine_.Leave(c->handle, ch, data);
      auto it = c->members.find(ch);
      if (it == c->members.end()) {
        ASSERT_FALSE(s.ok());
        ASSERT_EQ(s.error().code, ErrorCode::kNotPresent);
      } else {
        ASSERT_TRUE(s.ok());
        model.expected.push_back({ch, Action::kLeave, LeaveReason::kLeft, c->connection_id,
                                  data ? std::string(data->text()) : it->second.data,
                                  clock_.NowMs()});
        c->members.erase(it);
      }
    } else if (op < 70) {
      what = "close";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr) continue;
      ASSERT_TRUE(engine_.Close(c->handle).ok());
      model.LeaveAll(*c, LeaveReason::kDisconnected, clock_.NowMs());
      for (auto it = model.connections.begin(); it != model.connections.end(); ++it) {
        if (&it->second == c) {
          model.connections.erase(it);
          break;
        }
      }
    } else if (op < 77) {
      what = "drop";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr || c->in_grace) continue;
      ASSERT_TRUE(engine_.Drop(c->handle).ok());
      if (c->remain == 0) {
        model.LeaveAll(*c, LeaveReason::kTimeout, clock_.NowMs());
        for (auto it = model.connections.begin(); it != model.connections.end(); ++it) {
          if (&it->second == c) {
            model.connections.erase(it);
            break;
          }
        }
      } else {
        c->in_grace = true;
        c->grace_end = clock_.NowMs() + c->remain;
      }
    } else if (op < 83) {
      what = "resume";
      model.RunDue(clock_.NowMs());
      ModelConnection* c = random_connection();
      if (c == nullptr) continue;
      auto r = engine_.Resume(c->key, c->client, c->remain);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->was_live, !c->in_grace);
      EXPECT_EQ(r->connection.handle, c->handle);
      c->key = std::string(r->connection.connection_key);
      c->in_grace = false;
    } else {
      what = "advance";
      clock_.Advance(rng() % 120);
      model.RunDue(clock_.NowMs());
      engine_.Tick();
    }

    // Events: the same set, and per channel gapless serials in time order.
    std::vector<Expected> got;
    for (const RecordedEvent& e : sink_.events) {
      // Within a channel's lifetime serials grow by one; a recreated channel starts higher.
      if (last_serial.count(e.channel)) {
        if (live_channels.count(e.channel)) {
          ASSERT_EQ(e.serial, last_serial[e.channel] + 1) << "step " << step << " " << what;
        } else {
          ASSERT_GT(e.serial, last_serial[e.channel]) << "step " << step << " " << what;
        }
      }
      last_serial[e.channel] = e.serial;
      live_channels.insert(e.channel);
      got.push_back({e.channel, e.action, e.reason, e.connection_id, e.data, e.timestamp});
    }
    auto by_key = [](const Expected& a, const Expected& b) { return a.Key() < b.Key(); };
    std::vector<Expected> want = model.expected;
    std::sort(got.begin(), got.end(), by_key);
    std::sort(want.begin(), want.end(), by_key);
    ASSERT_EQ(got.size(), want.size()) << "step " << step << " " << what;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].Key(), want[i].Key()) << "step " << step << " " << what;
      if (want[i].action == Action::kLeave && want[i].reason == LeaveReason::kNone) {
        ASSERT_TRUE(got[i].reason == LeaveReason::kExpired ||
                    got[i].reason == LeaveReason::kTimeout);
      } else {
        ASSERT_EQ(got[i].reason, want[i].reason) << "step " << step << " " << what;
      }
    }
    std::map<std::string, std::vector<const RecordedEvent*>> per_channel;
    for (const RecordedEvent& e : sink_.events) per_channel[e.channel].push_back(&e);
    for (auto& [ch, evs] : per_channel) {
      for (size_t i = 1; i < evs.size(); ++i) {
        ASSERT_EQ(evs[i]->serial, evs[i - 1]->serial + 1);
        ASSERT_LE(evs[i - 1]->timestamp, evs[i]->timestamp);
      }
    }

    // State: members of every channel, occupancy, user status, no leaked channels.
    for (const std::string& ch : channels) {
      std::set<std::tuple<std::string, std::string, std::string, TimeMs>> engine_members,
          model_members;
      for (const MemberView& m : engine_.Get(ch).members) {
        engine_members.insert({std::string(m.client_id), std::string(m.connection_id),
                               std::string(m.data.text()), m.expires_at});
      }
      std::set<std::string> clients_here;
      for (auto& [id, c] : model.connections) {
        auto it = c.members.find(ch);
        if (it == c.members.end()) continue;
        model_members.insert({c.client, c.connection_id, it->second.data, it->second.expires_at});
        clients_here.insert(c.client);
      }
      ASSERT_EQ(engine_members, model_members) << "step " << step << " " << what << " " << ch;
      Occupancy o = engine_.GetOccupancy(ch);
      ASSERT_EQ(o.members, model_members.size());
      ASSERT_EQ(o.clients, clients_here.size());
    }
    ASSERT_EQ(engine_.channel_count(), model.Channels().size());
    live_channels = model.Channels();
    ASSERT_EQ(engine_.connection_count(), model.connections.size());
    for (const std::string& client : clients) {
      bool connected = false;
      for (auto& [id, c] : model.connections) connected |= c.client == client;
      ASSERT_EQ(engine_.GetStatus(client).status,
                connected ? Presence::kOnline : Presence::kOffline);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::Range(1u, 21u));

}  // namespace
}  // namespace presenced::engine
