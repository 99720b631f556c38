#include "net/ws_codec.h"

#include <gtest/gtest.h>

namespace presenced::net::ws {
namespace {

// A masked client frame, as a browser would send it.
std::string ClientFrame(Opcode op, std::string_view payload, bool fin = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(op)));
  const size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(mask, 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
  return f;
}

TEST(WsCodecTest, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsCodecTest, ReadsMessagesByteByByte) {
  MessageReader reader(1 << 20);
  std::string big(70000, 'x');
  std::string wire = ClientFrame(Opcode::kText, "hello") + ClientFrame(Opcode::kText, big);
  std::string buffered;
  std::vector<std::string> got;
  for (char c : wire) {
    buffered.push_back(c);
    Message m;
    size_t used = 0;
    auto r = reader.Next(buffered, m, used);
    ASSERT_NE(r, MessageReader::Result::kError);
    buffered.erase(0, used);
    if (r == MessageReader::Result::kMessage) got.push_back(m.payload);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "hello");
  EXPECT_EQ(got[1], big);
}

TEST(WsCodecTest, ReassemblesFragmentsAroundControlFrames) {
  MessageReader reader(100);
  std::string wire = ClientFrame(Opcode::kText, "ab", false) + ClientFrame(Opcode::kPing, "p") +
                     ClientFrame(Opcode::kContinuation, "cd", true);
  Message m;
  size_t used = 0;
  ASSERT_EQ(reader.Next(wire, m, used), MessageReader::Result::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kPing);
  wire.erase(0, used);
  ASSERT_EQ(reader.Next(wire, m, used), MessageReader::Result::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_EQ(m.payload, "abcd");
}

TEST(WsCodecTest, RefusesOversizeUnmaskedAndMalformedFrames) {
  {
    MessageReader reader(10);
    Message m;
    size_t used;
    // Refused from the header alone, before the payload arrives.
    std::string header = ClientFrame(Opcode::kText, std::string(11, 'x')).substr(0, 2);
    EXPECT_EQ(reader.Next(header, m, used), MessageReader::Result::kError);
    EXPECT_EQ(reader.close_code(), kCloseTooBig);
  }
  {
    MessageReader reader(10);
    Message m;
    size_t used;
    std::string two =
        ClientFrame(Opcode::kText, "123456", false) + ClientFrame(Opcode::kContinuation, "789012");
    EXPECT_EQ(reader.Next(two, m, used), MessageReader::Result::kError);
    EXPECT_EQ(reader.close_code(), kCloseTooBig);
  }
  {
    MessageReader reader(10);
    Message m;
    size_t used;
    std::string unmasked = EncodeFrame(Opcode::kText, "hi");
    EXPECT_EQ(reader.Next(unmasked, m, used), MessageReader::Result::kError);
    EXPECT_EQ(reader.close_code(), kCloseProtocolError);
  }
  {
    MessageReader reader(10);
    Message m;
    size_t used;
    EXPECT_EQ(reader.Next(ClientFrame(Opcode::kContinuation, "x"), m, used),
              MessageReader::Result::kError);
  }
}

// A raw masked frame header claiming `length` bytes (64-bit form), without its payload.
std::string HugeHeader(Opcode op, uint64_t length, bool fin) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(op)));
  f.push_back(static_cast<char>(0x80 | 127));
  for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  f.append("\x01\x02\x03\x04", 4);
  return f;
}

TEST(WsCodecTest, LengthsThatWouldWrapAreRefusedNotAllocated) {
  for (uint64_t length : {~0ULL, (1ULL << 63), (1ULL << 63) - 1, ~0ULL - 2}) {
    MessageReader reader(100);
    Message m;
    size_t used = 0;
    // A 1-byte first fragment, then a continuation claiming a huge length.
    std::string wire = ClientFrame(Opcode::kText, "a", false) +
                       HugeHeader(Opcode::kContinuation, length, true) + "xxxxxxxxxxxxxxxx";
    EXPECT_EQ(reader.Next(wire, m, used), MessageReader::Result::kError) << length;
  }
}

TEST(WsCodecTest, EncodesLengthsInAllThreeForms) {
  EXPECT_EQ(FrameHeader(Opcode::kText, 5), std::string("\x81\x05", 2));
  EXPECT_EQ(FrameHeader(Opcode::kText, 300), std::string("\x81\x7e\x01\x2c", 4));
  EXPECT_EQ(FrameHeader(Opcode::kText, 70000).size(), 10u);
  std::string close = EncodeClose(1001, "bye");
  EXPECT_EQ(close, std::string("\x88\x05\x03\xe9"
                               "bye",
                               7));
}

}  // namespace
}  // namespace presenced::net::ws
