// WebSocket (RFC 6455) framing for the server side, without I/O: parsing masked client frames
// into messages, and encoding unmasked server frames.
//
// presenced frames its own WebSocket messages (Beast parses the HTTP upgrade) so that several
// queued messages go out in one gather write: Beast's websocket stream writes one message per
// operation. Everything the RFC requires of a received frame is checked here, so the session only
// acts on the outcome: framing (§5.2: reserved bits, opcodes, masking, minimal lengths), control
// frames (§5.5), fragmentation (§5.4), UTF-8 of text messages, checked as the bytes arrive (§8.1),
// and close payloads (§5.5.1, §7.4).
//
// Pure code; each MessageReader belongs to one session (thread-compatible).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace presenced::net::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes used by presenced (docs/protocol.md).
constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;  // server shutdown
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseUnsupported = 1003;  // binary messages
// Never sent in a frame (RFC 6455 §7.4.1): a close frame that carried no status code.
constexpr uint16_t kCloseNoStatus = 1005;
constexpr uint16_t kCloseInvalidData = 1007;   // a text message or close reason not UTF-8
constexpr uint16_t kCloseTooBig = 1009;        // message over the frame limit
constexpr uint16_t kCloseSuperseded = 4000;    // the connection was resumed on another socket
constexpr uint16_t kCloseSlowConsumer = 4008;  // outbound queue over its bound

// True for a status code a peer may put in a close frame (RFC 6455 §7.4.1 and §7.4.2, and the
// IANA registry): 1000-1003, 1007-1014 (1012-1014 are registered since the RFC), 3000-4999.
// 1004 is reserved, 1005, 1006 and 1015 must never be sent, 1016-2999 are unassigned.
bool IsValidCloseCode(uint16_t code);

// One complete message or control frame, as the reader delivers it.
struct Message {
  Opcode opcode = Opcode::kText;  // kText, kBinary, kClose, kPing or kPong
  std::string payload;            // for kClose: the reason (after the status code)
  // kClose only: the peer's status code (checked by IsValidCloseCode), or kCloseNoStatus when its
  // frame was empty. What a server echoes (§5.5.1) is ReplyCode().
  uint16_t close_code = kCloseNoStatus;
  uint16_t ReplyCode() const { return close_code == kCloseNoStatus ? kCloseNormal : close_code; }
};

// Reassembles client frames into messages. Feed it bytes; take messages out.
//
// A frame's payload is consumed (unmasked and, for text, validated) as it arrives, so the caller
// keeps at most an incomplete frame header (under 14 bytes) between calls, and an invalid text
// message is refused at its first bad byte, not when it ends.
class MessageReader {
 public:
  enum class Result { kNeedMore, kMessage, kError };

  explicit MessageReader(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Parses from `data`: the bytes received since the last call, preceded by those it did not
  // consume last time. On kMessage, `out` holds it (its payload's storage is reused); on kError,
  // close_code()/error() say why, and the reader must not be called again. `consumed` is set to
  // the number of bytes of `data` used.
  Result Next(std::string_view data, Message& out, size_t& consumed);

  uint16_t close_code() const { return close_code_; }
  const std::string& error() const { return error_; }

 private:
  Result Fail(uint16_t code, std::string why) {
    close_code_ = code;
    error_ = std::move(why);
    return Result::kError;
  }
  // Parses a frame header at the start of `data`; kNeedMore when it is incomplete, kMessage
  // (meaning: a header was read, `used` bytes) when the frame may start.
  Result ReadHeader(std::string_view data, size_t& used);
  // The end of a control frame: checks a close payload and moves the frame to `out`.
  Result FinishControl(Message& out);

  size_t max_message_bytes_;
  // The frame being read (its header is parsed; `frame_remaining_` payload bytes are to come).
  bool in_frame_ = false;
  bool frame_fin_ = false;
  Opcode frame_opcode_ = Opcode::kText;
  uint64_t frame_remaining_ = 0;
  uint8_t mask_[4] = {0, 0, 0, 0};
  uint8_t mask_pos_ = 0;  // index into mask_ of the next payload byte
  std::string control_;   // payload of a control frame that arrived in pieces
  // The data message being assembled (a fragmented one spans several frames).
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::kText;
  std::string partial_;
  Utf8Validator utf8_;  // over partial_, for text messages
  uint16_t close_code_ = 0;
  std::string error_;
};

// The header of an unmasked, final server frame carrying `payload_size` bytes.
std::string FrameHeader(Opcode opcode, size_t payload_size);
// Appends that header to `out`.
void AppendFrameHeader(Opcode opcode, size_t payload_size, std::string& out);
// A complete unmasked server frame.
std::string EncodeFrame(Opcode opcode, std::string_view payload);
// Writes a complete unmasked server frame into `out` (reusing its storage).
void EncodeFrameInto(Opcode opcode, std::string_view payload, std::string& out);
// A close frame with a status code and a reason, cut to fit the 125-byte control payload on a
// UTF-8 character boundary (at most 123 bytes of reason).
std::string EncodeClose(uint16_t code, std::string_view reason);

// True when `key` is a valid Sec-WebSocket-Key (RFC 6455 §4.2.1): the base64 encoding of exactly
// 16 bytes, i.e. 22 base64 characters, the last one carrying no stray bits, and "==".
bool IsValidClientKey(std::string_view key);
// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string AcceptKey(std::string_view client_key);

}  // namespace presenced::net::ws
