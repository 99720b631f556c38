// SessionRegistry with a manual clock and a recording sink: every transition and stop reason,
// assignment by free capacity, waiting, hand-over, and state snapshots.
#include "engine/session_registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace presenced::engine {
namespace {

struct Recorder final : SessionSink {
  std::vector<std::string> log;  // one line per sink call
  ConnectionHandle next_agent = 1000;

  void OnAssign(ConnectionHandle worker, const SessionView& s, const JsonText& request) override {
    log.push_back("assign " + std::to_string(worker) + " " + std::string(s.conversation_id) + " " +
                  std::string(request.is_null() ? "null" : request.text()));
  }
  void OnWorkerStop(ConnectionHandle worker, std::string_view conv, StopReason r) override {
    log.push_back("workerstop " + std::to_string(worker) + " " + std::string(conv) + " " +
                  std::string(NameOf(r)));
  }
  void OnSessionEvent(SessionAction a, const SessionView& s, std::optional<StopReason> r,
                      std::string_view error, std::span<const ConnectionHandle> subs) override {
    std::string line = "event " + std::string(NameOf(a)) + " " + std::string(s.conversation_id) +
                       " " + std::string(NameOf(s.state)) +
                       " w=" + std::string(s.worker_connection_id);
    if (r) line += " reason=" + std::string(NameOf(*r));
    if (!error.empty()) line += " error=" + std::string(error);
    line += " subs=" + std::to_string(subs.size());
    log.push_back(line);
  }
  ConnectionHandle OnAgentEnter(const SessionView& s) override {
    log.push_back("agententer " + std::string(s.agent_id));
    return next_agent++;
  }
  void OnAgentLeave(const SessionView& s, ConnectionHandle agent) override {
    log.push_back("agentleave " + std::string(s.agent_id) + " " + std::to_string(agent));
  }
  void OnAgentActive(ConnectionHandle agent) override {
    log.push_back("agentactive " + std::to_string(agent));
  }
  std::vector<std::string> Take() { return std::exchange(log, {}); }
};

class SessionRegistryTest : public ::testing::Test {
 protected:
  SessionRegistryTest() : registry_(Settings(), clock_, sink_) {}
  static SessionSettings Settings() {
    SessionSettings s;
    s.inactivity_timeout_ms = 10000;
    s.abandon_after_ms = 5000;
    s.start_timeout_ms = 3000;
    return s;
  }
  SessionRegistry::StartOptions Opts(size_t others = 1, std::string request = "") {
    SessionRegistry::StartOptions o;
    o.others_present = others;
    if (!request.empty()) o.request = JsonText::FromSerialized(request);
    return o;
  }
  void Advance(TimeMs ms) {
    clock_.Advance(ms);
    registry_.Tick();
  }

  ManualClock clock_{1'000'000};
  Recorder sink_;
  SessionRegistry registry_;
};

TEST_F(SessionRegistryTest, AgentIdFollowsTheTemplate) {
  EXPECT_EQ(registry_.AgentIdFor("c1"), "agent-c1");
  SessionSettings s;
  s.agent_id_template = "bot:{conversationId}:{conversationId}!";
  SessionRegistry other(s, clock_, sink_);
  EXPECT_EQ(other.AgentIdFor("x"), "bot:x:x!");
}

TEST_F(SessionRegistryTest, StartIsIdempotentAndCountsAsActivity) {
  auto a = registry_.Start("c1", Opts(1, R"({"q":1})"));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->created);
  EXPECT_EQ(a->session.state, SessionState::kStarting);
  EXPECT_EQ(a->session.agent_id, "agent-c1");
  EXPECT_EQ(a->session.started_at, 1'000'000);
  EXPECT_TRUE(a->session.worker_connection_id.empty());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"event started c1 starting w= subs=0"}));
  clock_.Advance(500);
  auto b = registry_.Start("c1", Opts(1, R"({"q":2})"));
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->session.started_at, 1'000'000);
  EXPECT_EQ(b->session.last_activity_at, 1'000'500);
  EXPECT_TRUE(sink_.Take().empty());
  EXPECT_EQ(registry_.size(), 1u);
}

TEST_F(SessionRegistryTest, AssignsToTheWorkerWithMostFreeCapacity) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 2).ok());
  ASSERT_TRUE(registry_.Serve(2, "w2", 3).ok());
  ASSERT_TRUE(registry_.Start("a", Opts(1, R"("hi")")).ok());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"event started a starting w=w2 subs=0",
                                                    "assign 2 a \"hi\""}));
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());  // w1 2 free, w2 2 free: w1 served first
  EXPECT_EQ(sink_.Take().back(), "assign 1 b null");
  ASSERT_TRUE(registry_.Start("c", Opts()).ok());  // w1 1, w2 2
  EXPECT_EQ(sink_.Take().back(), "assign 2 c null");
  EXPECT_EQ(registry_.Get("c")->worker_connection_id, "w2");
}

TEST_F(SessionRegistryTest, ReadyRunsTheSessionAndEntersTheAgent) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Subscribe(7, "c1").ok());
  sink_.Take();
  EXPECT_EQ(registry_.Ready(2, "c1").error().code, ErrorCode::kNotPresent);  // not its worker
  EXPECT_EQ(registry_.Ready(1, "zz").error().code, ErrorCode::kNotPresent);
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"agententer agent-c1",
                                                    "event running c1 running w=w1 subs=1"}));
  EXPECT_EQ(registry_.Get("c1")->state, SessionState::kRunning);
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());  // again: nothing new
  EXPECT_TRUE(sink_.Take().empty());
}

TEST_F(SessionRegistryTest, StopIsANoOpWithoutASessionAndTellsTheWorker) {
  EXPECT_FALSE(registry_.Stop("none"));
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  sink_.Take();
  EXPECT_TRUE(registry_.Stop("c1"));
  EXPECT_EQ(sink_.Take(),
            (std::vector<std::string>{"workerstop 1 c1 stopped", "agentleave agent-c1 1000",
                                      "event stopped c1 running w=w1 reason=stopped subs=0"}));
  EXPECT_FALSE(registry_.Get("c1").has_value());
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_F(SessionRegistryTest, IdleAfterTheInactivityTimeoutCountedFromTheLastActivity) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  sink_.Take();
  Advance(6000);
  registry_.Activity("c1");  // at +6000
  Advance(9999);
  EXPECT_TRUE(registry_.Has("c1"));
  ASSERT_TRUE(registry_.Touch("c1").ok());  // at +15999
  EXPECT_EQ(registry_.Touch("none").error().code, ErrorCode::kNotPresent);
  EXPECT_EQ(*registry_.NextDeadline(), 1'000'000 + 15999 + 10000);
  Advance(10000);
  EXPECT_FALSE(registry_.Has("c1"));
  const auto log = sink_.Take();
  ASSERT_EQ(log.size(), 5u);
  // Each activity of the running session is the agent's own activity too.
  EXPECT_EQ(log[0], "agentactive 1000");
  EXPECT_EQ(log[1], "agentactive 1000");
  EXPECT_EQ(log.back(), "event stopped c1 running w=w1 reason=idle subs=0");
}

TEST_F(SessionRegistryTest, AbandonedWhenOnlyTheAgentIsLeft) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts(2)).ok());
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  sink_.Take();
  registry_.MembersChanged("c1", -1);
  Advance(6000);
  EXPECT_TRUE(registry_.Has("c1"));         // one member still there
  ASSERT_TRUE(registry_.Touch("c1").ok());  // idle only at +16000
  registry_.MembersChanged("c1", -1);
  Advance(4999);
  registry_.MembersChanged("c1", +1);  // back just in time
  registry_.MembersChanged("c1", -1);  // and gone again: the time counts from here
  Advance(4999);
  EXPECT_TRUE(registry_.Has("c1"));
  Advance(1);
  EXPECT_FALSE(registry_.Has("c1"));
  EXPECT_EQ(sink_.Take().back(), "event stopped c1 running w=w1 reason=abandoned subs=0");
}

TEST_F(SessionRegistryTest, AnEmptyConversationAtStartIsAbandonedUnlessSomeoneEnters) {
  ASSERT_TRUE(registry_.Start("c1", Opts(0)).ok());
  ASSERT_TRUE(registry_.Start("c2", Opts(0)).ok());
  registry_.MembersChanged("c2", +1);
  SessionRegistry::StartOptions custom = Opts(0);
  custom.abandon_after_ms = 100;
  ASSERT_TRUE(registry_.Start("c3", std::move(custom)).ok());
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  for (const char* c : {"c1", "c2", "c3"}) ASSERT_TRUE(registry_.Ready(1, c).ok());
  sink_.Take();
  Advance(100);
  EXPECT_FALSE(registry_.Has("c3"));
  Advance(4900);
  EXPECT_FALSE(registry_.Has("c1"));
  EXPECT_TRUE(registry_.Has("c2"));
}

TEST_F(SessionRegistryTest, FailedByTheWorkerOrWhenNotRunningInTime) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Start("c2", Opts()).ok());
  sink_.Take();
  EXPECT_EQ(registry_.Fail(2, "c1", "x").error().code, ErrorCode::kNotPresent);
  ASSERT_TRUE(registry_.Fail(1, "c1", "model unavailable").ok());
  EXPECT_EQ(sink_.Take(),
            (std::vector<std::string>{
                "workerstop 1 c1 failed",
                "event stopped c1 starting w=w1 reason=failed error=model unavailable subs=0"}));
  Advance(2999);
  EXPECT_TRUE(registry_.Has("c2"));
  Advance(1);
  EXPECT_FALSE(registry_.Has("c2"));
  EXPECT_EQ(sink_.Take(),
            (std::vector<std::string>{"workerstop 1 c2 failed",
                                      "event stopped c2 starting w=w1 reason=failed "
                                      "error=no worker got the agent running in time subs=0"}));
}

TEST_F(SessionRegistryTest, WaitingSessionsGoToTheFirstWorkerWithRoomInOrder) {
  ASSERT_TRUE(registry_.Start("a", Opts()).ok());
  Advance(1000);
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());
  ASSERT_TRUE(registry_.Start("c", Opts()).ok());
  sink_.Take();
  ASSERT_TRUE(registry_.Serve(1, "w1", 2).ok());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"assign 1 a null", "assign 1 b null"}));
  ASSERT_TRUE(registry_.Ready(1, "a").ok());
  // a's wait began 1 s before b's, but its assignment restarted the 3 s: it did not fail at +3000.
  Advance(2500);
  EXPECT_TRUE(registry_.Has("c"));  // c still waits: 3 s from its start
  sink_.Take();
  Advance(500);
  // b (assigned at +1000, never ready) failed first (equal deadlines: by conversation id), which
  // made room for c just before its own wait ran out.
  EXPECT_FALSE(registry_.Has("b"));
  EXPECT_TRUE(registry_.Has("a"));
  EXPECT_EQ(registry_.Get("c")->worker_connection_id, "w1");
  EXPECT_EQ(sink_.Take().back(), "assign 1 c null");
}

TEST_F(SessionRegistryTest, AFullWorkerGetsNoneAndCapacityCanGrow) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 1).ok());
  ASSERT_TRUE(registry_.Start("a", Opts()).ok());
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());
  EXPECT_TRUE(registry_.Get("b")->worker_connection_id.empty());
  sink_.Take();
  ASSERT_TRUE(registry_.Serve(1, "w1", 2).ok());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"assign 1 b null"}));
  ASSERT_TRUE(registry_.Serve(2, "w2", 0).ok());  // serves, takes nothing
  ASSERT_TRUE(registry_.Start("c", Opts()).ok());
  EXPECT_TRUE(registry_.Get("c")->worker_connection_id.empty());
}

TEST_F(SessionRegistryTest, AnEndedWorkersSessionsAreHandedOver) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  ASSERT_TRUE(registry_.Serve(2, "w2", 5).ok());
  ASSERT_TRUE(registry_.Subscribe(9, "c1").ok());
  sink_.Take();
  registry_.ConnectionEnded(1);
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"event reassigned c1 starting w=w2 subs=1",
                                                    "assign 2 c1 null"}));
  ASSERT_TRUE(registry_.Ready(2, "c1").ok());
  // The agent stayed present: no second enter.
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"event running c1 running w=w2 subs=1"}));
  ASSERT_TRUE(registry_.Stop("c1"));
  EXPECT_EQ(sink_.Take()[1], "agentleave agent-c1 1000");
}

TEST_F(SessionRegistryTest, WorkerLostWhenNoWorkerIsLeft) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(1, "c1").ok());
  sink_.Take();
  registry_.ConnectionEnded(1);
  EXPECT_EQ(sink_.Take(),
            (std::vector<std::string>{"agentleave agent-c1 1000",
                                      "event stopped c1 running w= reason=worker_lost subs=0"}));
  EXPECT_EQ(registry_.worker_count(), 0u);
}

TEST_F(SessionRegistryTest, HandedOverToAFullClusterWaitsThenIsReassigned) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 1).ok());
  ASSERT_TRUE(registry_.Serve(2, "w2", 1).ok());
  ASSERT_TRUE(registry_.Start("a", Opts()).ok());
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(1, "a").ok());
  ASSERT_TRUE(registry_.Ready(2, "b").ok());
  sink_.Take();
  registry_.ConnectionEnded(1);  // w2 is full: a waits
  EXPECT_TRUE(sink_.Take().empty());
  EXPECT_EQ(registry_.Get("a")->state, SessionState::kStarting);
  ASSERT_TRUE(registry_.Stop("b"));
  const auto log = sink_.Take();
  EXPECT_EQ(log[log.size() - 2], "event reassigned a starting w=w2 subs=0");
  EXPECT_EQ(log.back(), "assign 2 a null");
}

TEST_F(SessionRegistryTest, ADroppedWorkerTakesNothingNewAndGetsItsAssignmentsAgainOnResume) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 5).ok());
  ASSERT_TRUE(registry_.Start("a", Opts()).ok());
  registry_.ConnectionDropped(1);
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());
  EXPECT_TRUE(registry_.Get("b")->worker_connection_id.empty());
  sink_.Take();
  registry_.ConnectionResumed(1);
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"assign 1 a null", "assign 1 b null"}));
}

TEST_F(SessionRegistryTest, SubscriptionsOutliveASessionAndEndWithTheConnection) {
  ASSERT_TRUE(registry_.Subscribe(5, "c1").ok());
  ASSERT_TRUE(registry_.Subscribe(5, "c1").ok());  // once
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  EXPECT_EQ(sink_.Take(), (std::vector<std::string>{"event started c1 starting w= subs=1"}));
  ASSERT_TRUE(registry_.Stop("c1"));
  ASSERT_TRUE(registry_.Start("c1", Opts()).ok());
  EXPECT_EQ(sink_.Take().back(), "event started c1 starting w= subs=1");
  registry_.ConnectionEnded(5);
  ASSERT_TRUE(registry_.Stop("c1"));
  EXPECT_EQ(sink_.Take().back(), "event stopped c1 starting w= reason=stopped subs=0");
}

TEST_F(SessionRegistryTest, LimitsAreLimitExceeded) {
  SessionSettings s = Settings();
  s.max_sessions = 2;
  s.max_subscriptions_per_connection = 1;
  SessionRegistry small(s, clock_, sink_);
  ASSERT_TRUE(small.Start("a", Opts()).ok());
  ASSERT_TRUE(small.Start("b", Opts()).ok());
  EXPECT_EQ(small.Start("c", Opts()).error().code, ErrorCode::kLimitExceeded);
  ASSERT_TRUE(small.Start("a", Opts()).ok());  // existing: fine
  ASSERT_TRUE(small.Subscribe(1, "a").ok());
  EXPECT_EQ(small.Subscribe(1, "b").error().code, ErrorCode::kLimitExceeded);
}

TEST_F(SessionRegistryTest, ASavedStateActsTheSame) {
  ASSERT_TRUE(registry_.Serve(1, "w1", 1).ok());
  ASSERT_TRUE(registry_.Serve(2, "w2", 3).ok());
  ASSERT_TRUE(registry_.Start("a", Opts(0, R"({"x":[1,2]})")).ok());
  ASSERT_TRUE(registry_.Start("b", Opts()).ok());
  ASSERT_TRUE(registry_.Ready(2, "a").ok());
  ASSERT_TRUE(registry_.Subscribe(9, "a").ok());
  ASSERT_TRUE(registry_.Subscribe(9, "zz").ok());
  registry_.ConnectionDropped(1);
  ASSERT_TRUE(registry_.Start("c", Opts()).ok());
  sink_.Take();
  const std::string saved = registry_.SaveState();

  Recorder other_sink;
  SessionRegistry copy(Settings(), clock_, other_sink);
  ASSERT_TRUE(copy.LoadState(saved).ok());
  EXPECT_EQ(copy.SaveState(), saved);
  // The same calls from here give the same sink calls.
  for (SessionRegistry* r : {&registry_, &copy}) {
    r->ConnectionEnded(2);
    r->ConnectionResumed(1);
    clock_.Advance(0);
    r->Tick();
  }
  clock_.Advance(6000);
  registry_.Tick();
  copy.Tick();
  EXPECT_EQ(other_sink.Take(), sink_.Take());
  EXPECT_EQ(copy.SaveState(), registry_.SaveState());
  EXPECT_FALSE(copy.LoadState(saved.substr(0, saved.size() - 3)).ok());
  EXPECT_EQ(copy.size(), 0u);
  EXPECT_FALSE(copy.LoadState("junk").ok());
}

}  // namespace
}  // namespace presenced::engine
