// Process metrics, rendered in the Prometheus text format at /metrics. Counters are atomics
// updated from any thread (I/O threads and the engine thread); rendering reads them relaxed.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace presenced::protocol {

// A fixed-bucket latency histogram (seconds), lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0};
  void Observe(double seconds);
  void Render(std::string& out, const char* name, const char* help) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last = +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Values read at render time from their owners (engine, store).
struct Gauges {
  uint64_t channels = 0;
  uint64_t members = 0;
  uint64_t engine_connections = 0;  // live and in grace
  uint64_t users = 0;
  uint64_t storage_write_errors = 0;
  uint64_t storage_dropped_writes = 0;
  uint64_t storage_pending = 0;
};

struct Metrics {
  std::atomic<uint64_t> connections_open{0};     // WebSocket sessions now
  std::atomic<uint64_t> connections_total{0};    // accepted WebSocket sessions
  std::atomic<uint64_t> connections_refused{0};  // over max connections, bad token
  std::atomic<uint64_t> requests_total{0};       // WebSocket requests handled
  std::atomic<uint64_t> request_errors_total{0};
  std::atomic<uint64_t> rate_limited_total{0};
  std::atomic<uint64_t> events_total{0};       // presence events produced
  std::atomic<uint64_t> deliveries_total{0};   // event and status frames queued to sockets
  std::atomic<uint64_t> queue_drops_total{0};  // sessions dropped for a full outbound queue
  std::atomic<uint64_t> http_requests_total{0};
  LatencyHistogram request_latency;

  std::string Render(const Gauges& engine) const;
};

}  // namespace presenced::protocol
