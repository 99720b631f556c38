// presencectl's --url parsing and request targets (endpoint.h); a value type.
#include "ctl/endpoint.h"

#include <boost/url.hpp>

namespace presenced::ctl {

namespace urls = boost::urls;

std::string Endpoint::Target(const std::vector<std::string_view>& segments,
                             const QueryParams& params) const {
  urls::url target;
  target.set_path_absolute(true);
  auto path = target.segments();
  for (const auto& s : prefix) path.push_back(s);
  for (auto s : segments) path.push_back(s);
  // Only unreserved characters stay as they are: the server decodes '+' in a query as a space.
  auto encode = [](std::string_view s) { return urls::encode(s, urls::unreserved_chars); };
  for (const auto& [key, value] : params) {
    target.encoded_params().append({encode(key), encode(value)});
  }
  return std::string(target.encoded_target());
}

Result<Endpoint> ParseEndpoint(std::string_view url) {
  auto bad = [&](std::string why) {
    return MakeError(ErrorCode::kBadRequest, "--url " + std::string(url) + ": " + why);
  };
  auto parsed = urls::parse_absolute_uri(url);
  if (!parsed) return bad("not a URL (expected http://HOST[:PORT])");
  const urls::url_view u = *parsed;
  if (u.scheme_id() != urls::scheme::http) {
    return bad("only http:// is supported (use a local proxy for TLS)");
  }
  if (!u.has_authority() || u.encoded_host().empty()) return bad("no host");
  if (u.has_userinfo() || u.has_query()) return bad("user info and query are not allowed");

  Endpoint e;
  e.url = std::string(url);
  e.host = u.host_address();
  e.host_header = std::string(u.encoded_host());
  if (u.has_port()) {
    if (u.port_number() == 0) return bad("bad port");
    e.port = u.port_number();
    e.host_header += ":" + std::string(u.port());
  }
  for (auto s : u.segments()) {
    if (!s.empty()) e.prefix.emplace_back(s);
  }
  return e;
}

}  // namespace presenced::ctl
