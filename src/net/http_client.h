// The network layer's HttpClient (common/http_client.h): Boost.Beast over Asio, with OpenSSL for
// https (the peer's certificate verified against the system's CAs, or `ca_file`, and its name).
// One connection per request (webhook deliveries are one at a time per endpoint). Each call runs
// on the given executor and its `done` is posted there.
#pragma once

#include <memory>
#include <string>

#include "common/http_client.h"

namespace presenced::net {

class Server;

// A client whose calls run on the server's work loop (where the presence engine runs).
std::unique_ptr<HttpClient> MakeHttpClient(Server& server, const std::string& ca_file);

}  // namespace presenced::net
