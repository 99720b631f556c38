// WebSocket (RFC 6455) framing for the server side, without I/O: parsing masked client frames
// into messages, and encoding unmasked server frames.
//
// presenced frames its own WebSocket messages (Beast parses the HTTP upgrade) so that several
// queued messages go out in one gather write: Beast's websocket stream writes one message per
// operation. Pure code; each MessageReader belongs to one session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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
constexpr uint16_t kCloseUnsupported = 1003;   // binary messages
constexpr uint16_t kCloseTooBig = 1009;        // message over the frame limit
constexpr uint16_t kCloseSuperseded = 4000;    // the connection was resumed on another socket
constexpr uint16_t kCloseSlowConsumer = 4008;  // outbound queue over its bound

// One complete message or control frame, as the reader delivers it.
struct Message {
  Opcode opcode = Opcode::kText;  // kText, kBinary, kClose, kPing or kPong
  std::string payload;
};

// Reassembles client frames into messages. Feed it bytes; take messages out.
class MessageReader {
 public:
  enum class Result { kNeedMore, kMessage, kError };

  explicit MessageReader(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Parses from `data` (appended by the caller since the last call, minus `consumed`). On
  // kMessage, `out` holds it; on kError, close_code()/error() say why. `consumed` is set to the
  // number of bytes of `data` used.
  Result Next(std::string_view data, Message& out, size_t& consumed);

  uint16_t close_code() const { return close_code_; }
  const std::string& error() const { return error_; }

 private:
  Result Fail(uint16_t code, std::string why) {
    close_code_ = code;
    error_ = std::move(why);
    return Result::kError;
  }

  size_t max_message_bytes_;
  bool in_message_ = false;  // a fragmented data message is being assembled
  Opcode message_opcode_ = Opcode::kText;
  std::string partial_;
  uint16_t close_code_ = 0;
  std::string error_;
};

// The header of an unmasked, final server frame carrying `payload_size` bytes.
std::string FrameHeader(Opcode opcode, size_t payload_size);
// A complete unmasked server frame.
std::string EncodeFrame(Opcode opcode, std::string_view payload);
// A close frame with a status code and reason (reason truncated to fit 125 bytes).
std::string EncodeClose(uint16_t code, std::string_view reason);

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string AcceptKey(std::string_view client_key);

}  // namespace presenced::net::ws
