// HttpClient: outbound HTTP requests (webhook deliveries), as the code above the network layer
// sees them. The network layer implements it with Boost.Beast over Asio, with OpenSSL for https
// (net/http_client.h); tests implement it to record and answer calls.
//
// Threading: Post may be called from the thread the implementation was made for (the server's
// work loop); `done` runs once on that same loop, later (never inside Post).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace presenced {

struct HttpCall {
  std::string url;  // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                         // sent as application/json
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
};

struct HttpOutcome {
  unsigned status = 0;  // 0: no answer (refused, timed out, TLS failed, malformed)
  std::string error;    // why, when status is 0
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual void Post(HttpCall call, std::function<void(HttpOutcome)> done) = 0;
};

}  // namespace presenced
