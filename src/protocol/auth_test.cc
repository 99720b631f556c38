#include "protocol/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

namespace presenced::protocol {
namespace {

constexpr TimeMs kNow = 1700000000000;

std::string Base64Url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

// A token with any header and claims, correctly signed HS256 with `secret`.
std::string Sign(std::string_view header, std::string_view claims, std::string_view secret) {
  std::string input = Base64Url(header) + "." + Base64Url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + Base64Url(std::string_view(reinterpret_cast<char*>(mac), len));
}

constexpr std::string_view kHs256 = R"({"alg":"HS256","typ":"JWT"})";

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

TEST(AuthTest, HandSignedTokensVerifyLikeMintedOnes) {
  auto claims = VerifyToken(Sign(kHs256, R"({"sub":"bob","exp":1700000060})", "k"), "k", kNow);
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(claims->client_id, "bob");
}

TEST(AuthTest, AlgorithmMustBeExactlyHs256) {
  // libjwt compares algorithm names without regard to case; RFC 7515 §4.1.1 names are exact.
  const std::string claims = R"({"sub":"bob","exp":1700000060})";
  EXPECT_FALSE(VerifyToken(Sign(R"({"alg":"hs256"})", claims, "k"), "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(Sign(R"({"alg":"HS512"})", claims, "k"), "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(Sign(R"({"typ":"JWT"})", claims, "k"), "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(Sign(R"({"alg":"HS256","crit":["x"]})", claims, "k"), "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(Sign("[1]", claims, "k"), "k", kNow).ok());
}

TEST(AuthTest, OnlyStrictBase64UrlIsAccepted) {
  // RFC 7515 §2: base64url without padding. libjwt alone also takes '+', '/' and '='.
  const std::string good = Sign(kHs256, R"({"sub":"bob","exp":1700000060})", "k");
  ASSERT_TRUE(VerifyToken(good, "k", kNow).ok());
  // A token whose signature has a '-' or '_', sent in the standard alphabet instead.
  std::string other;
  for (int i = 0; other.find_first_of("-_", other.rfind('.')) == std::string::npos; ++i) {
    other = Sign(kHs256, R"({"sub":"bob)" + std::to_string(i) + R"(","exp":1700000060})", "k");
  }
  ASSERT_TRUE(VerifyToken(other, "k", kNow).ok());
  for (char& c : other) c = c == '-' ? '+' : c == '_' ? '/' : c;
  EXPECT_FALSE(VerifyToken(other, "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(good + "=", "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(good + ".x", "k", kNow).ok());
  EXPECT_FALSE(VerifyToken(good.substr(0, good.rfind('.')) + ".", "k", kNow).ok());
  // The same 32 signature bytes with a non-zero unused bit in the last character (43 characters
  // carry 258 bits): the next character of the alphabet decodes to the same bytes.
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string tweaked = good;
  tweaked.back() = kAlphabet[kAlphabet.find(tweaked.back()) + 1];
  EXPECT_FALSE(VerifyToken(tweaked, "k", kNow).ok());
}

TEST(AuthTest, ExpOfAnyNumericSizeIsDefined) {
  // A huge double was cast to int64 with undefined behaviour; it is the far future.
  for (const char* exp : {"1e300", "9223372036854775807", "1.7e308"}) {
    const std::string claims = std::string(R"({"sub":"bob","exp":)") + exp + "}";
    EXPECT_TRUE(VerifyToken(Sign(kHs256, claims, "k"), "k", kNow).ok()) << exp;
  }
  // Refused: in the past, not a number, or (libjwt's JSON parser) an integer beyond int64.
  for (const char* exp :
       {"-1e300", "1699999999.5", R"("9999999999")", "null", "18446744073709551615"}) {
    const std::string claims = std::string(R"({"sub":"bob","exp":)") + exp + "}";
    EXPECT_FALSE(VerifyToken(Sign(kHs256, claims, "k"), "k", kNow).ok()) << exp;
  }
}

TEST(AuthTest, NotBeforeIsHonoured) {
  // RFC 7519 §4.1.5.
  auto token = [](const char* nbf) {
    return Sign(kHs256, std::string(R"({"sub":"bob","exp":1700000060,"nbf":)") + nbf + "}", "k");
  };
  EXPECT_TRUE(VerifyToken(token("1700000000"), "k", kNow).ok());
  EXPECT_TRUE(VerifyToken(token("1600000000"), "k", kNow).ok());
  auto early = VerifyToken(token("1700000001"), "k", kNow);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ErrorCode::kUnauthorized);
  EXPECT_FALSE(VerifyToken(token(R"("soon")"), "k", kNow).ok());
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
