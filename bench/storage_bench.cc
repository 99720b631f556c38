// Storage benchmarks: sustained history writes through the SQLite store (group commit on its own
// thread), and engine throughput with and without every event being handed to the store, to show
// that storing history does not slow the engine. Run: build/release/bench/storage_bench
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"
#include "storage/sqlite_store.h"

namespace presenced {
namespace {

namespace fs = std::filesystem;
constexpr TimeMs kStart = 1700000000000;

std::string TempDb() {
  const fs::path dir = fs::temp_directory_path() / "presenced-storage-bench";
  fs::remove_all(dir);
  fs::create_directories(dir);
  return (dir / "presenced.db").string();
}

// A typical presence event as stored: ~230 bytes of JSON.
std::shared_ptr<const std::string> EventJson() {
  return std::make_shared<const std::string>(
      R"({"type":"presence","channel":"channel-123","action":"update","member":{"clientId":"user-4567",)"
      R"("connectionId":"AbCdEfGhIjKlMnOp","data":{"status":"typing","cursor":{"x":10,"y":20}},)"
      R"("timestamp":1700000000000,"expiresAt":null},"serial":42})");
}

// Sustained history writes: the producer appends (as the engine thread does), the storage thread
// commits in batches; the clock stops when everything is on disk.
void BM_SqliteHistoryWrites(benchmark::State& state) {
  SystemClock clock;
  storage::SqliteOptions o;
  o.path = TempDb();
  o.history_max_per_channel = 0;
  auto store = storage::SqliteStore::Open(o, clock);
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  auto json = EventJson();
  const int64_t batch = state.range(0);
  uint64_t serial = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < batch; ++i) {
      (*store)->AppendEvent({"channel-" + std::to_string(i % 1000), ++serial, kStart + i, json});
    }
    (*store)->Flush();
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SqliteHistoryWrites)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

// What storing costs the engine thread: one AppendEvent (lock, push, unlock) per event, while the
// storage thread commits in parallel. Fixed iterations, so the queue never hits its bound.
void BM_AppendCostOnEngineThread(benchmark::State& state) {
  SystemClock clock;
  storage::SqliteOptions o;
  o.path = TempDb();
  o.history_max_per_channel = 0;
  auto store = std::move(storage::SqliteStore::Open(o, clock)).value();
  auto json = EventJson();
  const std::string channel = "channel-1";
  uint64_t serial = 0;
  for (auto _ : state) store->AppendEvent({channel, ++serial, kStart, json});
  store->Flush();  // after the timed loop
  state.counters["dropped"] = static_cast<double>(store->counters().dropped_writes);
}
BENCHMARK(BM_AppendCostOnEngineThread)->Iterations(200000);

// Engine enter/update/leave with every event appended to a store (as the server does) or not.
class StoringSink final : public engine::EventSink {
 public:
  explicit StoringSink(storage::Store* store) : store_(store) {}
  void OnPresence(const engine::PresenceEvent& e,
                  std::span<const engine::ConnectionHandle> to) override {
    delivered += to.size();
    if (store_) store_->AppendEvent({std::string(e.channel), e.serial, e.member.timestamp, json_});
  }
  void OnStatus(const engine::StatusChange&, std::span<const engine::ConnectionHandle>) override {}
  void OnUserConnectivity(std::string_view, bool, TimeMs) override {}
  void OnActivity(std::string_view, const engine::ActivityRecord&) override {}
  void OnConnectionExpired(engine::ConnectionHandle) override {}
  uint64_t delivered = 0;

 private:
  storage::Store* store_;
  std::shared_ptr<const std::string> json_ = EventJson();
};

void BM_EngineOps(benchmark::State& state, bool with_store) {
  SystemClock sys;
  std::unique_ptr<storage::SqliteStore> store;
  if (with_store) {
    storage::SqliteOptions o;
    o.path = TempDb();
    o.history_max_per_channel = 0;
    store = std::move(storage::SqliteStore::Open(o, sys)).value();
  }
  ManualClock clock(kStart);
  SeededRandom random(1);
  StoringSink sink(store.get());
  engine::Engine e({}, clock, random, sink);
  std::vector<std::string> channels;
  std::vector<engine::ConnectionHandle> members;
  for (int c = 0; c < 1000; ++c) {
    channels.push_back("channel-" + std::to_string(c));
    for (int s = 0; s < 10; ++s) {
      auto a = e.Attach("sub-" + std::to_string(c) + "-" + std::to_string(s), "b", 1000);
      (void)e.Subscribe(a->handle, channels.back(), engine::kAllActions, std::nullopt);
    }
  }
  for (int m = 0; m < 10000; ++m)
    members.push_back(e.Attach("user-" + std::to_string(m), "b", 1000)->handle);
  const JsonText data = JsonText::FromSerialized(R"({"status":"typing"})");
  size_t i = 0;
  for (auto _ : state) {
    const auto m = members[i % members.size()];
    const auto& ch = channels[i % channels.size()];
    benchmark::DoNotOptimize(e.Enter(m, ch, data, std::nullopt));
    benchmark::DoNotOptimize(e.Update(m, ch, data, false, std::nullopt));
    benchmark::DoNotOptimize(e.Leave(m, ch, std::nullopt));
    ++i;
  }
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 3), benchmark::Counter::kIsRate);
  if (store) {
    const auto before = std::chrono::steady_clock::now();
    store->Flush();
    state.counters["drain_ms"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - before)
            .count();
    state.counters["dropped"] = static_cast<double>(store->counters().dropped_writes);
  }
}
BENCHMARK_CAPTURE(BM_EngineOps, no_store, false);
BENCHMARK_CAPTURE(BM_EngineOps, sqlite_store, true);

}  // namespace
}  // namespace presenced

BENCHMARK_MAIN();
