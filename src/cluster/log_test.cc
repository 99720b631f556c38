// cluster::Log against a real redis-server: one order for every reader, appends refused without
// a current lease, a reader that resumes after losing its connection, and gaps.
#include "cluster/log.h"

#include <gtest/gtest.h>

#include <optional>

#include "cluster/node.h"
#include "net/reactor.h"
#include "redis/test_server.h"

namespace presenced::cluster {
namespace {

using namespace std::chrono_literals;
using redis::Reply;
using redis::testing::RedisServer;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    admin_ = std::make_unique<redis::Client>(loop_.reactor(), Options("admin"));
    admin_->Start();
    a_ = MakeNode("a");
    b_ = MakeNode("b");
    ASSERT_TRUE(loop_.RunUntil([&] { return admin_->up() && a_->up() && b_->up(); }, 5s));
  }
  redis::ClientOptions Options(std::string name) {
    return redis::testing::TestClientOptions(server_, std::move(name));
  }
  std::unique_ptr<Node> MakeNode(const std::string& id) {
    NodeOptions o;
    o.redis_url = server_.url();
    o.node_id = id;
    o.lease_ms = 3000;
    auto n = std::make_unique<Node>(loop_.reactor(), clock_, o, *redis::ParseUrl(server_.url()),
                                    Node::Callbacks{});
    n->Start();
    return n;
  }
  Reply Run(std::vector<std::string> args) {
    std::optional<Reply> got;
    admin_->Command(std::move(args), [&](const Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(Reply::Unavailable("no reply"));
  }
  Reply Append(Log& log, Node& node, std::vector<std::string> bodies) {
    std::optional<Reply> got;
    log.Append(node.node_id(), node.incarnation(), std::move(bodies),
               [&](const Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(Reply::Unavailable("no reply"));
  }
  // What a reader saw: "node:body" in order, and the ids.
  struct Seen {
    std::vector<std::string> entries;
    std::vector<std::string> ids;
    std::vector<uint64_t> numbers;
    int gaps = 0;
    int restarts = 0;  // gaps where the numbers started again
    bool pause_at_gap = false;
  };
  void StartReading(Log& log, Seen& seen, std::string after = "0-0",
                    std::optional<uint64_t> number = 0) {
    log.Read(
        std::move(after), number,
        [&seen](std::vector<LogEntry>& entries) {
          for (const auto& e : entries) {
            seen.entries.push_back(e.node + ":" + e.body);
            seen.ids.push_back(e.id);
            seen.numbers.push_back(e.number);
          }
        },
        [&seen](bool restarted) {
          ++seen.gaps;
          if (restarted) ++seen.restarts;
          return seen.pause_at_gap;
        });
  }

  RedisServer server_;
  net::EventLoop loop_;
  ManualClock clock_{1000};
  std::unique_ptr<redis::Client> admin_;
  std::unique_ptr<Node> a_, b_;
};

TEST_F(LogTest, EveryReaderSeesOneOrder) {
  Log log_a(loop_.reactor(), a_->client(), Options("reader-a"));
  Log log_b(loop_.reactor(), b_->client(), Options("reader-b"));
  Seen seen_a, seen_b;
  StartReading(log_a, seen_a);
  StartReading(log_b, seen_b);
  // Both nodes append at once, without waiting for each other.
  int answered = 0;
  for (int i = 0; i < 100; ++i) {
    log_a.Append(a_->node_id(), a_->incarnation(), {"a" + std::to_string(i)},
                 [&](const Reply& r) { answered += r.ok() ? 1 : 1000; });
    log_b.Append(b_->node_id(), b_->incarnation(),
                 {"b" + std::to_string(i), "b" + std::to_string(i) + "'"},
                 [&](const Reply& r) { answered += r.ok() ? 1 : 1000; });
  }
  ASSERT_TRUE(loop_.RunUntil(
      [&] { return seen_a.entries.size() == 300 && seen_b.entries.size() == 300; }, 10s));
  EXPECT_EQ(answered, 200);
  EXPECT_EQ(seen_a.entries, seen_b.entries);
  EXPECT_EQ(seen_a.ids, seen_b.ids);
  for (size_t i = 1; i < seen_a.ids.size(); ++i) {
    ASSERT_TRUE(IdBefore(seen_a.ids[i - 1], seen_a.ids[i])) << i;
  }
  // A batch is contiguous, in its order; each node's own entries keep their order.
  for (size_t i = 0; i < seen_a.entries.size(); ++i) {
    const std::string& e = seen_a.entries[i];
    if (e.back() != '\'') continue;
    ASSERT_GT(i, 0u);
    EXPECT_EQ(seen_a.entries[i - 1] + "'", e);
  }
  EXPECT_EQ(seen_a.gaps, 0);
}

TEST_F(LogTest, NoAppendWithoutACurrentLease) {
  Log log(loop_.reactor(), a_->client(), Options("reader"));
  std::optional<Reply> got;
  log.Append("a", "not-its-incarnation", {"x"}, [&](const Reply& r) { got = r; });
  ASSERT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
  EXPECT_EQ(got->type, Reply::Type::kError);
  EXPECT_EQ(got->str.rfind("FENCED", 0), 0u) << got->str;
  // A lease that ran out (and was not renewed yet) cannot append either.
  Run({"ZADD", "{presenced}:nodes", "1", "b"});
  Reply lapsed = Append(log, *b_, {"y"});
  EXPECT_EQ(lapsed.type, Reply::Type::kError);
  EXPECT_EQ(lapsed.str.rfind("LEASE", 0), 0u) << lapsed.str;
  EXPECT_EQ(Run({"XLEN", "{presenced}:log"}).integer, 0);
  Reply ok = Append(log, *a_, {"z"});
  ASSERT_EQ(ok.type, Reply::Type::kArray);
  EXPECT_EQ(ok.elements.size(), 1u);
  EXPECT_EQ(Run({"XLEN", "{presenced}:log"}).integer, 1);
}

TEST_F(LogTest, AReaderThatLostItsConnectionMissesNothing) {
  Log writer(loop_.reactor(), a_->client(), Options("unused-reader"));
  Log reader(loop_.reactor(), b_->client(), Options("reader-b"));
  Seen seen;
  StartReading(reader, seen);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Append(writer, *a_, {std::to_string(i)}).ok());
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 10; }, 5s));
  // Kill the reader's connection (by its name), then append while it reconnects.
  std::string id;
  const std::string list = Run({"CLIENT", "LIST"}).str;
  for (size_t at = list.find("name=reader-b"); at != std::string::npos;) {
    const size_t line = list.rfind('\n', at);
    const size_t start = line == std::string::npos ? 0 : line + 1;
    id = list.substr(start + 3, list.find(' ', start) - start - 3);  // "id=N ..."
    break;
  }
  ASSERT_FALSE(id.empty()) << list;
  EXPECT_EQ(Run({"CLIENT", "KILL", "ID", id}).integer, 1);
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(Append(writer, *a_, {std::to_string(i)}).ok());
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() >= 20; }, 5s));
  loop_.RunFor(50ms);  // nothing more arrives: no duplicate
  ASSERT_EQ(seen.entries.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seen.entries[i], "a:" + std::to_string(i));
  EXPECT_EQ(seen.gaps, 0);
}

TEST_F(LogTest, EntriesTrimmedBeforeTheyWereReadAreAGap) {
  Log writer(loop_.reactor(), a_->client(), Options("unused-reader"));
  std::string position;
  {
    Log first(loop_.reactor(), b_->client(), Options("reader-1"));
    Seen seen;
    StartReading(first, seen);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(Append(writer, *a_, {std::to_string(i)}).ok());
    ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 3; }, 5s));
    EXPECT_EQ(seen.numbers, (std::vector<uint64_t>{1, 2, 3}));  // numbered in order
    position = first.position();
  }
  for (int i = 3; i < 8; ++i) ASSERT_TRUE(Append(writer, *a_, {std::to_string(i)}).ok());
  Run({"XTRIM", "{presenced}:log", "MAXLEN", "2"});  // 3..5 are gone unread
  Log again(loop_.reactor(), b_->client(), Options("reader-2"));
  Seen seen;
  StartReading(again, seen, position, 3);
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 2; }, 5s));
  EXPECT_EQ(seen.gaps, 1);
  EXPECT_EQ(seen.entries, (std::vector<std::string>{"a:6", "a:7"}));

  // A reader whose last entry is still held has no gap.
  Log third(loop_.reactor(), b_->client(), Options("reader-3"));
  Seen more;
  StartReading(third, more, seen.ids[0], 7);
  ASSERT_TRUE(loop_.RunUntil([&] { return more.entries.size() == 1; }, 5s));
  EXPECT_EQ(more.gaps, 0);
  EXPECT_EQ(more.entries[0], "a:7");
}

// A reader that resynchronizes (from a snapshot) at a gap reads nothing until it says where to
// go on from: nothing after the gap is applied to the state from before it.
TEST_F(LogTest, AReaderMayWaitAtAGapAndResumeWhereItsSnapshotEnds) {
  Log writer(loop_.reactor(), a_->client(), Options("unused-reader"));
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    Reply r = Append(writer, *a_, {std::to_string(i)});
    ASSERT_TRUE(r.ok());
    ids.push_back(r.elements.at(0).str);
  }
  Run({"XTRIM", "{presenced}:log", "MAXLEN", "4"});  // 0 and 1 are gone
  Log reader(loop_.reactor(), b_->client(), Options("reader"));
  Seen seen;
  seen.pause_at_gap = true;
  StartReading(reader, seen);  // from the start: the first two are missed
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.gaps == 1; }, 5s));
  EXPECT_EQ(seen.restarts, 0);  // entries 1 and 2 are missing, not lost with Redis's data
  ASSERT_TRUE(Append(writer, *a_, {"6"}).ok());
  loop_.RunFor(200ms);
  EXPECT_TRUE(seen.entries.empty());  // waiting at the gap
  reader.Resume(ids[3], 4);           // "a snapshot covers up to the fourth"
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 3; }, 5s));
  EXPECT_EQ(seen.entries, (std::vector<std::string>{"a:4", "a:5", "a:6"}));
  EXPECT_EQ(seen.gaps, 1);
}

// Redis lost its data while a reader was connected: the numbers start again, which is a gap
// (the stream's ids alone would not tell: new entries come after the old ones in time).
TEST_F(LogTest, ALogThatStartsOverIsAGapToItsReaders) {
  Log writer(loop_.reactor(), a_->client(), Options("unused-reader"));
  Log reader(loop_.reactor(), b_->client(), Options("reader"));
  Seen seen;
  StartReading(reader, seen);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Append(writer, *a_, {std::to_string(i)}).ok());
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 3; }, 5s));
  Run({"DEL", "{presenced}:log", "{presenced}:logq"});
  // The new stream's first id must come after the reader's last (they are times: a Redis that
  // restarted took longer than a millisecond; this test does not), so Redis's clock moves on.
  const uint64_t last_ms = std::stoull(seen.ids.back());
  const auto redis_ms = [&] {
    const Reply t = Run({"TIME"});
    return std::stoull(t.elements.at(0).str) * 1000 + std::stoull(t.elements.at(1).str) / 1000;
  };
  while (redis_ms() <= last_ms + 1) {
  }
  ASSERT_TRUE(Append(writer, *a_, {"after"}).ok());
  ASSERT_TRUE(loop_.RunUntil([&] { return seen.entries.size() == 4; }, 5s));
  EXPECT_EQ(seen.gaps, 1);
  EXPECT_EQ(seen.restarts, 1);
  EXPECT_EQ(seen.entries.back(), "a:after");
  EXPECT_EQ(seen.numbers.back(), 1u);
}

}  // namespace
}  // namespace presenced::cluster
