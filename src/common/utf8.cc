// UTF-8 validation, whole and incremental (utf8.h); pure, thread-compatible.
#include "common/utf8.h"

#include <cstring>

namespace presenced {

bool Utf8Validator::Feed(std::string_view bytes) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    if (need_ == 0) {
      // Fast path: eight ASCII bytes at a time.
      while (end - p >= 8) {
        uint64_t word;
        std::memcpy(&word, p, 8);
        if (word & 0x8080808080808080ULL) break;
        p += 8;
      }
      if (p == end) break;
      const unsigned char c = *p++;
      if (c < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {  // C0 and C1 would be overlong two-byte forms
        need_ = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need_ = 2;
        if (c == 0xE0) lo_ = 0xA0;  // overlong three-byte forms
        if (c == 0xED) hi_ = 0x9F;  // surrogates U+D800..U+DFFF
      } else if (c >= 0xF0 && c <= 0xF4) {
        need_ = 3;
        if (c == 0xF0) lo_ = 0x90;  // overlong four-byte forms
        if (c == 0xF4) hi_ = 0x8F;  // above U+10FFFF
      } else {
        failed_ = true;  // a continuation byte without a lead, C0, C1, F5..FF
        return false;
      }
      continue;
    }
    const unsigned char c = *p++;
    if (c < lo_ || c > hi_) {
      failed_ = true;
      return false;
    }
    lo_ = 0x80;
    hi_ = 0xBF;
    --need_;
  }
  return true;
}

bool IsValidUtf8(std::string_view s) {
  Utf8Validator v;
  return v.Feed(s) && v.Complete();
}

std::string_view Utf8Prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  // Step back over continuation bytes to the lead byte of the character that would be cut.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace presenced
