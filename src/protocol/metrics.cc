// Metrics (metrics.h): Prometheus text rendering; counters from any thread.
#include "protocol/metrics.h"

#include <cstdio>

#include "protocol/ops.h"

namespace presenced::protocol {

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void LatencyHistogram::Render(std::string& out, const char* name, const char* help) const {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  out += line;
  const uint64_t count = count_.load(std::memory_order_relaxed);
  if (count == 0) {
    // An empty histogram still shows its series (a dashboard sees it exists).
    std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} 0\n%s_sum 0\n%s_count 0\n", name, name,
                  name);
    out += line;
    return;
  }
  RenderSeries(out, name, "");
}

void LatencyHistogram::RenderSeries(std::string& out, const char* name,
                                    std::string_view labels) const {
  const uint64_t count = count_.load(std::memory_order_relaxed);
  if (count == 0) return;
  const std::string sep = labels.empty() ? std::string() : std::string(labels) + ",";
  const std::string only = labels.empty() ? std::string() : "{" + std::string(labels) + "}";
  char line[256];
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    if (i < kBounds.size()) {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"%g\"} %llu\n", name, sep.c_str(),
                    kBounds[i], static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, sep.c_str(),
                    static_cast<unsigned long long>(cumulative));
    }
    out += line;
  }
  std::snprintf(line, sizeof line, "%s_sum%s %.6f\n%s_count%s %llu\n", name, only.c_str(),
                static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6, name,
                only.c_str(), static_cast<unsigned long long>(cumulative));
  out += line;
}

namespace {
void Metric(std::string& out, const char* name, const char* type, const char* help, uint64_t v) {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
                name, static_cast<unsigned long long>(v));
  out += line;
}
}  // namespace

void Metrics::PublishEngine(uint64_t channel_count, uint64_t member_count,
                            uint64_t connection_count, uint64_t user_count) {
  channels.store(channel_count, std::memory_order_relaxed);
  members.store(member_count, std::memory_order_relaxed);
  engine_connections.store(connection_count, std::memory_order_relaxed);
  users.store(user_count, std::memory_order_relaxed);
}

Gauges Metrics::EngineGauges() const {
  Gauges g;
  g.channels = channels.load(std::memory_order_relaxed);
  g.members = members.load(std::memory_order_relaxed);
  g.engine_connections = engine_connections.load(std::memory_order_relaxed);
  g.users = users.load(std::memory_order_relaxed);
  return g;
}

std::string Metrics::Render(const Gauges& e) const {
  std::string out;
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  Metric(out, "presenced_connections", "gauge", "Open WebSocket sessions.", e.connections_open);
  Metric(out, "presenced_connections_total", "counter", "Accepted WebSocket sessions.",
         e.connections_total);
  Metric(out, "presenced_connections_refused_total", "counter",
         "Upgrades refused (bad token, connection limit).", e.connections_refused);
  Metric(out, "presenced_engine_connections", "gauge",
         "Connections known to the engine (live or in grace).", e.engine_connections);
  Metric(out, "presenced_channels", "gauge", "Channels with members or subscribers.", e.channels);
  Metric(out, "presenced_members", "gauge", "Presence members in all channels.", e.members);
  Metric(out, "presenced_users", "gauge",
         "Users the engine holds (connected, in grace, watched, recently seen); not who is online.",
         e.users);
  out +=
      "# HELP presenced_webhook_deliveries_total Webhook tries by result (ok, error: "
      "retried, dropped: given up after webhook_retry_ms, overflow: dropped from a full "
      "queue).\n# TYPE presenced_webhook_deliveries_total counter\n";
  for (const auto& [result, n] :
       {std::pair{"ok", v(webhook_ok_total)}, std::pair{"error", v(webhook_error_total)},
        std::pair{"dropped", v(webhook_dropped_total)},
        std::pair{"overflow", v(webhook_overflow_total)}}) {
    out += "presenced_webhook_deliveries_total{result=\"";
    out += result;
    out += "\"} " + std::to_string(n) + "\n";
  }
  Metric(out, "presenced_webhook_queue_depth", "gauge",
         "Webhook events waiting for delivery, summed over endpoints.", v(webhook_queue_depth));
  Metric(out, "presenced_agent_sessions", "gauge", "Agent sessions, starting or running.",
         v(agent_sessions));
  Metric(out, "presenced_session_workers", "gauge", "Connections serving agent sessions.",
         v(session_workers));
  Metric(out, "presenced_requests_total", "counter", "WebSocket requests handled.",
         v(requests_total));
  Metric(out, "presenced_request_errors_total", "counter",
         "WebSocket requests answered with an error.", v(request_errors_total));
  Metric(out, "presenced_rate_limited_total", "counter", "Requests refused by the rate limit.",
         v(rate_limited_total));
  Metric(out, "presenced_events_total", "counter", "Presence events produced (events in).",
         v(events_total));
  Metric(out, "presenced_sync_conflations_total", "counter",
         "Sync frames sent to slow subscribers in place of the events they could not take.",
         v(sync_conflations_total));
  Metric(out, "presenced_deliveries_total", "counter",
         "Event and status frames queued to sockets (events out).", v(deliveries_total));
  Metric(out, "presenced_queue_drops_total", "counter",
         "Sessions disconnected because their outbound queue was full.", e.queue_drops_total);
  if (!e.disconnects.empty()) {
    out +=
        "# HELP presenced_disconnects_total WebSocket sessions ended, by reason.\n"
        "# TYPE presenced_disconnects_total counter\n";
    for (const auto& [reason, n] : e.disconnects) {
      out += "presenced_disconnects_total{reason=\"";
      out += reason;
      out += "\"} ";
      out += std::to_string(n);
      out += '\n';
    }
  }
  Metric(out, "presenced_http_requests_total", "counter", "HTTP requests handled.",
         v(http_requests_total));
  Metric(out, "presenced_storage_write_errors_total", "counter",
         "Failed storage commits (disk full, I/O error); live presence continues.",
         e.storage_write_errors);
  Metric(out, "presenced_storage_read_errors_total", "counter",
         "Failed reads of what the store remembers of a connecting user (taken as nothing).",
         v(storage_read_errors_total));
  Metric(out, "presenced_storage_dropped_writes_total", "counter",
         "Writes refused because the storage queue was full.", e.storage_dropped_writes);
  Metric(out, "presenced_storage_pending", "gauge", "Writes queued for the next commit.",
         e.storage_pending);
  out +=
      "# HELP presenced_request_duration_seconds Request durations by op: from reading a "
      "WebSocket request (or starting a REST one) to queuing its reply.\n"
      "# TYPE presenced_request_duration_seconds histogram\n";
  const auto ops = AllOps();
  for (size_t i = 0; i < ops.size() && i < kMaxOps; ++i) {
    op_latency[i].RenderSeries(out, "presenced_request_duration_seconds",
                               "op=\"" + std::string(ops[i].name) + "\"");
  }
  fanout_latency.Render(out, "presenced_fanout_latency_seconds",
                        "From a presence event's creation to its frames handed to the sockets.");
  return out;
}

}  // namespace presenced::protocol
