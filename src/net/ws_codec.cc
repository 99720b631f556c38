// RFC 6455 server-side framing (ws_codec.h); pure, one reader per session.
#include "net/ws_codec.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace presenced::net::ws {

namespace {

bool IsControl(Opcode op) { return static_cast<uint8_t>(op) & 0x8; }

bool IsKnownOpcode(uint8_t op) {
  switch (static_cast<Opcode>(op)) {
    case Opcode::kContinuation:
    case Opcode::kText:
    case Opcode::kBinary:
    case Opcode::kClose:
    case Opcode::kPing:
    case Opcode::kPong:
      return true;
  }
  return false;  // 0x3-0x7 and 0xB-0xF are reserved (§5.2)
}

// Appends the header of an unmasked, final frame to `out`.
void AppendHeader(Opcode opcode, size_t n, std::string& out) {
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((n >> 8) & 0xff));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i) {
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
    }
  }
}

}  // namespace

bool IsValidCloseCode(uint16_t code) {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

MessageReader::Result MessageReader::ReadHeader(std::string_view data, size_t& used) {
  // Every check is made as soon as the bytes it needs are here, so a bad frame is refused before
  // its payload (or even its mask) arrives.
  if (data.empty()) return Result::kNeedMore;
  const auto b0 = static_cast<uint8_t>(data[0]);
  const bool fin = b0 & 0x80;
  // No extension is negotiated, so every reserved bit must be 0 (§5.2).
  if (b0 & 0x70) return Fail(kCloseProtocolError, "reserved bits set");
  if (!IsKnownOpcode(b0 & 0x0f)) return Fail(kCloseProtocolError, "reserved opcode");
  const auto opcode = static_cast<Opcode>(b0 & 0x0f);
  if (data.size() < 2) return Result::kNeedMore;
  const auto b1 = static_cast<uint8_t>(data[1]);
  if (!(b1 & 0x80)) return Fail(kCloseProtocolError, "client frames must be masked");  // §5.1
  uint64_t length = b1 & 0x7f;
  if (IsControl(opcode)) {  // §5.5
    if (!fin) return Fail(kCloseProtocolError, "fragmented control frame");
    if (length > 125) return Fail(kCloseProtocolError, "control frame too long");
  } else if (opcode == Opcode::kContinuation) {  // §5.4
    if (!in_message_) return Fail(kCloseProtocolError, "continuation without a message");
  } else if (in_message_) {
    return Fail(kCloseProtocolError, "new message inside a fragmented one");
  }
  size_t header = 2;
  if (length == 126) {
    if (data.size() < 4) return Result::kNeedMore;
    length =
        (static_cast<uint64_t>(static_cast<uint8_t>(data[2])) << 8) | static_cast<uint8_t>(data[3]);
    // "The minimal number of bytes MUST be used to encode the length" (§5.2).
    if (length < 126) return Fail(kCloseProtocolError, "frame length not minimally encoded");
    header = 4;
  } else if (length == 127) {
    if (data.size() < 10) return Result::kNeedMore;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | static_cast<uint8_t>(data[2 + i]);
    if (length >> 63) return Fail(kCloseProtocolError, "frame length has its top bit set");
    if (length <= 0xffff) return Fail(kCloseProtocolError, "frame length not minimally encoded");
    header = 10;
  }
  // Refuse an oversize message as soon as its size is known, before buffering it. No sum here
  // may wrap: `length` comes from the peer.
  if (!IsControl(opcode) &&
      (partial_.size() > max_message_bytes_ || length > max_message_bytes_ - partial_.size())) {
    return Fail(kCloseTooBig,
                "message larger than " + std::to_string(max_message_bytes_) + " bytes");
  }
  if (data.size() < header + 4) return Result::kNeedMore;
  std::memcpy(mask_, data.data() + header, 4);
  mask_pos_ = 0;
  frame_fin_ = fin;
  frame_opcode_ = opcode;
  frame_remaining_ = length;
  used = header + 4;
  return Result::kMessage;
}

namespace {

// Unmasks `n` bytes of payload from `src` into `dst`, `pos` being the mask index of the first.
void Unmask(const char* src, size_t n, char* dst, const uint8_t mask[4], uint8_t& pos) {
  size_t i = 0;
  for (; i < n && pos != 0; ++i, pos = (pos + 1) & 3)
    dst[i] = static_cast<char>(src[i] ^ mask[pos]);
  if (n - i >= 8) {
    const uint8_t m8[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
    uint64_t m;
    std::memcpy(&m, m8, 8);
    for (; n - i >= 8; i += 8) {
      uint64_t w;
      std::memcpy(&w, src + i, 8);
      w ^= m;
      std::memcpy(dst + i, &w, 8);
    }
  }
  for (; i < n; ++i, pos = (pos + 1) & 3) dst[i] = static_cast<char>(src[i] ^ mask[pos]);
}

}  // namespace

MessageReader::Result MessageReader::Next(std::string_view data, Message& out, size_t& consumed) {
  consumed = 0;
  size_t pos = 0;
  while (true) {
    if (!in_frame_) {
      size_t used = 0;
      const Result r = ReadHeader(data.substr(pos), used);
      if (r != Result::kMessage) return r;  // kNeedMore keeps the header bytes with the caller
      pos += used;
      consumed = pos;
      in_frame_ = true;
      if (frame_opcode_ == Opcode::kText || frame_opcode_ == Opcode::kBinary) {
        in_message_ = true;
        message_opcode_ = frame_opcode_;
        partial_.clear();
        utf8_.Reset();
      }
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(frame_remaining_, data.size() - pos));
    const char* src = data.data() + pos;
    pos += n;
    consumed = pos;
    frame_remaining_ -= n;

    if (IsControl(frame_opcode_)) {
      if (control_.empty() && frame_remaining_ == 0) {
        // The usual case: the whole frame is here; unmask straight into `out`.
        out.payload.resize(n);
        Unmask(src, n, out.payload.data(), mask_, mask_pos_);
      } else {
        const size_t old = control_.size();
        control_.resize(old + n);
        Unmask(src, n, control_.data() + old, mask_, mask_pos_);
        if (frame_remaining_ > 0) return Result::kNeedMore;
        out.payload = std::move(control_);
        control_.clear();
      }
      in_frame_ = false;
      return FinishControl(out);
    }

    const size_t old = partial_.size();
    partial_.resize(old + n);
    Unmask(src, n, partial_.data() + old, mask_, mask_pos_);
    // §8.1: invalid UTF-8 fails the connection at once, wherever it is in the message.
    if (message_opcode_ == Opcode::kText &&
        !utf8_.Feed(std::string_view(partial_.data() + old, n))) {
      return Fail(kCloseInvalidData, "text message is not valid UTF-8");
    }
    if (frame_remaining_ > 0) return Result::kNeedMore;
    in_frame_ = false;
    if (!frame_fin_) continue;  // the next fragment follows (control frames may come between)
    if (message_opcode_ == Opcode::kText && !utf8_.Complete()) {
      return Fail(kCloseInvalidData, "text message ends inside a UTF-8 sequence");
    }
    in_message_ = false;
    out.opcode = message_opcode_;
    out.close_code = kCloseNoStatus;
    out.payload = std::move(partial_);
    partial_.clear();
    return Result::kMessage;
  }
}

MessageReader::Result MessageReader::FinishControl(Message& out) {
  out.opcode = frame_opcode_;
  out.close_code = kCloseNoStatus;
  if (frame_opcode_ != Opcode::kClose) return Result::kMessage;
  // §5.5.1: empty, or a 2-byte status code followed by a UTF-8 reason.
  if (out.payload.size() == 1) return Fail(kCloseProtocolError, "close payload of one byte");
  if (out.payload.empty()) return Result::kMessage;
  const auto code = static_cast<uint16_t>((static_cast<uint8_t>(out.payload[0]) << 8) |
                                          static_cast<uint8_t>(out.payload[1]));
  if (!IsValidCloseCode(code)) {
    return Fail(kCloseProtocolError, "invalid close code " + std::to_string(code));
  }
  if (!IsValidUtf8(std::string_view(out.payload).substr(2))) {
    return Fail(kCloseInvalidData, "close reason is not valid UTF-8");
  }
  out.close_code = code;
  out.payload.erase(0, 2);
  return Result::kMessage;
}

std::string FrameHeader(Opcode opcode, size_t n) {
  std::string h;
  AppendHeader(opcode, n, h);
  return h;
}

void AppendFrameHeader(Opcode opcode, size_t n, std::string& out) { AppendHeader(opcode, n, out); }

std::string EncodeFrame(Opcode opcode, std::string_view payload) {
  std::string out;
  EncodeFrameInto(opcode, payload, out);
  return out;
}

void EncodeFrameInto(Opcode opcode, std::string_view payload, std::string& out) {
  out.clear();
  AppendHeader(opcode, payload.size(), out);
  out += payload;
}

std::string EncodeClose(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload += Utf8Prefix(reason, 123);
  return EncodeFrame(Opcode::kClose, payload);
}

bool IsValidClientKey(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    const bool base64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!base64) return false;
  }
  // 16 bytes are 128 bits: the 22nd character carries 2 of them and 4 zero bits, so its value is a
  // multiple of 16 (A, Q, g or w). Anything else is not the encoding of 16 bytes.
  return std::string_view("AQgw").find(key[21]) != std::string_view::npos;
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
