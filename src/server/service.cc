// The service adapter (see service.h): runs on I/O threads; presence work is posted to the
// EngineLoop, everything else is answered here.
#include "server/service.h"

#include <spdlog/spdlog.h>

#include <boost/url/parse.hpp>
#include <vector>

#include "common/utf8.h"
#include "dashboard/assets.h"
#include "protocol/auth.h"
#include "protocol/codec.h"
#include "server/process_metrics.h"

namespace presenced::server {

Service::Service(EngineLoop& loop, protocol::Dispatcher& dispatcher, storage::Store& store,
                 protocol::Metrics& metrics, const Config& config, const Clock& clock)
    : loop_(loop),
      dispatcher_(dispatcher),
      store_(store),
      metrics_(metrics),
      config_(config),
      clock_(clock) {
  // Once attached (at once, or after the store read of a user the engine did not hold): who it is.
  dispatcher_.OnAttached([](SessionId id, const engine::Identity& who, bool resumed) {
    if (!spdlog::default_logger_raw()->should_log(spdlog::level::debug)) return;
    spdlog::debug("event=connected session={} who={}/{} device={}{}", id, who.client_id,
                  who.connection_id, who.device, resumed ? " resumed=1" : "");
  });
}

Result<net::Upgrade> Service::AuthorizeUpgrade(const HttpRequest& req) {
  if (!OriginAllowed(req.origin, req.host)) {
    Error e = MakeError(ErrorCode::kForbidden, "origin " + req.origin + " is not allowed");
    LogRefused(req, e);
    return e;
  }
  auto request = protocol::ParseUpgrade(req.target, config_.protocol.jwt_secret, clock_.NowMs(),
                                        config_.protocol.engine.limits.max_id_bytes);
  if (!request.ok()) {
    LogRefused(req, request.error());
    return request.error();
  }
  // The API key on the upgrade (`Authorization: Bearer`): an observer, not a user.
  if (request->awaiting_auth && !req.authorization.empty()) {
    if (!protocol::BearerMatches(req.authorization, config_.protocol.api_key)) {
      Error e = MakeError(ErrorCode::kUnauthorized, "wrong API key");
      LogRefused(req, e);
      return e;
    }
    protocol::MakeObserver(*request);
  }
  request->heartbeat_ms =
      protocol::HeartbeatFor(*request, config_.net.heartbeat_ms, config_.protocol);
  net::Upgrade upgrade;
  upgrade.heartbeat_ms = request->heartbeat_ms;
  // The dispatcher's `connected` frame carries the 101, unless the client sends its token first.
  upgrade.sends_on_open = !request->awaiting_auth;
  upgrade.attachment = std::make_shared<protocol::ConnectRequest>(std::move(request).value());
  return upgrade;
}

void Service::LogRefused(const HttpRequest& req, const Error& why) {
  // On an I/O thread (several may refuse at once): the same budget as server-initiated closes,
  // under its own lock, so a flood of bad tokens cannot flood the log.
  MutexLock lock(refused_mu_);
  const TimeMs now = clock_.NowMs();
  refused_tokens_ =
      std::min(kLogBurst, refused_tokens_ + (now - refused_refilled_at_) * kLogPerSecond / 1000);
  refused_refilled_at_ = now;
  if (refused_tokens_ < 1) {
    ++refused_suppressed_;
    return;
  }
  refused_tokens_ -= 1;
  spdlog::info(
      "event=upgrade_refused remote={} code={} reason=\"{}\"{}",
      req.remote.empty() ? "-" : req.remote, ErrorCodeName(why.code), why.message,
      refused_suppressed_ > 0 ? fmt::format(" suppressed_before={}", refused_suppressed_) : "");
  refused_suppressed_ = 0;
}

bool Service::OriginAllowed(std::string_view origin, std::string_view host) const {
  if (origin.empty() || config_.allowed_origins.empty()) return true;
  const size_t scheme = origin.find("://");
  if (!host.empty() && scheme != std::string_view::npos && origin.substr(scheme + 3) == host) {
    return true;  // same origin
  }
  for (const std::string& o : config_.allowed_origins) {
    if (o == "*" || o == origin) return true;
  }
  return false;
}

void Service::AddCors(std::string_view origin, std::string_view host, HttpResponse& resp) const {
  if (config_.allowed_origins.empty() || origin.empty() || !OriginAllowed(origin, host)) return;
  resp.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
  resp.headers.emplace_back("Vary", "Origin");
}

void Service::HandleHttp(HttpRequest req, std::function<void(HttpResponse)> done) {
  if (!config_.allowed_origins.empty() && !req.origin.empty()) {
    // CORS (allowed_origins set): a preflight is answered here; other answers carry the fields.
    if (!OriginAllowed(req.origin, req.host)) {
      metrics_.http_requests_total.fetch_add(1, std::memory_order_relaxed);
      return done(ErrorResponse(
          403, MakeError(ErrorCode::kForbidden, "origin " + req.origin + " is not allowed")));
    }
    if (req.method == "OPTIONS") {
      metrics_.http_requests_total.fetch_add(1, std::memory_order_relaxed);
      HttpResponse resp{204, "", ""};
      AddCors(req.origin, req.host, resp);
      resp.headers.emplace_back("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE");
      resp.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
      resp.headers.emplace_back("Access-Control-Max-Age", "600");
      return done(std::move(resp));
    }
    done = [this, origin = req.origin, host = req.host, done = std::move(done)](HttpResponse resp) {
      AddCors(origin, host, resp);
      done(std::move(resp));
    };
  }
  if (auto response = AnswerInline(req)) return done(std::move(*response));
  loop_.Post([this, req = std::move(req), done = std::move(done)]() mutable {
    dispatcher_.Http(std::move(req), std::move(done));
  });
}

void Service::OnOpen(SessionId id, std::shared_ptr<void> attachment, std::shared_ptr<Peer> peer) {
  // The attachment is the ConnectRequest AuthorizeUpgrade made.
  auto request = std::static_pointer_cast<protocol::ConnectRequest>(std::move(attachment));
  if (spdlog::default_logger_raw()->should_log(spdlog::level::debug)) {
    spdlog::debug("event=connect session={} client={} device={}{}", id, request->client_id,
                  request->device.empty() ? "unknown" : request->device,
                  request->resume_key ? " resume=1" : "");
  }
  loop_.Post([this, id, request = std::move(request), peer = std::move(peer)]() mutable {
    dispatcher_.Open(id, std::move(*request), std::move(peer));
  });
}

void Service::OnMessage(SessionId id, std::string text,
                        std::chrono::steady_clock::time_point received,
                        std::function<void()> processed) {
  loop_.Post([this, id, text = std::move(text), received, processed = std::move(processed)] {
    dispatcher_.Message(id, text, received);
    processed();
  });
}

Service::ServiceReason Service::ServiceReasonOf(uint16_t code) {
  switch (code) {
    case 1001:
      return kShutdown;
    case 4000:
      return kSuperseded;
    case 1008:
      return kRefused;
    default:
      return kOtherServiceClose;
  }
}

void Service::OnClose(SessionId id, bool clean, const net::CloseInfo& info) {
  std::string_view reason = net::CloseCauseName(info.cause);
  if (info.cause == net::CloseCause::kServiceClosed) {
    const ServiceReason r = ServiceReasonOf(info.code);
    service_closes_[r].fetch_add(1, std::memory_order_relaxed);
    reason = kServiceReasonNames[r];
  }
  const bool by_client = info.cause == net::CloseCause::kClientClosed ||
                         info.cause == net::CloseCause::kConnectionLost;
  const bool log = spdlog::default_logger_raw()->should_log(by_client ? spdlog::level::debug
                                                                      : spdlog::level::info);
  loop_.Post([this, id, clean, log, by_client, reason, info = log ? info : net::CloseInfo{}] {
    if (log) LogClose(id, info, reason, by_client);
    dispatcher_.Closed(id, clean);
  });
}

void Service::LogClose(SessionId id, const net::CloseInfo& info, std::string_view reason,
                       bool by_client) {
  const std::string who = dispatcher_.Describe(id);
  if (by_client) {
    spdlog::debug("event=disconnected session={} who={} reason={} code={}", id, who, reason,
                  info.code);
    return;
  }
  const TimeMs now = clock_.NowMs();
  log_tokens_ = std::min(kLogBurst, log_tokens_ + (now - log_refilled_at_) * kLogPerSecond / 1000);
  log_refilled_at_ = now;
  if (log_tokens_ < 1) {
    ++log_suppressed_;
    return;
  }
  log_tokens_ -= 1;
  spdlog::info("event=closed_by_server session={} who={} reason={} code={} detail=\"{}\"{}", id,
               who, reason, info.code, info.reason,
               log_suppressed_ > 0 ? fmt::format(" suppressed_before={}", log_suppressed_) : "");
  log_suppressed_ = 0;
}

void Service::OnDrained(SessionId id) {
  loop_.Post([this, id] { dispatcher_.Drained(id); });
}

HttpResponse Service::ErrorResponse(unsigned status, const Error& error) const {
  return HttpResponse{status, protocol::ErrorBody(error)};
}

// The same rules as Dispatcher::Http for these routes: a target that does not parse, or whose
// path or query is not UTF-8, is the dispatcher's to refuse; the dashboard's files (GET `/` and
// `/dashboard/<file>`) need no key; healthz and metrics are GET only.
std::optional<HttpResponse> Service::AnswerInline(const HttpRequest& req) const {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) return std::nullopt;
  const boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) {
    seg.emplace_back(s);
    if (!IsValidUtf8(seg.back())) return std::nullopt;
  }
  for (auto p : url.params()) {
    if (!IsValidUtf8(p.key) || !IsValidUtf8(p.value)) return std::nullopt;
  }
  const bool dashboard =
      req.method == "GET" && (seg.empty() || (seg.size() == 2 && seg[0] == "dashboard"));
  const dashboard::Asset* asset =
      dashboard ? dashboard::FindAsset(seg.empty() ? "/index.html" : "/" + seg[1]) : nullptr;
  const bool healthz = seg.size() == 2 && seg[0] == "v1" && seg[1] == "healthz";
  const bool metrics = seg.size() == 1 && seg[0] == "metrics";
  const bool openapi = seg.size() == 2 && seg[0] == "v1" && seg[1] == "openapi.json";
  if (!asset && !healthz && !metrics && !openapi) return std::nullopt;

  metrics_.http_requests_total.fetch_add(1, std::memory_order_relaxed);
  if (asset) return HttpResponse{200, std::string(asset->body), std::string(asset->content_type)};
  if (req.method != "GET") {
    return ErrorResponse(405, MakeError(ErrorCode::kMethodNotAllowed, "method not allowed"));
  }
  if (openapi) {
    const dashboard::Asset& doc = dashboard::OpenApiDocument();
    return HttpResponse{200, std::string(doc.body), std::string(doc.content_type)};
  }
  if (healthz) {
    switch (redis_state_.load(std::memory_order_relaxed)) {
      case 0:
        return HttpResponse{503, R"({"ok":false,"redis":"down"})"};
      case 1:
        return HttpResponse{200, R"({"ok":true,"redis":"up"})"};
      default:
        return HttpResponse{200, R"({"ok":true})"};
    }
  }
  return RenderMetrics();
}

HttpResponse Service::RenderMetrics() const {
  protocol::Gauges g = metrics_.EngineGauges();
  const storage::StoreCounters sc = store_.counters();
  g.storage_write_errors = sc.write_errors;
  g.storage_dropped_writes = sc.dropped_writes;
  g.storage_pending = sc.pending;
  if (net_counters_) {
    auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    g.connections_open = v(net_counters_->connections_open);
    g.connections_total = v(net_counters_->connections_total);
    g.connections_refused = v(net_counters_->connections_refused);
    g.queue_drops_total = v(net_counters_->queue_drops_total);
    for (size_t i = 0; i < net::kCloseCauseCount; ++i) {
      const auto cause = static_cast<net::CloseCause>(i);
      if (cause == net::CloseCause::kServiceClosed) continue;  // by code, below
      g.disconnects.emplace_back(net::CloseCauseName(cause), v(net_counters_->disconnects[i]));
    }
    for (size_t r = 0; r < kServiceReasons; ++r) {
      g.disconnects.emplace_back(kServiceReasonNames[r], v(service_closes_[r]));
    }
  }
  std::string text = metrics_.Render(g);
  if (const int redis = redis_state_.load(std::memory_order_relaxed); redis >= 0) {
    text +=
        "# HELP presenced_redis_up Whether this node reaches Redis and holds its lease (cluster "
        "mode).\n# TYPE presenced_redis_up gauge\npresenced_redis_up " +
        std::to_string(redis) +
        "\n# HELP presenced_node_fenced_total Times this node found its lease lost and closed "
        "its connections with 4001.\n# TYPE presenced_node_fenced_total counter\n"
        "presenced_node_fenced_total " +
        std::to_string(fenced_total_.load(std::memory_order_relaxed)) +
        "\n# HELP presenced_cluster_snapshots_saved_total Cluster state snapshots this node "
        "saved to Redis.\n# TYPE presenced_cluster_snapshots_saved_total counter\n"
        "presenced_cluster_snapshots_saved_total " +
        std::to_string(snapshots_saved_.load(std::memory_order_relaxed)) +
        "\n# HELP presenced_cluster_snapshots_loaded_total Cluster state snapshots this node "
        "started (or resynchronized) from.\n# TYPE presenced_cluster_snapshots_loaded_total "
        "counter\npresenced_cluster_snapshots_loaded_total " +
        std::to_string(snapshots_loaded_.load(std::memory_order_relaxed)) +
        "\n# HELP presenced_cluster_log_gaps_total Log entries missed that no snapshot "
        "covered (this node's state may differ).\n# TYPE presenced_cluster_log_gaps_total "
        "counter\npresenced_cluster_log_gaps_total " +
        std::to_string(log_gaps_.load(std::memory_order_relaxed)) + "\n";
  }
  text += ProcessMetrics();
  return HttpResponse{200, std::move(text), "text/plain; version=0.0.4"};
}

}  // namespace presenced::server
