// JWT verification and minting, channel patterns, API keys (auth.h); pure, thread-safe.
#include "protocol/auth.h"

#include <jwt.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <memory>
#include <optional>

namespace presenced::protocol {

namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

Error Unauthorized(std::string why) { return MakeError(ErrorCode::kUnauthorized, std::move(why)); }

// Decodes unpadded base64url (RFC 7515 §2) strictly: its alphabet only, no padding, and the unused
// low bits of the last character zero, so that each value has exactly one encoding. libjwt's own
// decoder also takes `+`, `/` and `=`.
std::optional<std::string> DecodeBase64Url(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '-') {
      v = 62;
    } else if (ch == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // leftover bits must be zero
  return out;
}

// Seconds since the epoch from a NumericDate claim (RFC 7519 §2): any JSON number, saturated to
// the int64 range (a huge `exp` is the far future, not undefined behaviour).
std::optional<int64_t> NumericDate(const boost::json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    return v.get_uint64() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX
                                                             : static_cast<int64_t>(v.get_uint64());
  }
  if (!v.is_double() || !std::isfinite(v.get_double())) return std::nullopt;
  const double d = std::floor(v.get_double());
  if (d >= 9.2e18) return INT64_MAX;
  if (d <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(d);
}

// Checks the compact form before libjwt sees it: three strict base64url parts, a header that
// names exactly HS256 (libjwt compares algorithm names without regard to case) and no critical
// extensions, and a signature of an HMAC-SHA256's size.
Status CheckCompactForm(std::string_view token) {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Unauthorized("malformed token");
  }
  const auto header = DecodeBase64Url(token.substr(0, dot1));
  const auto payload = DecodeBase64Url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = DecodeBase64Url(token.substr(dot2 + 1));
  if (!header || !payload || !signature) return Unauthorized("malformed token encoding");
  if (signature->size() != 32) return Unauthorized("malformed or wrongly signed token");
  boost::system::error_code ec;
  const boost::json::value h = boost::json::parse(*header, ec);
  const boost::json::object* fields = ec ? nullptr : h.if_object();
  if (fields == nullptr) return Unauthorized("token header is not a JSON object");
  const boost::json::value* alg = fields->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return Unauthorized("token must be signed HS256");
  }
  if (fields->contains("crit")) return Unauthorized("token has critical header extensions");
  return Status::Ok();
}
}  // namespace

Result<TokenClaims> VerifyToken(std::string_view token, std::string_view secret, TimeMs now) {
  if (token.empty()) return Unauthorized("missing token");
  if (secret.empty()) return Unauthorized("server has no signing secret");
  if (Status st = CheckCompactForm(token); !st) return st.error();
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
  const std::optional<int64_t> expires = exp ? NumericDate(*exp) : std::nullopt;
  if (!expires) return Unauthorized("token has no numeric exp claim");
  claims.expires_at_s = *expires;
  if (now / 1000 >= claims.expires_at_s) return Unauthorized("token expired");
  if (const auto* nbf = obj.if_contains("nbf")) {  // RFC 7519 §4.1.5
    const std::optional<int64_t> not_before = NumericDate(*nbf);
    if (!not_before) return Unauthorized("token nbf claim must be a number");
    if (now / 1000 < *not_before) return Unauthorized("token not valid yet");
  }
  if (const auto* iat = obj.if_contains("iat")) {
    if (!iat->is_number()) return Unauthorized("token iat claim must be a number");
    const double ms = iat->to_number<double>() * 1000.0;
    if (!std::isfinite(ms)) return Unauthorized("token iat claim must be a number");
    claims.issued_at_ms = ms >= 9.2e18    ? INT64_MAX
                          : ms <= -9.2e18 ? INT64_MIN
                                          : static_cast<TimeMs>(std::llround(ms));
  }
  if (const auto* ch = obj.if_contains("channels")) {
    if (!ch->is_array()) return Unauthorized("channels claim must be an array of strings");
    std::vector<std::string> patterns;
    for (const auto& p : ch->as_array()) {
      if (!p.is_string()) return Unauthorized("channels claim must be an array of strings");
      patterns.emplace_back(p.as_string());
    }
    claims.channels = std::move(patterns);
  }
  if (const auto* roles = obj.if_contains("roles")) {
    if (!roles->is_array()) return Unauthorized("roles claim must be an array of strings");
    for (const auto& r : roles->as_array()) {
      if (!r.is_string()) return Unauthorized("roles claim must be an array of strings");
      if (r.as_string() == "worker") claims.worker = true;
    }
  }
  return claims;
}

Result<std::string> MintToken(std::string_view secret, std::string_view client_id, int64_t ttl_s,
                              const std::optional<std::vector<std::string>>& channels, TimeMs now,
                              const std::vector<std::string>& roles) {
  if (secret.empty()) return MakeError(ErrorCode::kBadRequest, "no signing secret");
  if (client_id.empty()) return MakeError(ErrorCode::kBadRequest, "client id must not be empty");
  if (ttl_s <= 0) return MakeError(ErrorCode::kBadRequest, "ttl must be positive");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return MakeError(ErrorCode::kInternal, "jwt_new failed");
  JwtPtr jwt(raw);
  boost::json::object claims;
  claims["sub"] = std::string(client_id);
  claims["iat"] = static_cast<double>(now) / 1000.0;
  claims["exp"] = now / 1000 + ttl_s;
  if (channels) {
    boost::json::array a;
    for (const auto& c : *channels) a.emplace_back(c);
    claims["channels"] = std::move(a);
  }
  if (!roles.empty()) {
    boost::json::array a;
    for (const auto& r : roles) a.emplace_back(r);
    claims["roles"] = std::move(a);
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

bool AnyPatternMatches(const std::vector<std::string>& patterns, std::string_view channel) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return GlobMatch(p, channel); });
}

bool ChannelAllowed(const TokenClaims& claims, std::string_view channel) {
  return !claims.channels || AnyPatternMatches(*claims.channels, channel);
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
