// Process metrics, rendered in the Prometheus text format at /metrics. Counters are atomics
// updated from any thread (I/O threads and the presence loop); rendering reads them relaxed, so
// /metrics is rendered on an I/O thread. The network layer's counters are its own (net::Counters)
// and reach Render through Gauges; the engine's gauges are published by the presence loop after
// each round (PublishEngine).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presenced::protocol {

// A fixed-bucket latency histogram (seconds), lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0};
  void Observe(double seconds);
  // HELP and TYPE, then the series.
  void Render(std::string& out, const char* name, const char* help) const;
  // The series only, with `labels` (`op="enter"`) in every sample; nothing while empty.
  void RenderSeries(std::string& out, const char* name, std::string_view labels) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last = +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Values read at render time from their owners (engine, store, network layer).
struct Gauges {
  uint64_t channels = 0;
  uint64_t members = 0;
  uint64_t engine_connections = 0;  // live and in grace
  uint64_t users = 0;
  uint64_t storage_write_errors = 0;
  uint64_t storage_dropped_writes = 0;
  uint64_t storage_pending = 0;
  // The network layer's (net::Counters).
  uint64_t connections_open = 0;     // WebSocket sessions now
  uint64_t connections_total = 0;    // accepted WebSocket sessions
  uint64_t connections_refused = 0;  // over max connections, bad token
  uint64_t queue_drops_total = 0;    // sessions dropped for a full outbound queue
  // Ended WebSocket sessions by reason (`presenced_disconnects_total{reason=...}`).
  std::vector<std::pair<std::string_view, uint64_t>> disconnects;
};

struct Metrics {
  std::atomic<uint64_t> requests_total{0};  // WebSocket requests handled
  std::atomic<uint64_t> request_errors_total{0};
  std::atomic<uint64_t> rate_limited_total{0};
  std::atomic<uint64_t> events_total{0};            // presence events produced
  std::atomic<uint64_t> sync_conflations_total{0};  // `sync` frames replacing dropped events
  std::atomic<uint64_t> deliveries_total{0};        // event and status frames queued to sockets
  std::atomic<uint64_t> http_requests_total{0};
  std::atomic<uint64_t> storage_read_errors_total{0};  // failed reads of a user's stored state
  // Webhooks (protocol-ext §4): each try's result, and events dropped from a full queue.
  std::atomic<uint64_t> webhook_ok_total{0};
  std::atomic<uint64_t> webhook_error_total{0};
  std::atomic<uint64_t> webhook_dropped_total{0};
  std::atomic<uint64_t> webhook_overflow_total{0};
  std::atomic<uint64_t> webhook_queue_depth{0};  // events waiting, summed over endpoints
  // Request durations by op (index in AllOps(), ops.h): from the network layer's read of a
  // WebSocket request, or the start of a REST request, to its reply queued.
  static constexpr size_t kMaxOps = 64;
  std::array<LatencyHistogram, kMaxOps> op_latency;
  // Fan-out: from an event's creation to its frames handed to the sockets (the round's flush).
  LatencyHistogram fanout_latency;

  // The engine's gauges as of the end of its last round; written only by the presence loop.
  std::atomic<uint64_t> channels{0};
  std::atomic<uint64_t> members{0};
  std::atomic<uint64_t> engine_connections{0};
  std::atomic<uint64_t> users{0};
  std::atomic<uint64_t> agent_sessions{0};   // agent sessions (protocol-ext §3)
  std::atomic<uint64_t> session_workers{0};  // connections serving them

  // On the presence loop, at the end of each round (Dispatcher::Tick).
  void PublishEngine(uint64_t channel_count, uint64_t member_count, uint64_t connection_count,
                     uint64_t user_count);
  // Gauges with the published engine values filled in (the rest zero); any thread.
  Gauges EngineGauges() const;

  std::string Render(const Gauges& gauges) const;
};

}  // namespace presenced::protocol
