// ApiClient: presenced's REST API (docs/protocol.md, "REST") over HTTP/1.1, one connection per
// request. Each call blocks until the reply, a network error, or kRequestTimeout per step
// (connect, write, read).
//
// Thread-compatible: a const ApiClient may be used from one thread at a time per call; it holds
// no connection between calls.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <string>

#include "ctl/endpoint.h"
#include "ctl/outcome.h"

namespace presenced::ctl {

// How long one step of a request (or of the WebSocket handshake) may take.
inline constexpr std::chrono::seconds kRequestTimeout{10};
// The largest reply (or WebSocket message) presencectl reads; a bigger one is a network error.
inline constexpr size_t kMaxReplyBytes = size_t{64} << 20;

// One call's result: the body when the server answered 2xx with JSON, otherwise why not.
struct Reply {
  Outcome outcome;
  std::string raw;          // the body as received (when ok)
  boost::json::value json;  // the parsed body (when ok)

  bool ok() const { return outcome.ok(); }
};

enum class Method { kGet, kPost, kPut, kDelete };

class ApiClient {
 public:
  ApiClient(Endpoint endpoint, std::string api_key)
      : endpoint_(std::move(endpoint)), api_key_(std::move(api_key)) {}

  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& api_key() const { return api_key_; }

  // Sends `body` (when not null) as JSON to `target` (see Endpoint::Target). A 401 is
  // kUnauthorized, any other non-2xx reply kServerError with "CODE: message" from the error body,
  // a failure to connect, send or receive kNetwork.
  Reply Call(Method method, const std::string& target,
             const boost::json::value* body = nullptr) const;

  Reply Get(const std::string& target) const { return Call(Method::kGet, target); }

 private:
  Endpoint endpoint_;
  std::string api_key_;
};

// "CODE: message" of an error body `{"error":{"code":C,"message":S}}`, or "HTTP STATUS: BODY"
// when the body is not one.
std::string DescribeErrorBody(unsigned status, const std::string& body);

}  // namespace presenced::ctl
