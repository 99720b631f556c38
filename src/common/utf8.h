// UTF-8 validation (RFC 3629): the text of every WebSocket text message and close reason (RFC 6455
// §8.1, §5.5.1) and every client-supplied string (clientId, device, channel, path segments) must be
// well-formed UTF-8: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
//
// Utf8Validator checks a sequence incrementally, so a message split into fragments (or a code point
// split across two reads) is validated as it arrives, without buffering. Pure code; one validator
// per stream; thread-compatible.
#pragma once

#include <cstdint>
#include <string_view>

namespace presenced {

class Utf8Validator {
 public:
  // Feeds the next bytes of the sequence. False as soon as they cannot be part of valid UTF-8 (the
  // validator then stays failed until Reset).
  bool Feed(std::string_view bytes);
  // True when everything fed so far is valid and ends on a code point boundary.
  bool Complete() const { return !failed_ && need_ == 0; }
  // True when everything fed so far could still be the start of valid UTF-8.
  bool ok() const { return !failed_; }
  void Reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;  // continuation bytes still expected for the current code point
  uint8_t lo_ =
      0x80;  // allowed range of the next continuation byte (narrower after E0, ED, F0, F4)
  uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// True when `s` is complete, well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// The longest prefix of `s` of at most `max_bytes` bytes that does not end inside a code point
// (for cutting valid UTF-8 text, such as a close reason, without splitting a character).
std::string_view Utf8Prefix(std::string_view s, size_t max_bytes);

}  // namespace presenced
