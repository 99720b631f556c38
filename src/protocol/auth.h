// Authentication: HS256 JWTs for WebSocket clients, channel patterns, and API keys for REST.
// Pure functions (libjwt underneath); thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace presenced::protocol {

struct TokenClaims {
  std::string client_id;     // `sub`
  int64_t expires_at_s = 0;  // `exp`, seconds since the epoch
  // `iat` in milliseconds (a fractional NumericDate keeps its milliseconds; MintToken writes
  // them), or nullopt when the token has none: revocations compare it (POST /v1/users/{id}/revoke).
  std::optional<TimeMs> issued_at_ms;
  std::optional<std::vector<std::string>> channels;  // glob patterns; absent = all channels
  bool worker = false;  // `roles` includes "worker": may serve agent sessions (protocol-ext §3)
};

// Verifies an HS256 token signed with `secret` and not expired at `now`. Any other algorithm,
// a bad signature, a missing `sub` or `exp`, or a malformed `channels` or `roles` claim is
// unauthorized.
Result<TokenClaims> VerifyToken(std::string_view token, std::string_view secret, TimeMs now);

// Signs a token for `client_id` valid for `ttl_s` seconds from `now`; its `iat` is `now` to the
// millisecond (a fractional NumericDate), so a token minted just after a revocation is not taken
// for one issued before it.
// `roles`, when not empty, becomes the `roles` claim.
Result<std::string> MintToken(std::string_view secret, std::string_view client_id, int64_t ttl_s,
                              const std::optional<std::vector<std::string>>& channels, TimeMs now,
                              const std::vector<std::string>& roles = {});

// `*` matches any run of characters (including none); every other character is literal.
bool GlobMatch(std::string_view pattern, std::string_view text);

// True when one of `patterns` matches `channel`.
bool AnyPatternMatches(const std::vector<std::string>& patterns, std::string_view channel);

// True when the claims allow `channel`.
bool ChannelAllowed(const TokenClaims& claims, std::string_view channel);

// Constant-time comparison of an `Authorization` header value against `Bearer <api_key>`.
bool BearerMatches(std::string_view authorization, std::string_view api_key);

}  // namespace presenced::protocol
