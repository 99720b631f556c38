// The REST API for backends (docs/protocol.md, "REST"): a table of routes, each one an op of the
// op table (ops.h) run for a backend caller, its fields taken from the path and query string (or
// the JSON body) through the same request parse as the WebSocket op. The API key is checked here.
//
// Threading: the Dispatcher's thread, except HttpRouteUser and HttpStatusFor (pure).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/transport.h"
#include "protocol/ops.h"

namespace presenced::protocol {

// Runs a REST request; `done` gets the response, at once or later (on the Dispatcher's thread).
// The caller has given the engine what the store remembers of the user the request acts for
// (HttpRouteUser), so a change keeps the other half of status/text and lastSeen.
void HandleRest(Core& core, const HttpRequest& request, std::function<void(HttpResponse)> done);

// The user a REST request acts for whose stored settings the engine may need (PUT
// /v1/users/{clientId}/status, POST /v1/commands), if it is one.
std::optional<std::string> HttpRouteUser(const HttpRequest& req);

// The HTTP status for an error code on REST.
unsigned HttpStatusFor(ErrorCode code);
HttpResponse ErrorResponse(const Error& e);

}  // namespace presenced::protocol
