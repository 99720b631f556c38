// Endpoint: where presencectl finds the server, parsed from --url (`http://HOST[:PORT][/PREFIX]`),
// and how request targets under it are written. A plain value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace presenced::ctl {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct Endpoint {
  std::string url;          // as given, for messages
  std::string host;         // for the resolver: a name or an address (IPv6 without brackets)
  std::string host_header;  // HOST[:PORT] as written in the URL
  uint16_t port = 80;
  std::vector<std::string> prefix;  // path segments before /v1, e.g. a reverse proxy's mount point

  // The origin-form target `/PREFIX/SEGMENT...?KEY=VALUE&...`. Each segment and parameter is
  // percent-encoded, so a channel name may hold any character ('/' included).
  std::string Target(const std::vector<std::string_view>& segments,
                     const QueryParams& params = {}) const;
};

// Accepts only http:// URLs without user info, query or fragment (presencectl speaks plain HTTP
// and WebSocket; put it next to the server or behind a proxy that terminates TLS).
Result<Endpoint> ParseEndpoint(std::string_view url);

}  // namespace presenced::ctl
