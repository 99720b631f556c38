#include "protocol/auth.h"

#include <gtest/gtest.h>

namespace presenced::protocol {
namespace {

constexpr TimeMs kNow = 1700000000000;

TEST(AuthTest, MintedTokensVerify) {
  auto token = MintToken("secret", "alice", 60, std::vector<std::string>{"room-*"}, kNow);
  ASSERT_TRUE(token.ok());
  auto claims = VerifyToken(*token, "secret", kNow);
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(claims->client_id, "alice");
  EXPECT_EQ(claims->expires_at_s, kNow / 1000 + 60);
  ASSERT_TRUE(claims->channels.has_value());
  EXPECT_TRUE(ChannelAllowed(*claims, "room-1"));
  EXPECT_FALSE(ChannelAllowed(*claims, "lobby"));
}

TEST(AuthTest, RefusesBadTokens) {
  auto token = MintToken("secret", "alice", 60, std::nullopt, kNow);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(VerifyToken(*token, "other", kNow).error().code, ErrorCode::kUnauthorized);
  EXPECT_EQ(VerifyToken(*token, "secret", kNow + 60000).error().code, ErrorCode::kUnauthorized);
  EXPECT_EQ(VerifyToken("not.a.token", "secret", kNow).error().code, ErrorCode::kUnauthorized);
  EXPECT_EQ(VerifyToken("", "secret", kNow).error().code, ErrorCode::kUnauthorized);
  // alg "none" with no signature.
  EXPECT_FALSE(
      VerifyToken("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.",
                  "secret", kNow)
          .ok());
  auto all = VerifyToken(*token, "secret", kNow);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(ChannelAllowed(*all, "anything"));
}

TEST(AuthTest, GlobStarMatchesAnyRunOtherCharactersAreLiteral) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a*c", "abbbc"));
  EXPECT_TRUE(GlobMatch("a*c", "ac"));
  EXPECT_FALSE(GlobMatch("a*c", "acb"));
  EXPECT_TRUE(GlobMatch("*:*", "chat:1"));
  EXPECT_FALSE(GlobMatch("a?c", "abc"));
  EXPECT_TRUE(GlobMatch("a?c", "a?c"));
  EXPECT_FALSE(GlobMatch("room", "room2"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXbYbZc"));
}

TEST(AuthTest, BearerKeys) {
  EXPECT_TRUE(BearerMatches("Bearer k123", "k123"));
  EXPECT_FALSE(BearerMatches("Bearer k124", "k123"));
  EXPECT_FALSE(BearerMatches("k123", "k123"));
  EXPECT_FALSE(BearerMatches("Bearer ", ""));
}

}  // namespace
}  // namespace presenced::protocol
