// Replicas: the cluster's plan (docs/operations.md, "Clustering") has every node apply the same
// ordered log of operations to its own Engine, with the log's time as the clock and the log's
// random bytes as the randomness. That holds only if the Engine is a deterministic function of
// its inputs: no order taken from heap addresses, no hidden clock or randomness. This test runs
// one random program of every mutating operation on two engines built apart (their objects live
// at different addresses) and requires everything they tell their sinks, every result and every
// read to be identical, step by step.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"

namespace presenced::engine {
namespace {

constexpr TimeMs kStart = 1700000000000;

// Everything the sink hears, as text.
class TextSink final : public EventSink {
 public:
  void OnPresence(const PresenceEvent& e, std::span<const ConnectionHandle> to) override {
    std::ostringstream o;
    o << "P " << e.channel << ' ' << e.serial << ' ' << static_cast<int>(e.action) << ' '
      << static_cast<int>(e.reason) << ' ' << Member(e.member) << " ->";
    for (auto h : to) o << ' ' << h;
    log.push_back(o.str());
  }
  void OnStatus(const StatusChange& c, std::span<const ConnectionHandle> to) override {
    std::ostringstream o;
    o << "S " << Status(c.status) << " prev=" << static_cast<int>(c.previous);
    if (c.device) {
      o << " dev=" << c.device->connection_id << '/' << static_cast<int>(c.device->status)
        << (c.device->manual ? "m" : "");
    }
    o << " ->";
    for (auto h : to) o << ' ' << h;
    log.push_back(o.str());
  }
  void OnUserConnectivity(std::string_view id, bool online, TimeMs at) override {
    log.push_back("C " + std::string(id) + (online ? " on " : " off ") + std::to_string(at));
  }
  void OnActivity(std::string_view id, const ActivityRecord& r) override {
    log.push_back("A " + std::string(id) + ' ' + r.kind + ' ' + r.channel + ' ' +
                  std::string(r.data.text()) + ' ' + std::to_string(r.timestamp) + ' ' +
                  r.connection_id);
  }
  void OnConnectionExpired(ConnectionHandle h) override { log.push_back("X " + std::to_string(h)); }

  static std::string Member(const MemberView& m) {
    return std::string(m.client_id) + '/' + std::string(m.connection_id) + '/' +
           std::string(m.data.text()) + '/' + std::to_string(m.timestamp) + '/' +
           std::to_string(m.expires_at);
  }
  static std::string Status(const StatusView& s) {
    return std::string(s.client_id) + ':' + std::to_string(static_cast<int>(s.status)) + ':' +
           (s.text ? std::string(*s.text) : "-") + ':' +
           (s.last_seen ? std::to_string(*s.last_seen) : "-") + ':' +
           (s.active_device ? std::string(*s.active_device) : "-");
  }
  std::vector<std::string> log;
};

// Randomness as the cluster gives it: reseeded by every step (a log entry carries its seed).
class StepRandom final : public RandomSource {
 public:
  void Seed(uint64_t seed) { engine_.seed(seed); }
  void Fill(std::span<uint8_t> out) override {
    for (auto& b : out) b = static_cast<uint8_t>(engine_());
  }

 private:
  std::mt19937_64 engine_;
};

struct Replica {
  explicit Replica(const EngineConfig& config)
      : clock(kStart), engine(config, clock, random, sink) {}
  ManualClock clock;
  StepRandom random;
  TextSink sink;
  Engine engine;
};

std::string ErrorText(const Error& e) { return "E" + std::string(ErrorCodeName(e.code)); }

// Runs one random program on two replicas and requires them to agree at every step. With
// `reload_every`, replica b is replaced every that many steps by a new engine loaded from a's
// saved state (a node joining from a snapshot).
void RunProgram(uint32_t seed, int reload_every) {
  EngineConfig config;
  config.away_after_ms = 400;
  config.offline_after_ms = 1500;
  config.limits.max_channels_per_connection = 4;
  auto a = std::make_unique<Replica>(config);
  std::vector<std::unique_ptr<std::string>> spacer;  // moves b's heap objects elsewhere
  for (int i = 0; i < 1000; ++i) spacer.push_back(std::make_unique<std::string>(i % 97, 'x'));
  auto b = std::make_unique<Replica>(config);

  std::mt19937 rng(seed);
  int reloads = 0;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> clients = {"ann", "bob", "cy", "dee", "eve"};
  const std::vector<std::string> channels = {"room:1", "room:2", "room:3", "lobby", "x"};
  std::vector<ConnectionHandle> handles;
  std::vector<std::string> keys;  // resume keys, with their clients
  std::vector<std::string> key_clients;

  for (int step = 0; step < 2000; ++step) {
    if (reload_every > 0 && step > 0 && step % reload_every == 0) {
      const std::string saved = a->engine.SaveState();
      auto joined = std::make_unique<Replica>(config);
      joined->clock.Set(a->clock.NowMs());
      ASSERT_TRUE(joined->engine.LoadState(saved)) << "step " << step;
      ASSERT_EQ(joined->engine.SaveState(), saved) << "step " << step;
      joined->sink.log = b->sink.log;
      b = std::move(joined);
      ++reloads;
    }
    a->random.Seed(step);
    b->random.Seed(step);
    std::vector<std::string> out_a, out_b;
    const int op = static_cast<int>(pick(17));
    const std::string client = clients[pick(clients.size())];
    const std::string channel = channels[pick(channels.size())];
    const ConnectionHandle h = handles.empty() ? 0 : handles[pick(handles.size())];
    const std::string data = std::to_string(pick(1000));
    const bool with_ttl = pick(4) == 0;
    const TimeMs advance = static_cast<TimeMs>(pick(300));
    const bool coin = pick(2) == 0;
    const bool coin2 = pick(2) == 0;
    const size_t k = keys.empty() ? 0 : pick(keys.size());
    const auto status = static_cast<Presence>(pick(4));
    std::optional<std::string> new_key;  // a resume's, taken after both replicas ran it
    for (int r = 0; r < 2; ++r) {
      Replica& x = r == 0 ? *a : *b;
      std::vector<std::string>& out = r == 0 ? out_a : out_b;
      Engine& e = x.engine;
      switch (op) {
        case 0:
        case 1: {
          auto at = e.Attach(client, coin ? "web" : "phone", 200 + advance);
          if (!at.ok()) {
            out.push_back(ErrorText(at.error()));
            break;
          }
          out.push_back(std::to_string(at->handle) + ' ' + std::string(at->connection_id) + ' ' +
                        std::string(at->connection_key));
          if (r == 0) {
            handles.push_back(at->handle);
            keys.emplace_back(at->connection_key);
            key_clients.push_back(client);
          }
          break;
        }
        case 2:
        case 3: {
          auto m = e.Enter(h, channel, JsonText::FromSerialized(data),
                           with_ttl ? std::optional<TimeMs>(100 + advance) : std::nullopt);
          out.push_back(m.ok() ? TextSink::Member(*m) : ErrorText(m.error()));
          break;
        }
        case 4: {
          auto m = e.Update(h, channel, JsonText::FromSerialized(data), false, std::nullopt);
          out.push_back(m.ok() ? TextSink::Member(*m) : ErrorText(m.error()));
          break;
        }
        case 5: {
          Status st = e.Leave(h, channel, std::nullopt);
          out.push_back(st.ok() ? "ok" : ErrorText(st.error()));
          break;
        }
        case 6: {
          auto s = e.Subscribe(h, channel, kAllActions, std::nullopt);
          out.push_back(s.ok() ? std::to_string(s->serial) + '#' + std::to_string(s->members.size())
                               : ErrorText(s.error()));
          break;
        }
        case 7: {
          Status st = coin ? e.Close(h) : e.Drop(h);
          out.push_back(st.ok() ? "ok" : ErrorText(st.error()));
          break;
        }
        case 8: {
          if (keys.empty()) break;
          auto res = e.Resume(keys[k], key_clients[k], 300);
          if (!res.ok()) {
            out.push_back(ErrorText(res.error()));
            break;
          }
          out.push_back(std::to_string(res->connection.handle) + ' ' +
                        std::string(res->connection.connection_key) + ' ' +
                        std::to_string(res->catch_up.size()));
          if (r == 0) new_key = std::string(res->connection.connection_key);
          break;
        }
        case 9: {
          auto s = e.SetStatus(
              h, status,
              coin2 ? std::optional<std::optional<std::string>>(std::optional<std::string>(data))
                    : std::nullopt);
          out.push_back(s.ok() ? TextSink::Status(*s) : ErrorText(s.error()));
          break;
        }
        case 10: {
          const std::vector<std::string> watched = {client};
          auto w = e.Watch(h, watched);
          out.push_back(w.ok() ? std::to_string(w->size()) : ErrorText(w.error()));
          break;
        }
        case 11: {
          Status st = e.RecordActivity(h, "typing", channel, JsonText::FromSerialized(data));
          out.push_back(st.ok() ? "ok" : ErrorText(st.error()));
          break;
        }
        case 12: {
          Status st = e.Touch(h);
          out.push_back(st.ok() ? "ok" : ErrorText(st.error()));
          break;
        }
        case 13: {
          // This device, or (coin) the first other device of the same user.
          std::optional<std::string> target;
          if (coin) {
            for (const auto& d : e.Devices(client, client)) target = std::string(d.connection_id);
          }
          auto d = e.SetDeviceStatus(h, target, status);
          out.push_back(d.ok() ? TextSink::Status(d->status) : ErrorText(d.error()));
          break;
        }
        case 14: {
          auto w = e.WatchAll(h);
          out.push_back(w.ok() ? std::to_string(w->size()) : ErrorText(w.error()));
          break;
        }
        default:
          x.clock.Advance(advance);
          e.Tick();
      }
      // Every read agrees too.
      for (const auto& ch : channels) {
        std::string members = ch + ":";
        for (const auto& m : e.Get(ch).members) members += ' ' + TextSink::Member(m);
        out.push_back(members + " @" + std::to_string(e.Get(ch).serial));
      }
      std::string who = "who:";
      for (const auto& s : e.Who(std::nullopt)) who += ' ' + TextSink::Status(s);
      out.push_back(who);
      for (const auto& c : clients) {
        std::string devices = c + " devices:";
        for (const auto& d : e.Devices(c, c)) {
          devices += ' ' + std::string(d.connection_id) + '/' + std::string(d.device) + '/' +
                     std::to_string(static_cast<int>(d.status)) + '/' +
                     std::to_string(d.last_seen) + (d.active ? "*" : "") + (d.manual ? "m" : "");
        }
        out.push_back(devices);
      }
    }
    if (new_key) keys[k] = *new_key;
    ASSERT_EQ(out_a, out_b) << "step " << step << " op " << op;
    ASSERT_EQ(a->sink.log, b->sink.log) << "step " << step << " op " << op;
  }
  EXPECT_GT(a->sink.log.size(), 500u);  // the program did exercise the engine
  if (reload_every > 0) {
    EXPECT_EQ(reloads, (2000 - 1) / reload_every);
  }
}

class ReplicaTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ReplicaTest, TwoEnginesFedTheSameOperationsStayIdentical) { RunProgram(GetParam(), 0); }

// A replica loaded from a snapshot then fed the same operations acts as the saved one: handles,
// connection ids, timers, serials, fan-out order, events and reads all agree (fails when any
// field is not saved or the timers are not restored exactly).
TEST_P(ReplicaTest, AnEngineLoadedFromASavedStateActsAsTheSavedOne) { RunProgram(GetParam(), 97); }

INSTANTIATE_TEST_SUITE_P(Seeds, ReplicaTest, ::testing::Values(1u, 2u, 3u, 4u));

TEST(EngineStateTest, WhatIsNotAStateIsRefusedAndLeavesTheEngineEmpty) {
  EngineConfig config;
  Replica x(config);
  auto at = x.engine.Attach("ann", "web", 1000);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(x.engine.Enter(at->handle, "room", JsonText::FromSerialized("1"), 5000).ok());
  ASSERT_TRUE(x.engine.Subscribe(at->handle, "room", kAllActions, std::nullopt).ok());
  const std::string saved = x.engine.SaveState();
  // Every truncation, and every single-byte change of the counts and handles, is refused or
  // loads a consistent engine; none crashes.
  for (size_t n = 0; n < saved.size(); ++n) {
    Replica y(config);
    EXPECT_FALSE(y.engine.LoadState(std::string_view(saved).substr(0, n))) << n;
    EXPECT_EQ(y.engine.connection_count(), 0u);
    EXPECT_EQ(y.engine.channel_count(), 0u);
  }
  for (size_t i = 0; i < saved.size(); ++i) {
    std::string bad = saved;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    Replica y(config);
    if (!y.engine.LoadState(bad)) {
      EXPECT_EQ(y.engine.connection_count(), 0u);
      continue;
    }
    (void)y.engine.Get("room");
    y.clock.Advance(10000);
    y.engine.Tick();  // timers fire on what was loaded
  }
  Replica z(config);
  ASSERT_TRUE(z.engine.LoadState(saved));
  EXPECT_EQ(z.engine.Get("room").members.size(), 1u);
  EXPECT_TRUE(z.engine.IsSubscribed(at->handle, "room"));
}

}  // namespace
}  // namespace presenced::engine
