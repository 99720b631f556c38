// cluster::Node's lease against a real redis-server: registration, renewal, the serving rule,
// fencing, epochs. Each test drives the node's loop (net::EventLoop) from the test thread; the
// node's own stall check reads a ManualClock.
#include "cluster/node.h"

#include <gtest/gtest.h>

#include <optional>

#include "net/reactor.h"
#include "redis/test_server.h"

namespace presenced::cluster {
namespace {

using namespace std::chrono_literals;
using redis::Reply;
using redis::testing::RedisServer;

constexpr int64_t kLease = 600;

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    admin_ = std::make_unique<redis::Client>(loop_.reactor(), Client("admin"));
    admin_->Start();
    ASSERT_TRUE(loop_.RunUntil([&] { return admin_->up(); }, 5s));
  }
  redis::ClientOptions Client(std::string name) {
    return redis::testing::TestClientOptions(server_, std::move(name));
  }
  struct Seen {
    std::vector<bool> health;
    int fenced = 0;
    std::vector<std::string> epochs;
  };
  std::unique_ptr<Node> MakeNode(const std::string& id, Seen& seen) {
    NodeOptions o;
    o.redis_url = server_.url();
    o.node_id = id;
    o.lease_ms = kLease;
    return std::make_unique<Node>(
        loop_.reactor(), clock_, o, *redis::ParseUrl(server_.url()),
        Node::Callbacks{
            .health = [&seen](bool up) { seen.health.push_back(up); },
            .fenced = [&seen] { ++seen.fenced; },
            .epoch = [&seen](const std::string& e) { seen.epochs.push_back(e); },
        });
  }
  Reply Run(std::vector<std::string> args) {
    std::optional<Reply> got;
    admin_->Command(std::move(args), [&](const Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(Reply::Unavailable("no reply"));
  }
  int64_t Deadline(const std::string& node) {
    Reply r = Run({"ZSCORE", "{presenced}:nodes", node});
    return r.type == Reply::Type::kString ? std::stoll(r.str) : -1;
  }
  bool StartBoth(Node& a, Node& b) {
    a.Start();
    b.Start();
    return loop_.RunUntil([&] { return a.up() && b.up(); }, 5s);
  }
  // `node`'s deadline passes now, while Redis has served for a while (`served` is set back: the
  // nodes may have registered within this very millisecond). Returns Redis's time then.
  int64_t ExpireWhileServing(const std::string& node) {
    const int64_t now = RedisNow();
    Run({"SET", "{presenced}:served", std::to_string(now - 100)});
    Run({"ZADD", "{presenced}:nodes", std::to_string(now - 1), node});
    return now;
  }
  int64_t RedisNow() {
    Reply t = Run({"TIME"});
    return std::stoll(t.elements.at(0).str) * 1000 + std::stoll(t.elements.at(1).str) / 1000;
  }

  RedisServer server_;
  net::EventLoop loop_;
  ManualClock clock_{1000};
  std::unique_ptr<redis::Client> admin_;
};

TEST_F(NodeTest, RegistersThenRenewsItsLease) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  EXPECT_EQ(seen.health, std::vector<bool>{true});
  ASSERT_EQ(seen.epochs.size(), 1u);
  EXPECT_EQ(seen.epochs[0], node->epoch());
  EXPECT_EQ(Run({"GET", "{presenced}:epoch"}).str, node->epoch());
  EXPECT_EQ(Run({"HGET", "{presenced}:inc", "a"}).str, node->incarnation());
  const int64_t first = Deadline("a");
  EXPECT_GT(first, RedisNow());
  // The renewal every lease/3 moves the deadline on.
  ASSERT_TRUE(loop_.RunUntil([&] { return Deadline("a") > first; }, 5s));
  EXPECT_EQ(seen.fenced, 0);
}

TEST_F(NodeTest, NodesShareOneEpoch) {
  Seen sa, sb;
  auto a = MakeNode("a", sa);
  auto b = MakeNode("b", sb);
  a->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return a->up(); }, 5s));
  b->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return b->up(); }, 5s));
  EXPECT_EQ(a->epoch(), b->epoch());
  EXPECT_EQ(Run({"ZCARD", "{presenced}:nodes"}).integer, 2);
}

TEST_F(NodeTest, ALeaseThatExpiredWhileRedisServedIsFenced) {
  Seen sa, sb;
  auto a = MakeNode("a", sa);
  auto b = MakeNode("b", sb);
  ASSERT_TRUE(StartBoth(*a, *b));
  const std::string old_incarnation = b->incarnation();
  // b's deadline passed while a kept renewing (Redis served): b's next renewal is refused.
  ExpireWhileServing("b");
  ASSERT_TRUE(loop_.RunUntil([&] { return sb.fenced == 1 && b->up(); }, 5s))
      << sb.fenced << " up=" << b->up() << " served=" << Run({"GET", "{presenced}:served"}).str
      << " deadline=" << Deadline("b") << " now=" << RedisNow();
  EXPECT_NE(b->incarnation(), old_incarnation);  // registered again, as a new incarnation
  EXPECT_EQ(Run({"HGET", "{presenced}:inc", "b"}).str, b->incarnation());
  EXPECT_EQ(sa.fenced, 0);
  EXPECT_EQ(sb.epochs.size(), 1u);  // the same epoch
}

TEST_F(NodeTest, ADeadNodeIsReapedOnceIntoTheLog) {
  Seen sa, sb;
  auto a = MakeNode("a", sa);
  auto b = MakeNode("b", sb);
  ASSERT_TRUE(StartBoth(*a, *b));
  const std::string old_incarnation = b->incarnation();
  const int64_t now = ExpireWhileServing("b");
  // a reaps b, or b finds itself fenced and registers again: either way one entry.
  ASSERT_TRUE(loop_.RunUntil([&] { return sb.fenced == 1 && b->up(); }, 5s));
  loop_.RunFor(std::chrono::milliseconds(kLease));  // a few more renewals and reaps
  Reply log = Run({"XRANGE", kLogKey, "-", "+"});
  ASSERT_EQ(log.elements.size(), 1u);
  const auto& fields = log.elements[0].elements.at(1).elements;
  std::string body;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str == "b") body = fields[i + 1].str;
  }
  EXPECT_NE(body.find("\"reap\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"" + old_incarnation + "\""), std::string::npos) << body;
  EXPECT_NE(body.find(std::to_string(now - 1)), std::string::npos) << body;  // dated at its end
}

TEST_F(NodeTest, NoLeaseIsLostWhenNoNodeCouldReachRedis) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  // As after an outage: nobody renewed for ten leases, and a's deadline passed meanwhile.
  const int64_t now = RedisNow();
  Run({"SET", "{presenced}:last", std::to_string(now - 10 * kLease)});
  Run({"ZADD", "{presenced}:nodes", std::to_string(now - 5 * kLease), "a"});
  ASSERT_TRUE(loop_.RunUntil([&] { return Deadline("a") > now; }, 5s));
  EXPECT_EQ(seen.fenced, 0);
  EXPECT_GE(std::stoll(Run({"GET", "{presenced}:served"}).str), now);
  EXPECT_EQ(Run({"XLEN", kLogKey}).integer, 0);  // nobody reaped
}

TEST_F(NodeTest, AReconnectKeepsTheIncarnationAndReapsNothing) {
  Seen sa, sb;
  auto a = MakeNode("a", sa);
  auto b = MakeNode("b", sb);
  ASSERT_TRUE(StartBoth(*a, *b));
  const std::string ia = a->incarnation(), ib = b->incarnation();
  const uint64_t connects = a->client().connects();
  // Every connection but the admin's is cut (a proxy restarting, `CLIENT KILL`): the nodes
  // connect again and renew the leases they hold, so their connections are not reaped.
  Run({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(
      loop_.RunUntil([&] { return a->client().connects() > connects && a->up() && b->up(); }, 5s));
  loop_.RunFor(std::chrono::milliseconds(kLease));  // renewals and reaps go on
  EXPECT_EQ(a->incarnation(), ia);
  EXPECT_EQ(b->incarnation(), ib);
  EXPECT_EQ(Run({"XLEN", kLogKey}).integer, 0);  // nobody reaped
  EXPECT_EQ(sa.fenced + sb.fenced, 0);
  EXPECT_EQ(sa.epochs.size(), 1u);
}

TEST_F(NodeTest, AReconnectAfterTheLeaseWasLostIsFenced) {
  Seen sa, sb;
  auto a = MakeNode("a", sa);
  auto b = MakeNode("b", sb);
  ASSERT_TRUE(StartBoth(*a, *b));
  const std::string ib = b->incarnation();
  const uint64_t connects = b->client().connects();
  // b is cut off while a renews, past its deadline: on its return it is fenced, not renewed.
  const int64_t now = RedisNow();
  Run({"SET", "{presenced}:served", std::to_string(now - 100)});
  // Pipelined on the admin's connection: no renewal of b's comes between them.
  admin_->Command({"ZADD", "{presenced}:nodes", std::to_string(now - 1), "b"}, [](const Reply&) {});
  Run({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(loop_.RunUntil(
      [&] { return b->client().connects() > connects && sb.fenced == 1 && b->up(); }, 5s));
  EXPECT_NE(b->incarnation(), ib);
  EXPECT_EQ(sa.fenced, 0);
}

TEST_F(NodeTest, AStalledProcessFencesItselfWithoutAsking) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  const std::string old_incarnation = node->incarnation();
  clock_.Advance(kLease + 1);  // its loop did not run for more than a lease
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.fenced == 1 && node->up(); }, 5s));
  EXPECT_NE(node->incarnation(), old_incarnation);
}

TEST_F(NodeTest, AnEpochLostWithRedisDataRegistersAgain) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  const std::string first = node->epoch();
  Run({"FLUSHALL"});
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.epochs.size() == 2; }, 5s));
  EXPECT_NE(seen.epochs[1], first);
  EXPECT_EQ(Run({"GET", "{presenced}:epoch"}).str, seen.epochs[1]);
  EXPECT_EQ(seen.fenced, 0);  // its connections stay: the data set changed, not its lease
  EXPECT_GT(Deadline("a"), 0);
}

TEST_F(NodeTest, HealthFollowsRedis) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  server_.Stop();
  ASSERT_TRUE(loop_.RunUntil([&] { return !node->up(); }, 5s));
  server_.Start();  // empty: a new epoch
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  EXPECT_EQ(seen.health, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(seen.epochs.size(), 2u);
  EXPECT_EQ(seen.fenced, 0);
}

TEST_F(NodeTest, ARedisThatStopsAnsweringIsReportedDown) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  server_.Pause();
  const auto paused = std::chrono::steady_clock::now();
  ASSERT_TRUE(loop_.RunUntil([&] { return !node->up(); }, 5s));
  // By design within a renewal interval and a reply timeout (lease/3 + lease/2); the bound here
  // leaves room for a slow (sanitized) build.
  EXPECT_LT(std::chrono::steady_clock::now() - paused, std::chrono::milliseconds(2 * kLease));
  server_.Resume();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  EXPECT_EQ(seen.health, (std::vector<bool>{true, false, true}));
}

TEST_F(NodeTest, LeavingRemovesTheLease) {
  Seen seen;
  auto node = MakeNode("a", seen);
  node->Start();
  ASSERT_TRUE(loop_.RunUntil([&] { return node->up(); }, 5s));
  bool done = false;
  node->Leave([&] { done = true; });
  ASSERT_TRUE(loop_.RunUntil([&] { return done; }, 5s));
  EXPECT_EQ(Deadline("a"), -1);
  EXPECT_EQ(Run({"HEXISTS", "{presenced}:inc", "a"}).integer, 0);
}

}  // namespace
}  // namespace presenced::cluster
