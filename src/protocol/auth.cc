#include "protocol/auth.h"

#include <jwt.h>
#include <openssl/crypto.h>

#include <boost/json.hpp>
#include <memory>

namespace presenced::protocol {

namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

Error Unauthorized(std::string why) { return MakeError(ErrorCode::kUnauthorized, std::move(why)); }
}  // namespace

Result<TokenClaims> VerifyToken(std::string_view token, std::string_view secret, TimeMs now) {
  if (token.empty()) return Unauthorized("missing token");
  if (secret.empty()) return Unauthorized("server has no signing secret");
  std::string t(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, t.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                 static_cast<int>(secret.size())) != 0 ||
      raw == nullptr) {
    return Unauthorized("malformed or wrongly signed token");
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return Unauthorized("token must be signed HS256");

  TokenClaims claims;
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || *sub == '\0') return Unauthorized("token has no sub claim");
  claims.client_id = sub;

  // Read `exp` and `channels` from the claims JSON so a mistyped claim is refused, not coerced.
  char* all = jwt_get_grants_json(jwt.get(), nullptr);
  if (all == nullptr) return Unauthorized("token has no claims");
  std::string json(all);
  free(all);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return Unauthorized("token claims are not an object");
  const auto& obj = v.as_object();
  const auto* exp = obj.if_contains("exp");
  if (exp == nullptr || !(exp->is_int64() || exp->is_uint64() || exp->is_double())) {
    return Unauthorized("token has no numeric exp claim");
  }
  claims.expires_at_s =
      exp->is_double() ? static_cast<int64_t>(exp->as_double()) : exp->to_number<int64_t>();
  if (now / 1000 >= claims.expires_at_s) return Unauthorized("token expired");
  if (const auto* ch = obj.if_contains("channels")) {
    if (!ch->is_array()) return Unauthorized("channels claim must be an array of strings");
    std::vector<std::string> patterns;
    for (const auto& p : ch->as_array()) {
      if (!p.is_string()) return Unauthorized("channels claim must be an array of strings");
      patterns.emplace_back(p.as_string());
    }
    claims.channels = std::move(patterns);
  }
  return claims;
}

Result<std::string> MintToken(std::string_view secret, std::string_view client_id, int64_t ttl_s,
                              const std::optional<std::vector<std::string>>& channels, TimeMs now) {
  if (secret.empty()) return MakeError(ErrorCode::kBadRequest, "no signing secret");
  if (client_id.empty()) return MakeError(ErrorCode::kBadRequest, "client id must not be empty");
  if (ttl_s <= 0) return MakeError(ErrorCode::kBadRequest, "ttl must be positive");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return MakeError(ErrorCode::kInternal, "jwt_new failed");
  JwtPtr jwt(raw);
  boost::json::object claims;
  claims["sub"] = std::string(client_id);
  claims["iat"] = now / 1000;
  claims["exp"] = now / 1000 + ttl_s;
  if (channels) {
    boost::json::array a;
    for (const auto& c : *channels) a.emplace_back(c);
    claims["channels"] = std::move(a);
  }
  const std::string json = boost::json::serialize(claims);
  if (jwt_add_grants_json(jwt.get(), json.c_str()) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    return MakeError(ErrorCode::kInternal, "cannot build token");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return MakeError(ErrorCode::kInternal, "cannot sign token");
  std::string out(encoded);
  free(encoded);
  return out;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative wildcard match with backtracking to the last `*`: O(|pattern| * |text|) worst case.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool ChannelAllowed(const TokenClaims& claims, std::string_view channel) {
  if (!claims.channels) return true;
  for (const auto& p : *claims.channels) {
    if (GlobMatch(p, channel)) return true;
  }
  return false;
}

bool BearerMatches(std::string_view authorization, std::string_view api_key) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (api_key.empty() || authorization.size() != kPrefix.size() + api_key.size() ||
      authorization.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), api_key.data(), api_key.size()) == 0;
}

}  // namespace presenced::protocol
