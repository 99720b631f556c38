// Engine benchmarks (W5 in the benchmark plan): operation throughput with fan-out to 10
// subscribers per channel, timer expiry throughput, bytes per member and allocations per
// operation. Run: make bench  (or build/release/bench/engine_bench).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"

// Counts every allocation in the process, for allocations per operation.
static std::atomic<uint64_t> g_allocations{0};
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace presenced::engine {
namespace {

// Stands in for the server: touches every recipient, as a real fan-out would.
class CountingSink final : public EventSink {
 public:
  void OnPresence(const PresenceEvent& e, std::span<const ConnectionHandle> to) override {
    for (ConnectionHandle h : to) delivered += (h != 0);
    serial_sum += e.serial;
  }
  void OnStatus(const StatusChange&, std::span<const ConnectionHandle> to) override {
    delivered += to.size();
  }
  void OnUserConnectivity(std::string_view, bool, TimeMs) override {}
  void OnActivity(std::string_view, const ActivityRecord&) override {}
  void OnConnectionExpired(ConnectionHandle) override {}
  uint64_t delivered = 0;
  uint64_t serial_sum = 0;
};

constexpr TimeMs kStart = 1700000000000;

struct World {
  explicit World(EngineConfig config = {}) : engine(config, clock, random, sink) {}
  ManualClock clock{kStart};
  SeededRandom random{1};
  CountingSink sink;
  Engine engine;
  std::vector<std::string> channels;
  std::vector<ConnectionHandle> members;

  // `channels` channels, each with `subscribers` subscribing connections; `members` member
  // connections (not yet entered).
  void Build(int channel_count, int subscribers, int member_count) {
    for (int c = 0; c < channel_count; ++c) {
      channels.push_back("channel-" + std::to_string(c));
      for (int s = 0; s < subscribers; ++s) {
        auto a = engine.Attach("sub-" + std::to_string(c) + "-" + std::to_string(s), "bench", 1000);
        (void)engine.Subscribe(a->handle, channels.back(), kAllActions, std::nullopt);
      }
    }
    for (int m = 0; m < member_count; ++m) {
      members.push_back(engine.Attach("user-" + std::to_string(m), "bench", 1000)->handle);
    }
  }
};

// One "operation" = one enter, update or leave; each is fanned out to 10 subscribers.
void BM_EnterUpdateLeave(benchmark::State& state) {
  World w;
  w.Build(1000, 10, 10000);
  const JsonText data = JsonText::FromSerialized(R"({"status":"typing","cursor":{"x":10,"y":20}})");
  size_t i = 0;
  uint64_t ops = 0;
  const uint64_t allocs_before = g_allocations.load();
  for (auto _ : state) {
    const ConnectionHandle m = w.members[i % w.members.size()];
    const std::string& ch = w.channels[i % w.channels.size()];
    benchmark::DoNotOptimize(w.engine.Enter(m, ch, data, std::nullopt));
    benchmark::DoNotOptimize(w.engine.Update(m, ch, data, false, std::nullopt));
    benchmark::DoNotOptimize(w.engine.Leave(m, ch, std::nullopt));
    ops += 3;
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(ops));
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kIsRate);
  state.counters["deliveries/s"] =
      benchmark::Counter(static_cast<double>(w.sink.delivered), benchmark::Counter::kIsRate);
  state.counters["allocs/op"] =
      static_cast<double>(g_allocations.load() - allocs_before) / static_cast<double>(ops);
}
BENCHMARK(BM_EnterUpdateLeave);

// Steady-state updates of present members (the common case: cursors, typing, status data), in
// a random order. Arg: members (in channels of 10 members and 10 subscribers each); the larger
// world does not fit in cache, so it mostly measures memory latency.
void BM_Update(benchmark::State& state) {
  World w;
  const int members = static_cast<int>(state.range(0));
  w.Build(members / 10, 10, members);
  const JsonText data = JsonText::FromSerialized(R"({"status":"typing","cursor":{"x":10,"y":20}})");
  for (size_t m = 0; m < w.members.size(); ++m) {
    (void)w.engine.Enter(w.members[m], w.channels[m % w.channels.size()], data, std::nullopt);
  }
  size_t i = 0;
  uint64_t ops = 0;
  const uint64_t allocs_before = g_allocations.load();
  for (auto _ : state) {
    const size_t m = (i * 7919) % w.members.size();
    benchmark::DoNotOptimize(w.engine.Update(w.members[m], w.channels[m % w.channels.size()], data,
                                             false, std::nullopt));
    ++ops;
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(ops));
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kIsRate);
  state.counters["allocs/op"] =
      static_cast<double>(g_allocations.load() - allocs_before) / static_cast<double>(ops);
}
BENCHMARK(BM_Update)->Arg(1000)->Arg(10000)->Arg(100000);

// TTL expiry: N members with staggered TTLs expire in one Tick; reported per expired member.
void BM_TimerExpiry(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  uint64_t expired = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto w = std::make_unique<World>();
    w->Build(1000, 10, 0);
    std::vector<ConnectionHandle> conns;
    for (int m = 0; m < n / 10; ++m)
      conns.push_back(w->engine.Attach("u" + std::to_string(m), "b", 0)->handle);
    for (int m = 0; m < n; ++m) {
      (void)w->engine.Enter(conns[m % conns.size()], w->channels[m % 1000], JsonText(),
                            1000 + (m * 37) % 5000);
    }
    w->clock.Advance(10000);
    state.ResumeTiming();
    w->engine.Tick();
    state.PauseTiming();
    expired += static_cast<uint64_t>(n) - w->engine.member_count();
    w.reset();
    state.ResumeTiming();
  }
  state.counters["expiries/s"] =
      benchmark::Counter(static_cast<double>(expired), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TimerExpiry)->Arg(100000)->Unit(benchmark::kMillisecond);

// Bytes per member, measured with the allocator's own accounting (mallinfo2): 10,000
// connections each enter 100 channels (1,000,000 members in 10,000 channels of 100), data null.
// `ring` selects the per-channel event ring capacity: 1000 (the default) or 1 (state alone).
void BM_BytesPerMember(benchmark::State& state) {
  const size_t ring = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    EngineConfig config;
    config.event_ring_capacity = ring;
    config.limits.max_channels_per_connection = 10000;
    World w(config);
    w.Build(0, 0, 10000);
    std::vector<std::string> channels;
    for (int c = 0; c < 10000; ++c) channels.push_back("channel-" + std::to_string(c));
    // Create the channels first, so the measurement is the members' own cost.
    ConnectionHandle seed = w.engine.Attach("seed", "b", 0)->handle;
    for (const auto& ch : channels) (void)w.engine.Enter(seed, ch, JsonText(), std::nullopt);
    malloc_trim(0);
    const size_t before = mallinfo2().uordblks;
    for (size_t m = 0; m < w.members.size(); ++m) {
      for (int k = 0; k < 100; ++k) {
        (void)w.engine.Enter(w.members[m],
                             channels[(m + static_cast<size_t>(k) * 101) % channels.size()],
                             JsonText(), std::nullopt);
      }
    }
    const size_t after = mallinfo2().uordblks;
    const double members = static_cast<double>(w.engine.member_count() - channels.size());
    state.counters["bytes/member"] = static_cast<double>(after - before) / members;
    state.counters["members"] = members;
  }
}
BENCHMARK(BM_BytesPerMember)->Arg(1000)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace presenced::engine

BENCHMARK_MAIN();
