// The REST route table and its runner (rest_routes.h); the Dispatcher's thread.
#include "protocol/rest_routes.h"

#include <array>
#include <boost/json/array.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <chrono>

#include "common/utf8.h"
#include "protocol/args.h"
#include "protocol/auth.h"
#include "protocol/codec.h"

namespace presenced::protocol {

namespace {

enum class Fields : uint8_t { kQuery, kBody };           // where the op's fields come from
enum class ActsFor : uint8_t { kNobody, kPath, kBody };  // the user the backend acts for
// Where the path's `{clientId}` goes among the fields.
enum class IdField : uint8_t { kClientId, kClientIds };
enum class Shape : uint8_t {
  kObject,   // the op's fields, as an object
  kOneOf,    // the one element of the op's only field (an array): status.get for one user
  kFieldOf,  // the value of the op's only field: status.set
  // Agent sessions (protocol-ext §3):
  kStarted,     // `session`, 201 when `created`, else 200
  kFoundOr404,  // the value of the op's only field; null: 404 not_found
  kNoContent,   // 204, no body
};

struct Route {
  std::string_view method;
  std::array<std::string_view, 6> path;  // "{channel}", "{clientId}"... take that segment
  std::string_view op;
  Fields fields = Fields::kQuery;
  ActsFor acts_for = ActsFor::kNobody;
  Shape shape = Shape::kObject;
  IdField id_field = IdField::kClientId;
};

constexpr std::string_view kChannel = "{channel}";
constexpr std::string_view kClient = "{clientId}";
constexpr std::string_view kConversation = "{conversationId}";
constexpr std::string_view kConnection = "{connectionId}";

constexpr std::array<Route, 24> kRoutes = {{
    {"GET", {"v1", "channels"}, "channels"},
    {"GET", {"v1", "channels", kChannel, "presence"}, "get"},
    {"GET", {"v1", "channels", kChannel, "occupancy"}, "occupancy"},
    {"GET", {"v1", "channels", kChannel, "history"}, "history"},
    {"GET",
     {"v1", "users", kClient, "status"},
     "status.get",
     Fields::kQuery,
     ActsFor::kPath,
     Shape::kOneOf,
     IdField::kClientIds},
    {"PUT",
     {"v1", "users", kClient, "status"},
     "status.set",
     Fields::kBody,
     ActsFor::kPath,
     Shape::kFieldOf},
    {"GET", {"v1", "users", kClient, "devices"}, "devices", Fields::kQuery, ActsFor::kPath},
    {"GET", {"v1", "users", kClient, "activity"}, "activity.get", Fields::kQuery, ActsFor::kPath},
    {"POST", {"v1", "users", kClient, "activity"}, "activity", Fields::kBody, ActsFor::kPath},
    {"PUT",
     {"v1", "users", kClient, "devices", kConnection, "status"},
     "device.status.set",
     Fields::kBody,
     ActsFor::kPath},
    {"GET", {"v1", "users", kClient, "sync"}, "sync.get", Fields::kQuery, ActsFor::kPath},
    {"POST", {"v1", "users", kClient, "sync"}, "sync", Fields::kQuery, ActsFor::kPath},
    {"GET", {"v1", "who"}, "who"},
    {"POST", {"v1", "commands"}, "command", Fields::kBody, ActsFor::kBody},
    {"POST", {"v1", "tokens"}, "tokens", Fields::kBody, ActsFor::kBody},
    {"GET", {"v1", "sessions"}, "sessions"},
    {"PUT",
     {"v1", "sessions", kConversation},
     "session.start",
     Fields::kBody,
     ActsFor::kNobody,
     Shape::kStarted},
    {"GET",
     {"v1", "sessions", kConversation},
     "session.get",
     Fields::kQuery,
     ActsFor::kNobody,
     Shape::kFoundOr404},
    {"DELETE",
     {"v1", "sessions", kConversation},
     "session.stop",
     Fields::kQuery,
     ActsFor::kNobody,
     Shape::kNoContent},
    // Admin (docs/protocol.md "Admin"): the server ends connections, revokes tokens, and keeps
    // members of its own.
    {"DELETE",
     {"v1", "connections", kConnection},
     "admin.disconnect",
     Fields::kQuery,
     ActsFor::kNobody,
     Shape::kNoContent},
    {"DELETE",
     {"v1", "users", kClient, "connections"},
     "admin.disconnect_user",
     Fields::kQuery,
     ActsFor::kPath},
    {"POST", {"v1", "users", kClient, "revoke"}, "admin.revoke", Fields::kQuery, ActsFor::kPath},
    {"PUT",
     {"v1", "channels", kChannel, "presence", kClient},
     "admin.member.put",
     Fields::kBody,
     ActsFor::kPath},
    {"DELETE",
     {"v1", "channels", kChannel, "presence", kClient},
     "admin.member.delete",
     Fields::kQuery,
     ActsFor::kPath,
     Shape::kNoContent},
}};

size_t SegmentCount(const Route& r) {
  size_t n = 0;
  while (n < r.path.size() && !r.path[n].empty()) ++n;
  return n;
}

bool PathMatches(const Route& r, const std::vector<std::string>& seg) {
  if (seg.size() != SegmentCount(r)) return false;
  for (size_t i = 0; i < seg.size(); ++i) {
    if (r.path[i] != kChannel && r.path[i] != kClient && r.path[i] != kConversation &&
        r.path[i] != kConnection && r.path[i] != seg[i]) {
      return false;
    }
  }
  return true;
}

// The value of the path's `{channel}` or `{clientId}` segment, if the route has one.
std::optional<std::string_view> PathParam(const Route& r, const std::vector<std::string>& seg,
                                          std::string_view which) {
  for (size_t i = 0; i < seg.size(); ++i) {
    if (r.path[i] == which) return seg[i];
  }
  return std::nullopt;
}

// `"key":X` -> X, and `"key":[X]` -> X when `one`.
std::string Unwrap(const std::string& fields, bool one) {
  const size_t colon = fields.find(':');
  if (colon == std::string::npos) return "{}";
  std::string value = fields.substr(colon + 1);
  if (one && value.size() >= 2) value = value.substr(1, value.size() - 2);
  return value;
}

}  // namespace

unsigned HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kMethodNotAllowed:
      return 405;
    case ErrorCode::kNotPresent:
      return 409;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kRateLimited:
      return 429;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse ErrorResponse(const Error& e) {
  return HttpResponse{HttpStatusFor(e.code), ErrorBody(e)};
}

void HandleRest(Core& core, const HttpRequest& req, std::function<void(HttpResponse)> done) {
  auto fail = [&](const Error& e) { done(ErrorResponse(e)); };
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) return fail(BadRequest("malformed request target"));
  const boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.emplace_back(s);
  // Percent-decoding can yield any bytes; names from the path reach replies and other users.
  for (const std::string& part : seg) {
    if (!IsValidUtf8(part)) return fail(BadRequest("the path is not valid UTF-8"));
  }
  json::object query;
  for (auto p : url.params()) {
    if (!IsValidUtf8(p.key) || !IsValidUtf8(p.value)) {
      return fail(BadRequest("a query parameter is not valid UTF-8"));
    }
    query[std::string(p.key)] = std::string(p.value);
  }

  const Route* route = nullptr;
  bool path_known = false;
  for (const Route& r : kRoutes) {
    if (!PathMatches(r, seg)) continue;
    path_known = true;
    if (r.method == req.method) route = &r;
  }
  if (!path_known) return fail(MakeError(ErrorCode::kNotFound, "no such route"));
  if (!BearerMatches(req.authorization, core.options.api_key)) {
    return fail(MakeError(ErrorCode::kUnauthorized, "missing or wrong API key"));
  }
  if (route == nullptr) return fail(MakeError(ErrorCode::kMethodNotAllowed, "method not allowed"));

  const auto& limits = core.options.engine.limits;
  const auto channel = PathParam(*route, seg, kChannel);
  const auto client = PathParam(*route, seg, kClient);
  const auto conversation = PathParam(*route, seg, kConversation);
  const auto connection = PathParam(*route, seg, kConnection);
  if (channel) {
    if (Status st = CheckName(*channel, "channel", limits.max_channel_bytes); !st) {
      return fail(st.error());
    }
  }
  if (client) {
    if (Status st = CheckName(*client, "clientId", limits.max_id_bytes); !st) {
      return fail(st.error());
    }
  }

  json::object fields;
  if (route->fields == Fields::kBody && !(conversation && req.body.empty())) {
    Result<json::object> body = ParseRequestObject(req.body);
    if (!body.ok()) return fail(body.error());
    fields = std::move(body).value();
  } else {
    fields = std::move(query);
  }
  // The path names what the request is about, whatever the query says.
  if (channel) fields["channel"] = *channel;
  if (conversation) fields["conversationId"] = *conversation;
  if (connection) fields["connectionId"] = *connection;
  if (client) {
    if (route->id_field == IdField::kClientIds) {
      fields["clientIds"] = json::array{json::string(*client)};
    } else {
      fields["clientId"] = *client;
    }
  }

  std::string acting;
  if (route->acts_for == ActsFor::kPath) {
    acting = std::string(*client);
  } else if (route->acts_for == ActsFor::kBody) {
    const json::value* c = fields.if_contains("clientId");
    if (c == nullptr || !c->is_string()) return fail(BadRequest("clientId must be a string"));
    acting = std::string(c->as_string());
    if (Status st = CheckName(acting, "clientId", limits.max_id_bytes); !st) {
      return fail(st.error());
    }
  }
  const OpSpec* op = FindOp(route->op);
  const Caller caller{acting, 0, nullptr};
  const Args args(fields, route->fields == Fields::kQuery);
  OpCall call{core, caller, args};
  auto respond = [shape = route->shape, done, &histogram = core.metrics.op_latency[OpIndex(op)],
                  start = std::chrono::steady_clock::now()](Result<std::string> out) {
    histogram.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!out.ok()) return done(ErrorResponse(out.error()));
    switch (shape) {
      case Shape::kObject:
        return done(HttpResponse{200, "{" + *out + "}"});
      case Shape::kOneOf:
      case Shape::kFieldOf:
        return done(HttpResponse{200, Unwrap(*out, shape == Shape::kOneOf)});
      case Shape::kStarted: {
        // `"session":{...},"created":B`: the session is the body, `created` its status.
        const size_t created = out->rfind(",\"created\":");
        const bool is_new = out->compare(created + 11, 4, "true") == 0;
        return done(HttpResponse{is_new ? 201u : 200u, Unwrap(out->substr(0, created), false)});
      }
      case Shape::kFoundOr404: {
        std::string value = Unwrap(*out, false);
        if (value == "null") {
          return done(ErrorResponse(MakeError(ErrorCode::kNotFound, "no such session")));
        }
        return done(HttpResponse{200, std::move(value)});
      }
      case Shape::kNoContent:
        return done(HttpResponse{204, "", ""});
    }
  };
  if (op->async != nullptr) {
    if (Status st = op->async(call, respond); !st) fail(st.error());
    return;
  }
  respond(op->sync(call));
}

std::optional<std::string> HttpRouteUser(const HttpRequest& req) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) return std::nullopt;
  std::vector<std::string> seg;
  for (auto s : parsed->segments()) seg.emplace_back(s);
  // A change under a user's path (status, device status, activity, sync, connections, revoke)
  // works on the user's stored record, loaded first; so does the sync report, which shows the
  // user's status.
  if (seg.size() >= 4 && seg[0] == "v1" && seg[1] == "users" && !seg[2].empty() &&
      IsValidUtf8(seg[2]) && (req.method != "GET" || (seg.size() == 4 && seg[3] == "sync"))) {
    return seg[2];
  }
  // A server-side member's user, like a connecting one's.
  if (req.method == "PUT" && seg.size() == 5 && seg[0] == "v1" && seg[1] == "channels" &&
      seg[3] == "presence" && !seg[4].empty() && IsValidUtf8(seg[4])) {
    return seg[4];
  }
  if (req.method == "POST" && seg == std::vector<std::string>{"v1", "commands"}) {
    Result<json::object> body = ParseRequestObject(req.body);
    if (!body.ok()) return std::nullopt;
    const json::value* c = body->if_contains("clientId");
    if (c != nullptr && c->is_string() && !c->as_string().empty())
      return std::string(c->as_string());
  }
  return std::nullopt;
}

}  // namespace presenced::protocol
