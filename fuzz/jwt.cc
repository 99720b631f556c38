// Fuzzes JWT verification (protocol::VerifyToken).
//
// A random token almost never carries a valid HS256 signature, so most inputs are signed here:
// byte 0 picks the mode, the rest is split into a header and a claims part (at the first 0x00),
// which are base64url-encoded and signed with the server's secret. Mode:
//   0: the input is the token text itself (signature, base64 and structure checks);
//   1: header and claims are signed as given (the claims parsing);
//   2: claims are signed under a fixed HS256 header;
//   3: a token minted by MintToken from the input (client id, channels) must verify to the same
//      claims.
//
// Invariants: no crash, no UB, no exception; a verified token has a non-empty `sub`, an `exp`
// after `now`, and for mode 3 exactly the claims it was minted with.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "protocol/auth.h"

namespace {

using presenced::TimeMs;
using presenced::protocol::MintToken;
using presenced::protocol::VerifyToken;

constexpr std::string_view kSecret = "fuzz-secret";
constexpr TimeMs kNow = 1'700'000'000'000;

std::string Base64Url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string Sign(std::string_view header, std::string_view claims) {
  std::string signing_input = Base64Url(header) + "." + Base64Url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return signing_input + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

void CheckVerified(const presenced::Result<presenced::protocol::TokenClaims>& r) {
  if (!r.ok()) {
    FUZZ_CHECK(r.error().code == presenced::ErrorCode::kUnauthorized);
    return;
  }
  FUZZ_CHECK(!r->client_id.empty());
  FUZZ_CHECK(r->expires_at_s > kNow / 1000);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 4;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view first = rest.substr(0, nul);
  const std::string_view second =
      nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);

  switch (mode) {
    case 0:
      CheckVerified(VerifyToken(rest, kSecret, kNow));
      break;
    case 1:
      CheckVerified(VerifyToken(Sign(first, second), kSecret, kNow));
      break;
    case 2:
      CheckVerified(VerifyToken(Sign(R"({"alg":"HS256","typ":"JWT"})", rest), kSecret, kNow));
      break;
    case 3: {
      // `first` is the client id; the rest, split at 0x00 again, the channel patterns (none at
      // all when there is no second part).
      std::optional<std::vector<std::string>> channels;
      if (nul != std::string_view::npos) {
        channels.emplace();
        std::string_view list = second;
        while (!list.empty()) {
          const size_t cut = list.find('\0');
          channels->emplace_back(list.substr(0, cut));
          if (cut == std::string_view::npos) break;
          list.remove_prefix(cut + 1);
        }
      }
      auto token = MintToken(kSecret, first, 3600, channels, kNow);
      if (!token.ok()) break;  // e.g. an empty client id, or bytes JSON cannot carry
      auto claims = VerifyToken(*token, kSecret, kNow);
      FUZZ_CHECK(claims.ok());
      FUZZ_CHECK(claims->client_id == first);
      FUZZ_CHECK(claims->expires_at_s == kNow / 1000 + 3600);
      FUZZ_CHECK(claims->channels == channels);
      // The same token must not verify with another secret, nor after it expired.
      FUZZ_CHECK(!VerifyToken(*token, "another-secret", kNow).ok());
      FUZZ_CHECK(!VerifyToken(*token, kSecret, kNow + 3600 * 1000).ok());
      break;
    }
  }
  return 0;
}
