// The upgrade query and its token (upgrade.h); pure, on I/O threads.
#include "protocol/upgrade.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>

#include "engine/identity.h"
#include "protocol/args.h"
#include "protocol/auth.h"

namespace presenced::protocol {

namespace {

// A query value that is a whole non-negative decimal number, or nothing.
std::optional<int64_t> NonNegative(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

Result<ConnectRequest> ParseUpgrade(std::string_view target, std::string_view secret, TimeMs now,
                                    size_t max_id_bytes) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return BadRequest("malformed request target");
  const boost::urls::url_view url = *parsed;
  std::optional<std::string> token;
  ConnectRequest req;
  for (auto p : url.params()) {
    if (p.key == "token") {
      token = std::string(p.value);
    } else if (p.key == "device") {
      req.device = std::string(p.value);
    } else if (p.key == "resume") {
      req.resume_key = std::string(p.value);
    } else if (p.key == "remainPresentForMs") {
      auto v = NonNegative(p.value);
      if (!v) return BadRequest("remainPresentForMs must be a non-negative integer");
      req.remain_present_for_ms = *v;
    } else if (p.key == "heartbeatMs") {
      auto v = NonNegative(p.value);
      if (!v) return BadRequest("heartbeatMs must be a non-negative integer");
      req.requested_heartbeat_ms = *v;
    } else if (p.key == "batch") {
      // protocol-ext §1: opt-in batched frames.
      if (p.value == "1" || p.value == "true") {
        req.batch = true;
      } else if (p.value != "0" && p.value != "false") {
        return BadRequest("batch must be 1 or 0");
      }
    }
  }
  if (!req.device.empty()) {
    if (Status st = CheckName(req.device, "device", max_id_bytes); !st) return st.error();
  }
  if (!token) {
    req.awaiting_auth = true;
    return req;
  }
  if (Status st = ApplyToken(req, *token, secret, now, max_id_bytes); !st) return st.error();
  return req;
}

TimeMs HeartbeatFor(const ConnectRequest& request, TimeMs server_default,
                    const DispatcherOptions& options) {
  if (!request.requested_heartbeat_ms) return server_default;
  return std::clamp(*request.requested_heartbeat_ms, options.min_heartbeat_ms,
                    options.max_heartbeat_ms);
}

void MakeObserver(ConnectRequest& req) {
  req.client_id = std::string(engine::kObserverClientId);
  req.channel_patterns.reset();
  req.worker = false;
  req.observer = true;
  req.awaiting_auth = false;
  if (req.device.empty()) req.device = "observer";
}

Status ApplyToken(ConnectRequest& req, std::string_view token, std::string_view secret, TimeMs now,
                  size_t max_id_bytes) {
  auto claims = VerifyToken(token, secret, now);
  if (!claims.ok()) return claims.error();
  if (Status st = CheckName(claims->client_id, "clientId", max_id_bytes); !st) return st;
  if (claims->client_id.starts_with("presenced:")) {
    return MakeError(ErrorCode::kUnauthorized, "clientIds starting with presenced: are reserved");
  }
  req.client_id = claims->client_id;
  req.channel_patterns = std::move(claims->channels);
  req.worker = claims->worker;
  req.issued_at_ms = claims->issued_at_ms;
  // `exp` may be the far future (any JSON number): saturated, not overflowed.
  constexpr int64_t kMaxSeconds = INT64_MAX / 1000;
  req.expires_at_ms = claims->expires_at_s >= kMaxSeconds    ? INT64_MAX
                      : claims->expires_at_s <= -kMaxSeconds ? INT64_MIN
                                                             : claims->expires_at_s * 1000;
  req.awaiting_auth = false;
  return Status::Ok();
}

}  // namespace presenced::protocol
