// Service: adapts the network layer (net::Service) to presenced. Every call that touches presence
// state is posted to the EngineLoop; what needs no presence state is answered on the calling I/O
// thread, never queued behind presence work: token checks (AuthorizeUpgrade), the dashboard's
// files, GET /v1/healthz and GET /metrics (HandleHttp). What the store remembers of a connecting
// user is read by the Dispatcher, on the store's thread (Dispatcher::Open).
//
// Threading: every method is called on I/O threads and is thread-safe. Construct it before the
// net::Server and hand it the server's counters (SetNetCounters) before Listen. Everything passed
// to the constructor must outlive the Service.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "net/server.h"
#include "protocol/dispatcher.h"
#include "protocol/metrics.h"
#include "server/config.h"
#include "server/engine_loop.h"
#include "storage/store.h"

namespace presenced::server {

class Service final : public net::Service {
 public:
  Service(EngineLoop& loop, protocol::Dispatcher& dispatcher, storage::Store& store,
          protocol::Metrics& metrics, const Config& config, const Clock& clock);

  // The network layer's counters, rendered at /metrics. Call once, before the server listens.
  void SetNetCounters(const net::Counters* counters) { net_counters_ = counters; }
  // Cluster mode: whether this node reaches Redis (and holds its lease). Thread-safe. Until the
  // first call healthz says nothing of Redis (single node); after it, down is a 503.
  void SetRedisUp(bool up) { redis_state_.store(up ? 1 : 0, std::memory_order_relaxed); }
  void CountFenced() { fenced_total_.fetch_add(1, std::memory_order_relaxed); }
  void CountSnapshotSaved() { snapshots_saved_.fetch_add(1, std::memory_order_relaxed); }
  void CountSnapshotLoaded() { snapshots_loaded_.fetch_add(1, std::memory_order_relaxed); }
  // Entries missed that no snapshot covered: this node's state may differ from the others'.
  void CountLogGap() { log_gaps_.fetch_add(1, std::memory_order_relaxed); }

  Result<net::Upgrade> AuthorizeUpgrade(const HttpRequest& req) override;
  void HandleHttp(HttpRequest req, std::function<void(HttpResponse)> done) override;
  void OnOpen(SessionId id, std::shared_ptr<void> attachment, std::shared_ptr<Peer> peer) override;
  void OnMessage(SessionId id, std::string text, std::chrono::steady_clock::time_point received,
                 std::function<void()> processed) override;
  void OnClose(SessionId id, bool clean, const net::CloseInfo& info) override;
  void OnDrained(SessionId id) override;
  HttpResponse ErrorResponse(unsigned status, const Error& error) const override;

 private:
  // The answer to a request served on the I/O thread (dashboard, healthz, metrics), or nullopt
  // for one the dispatcher answers (presence routes, and every malformed request).
  std::optional<HttpResponse> AnswerInline(const HttpRequest& req) const;
  HttpResponse RenderMetrics() const;
  // Browsers (allowed_origins): whether `origin` may connect / call REST (always when no list is
  // set, and for requests without an Origin: not a browser), and the CORS fields of an answer.
  // The server's own origin (`Origin` naming the `Host` the request was sent to: the dashboard)
  // is always allowed.
  bool OriginAllowed(std::string_view origin, std::string_view host) const;
  void AddCors(std::string_view origin, std::string_view host, HttpResponse& resp) const;
  // On the presence loop: the log line of a session's end (server-initiated ones at info,
  // rate-limited; the client's own at debug).
  void LogClose(SessionId id, const net::CloseInfo& info, std::string_view reason, bool by_client);
  // On an I/O thread: the log line of a refused upgrade (reason, remote address), rate-limited.
  void LogRefused(const HttpRequest& req, const Error& why) LOCKS_EXCLUDED(refused_mu_);

  // The reasons of closes the service itself asked for (Peer::Close), by close code.
  enum ServiceReason { kShutdown, kSuperseded, kRefused, kOtherServiceClose, kServiceReasons };
  static ServiceReason ServiceReasonOf(uint16_t code);
  static constexpr std::string_view kServiceReasonNames[kServiceReasons] = {
      "shutdown", "superseded", "refused", "server_closed"};
  std::array<std::atomic<uint64_t>, kServiceReasons> service_closes_{};
  // Log rate limit (presence loop only): a token bucket of kLogBurst lines refilled at
  // kLogPerSecond; what it suppresses is counted into the next line.
  static constexpr double kLogBurst = 50;
  static constexpr double kLogPerSecond = 10;
  double log_tokens_ = kLogBurst;
  TimeMs log_refilled_at_ = 0;
  uint64_t log_suppressed_ = 0;
  // The same budget for refused upgrades, which several I/O threads log.
  Mutex refused_mu_;
  double refused_tokens_ GUARDED_BY(refused_mu_) = kLogBurst;
  TimeMs refused_refilled_at_ GUARDED_BY(refused_mu_) = 0;
  uint64_t refused_suppressed_ GUARDED_BY(refused_mu_) = 0;

  EngineLoop& loop_;
  protocol::Dispatcher& dispatcher_;
  storage::Store& store_;
  protocol::Metrics& metrics_;
  const Config& config_;
  const Clock& clock_;
  const net::Counters* net_counters_ = nullptr;
  std::atomic<int> redis_state_{-1};  // -1 single node, 0 down, 1 up
  std::atomic<uint64_t> fenced_total_{0};
  std::atomic<uint64_t> snapshots_saved_{0};
  std::atomic<uint64_t> snapshots_loaded_{0};
  std::atomic<uint64_t> log_gaps_{0};
};

}  // namespace presenced::server
