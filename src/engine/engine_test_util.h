// Test helpers for the engine: a sink that records everything it is told, and a fixture with a
// manual clock.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"

namespace presenced::engine {

struct RecordedEvent {
  std::string channel;
  uint64_t serial;
  Action action;
  LeaveReason reason;
  std::string client_id;
  std::string connection_id;
  std::string data;
  TimeMs timestamp;
  TimeMs expires_at;
  std::vector<ConnectionHandle> recipients;
};

struct RecordedStatus {
  std::string client_id;
  Presence status;
  Presence previous;
  std::optional<std::string> text;
  std::optional<TimeMs> last_seen;
  std::optional<std::string> active_device;
  std::vector<ConnectionHandle> recipients;
  // The device whose own status was set (pushes to the user's own connections only).
  std::optional<std::string> device_connection_id;
  std::optional<Presence> device_status;
  bool device_manual = false;
};

struct RecordedConnectivity {
  std::string client_id;
  bool online;
  TimeMs at;
};

inline RecordedEvent Record(const PresenceEvent& e, std::span<const ConnectionHandle> to = {}) {
  return RecordedEvent{std::string(e.channel),
                       e.serial,
                       e.action,
                       e.reason,
                       std::string(e.member.client_id),
                       std::string(e.member.connection_id),
                       std::string(e.member.data.text()),
                       e.member.timestamp,
                       e.member.expires_at,
                       {to.begin(), to.end()}};
}

class RecordingSink : public EventSink {
 public:
  void OnPresence(const PresenceEvent& e, std::span<const ConnectionHandle> to) override {
    events.push_back(Record(e, to));
  }
  void OnStatus(const StatusChange& c, std::span<const ConnectionHandle> to) override {
    RecordedStatus s;
    s.client_id = std::string(c.status.client_id);
    s.status = c.status.status;
    s.previous = c.previous;
    s.last_seen = c.status.last_seen;
    s.recipients.assign(to.begin(), to.end());
    if (c.status.text) s.text = std::string(*c.status.text);
    if (c.status.active_device) s.active_device = std::string(*c.status.active_device);
    if (c.device) {
      s.device_connection_id = std::string(c.device->connection_id);
      s.device_status = c.device->status;
      s.device_manual = c.device->manual;
    }
    statuses.push_back(std::move(s));
  }
  void OnUserConnectivity(std::string_view id, bool online, TimeMs at) override {
    connectivity.push_back({std::string(id), online, at});
  }
  void OnActivity(std::string_view id, const ActivityRecord& r) override {
    activities.emplace_back(std::string(id), r);
  }
  void OnConnectionExpired(ConnectionHandle h) override { expired.push_back(h); }

  void Clear() {
    events.clear();
    statuses.clear();
    connectivity.clear();
    activities.clear();
    expired.clear();
  }

  std::vector<RecordedEvent> events;
  std::vector<RecordedStatus> statuses;
  std::vector<RecordedConnectivity> connectivity;
  std::vector<std::pair<std::string, ActivityRecord>> activities;
  std::vector<ConnectionHandle> expired;
};

inline JsonText J(std::string_view s) { return JsonText::FromSerialized(s); }

constexpr TimeMs kStart = 1700000000000;

class EngineTest : public ::testing::Test {
 protected:
  explicit EngineTest(EngineConfig config = DefaultConfig())
      : engine_(config, clock_, random_, sink_) {}

  static EngineConfig DefaultConfig() {
    EngineConfig c;
    c.away_after_ms = 1000;
    c.offline_after_ms = 5000;
    return c;
  }

  // Attaches and returns the handle; fails the test on error.
  ConnectionHandle Connect(std::string_view client, std::string_view device = "web",
                           TimeMs remain = 2000) {
    auto r = engine_.Attach(client, device, remain);
    EXPECT_TRUE(r.ok());
    last_key_ = std::string(r->connection_key);
    last_connection_id_ = std::string(r->connection_id);
    return r->handle;
  }

  void Advance(TimeMs ms) {
    clock_.Advance(ms);
    engine_.Tick();
  }

  std::vector<RecordedEvent> EventsOf(std::string_view channel) const {
    std::vector<RecordedEvent> out;
    for (const auto& e : sink_.events) {
      if (e.channel == channel) out.push_back(e);
    }
    return out;
  }

  ManualClock clock_{kStart};
  SeededRandom random_{1};
  RecordingSink sink_;
  Engine engine_;
  std::string last_key_;
  std::string last_connection_id_;
};

}  // namespace presenced::engine
