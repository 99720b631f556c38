// SecureRandom (getrandom, thread-safe), SeededRandom and id helpers (random.h).
#include "common/random.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

namespace presenced {

void SecureRandom::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // The kernel CSPRNG is unavailable: identifiers would be guessable, so refuse to continue.
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
}

void SeededRandom::Fill(std::span<uint8_t> out) {
  for (uint8_t& b : out) b = static_cast<uint8_t>(engine_());
}

std::string RandomHex(RandomSource& random, size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::vector<uint8_t> raw(bytes);
  random.Fill(raw);
  std::string out;
  out.reserve(bytes * 2);
  for (uint8_t b : raw) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::string RandomId(RandomSource& random, size_t length) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  static constexpr size_t kSize = sizeof(kAlphabet) - 1;  // 62
  std::string out;
  out.reserve(length);
  // Bytes are drawn in batches (one system call per identifier, not one per character); a
  // rejected byte is rare (8 in 256), so one batch with some slack nearly always suffices.
  uint8_t raw[64];
  size_t pos = 0, have = 0;
  while (out.size() < length) {
    if (pos == have) {
      have = std::min(sizeof raw, length - out.size() + 8);
      random.Fill(std::span<uint8_t>(raw, have));
      pos = 0;
    }
    const uint8_t b = raw[pos++];
    if (b >= 248) continue;  // 248 = 4 * 62: rejecting the rest keeps the choice uniform
    out.push_back(kAlphabet[b % kSize]);
  }
  return out;
}

}  // namespace presenced
