// RedisStore against a real redis-server (Debian's), started by each test on a free port with no
// persistence, on a net::EventLoop the test thread drives.
#include "storage/redis_store.h"

#include <gtest/gtest.h>

#include <future>
#include <optional>
#include <thread>

#include "net/reactor.h"
#include "redis/test_server.h"

namespace presenced::storage {
namespace {

using namespace std::chrono_literals;

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    retention_.history_max_age_ms = 3600000;
    retention_.activity_max_per_user = 3;
    store_ = std::make_unique<RedisStore>(redis::testing::TestClientOptions(server_, "store"),
                                          retention_, clock_);
    store_->Start(loop_.reactor());
    admin_ = std::make_unique<redis::Client>(loop_.reactor(),
                                             redis::testing::TestClientOptions(server_, "admin"));
    admin_->Start();
    ASSERT_TRUE(loop_.RunUntil([&] { return admin_->up() && store_->up(); }, 5s));
    ASSERT_TRUE(Settled());
  }

  // Every write queued so far has its reply (the writes are pipelined on one connection, so a
  // command on it after them would do too; the store's counter says it directly).
  bool Settled() {
    return loop_.RunUntil([&] { return store_->counters().pending == 0; }, 5s);
  }
  void Event(std::string channel, uint64_t serial, TimeMs ts) {
    store_->AppendEvent(StoredEvent{
        channel, serial, ts,
        std::make_shared<const std::string>(R"({"serial":)" + std::to_string(serial) + "}")});
  }
  HistoryPage History(HistoryQuery q) {
    std::optional<Result<HistoryPage>> got;
    store_->QueryHistory(std::move(q), [&](Result<HistoryPage> r) { got = std::move(r); });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    EXPECT_TRUE(got && got->ok());
    return got && got->ok() ? std::move(**got) : HistoryPage{};
  }
  static std::vector<std::string> Texts(const HistoryPage& p) {
    std::vector<std::string> out;
    for (const auto& e : p.events) out.push_back(*e);
    return out;
  }
  std::vector<UserRecord> Users(std::vector<std::string> ids) {
    std::optional<Result<std::vector<UserRecord>>> got;
    store_->GetUsers(std::move(ids), [&](auto r) { got = std::move(r); });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    EXPECT_TRUE(got && got->ok());
    return got && got->ok() ? std::move(**got) : std::vector<UserRecord>{};
  }
  redis::Reply Admin(std::vector<std::string> args) {
    std::optional<redis::Reply> got;
    admin_->Command(std::move(args), [&](const redis::Reply& r) { got = r; });
    EXPECT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
    return got.value_or(redis::Reply::Unavailable("no reply"));
  }

  redis::testing::RedisServer server_;
  net::EventLoop loop_;
  ManualClock clock_{1700000000000};
  SqliteOptions retention_;
  std::unique_ptr<RedisStore> store_;
  std::unique_ptr<redis::Client> admin_;
};

constexpr TimeMs kT = 1700000000000;  // the tests' clock starts here

std::string E(int serial) { return R"({"serial":)" + std::to_string(serial) + "}"; }

TEST_F(RedisStoreTest, HistoryPagesBothWaysWithTimesAndCursors) {
  Event("room", 1, kT);
  Event("room", 2, kT);  // the same millisecond
  Event("room", 3, kT + 1);
  Event("room", 4, kT + 2);
  Event("room", 5, kT + 3);
  Event("other", 1, kT);
  ASSERT_TRUE(Settled());
  EXPECT_EQ(store_->counters().write_errors, 0u);

  HistoryQuery q;
  q.channel = "room";
  q.limit = 2;
  HistoryPage p = History(q);
  EXPECT_EQ(Texts(p), (std::vector<std::string>{E(5), E(4)}));
  ASSERT_TRUE(p.next);
  q.cursor = p.next;
  p = History(q);
  EXPECT_EQ(Texts(p), (std::vector<std::string>{E(3), E(2)}));
  q.cursor = p.next;
  p = History(q);
  EXPECT_EQ(Texts(p), (std::vector<std::string>{E(1)}));
  EXPECT_FALSE(p.next);

  HistoryQuery f;
  f.channel = "room";
  f.forwards = true;
  f.start = kT;
  f.end = kT + 2;
  f.limit = 3;
  p = History(f);
  EXPECT_EQ(Texts(p), (std::vector<std::string>{E(1), E(2), E(3)}));
  ASSERT_TRUE(p.next);
  f.cursor = p.next;
  p = History(f);
  EXPECT_EQ(Texts(p), (std::vector<std::string>{E(4)}));  // 5 is past `end`
  EXPECT_FALSE(p.next);

  HistoryQuery none;
  none.channel = "empty";
  EXPECT_TRUE(History(none).events.empty());
  // Kept no longer than the age limit, also when nothing more is written.
  const redis::Reply ttl = Admin({"PTTL", RedisStore::HistoryKey("room")});
  EXPECT_GT(ttl.integer, 0);
  EXPECT_LE(ttl.integer, 3600000);
}

TEST_F(RedisStoreTest, AnEventOlderThanTheLastIsStillKeptAfterIt) {
  Event("room", 1, kT);
  Event("room", 2, kT - 1000);  // a leave dated when its node's lease ended
  ASSERT_TRUE(Settled());
  EXPECT_EQ(store_->counters().write_errors, 0u);
  HistoryQuery q;
  q.channel = "room";
  q.forwards = true;
  EXPECT_EQ(Texts(History(q)), (std::vector<std::string>{E(1), E(2)}));
}

TEST_F(RedisStoreTest, EventsOlderThanTheAgeLimitAreTrimmedAndLaterOnesStillKept) {
  Event("room", 1, kT - 7200000);  // two hours old: trimmed at once, the stream is left empty
  ASSERT_TRUE(Settled());
  HistoryQuery q;
  q.channel = "room";
  q.forwards = true;
  EXPECT_TRUE(History(q).events.empty());
  clock_.Advance(1000);
  Event("room", 2, kT - 7300000);  // older than the stream's last id (which outlives the trim)
  Event("room", 3, kT + 1000);
  ASSERT_TRUE(Settled());
  EXPECT_EQ(store_->counters().write_errors, 0u);
  EXPECT_EQ(Texts(History(q)), (std::vector<std::string>{E(3)}));
}

TEST_F(RedisStoreTest, UsersKeepTheLatestLastSeenAndTheirStatus) {
  store_->PutLastSeen("ann", 500);
  store_->PutLastSeen("ann", 400);  // never backwards
  std::optional<Status> durable;
  store_->PutUserStatus(UserRecord{"bob", "dnd", "focus", 700}, [&](Status s) { durable = s; });
  ASSERT_TRUE(Settled());
  ASSERT_TRUE(durable.has_value());
  EXPECT_TRUE(durable->ok());
  std::vector<UserRecord> users = Users({"ann", "bob", "nobody"});
  ASSERT_EQ(users.size(), 2u);
  std::sort(users.begin(), users.end(),
            [](const UserRecord& a, const UserRecord& b) { return a.client_id < b.client_id; });
  EXPECT_EQ(users[0].client_id, "ann");
  EXPECT_EQ(users[0].last_seen, 500);
  EXPECT_EQ(users[0].manual, "");
  EXPECT_EQ(users[1].manual, "dnd");
  EXPECT_EQ(users[1].text, std::optional<std::string>("focus"));
  EXPECT_EQ(users[1].last_seen, 700);
  // Automatic again, without text; lastSeen 0 keeps it.
  store_->PutUserStatus(UserRecord{"bob", "", std::nullopt, 0}, nullptr);
  ASSERT_TRUE(Settled());
  users = Users({"bob"});
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].manual, "");
  EXPECT_FALSE(users[0].text.has_value());
  EXPECT_EQ(users[0].last_seen, 700);
  // ReadUser waits for the loop: from another thread.
  auto read = std::async(std::launch::async, [&] {
    auto r = store_->ReadUser("bob");
    loop_.reactor().Post([] {});  // wakes the loop to see the answer
    return r;
  });
  ASSERT_TRUE(loop_.RunUntil([&] { return read.wait_for(0s) == std::future_status::ready; }, 5s));
  auto bob = read.get();
  ASSERT_TRUE(bob.ok());
  ASSERT_TRUE(bob->has_value());
  EXPECT_EQ((*bob)->last_seen, 700);
}

TEST_F(RedisStoreTest, ActivitiesNewestFirstBoundedPerUser) {
  for (int i = 1; i <= 4; ++i) {
    store_->AppendActivity("ann", StoredActivity{"typing", i % 2 ? "room" : "",
                                                 JsonText::FromSerialized(std::to_string(i)),
                                                 clock_.NowMs() - 1000 + i, "c1"});
  }
  ASSERT_TRUE(Settled());
  std::optional<Result<std::vector<StoredActivity>>> got;
  store_->QueryActivities("ann", 10, std::nullopt, [&](auto r) { got = std::move(r); });
  ASSERT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
  ASSERT_TRUE(got->ok());
  ASSERT_EQ((*got)->size(), 3u);  // at most activity_max_per_user
  EXPECT_EQ((**got)[0].data.text(), "4");
  EXPECT_EQ((**got)[0].channel, "");
  EXPECT_EQ((**got)[2].data.text(), "2");
  EXPECT_EQ((**got)[1].channel, "room");
  got.reset();
  store_->QueryActivities("ann", 10, clock_.NowMs() - 1000 + 3,
                          [&](auto r) { got = std::move(r); });
  ASSERT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
  ASSERT_EQ((*got)->size(), 2u);  // `since` inclusive
}

TEST_F(RedisStoreTest, WithoutRedisWritesAreCountedAndReadsFail) {
  server_.Stop();
  ASSERT_TRUE(loop_.RunUntil([&] { return !admin_->up(); }, 5s));
  Event("room", 1, 1000);
  store_->PutLastSeen("ann", 5);
  ASSERT_TRUE(Settled());
  EXPECT_EQ(store_->counters().write_errors, 2u);
  std::optional<Result<HistoryPage>> got;
  HistoryQuery q;
  q.channel = "room";
  store_->QueryHistory(q, [&](Result<HistoryPage> r) { got = std::move(r); });
  ASSERT_TRUE(loop_.RunUntil([&] { return got.has_value(); }, 5s));
  EXPECT_FALSE(got->ok());
}

}  // namespace
}  // namespace presenced::storage
