// redis::Client against a real redis-server (Debian's), started by each test on a free port with
// no persistence. The client runs on a net::EventLoop driven by the test thread.
#include "redis/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "net/reactor.h"
#include "redis/test_server.h"

namespace presenced::redis {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

ClientOptions Options(const std::string& url, std::string name = "test") {
  auto parsed = ParseUrl(url);
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().message);
  ClientOptions o;
  o.url = parsed.ok() ? *parsed : Url{};
  o.name = std::move(name);
  o.backoff_min = 10ms;
  o.backoff_max = 40ms;
  return o;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.Start(); }
  // Runs one command to its reply.
  Reply Run(Client& c, std::vector<std::string> args) {
    std::optional<Reply> got;
    c.Command(std::move(args), [&](const Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(Reply::Unavailable("no reply"));
  }
  bool WaitUp(Client& c) {
    return loop_.RunUntil([&] { return c.up(); }, 5s);
  }
  RedisServer server_;
  net::EventLoop loop_;
};

TEST(RedisUrlTest, ParsesEveryPart) {
  auto u = ParseUrl("redis://:s3cret@10.0.0.7:6390/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "10.0.0.7");
  EXPECT_EQ(u->port, 6390);
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->db, 2);
  auto d = ParseUrl("redis://localhost");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 0);
  auto acl = ParseUrl("redis://app:pw@h:1/");
  ASSERT_TRUE(acl.ok());
  EXPECT_EQ(acl->user, "app");
  EXPECT_EQ(acl->password, "pw");
}

TEST(RedisUrlTest, RefusesWhatItCannotUse) {
  for (const char* bad :
       {"http://h:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:1/x",
        "redis://h:1/16", "redis://h:1/?a=b", "redis://u@h", "not a url"}) {
    auto r = ParseUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kBadRequest);
    }
  }
}

TEST(RedisScriptTest, NamedByTheSha1RedisGivesIt) {
  // `redis-cli SCRIPT LOAD "return 1"`
  EXPECT_EQ(Script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST_F(RedisClientTest, PipelinedRepliesComeInOrder) {
  Client c(loop_.reactor(), Options(server_.url()));
  std::vector<bool> states;
  c.OnState([&](bool up) { states.push_back(up); });
  c.Start();
  ASSERT_TRUE(WaitUp(c));
  EXPECT_EQ(states, std::vector<bool>{true});
  std::vector<int64_t> got;
  for (int i = 0; i < 1000; ++i) {
    c.Command({"INCR", "n"}, [&](const Reply& r) { got.push_back(r.integer); });
  }
  ASSERT_TRUE(loop_.RunUntil([&] { return got.size() == 1000; }, 5s));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(got[i], i + 1);
  EXPECT_EQ(Run(c, {"CLIENT", "GETNAME"}).str, "test");
}

TEST_F(RedisClientTest, RepliesKeepTheirTypes) {
  Client c(loop_.reactor(), Options(server_.url()));
  c.Start();
  ASSERT_TRUE(WaitUp(c));
  EXPECT_EQ(Run(c, {"GET", "missing"}).type, Reply::Type::kNil);
  Reply set = Run(c, {"SET", "k", std::string("a\0b", 3)});
  EXPECT_EQ(set.type, Reply::Type::kStatus);
  EXPECT_EQ(set.str, "OK");
  Reply get = Run(c, {"GET", "k"});
  EXPECT_EQ(get.type, Reply::Type::kString);
  EXPECT_EQ(get.str, std::string("a\0b", 3));  // binary-safe
  Reply arr = Run(c, {"MGET", "k", "missing"});
  ASSERT_EQ(arr.type, Reply::Type::kArray);
  ASSERT_EQ(arr.elements.size(), 2u);
  EXPECT_EQ(arr.elements[1].type, Reply::Type::kNil);
  Reply err = Run(c, {"NOSUCHCOMMAND"});
  EXPECT_EQ(err.type, Reply::Type::kError);
  EXPECT_FALSE(err.ok());
  EXPECT_NE(err.str.find("unknown command"), std::string::npos);
}

TEST_F(RedisClientTest, ScriptsSurviveAFlush) {
  Client c(loop_.reactor(), Options(server_.url()));
  c.Start();
  ASSERT_TRUE(WaitUp(c));
  Script incr_by("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto eval = [&](std::string by) {
    std::optional<Reply> got;
    c.Eval(incr_by, {"s"}, {std::move(by)}, [&](const Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(Reply::Unavailable("no reply"));
  };
  EXPECT_EQ(eval("2").integer, 2);  // never loaded: NOSCRIPT, then sent whole
  EXPECT_EQ(eval("3").integer, 5);  // by SHA1
  EXPECT_EQ(Run(c, {"SCRIPT", "EXISTS", incr_by.sha1()}).elements.at(0).integer, 1);
  Run(c, {"SCRIPT", "FLUSH"});
  EXPECT_EQ(eval("4").integer, 9);
}

TEST_F(RedisClientTest, ReconnectsWhenRedisComesBack) {
  Client c(loop_.reactor(), Options(server_.url()));
  std::vector<bool> states;
  c.OnState([&](bool up) { states.push_back(up); });
  c.Start();
  ASSERT_TRUE(WaitUp(c));
  std::optional<Reply> pending;
  c.Command({"BLPOP", "never", "0"}, [&](const Reply& r) { pending = r; });
  loop_.RunFor(20ms);
  server_.Stop();
  ASSERT_TRUE(loop_.RunUntil([&] { return !c.up(); }, 5s));
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(pending->type, Reply::Type::kUnavailable);  // lost with the connection
  EXPECT_EQ(Run(c, {"PING"}).type, Reply::Type::kUnavailable);
  EXPECT_NE(c.DownReason().find("redis is down"), std::string::npos);
  loop_.RunFor(100ms);  // a few refused reconnects
  EXPECT_FALSE(c.up());
  server_.Start();
  ASSERT_TRUE(WaitUp(c));
  EXPECT_EQ(states, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(c.connects(), 2u);
  EXPECT_EQ(Run(c, {"PING"}).str, "PONG");
}

TEST_F(RedisClientTest, ARedisThatStopsAnsweringIsDown) {
  ClientOptions o = Options(server_.url());
  o.reply_timeout = 100ms;
  Client c(loop_.reactor(), o);
  std::vector<bool> states;
  c.OnState([&](bool up) { states.push_back(up); });
  c.Start();
  ASSERT_TRUE(WaitUp(c));
  server_.Pause();  // the connection stays open; nothing answers
  std::optional<Reply> got;
  c.Command({"PING"}, [&](const Reply& r) { got = r; });
  ASSERT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
  EXPECT_EQ(got->type, Reply::Type::kUnavailable);
  EXPECT_FALSE(c.up());
  EXPECT_NE(c.DownReason().find("no reply"), std::string::npos) << c.DownReason();
  server_.Resume();
  ASSERT_TRUE(WaitUp(c));
  EXPECT_EQ(states, (std::vector<bool>{true, false, true}));
  // A command allowed to take longer by design (a blocking read) is not cut short.
  std::optional<Reply> blocked;
  c.Command(
      {"BLPOP", "nothing", "0.3"}, [&](const Reply& r) { blocked = r; }, 500ms);
  ASSERT_TRUE(loop_.RunUntil([&] { return blocked.has_value(); }, 5s));
  EXPECT_EQ(blocked->type, Reply::Type::kNil);
  EXPECT_TRUE(c.up());
}

TEST_F(RedisClientTest, ASubscriberResubscribesAfterItIsKilled) {
  Client pub(loop_.reactor(), Options(server_.url(), "pub"));
  Client sub(loop_.reactor(), Options(server_.url(), "sub"));
  std::vector<std::string> got;
  int ups = 0;
  sub.OnMessage([&](std::string_view ch, std::string_view payload) {
    got.push_back(std::string(ch) + "=" + std::string(payload));
  });
  sub.OnState([&](bool up) { ups += up ? 1 : 0; });
  pub.Start();
  sub.Start();
  ASSERT_TRUE(WaitUp(pub));
  ASSERT_TRUE(WaitUp(sub));
  bool subscribed = false;
  sub.Subscribe("ev:a", [&] { subscribed = true; });
  sub.Subscribe("ev:b");
  ASSERT_TRUE(loop_.RunUntil([&] { return subscribed; }, 5s));
  // The subscription is confirmed: what is published from now on arrives.
  EXPECT_EQ(Run(pub, {"PUBLISH", "ev:a", "1"}).integer, 1);
  ASSERT_TRUE(loop_.RunUntil([&] { return got.size() == 1; }, 5s));
  EXPECT_EQ(got[0], "ev:a=1");
  EXPECT_EQ(Run(pub, {"CLIENT", "KILL", "TYPE", "pubsub"}).integer, 1);
  ASSERT_TRUE(loop_.RunUntil([&] { return ups == 2 && sub.up(); }, 5s));
  EXPECT_EQ(sub.connects(), 2u);
  // Up again means subscribed again, to both.
  EXPECT_EQ(Run(pub, {"PUBLISH", "ev:b", "2"}).integer, 1);
  sub.Unsubscribe("ev:a");
  EXPECT_EQ(Run(pub, {"PUBLISH", "ev:a", "3"}).integer, 0);
  ASSERT_TRUE(loop_.RunUntil([&] { return got.size() == 2; }, 5s));
  EXPECT_EQ(got[1], "ev:b=2");
}

TEST(RedisAuthTest, PasswordAndDatabaseFromTheUrl) {
  RedisServer server({"--requirepass", "s3cret"});
  server.Start();
  net::EventLoop loop;
  Client c(loop.reactor(), Options(server.url(":s3cret@", "/3")));
  c.Start();
  ASSERT_TRUE(loop.RunUntil([&] { return c.up(); }, 5s));
  std::optional<Reply> db;
  c.Command({"CLIENT", "INFO"}, [&](const Reply& r) { db = r; });
  ASSERT_TRUE(loop.RunUntil([&] { return db.has_value(); }, 5s));
  EXPECT_NE(db->str.find(" db=3 "), std::string::npos) << db->str;

  Client wrong(loop.reactor(), Options(server.url(":nope@")));
  wrong.Start();
  loop.RunFor(200ms);
  EXPECT_FALSE(wrong.up());
  EXPECT_NE(wrong.DownReason().find("handshake"), std::string::npos) << wrong.DownReason();
}

TEST(RedisDownTest, RefusedConnectsAreRetriedWithoutEndingUp) {
  net::EventLoop loop;
  RedisServer never;  // its port, never started
  Client c(loop.reactor(), Options(never.url()));
  c.Start();
  loop.RunFor(150ms);
  EXPECT_FALSE(c.up());
  EXPECT_EQ(c.connects(), 0u);
  EXPECT_NE(c.DownReason().find("redis is down"), std::string::npos) << c.DownReason();
}

}  // namespace
}  // namespace presenced::redis
