// Behaviour shared by every Store (run against SqliteStore and MemoryStore), and the SQLite
// store's durability and fault handling.
#include "storage/sqlite_store.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "storage/memory_store.h"

namespace presenced::storage {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("presenced-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

template <typename T, typename Fn>
T Wait(Fn&& start) {
  std::promise<T> p;
  start([&](T v) { p.set_value(std::move(v)); });
  return p.get_future().get();
}

HistoryPage History(Store& s, HistoryQuery q) {
  auto r = Wait<Result<HistoryPage>>([&](auto done) { s.QueryHistory(std::move(q), done); });
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : HistoryPage{};
}

std::vector<std::string> Bodies(const HistoryPage& p) {
  std::vector<std::string> out;
  for (auto& e : p.events) out.push_back(*e);
  return out;
}

void Add(Store& s, const std::string& ch, uint64_t serial, TimeMs t) {
  s.AppendEvent({ch, serial, t, std::make_shared<const std::string>(std::to_string(serial))});
}

HistoryQuery Q(std::string ch, size_t limit = 100, bool forwards = false) {
  HistoryQuery q;
  q.channel = std::move(ch);
  q.limit = limit;
  q.forwards = forwards;
  return q;
}

ManualClock g_clock(1700000000000);

// ----- Every store ----------------------------------------------------------------------------

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = std::make_unique<MemoryStore>();
    } else {
      SqliteOptions o;
      o.path = dir_.file("presenced.db");
      auto s = SqliteStore::Open(o, g_clock);
      ASSERT_TRUE(s.ok()) << s.error().message;
      store_ = std::move(s).value();
    }
  }
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, HistoryByTimeLimitDirectionAndCursor) {
  for (uint64_t i = 1; i <= 5; ++i) Add(*store_, "a", i, static_cast<TimeMs>(i * 10));
  Add(*store_, "b", 1, 10);
  EXPECT_EQ(Bodies(History(*store_, Q("a"))), (std::vector<std::string>{"5", "4", "3", "2", "1"}));
  HistoryQuery ranged = Q("a", 100, true);
  ranged.start = 20;
  ranged.end = 40;
  EXPECT_EQ(Bodies(History(*store_, ranged)), (std::vector<std::string>{"2", "3", "4"}));

  // Paging: each page continues where the last ended, and the last page has no cursor.
  HistoryQuery page = Q("a", 2, false);
  std::vector<std::string> all;
  for (int n = 0; n < 5; ++n) {
    HistoryPage p = History(*store_, page);
    for (auto& b : Bodies(p)) all.push_back(b);
    if (!p.next) break;
    page.cursor = p.next;
  }
  EXPECT_EQ(all, (std::vector<std::string>{"5", "4", "3", "2", "1"}));
  EXPECT_FALSE(History(*store_, Q("a", 5)).next.has_value());
  EXPECT_TRUE(History(*store_, Q("nowhere")).events.empty());
}

TEST_P(StoreTest, ActivitiesNewestFirstWithLimitAndSince) {
  for (int i = 0; i < 4; ++i) {
    store_->AppendActivity(
        "u", StoredActivity{"k" + std::to_string(i), i % 2 ? "room" : "",
                            JsonText::FromSerialized("{\"i\":" + std::to_string(i) + "}"), 100 + i,
                            "c1"});
  }
  auto r = Wait<Result<std::vector<StoredActivity>>>(
      [&](auto done) { store_->QueryActivities("u", 3, 101, done); });
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].kind, "k3");
  EXPECT_EQ((*r)[0].channel, "room");
  EXPECT_EQ((*r)[0].data.text(), "{\"i\":3}");
  EXPECT_EQ((*r)[2].timestamp, 101);
}

TEST_P(StoreTest, UsersKeepStatusTextAndLastSeen) {
  std::promise<Status> durable;
  store_->PutUserStatus(UserRecord{"ann", "dnd", std::string("Focus"), 0},
                        [&](Status s) { durable.set_value(s); });
  EXPECT_TRUE(durable.get_future().get().ok());
  store_->PutLastSeen("ann", 1234);
  store_->PutLastSeen("bob", 99);
  store_->Flush();
  auto ann = store_->ReadUser("ann");
  ASSERT_TRUE(ann.ok() && ann->has_value());
  EXPECT_EQ((*ann)->manual, "dnd");
  EXPECT_EQ((*ann)->text, "Focus");
  EXPECT_EQ((*ann)->last_seen, 1234);
  auto users = Wait<Result<std::vector<UserRecord>>>([&](auto done) {
    store_->GetUsers({"bob", "nobody", "ann"}, done);
  });
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 2u);
  EXPECT_FALSE(store_->ReadUser("nobody")->has_value());
}

TEST_P(StoreTest, LastSeenNeverMovesBackwardsNorToZero) {
  // Writes of lastSeen commit in whatever order they were queued (a checkpoint, a late offline
  // write, a value read before the last commit): the stored value is the newest of them.
  store_->PutLastSeen("ann", 2000);
  store_->PutLastSeen("ann", 1000);
  store_->PutLastSeen("ann", 0);
  std::promise<Status> durable;
  store_->PutUserStatus(UserRecord{"ann", "away", std::nullopt, 1500},
                        [&](Status s) { durable.set_value(s); });
  ASSERT_TRUE(durable.get_future().get().ok());
  store_->Flush();
  auto ann = store_->ReadUser("ann");
  ASSERT_TRUE(ann.ok() && ann->has_value());
  EXPECT_EQ((*ann)->last_seen, 2000);
  EXPECT_EQ((*ann)->manual, "away");
  store_->PutLastSeen("ann", 2500);
  store_->Flush();
  EXPECT_EQ((*store_->ReadUser("ann"))->last_seen, 2500);
  store_->PutLastSeen("nobody", 0);  // "never seen" creates no record
  store_->Flush();
  EXPECT_FALSE(store_->ReadUser("nobody")->has_value());
}

TEST_P(StoreTest, AStatusOnDiskCarriesTheLastSeenOfItsMoment) {
  // The lastSeen race: a status write committed alone (its reply sent) while the user's lastSeen
  // waited for the next commit, so a kill -9 in between left the user with no lastSeen at all.
  // The status write carries lastSeen in the same commit: once `durable` runs, both are on disk,
  // as the read connection (committed data only) sees.
  std::promise<Result<std::optional<UserRecord>>> seen;
  Store* store = store_.get();
  store_->PutUserStatus(UserRecord{"kim", "dnd", std::string("Lunch"), 4242}, [&](Status s) {
    EXPECT_TRUE(s.ok());
    seen.set_value(store->ReadUser("kim"));
  });
  auto kim = seen.get_future().get();
  ASSERT_TRUE(kim.ok() && kim->has_value());
  EXPECT_EQ((*kim)->manual, "dnd");
  EXPECT_EQ((*kim)->last_seen, 4242);
  // A status without a lastSeen (0) keeps the stored one.
  std::promise<Status> again;
  store_->PutUserStatus(UserRecord{"kim", "", std::nullopt, 0},
                        [&](Status s) { again.set_value(s); });
  ASSERT_TRUE(again.get_future().get().ok());
  EXPECT_EQ((*store_->ReadUser("kim"))->last_seen, 4242);
  EXPECT_EQ((*store_->ReadUser("kim"))->manual, "");
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("sqlite", "memory"));

// ----- SQLite ---------------------------------------------------------------------------------

TEST(SqliteStoreTest, SurvivesReopen) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  {
    auto s = SqliteStore::Open(o, g_clock);
    ASSERT_TRUE(s.ok());
    Add(**s, "a", 1, 10);
    (*s)->PutLastSeen("ann", 77);
  }  // destruction flushes
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Bodies(History(**s, Q("a"))), std::vector<std::string>{"1"});
  EXPECT_EQ((*(*s)->ReadUser("ann"))->last_seen, 77);
}

TEST(SqliteStoreTest, TheWebhookOutboxSurvivesReopenAndDeletesStick) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  {
    auto s = SqliteStore::Open(o, g_clock);
    ASSERT_TRUE(s.ok());
    (*s)->PutWebhook({"http://a/hook", 1, "e-1", 100, R"({"id":"e-1"})"});
    (*s)->PutWebhook({"http://a/hook", 2, "e-2", 101, R"({"id":"e-2"})"});
    (*s)->PutWebhook({"http://b/hook", 1, "e-1", 100, R"({"id":"e-1"})"});
    (*s)->DeleteWebhook("http://a/hook", 1);
  }
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  auto rows = (*s)->LoadWebhooks();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].endpoint, "http://a/hook");
  EXPECT_EQ((*rows)[0].seq, 2u);
  EXPECT_EQ((*rows)[0].id, "e-2");
  EXPECT_EQ((*rows)[0].created_at, 101);
  EXPECT_EQ((*rows)[0].body, R"({"id":"e-2"})");
  EXPECT_EQ((*rows)[1].endpoint, "http://b/hook");
}

TEST(SqliteStoreTest, ASchemaOneDatabaseIsMigratedKeepingItsData) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  {
    auto s = SqliteStore::Open(o, g_clock);
    ASSERT_TRUE(s.ok());
    Add(**s, "a", 1, 10);
  }
  {
    // Back to schema 1, as an older presenced left it.
    sqlite3* db;
    sqlite3_open(o.path.c_str(), &db);
    sqlite3_exec(db, "DROP TABLE webhooks; DROP TABLE revocations; PRAGMA user_version=1", nullptr,
                 nullptr, nullptr);
    sqlite3_close(db);
  }
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Bodies(History(**s, Q("a"))), std::vector<std::string>{"1"});
  (*s)->PutWebhook({"http://a/hook", 1, "e-1", 100, "{}"});
  (*s)->Flush();
  EXPECT_EQ((*s)->LoadWebhooks()->size(), 1u);
}

// Threads of this process whose nice value is `nice` (/proc/self/task/*/stat, field 19).
int ThreadsWithNice(int nice) {
  int n = 0;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t end = stat.rfind(')');  // the name may hold spaces and parentheses
    if (end == std::string::npos) continue;
    std::istringstream fields(stat.substr(end + 2));
    std::string f;
    for (int i = 3; i <= 19 && fields >> f; ++i) {
      if (i == 19 && std::stoi(f) == nice) ++n;
    }
  }
  return n;
}

TEST(SqliteStoreTest, TheStorageThreadRunsAtItsNiceValueAndOnlyIt) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  o.storage_nice = 7;
  const int before = ThreadsWithNice(7);
  const int mine = getpriority(PRIO_PROCESS, 0);  // Linux: this thread's
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  (*s)->Flush();  // the thread has started (and lowered its priority) by the time this returns
  EXPECT_EQ(ThreadsWithNice(7), before + 1);
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), mine);  // the caller's thread is untouched
}

TEST(SqliteStoreTest, QueriesSeeWritesQueuedBeforeThem) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  o.flush_interval_ms = 60000;  // no timed flush: only the query forces the commit
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  Add(**s, "a", 1, 10);
  EXPECT_EQ(History(**s, Q("a")).events.size(), 1u);
}

TEST(SqliteStoreTest, WritesAreCommittedWithinTheFlushIntervalWithoutAQuery) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  o.flush_interval_ms = 20;
  o.retention_interval_ms = 600000;  // the idle wait is long: the first write must wake the thread
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  (*s)->Flush();  // the thread is now idle, waiting for retention
  Add(**s, "a", 1, 10);
  const auto start = std::chrono::steady_clock::now();
  while ((*s)->counters().pending != 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    std::this_thread::yield();
  }
  // Committed, as another connection sees.
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(o.path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(SqliteStoreTest, RetentionByCountAndAge) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  o.history_max_per_channel = 3;
  o.activity_max_per_user = 2;
  o.history_max_age_ms = 1000;
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  const TimeMs now = g_clock.NowMs();
  Add(**s, "old", 1, now - 5000);
  for (uint64_t i = 1; i <= 6; ++i) Add(**s, "a", i, now);
  for (int i = 0; i < 5; ++i)
    (*s)->AppendActivity("u", StoredActivity{"k", "", JsonText(), now, "c"});
  (*s)->EnforceRetention();
  EXPECT_EQ(Bodies(History(**s, Q("a", 100, true))), (std::vector<std::string>{"4", "5", "6"}));
  EXPECT_TRUE(History(**s, Q("old")).events.empty());
  auto acts = Wait<Result<std::vector<StoredActivity>>>(
      [&](auto done) { (*s)->QueryActivities("u", 100, std::nullopt, done); });
  EXPECT_EQ(acts->size(), 2u);
}

TEST(SqliteStoreTest, RefusesAFileThatIsNotADatabaseAndLeavesItUntouched) {
  TempDir dir;
  const std::string path = dir.file("presenced.db");
  const std::string junk(8192, 'x');
  std::ofstream(path) << junk;
  SqliteOptions o;
  o.path = path;
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a presenced database"), std::string::npos)
      << s.error().message;
  std::ifstream in(path);
  std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, junk);
  EXPECT_FALSE(fs::exists(path + "-wal"));
}

TEST(SqliteStoreTest, RefusesANewerSchema) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  {
    sqlite3* db;
    sqlite3_open(o.path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("newer"), std::string::npos);
}

TEST(SqliteStoreTest, AFullDiskIsCountedAndLaterWritesStillWork) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("presenced.db");
  o.max_bytes = 256 * 1024;
  o.history_max_per_channel = 0;
  std::atomic<int> reported{0};
  o.on_error = [&](const std::string& why) {
    EXPECT_NE(why.find("full"), std::string::npos) << why;
    ++reported;
  };
  auto s = SqliteStore::Open(o, g_clock);
  ASSERT_TRUE(s.ok());
  const std::string big(4000, 'z');
  for (int batch = 0; batch < 20; ++batch) {
    for (int i = 0; i < 20; ++i) {
      (*s)->AppendEvent({"a", 1, 1, std::make_shared<const std::string>(big)});
    }
    (*s)->Flush();
  }
  EXPECT_GT((*s)->counters().write_errors, 0u);
  EXPECT_EQ(static_cast<uint64_t>(reported.load()), (*s)->counters().write_errors);
  // What was stored before the disk filled is still there, and the store still answers.
  EXPECT_FALSE(History(**s, Q("a", 1)).events.empty());
  (*s)->PutLastSeen("ann", 5);
  (*s)->Flush();
}

TEST(DataDirTest, CreatesLocksAndRefuses) {
  TempDir dir;
  const std::string data = dir.file("data");
  auto first = DataDir::Lock(data);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = DataDir::Lock(data);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use"), std::string::npos);
  first->reset();
  EXPECT_TRUE(DataDir::Lock(data).ok());

  EXPECT_FALSE(DataDir::Lock(dir.file("missing/data")).ok());
  std::ofstream(dir.file("file")) << "x";
  auto not_dir = DataDir::Lock(dir.file("file"));
  ASSERT_FALSE(not_dir.ok());
  EXPECT_NE(not_dir.error().message.find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace presenced::storage
