#include "net/ws_codec.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>

namespace presenced::net::ws {

namespace {
bool IsControl(Opcode op) { return static_cast<uint8_t>(op) & 0x8; }
}  // namespace

MessageReader::Result MessageReader::Next(std::string_view data, Message& out, size_t& consumed) {
  consumed = 0;
  size_t pos = 0;
  while (true) {
    if (data.size() - pos < 2) return Result::kNeedMore;
    const auto b0 = static_cast<uint8_t>(data[pos]);
    const auto b1 = static_cast<uint8_t>(data[pos + 1]);
    const bool fin = b0 & 0x80;
    if (b0 & 0x70) return Fail(kCloseProtocolError, "reserved bits set");
    const auto opcode = static_cast<Opcode>(b0 & 0x0f);
    const bool masked = b1 & 0x80;
    uint64_t length = b1 & 0x7f;
    size_t header = 2;
    if (length == 126) {
      if (data.size() - pos < 4) return Result::kNeedMore;
      length = (static_cast<uint64_t>(static_cast<uint8_t>(data[pos + 2])) << 8) |
               static_cast<uint8_t>(data[pos + 3]);
      header = 4;
    } else if (length == 127) {
      if (data.size() - pos < 10) return Result::kNeedMore;
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | static_cast<uint8_t>(data[pos + 2 + i]);
      header = 10;
    }
    if (!masked) return Fail(kCloseProtocolError, "client frames must be masked");

    switch (opcode) {
      case Opcode::kText:
      case Opcode::kBinary:
      case Opcode::kContinuation:
      case Opcode::kClose:
      case Opcode::kPing:
      case Opcode::kPong:
        break;
      default:
        return Fail(kCloseProtocolError, "unknown opcode");
    }
    if (IsControl(opcode)) {
      if (!fin) return Fail(kCloseProtocolError, "fragmented control frame");
      if (length > 125) return Fail(kCloseProtocolError, "control frame too long");
    } else if (opcode == Opcode::kContinuation) {
      if (!in_message_) return Fail(kCloseProtocolError, "continuation without a message");
    } else if (in_message_) {
      return Fail(kCloseProtocolError, "new message inside a fragmented one");
    }
    // Refuse an oversize message as soon as its size is known, before buffering it. No sum here
    // may wrap: `length` comes from the peer.
    if (length >> 63) return Fail(kCloseProtocolError, "frame length has its top bit set");
    if (!IsControl(opcode) &&
        (partial_.size() > max_message_bytes_ || length > max_message_bytes_ - partial_.size())) {
      return Fail(kCloseTooBig,
                  "message larger than " + std::to_string(max_message_bytes_) + " bytes");
    }
    const size_t available = data.size() - pos;
    if (available < header + 4 || available - header - 4 < length) return Result::kNeedMore;

    const char* mask = data.data() + pos + header;
    const char* payload = mask + 4;
    std::string unmasked(static_cast<size_t>(length), '\0');
    for (size_t i = 0; i < length; ++i) unmasked[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
    pos += header + 4 + static_cast<size_t>(length);

    if (IsControl(opcode)) {
      out.opcode = opcode;
      out.payload = std::move(unmasked);
      consumed = pos;
      return Result::kMessage;
    }
    if (opcode != Opcode::kContinuation) {
      message_opcode_ = opcode;
      partial_.clear();
    }
    partial_ += unmasked;
    if (!fin) {
      in_message_ = true;
      consumed = pos;  // the fragment is buffered; keep going
      continue;
    }
    in_message_ = false;
    out.opcode = message_opcode_;
    out.payload = std::move(partial_);
    partial_.clear();
    consumed = pos;
    return Result::kMessage;
  }
}

std::string FrameHeader(Opcode opcode, size_t n) {
  std::string h;
  h.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  if (n < 126) {
    h.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    h.push_back(static_cast<char>(126));
    h.push_back(static_cast<char>((n >> 8) & 0xff));
    h.push_back(static_cast<char>(n & 0xff));
  } else {
    h.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i)
      h.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  return h;
}

std::string EncodeFrame(Opcode opcode, std::string_view payload) {
  std::string out = FrameHeader(opcode, payload.size());
  out += payload;
  return out;
}

std::string EncodeClose(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload += reason.substr(0, 123);
  return EncodeFrame(Opcode::kClose, payload);
}

std::string AcceptKey(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(client_key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(n));
}

}  // namespace presenced::net::ws
