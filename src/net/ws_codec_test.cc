#include "net/ws_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// Feeds `wire` to `reader` in pieces of `chunk` bytes, as reads would deliver it; returns the
// messages, and in `result` how it ended (kError as soon as the reader refuses).
std::vector<Message> Feed(MessageReader& reader, std::string_view wire, size_t chunk,
                          MessageReader::Result& result) {
  std::vector<Message> got;
  std::string buffered;
  result = MessageReader::Result::kNeedMore;
  for (size_t at = 0; at < wire.size(); at += chunk) {
    buffered.append(wire.substr(at, chunk));
    while (true) {
      Message m;
      size_t used = 0;
      result = reader.Next(buffered, m, used);
      if (result == MessageReader::Result::kError) return got;
      buffered.erase(0, used);
      if (result == MessageReader::Result::kNeedMore) break;
      got.push_back(std::move(m));
    }
  }
  return got;
}

// The close code `wire` makes the reader fail with, fed whole and byte by byte (0 if it does not).
uint16_t FailureCode(std::string_view wire, size_t max_message = 1 << 16) {
  uint16_t codes[2] = {0, 0};
  const size_t chunks[2] = {wire.size() + 1, 1};
  for (int i = 0; i < 2; ++i) {
    MessageReader reader(max_message);
    MessageReader::Result r;
    Feed(reader, wire, chunks[i], r);
    if (r == MessageReader::Result::kError) codes[i] = reader.close_code();
  }
  EXPECT_EQ(codes[0], codes[1]) << "whole and byte by byte disagree";
  return codes[0];
}

std::string CloseFrame(uint16_t code, std::string_view reason = "") {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload += reason;
  return ClientFrame(Opcode::kClose, payload);
}

// ----- §5.2 framing ------------------------------------------------------------------------------

TEST(WsCodecTest, ReservedBitsFailWith1002_Rfc6455Section5_2) {
  for (uint8_t bit : {0x40, 0x20, 0x10}) {
    std::string f = ClientFrame(Opcode::kText, "hi");
    f[0] = static_cast<char>(f[0] | bit);
    EXPECT_EQ(FailureCode(f), kCloseProtocolError) << int{bit};
    std::string ping = ClientFrame(Opcode::kPing, "");
    ping[0] = static_cast<char>(ping[0] | bit);
    EXPECT_EQ(FailureCode(ping), kCloseProtocolError) << int{bit};
  }
}

TEST(WsCodecTest, ReservedOpcodesFailWith1002_Rfc6455Section5_2) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(FailureCode(ClientFrame(static_cast<Opcode>(op), "")), kCloseProtocolError)
        << int{op};
  }
  // Also after a valid message, and refused from the first byte alone.
  MessageReader reader(100);
  MessageReader::Result r;
  auto got = Feed(reader, ClientFrame(Opcode::kText, "ok") + "\x83", 100, r);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(r, MessageReader::Result::kError);
}

TEST(WsCodecTest, LengthsMustBeMinimallyEncoded_Rfc6455Section5_2) {
  std::string sixteen = "\x81\xfe";  // 16-bit form for 5 bytes
  sixteen += std::string("\x00\x05", 2) + "\x01\x02\x03\x04" + "abcde";
  EXPECT_EQ(FailureCode(sixteen), kCloseProtocolError);
  EXPECT_EQ(FailureCode(HugeHeader(Opcode::kText, 300, true) + std::string(300, 'x')),
            kCloseProtocolError);  // 64-bit form for a 16-bit length
  // The smallest lengths of each form are accepted.
  MessageReader reader(1 << 20);
  MessageReader::Result r;
  auto got = Feed(reader,
                  ClientFrame(Opcode::kText, std::string(125, 'a')) +
                      ClientFrame(Opcode::kText, std::string(126, 'b')) +
                      ClientFrame(Opcode::kText, std::string(65536, 'c')),
                  4096, r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].payload.size(), 126u);
  EXPECT_EQ(got[2].payload.size(), 65536u);
}

// ----- §5.5 control frames, §5.4 fragmentation ---------------------------------------------------

TEST(WsCodecTest, ControlFramesAreShortAndWhole_Rfc6455Section5_5) {
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kPing, std::string(126, 'p'))), kCloseProtocolError);
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kPong, "p", false)), kCloseProtocolError);
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kClose, "", false)), kCloseProtocolError);
  MessageReader reader(100);
  MessageReader::Result r;
  // 125 bytes is the most a control frame carries; delivered whole even when read byte by byte.
  auto got = Feed(reader, ClientFrame(Opcode::kPing, std::string(125, 'p')), 1, r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].opcode, Opcode::kPing);
  EXPECT_EQ(got[0].payload, std::string(125, 'p'));
}

TEST(WsCodecTest, FragmentsMustFollowTheirMessage_Rfc6455Section5_4) {
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kContinuation, "x")), kCloseProtocolError);
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "a", false) + ClientFrame(Opcode::kText, "b")),
            kCloseProtocolError);
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kBinary, "a", false) + ClientFrame(Opcode::kText, "b")),
            kCloseProtocolError);
  // A finished message cannot be continued.
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "a") + ClientFrame(Opcode::kContinuation, "b")),
            kCloseProtocolError);
}

TEST(WsCodecTest, ControlFramesBetweenFragmentsArriveFirst_Rfc6455Section5_4) {
  MessageReader reader(100);
  MessageReader::Result r;
  std::string wire = ClientFrame(Opcode::kText, "ab", false) + ClientFrame(Opcode::kPing, "1") +
                     ClientFrame(Opcode::kContinuation, "", false) +
                     ClientFrame(Opcode::kPong, "2") + ClientFrame(Opcode::kContinuation, "cd");
  for (size_t chunk : {size_t{1}, size_t{3}, wire.size()}) {
    auto got = Feed(reader, wire, chunk, r);
    ASSERT_EQ(got.size(), 3u) << chunk;
    EXPECT_EQ(got[0].opcode, Opcode::kPing);
    EXPECT_EQ(got[0].payload, "1");
    EXPECT_EQ(got[1].opcode, Opcode::kPong);
    EXPECT_EQ(got[2].opcode, Opcode::kText);
    EXPECT_EQ(got[2].payload, "abcd");
  }
}

// ----- §8.1 UTF-8 of text messages ---------------------------------------------------------------

TEST(WsCodecTest, InvalidUtf8InATextMessageFailsWith1007_Rfc6455Section8_1) {
  for (std::string_view bad : {
           std::string_view("\xff"),
           std::string_view("abc\x80"),           // continuation without a lead byte
           std::string_view("\xc0\xaf"),          // overlong '/'
           std::string_view("\xed\xa0\x80"),      // a surrogate (U+D800)
           std::string_view("\xf4\x90\x80\x80"),  // above U+10FFFF
           std::string_view("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
                            "edited"),
       }) {
    EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, bad)), kCloseInvalidData) << bad;
  }
}

TEST(WsCodecTest, Utf8IsValidatedAcrossFragments_Rfc6455Section8_1) {
  // "€" (E2 82 AC) split over three fragments, with a ping between: one valid message.
  MessageReader reader(100);
  MessageReader::Result r;
  auto got = Feed(reader,
                  ClientFrame(Opcode::kText, "x\xe2", false) + ClientFrame(Opcode::kPing, "") +
                      ClientFrame(Opcode::kContinuation, "\x82", false) +
                      ClientFrame(Opcode::kContinuation, "\xac!"),
                  1, r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, "x\xe2\x82\xac!");
  // The same lead byte followed, in the next fragment, by a byte that cannot continue it.
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "x\xe2", false) +
                        ClientFrame(Opcode::kContinuation, "(")),
            kCloseInvalidData);
  // An invalid byte in a later fragment.
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "ok", false) +
                        ClientFrame(Opcode::kContinuation, "\xf8", false) +
                        ClientFrame(Opcode::kContinuation, "end")),
            kCloseInvalidData);
}

TEST(WsCodecTest, SequenceTruncatedAtTheEndOfTheMessageFailsWith1007_Rfc6455Section8_1) {
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "a\xe2\x82")), kCloseInvalidData);
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kText, "a\xf0\x9f", false) +
                        ClientFrame(Opcode::kContinuation, "\x98")),
            kCloseInvalidData);
}

TEST(WsCodecTest, InvalidUtf8IsRefusedBeforeTheFrameEnds_Rfc6455Section8_1) {
  // Autobahn 6.4 ("fail fast"): the reader refuses at the bad byte, the rest has not arrived.
  std::string frame =
      ClientFrame(Opcode::kText, "\xce\xba\xe1\xbd\xb9\xf4\x90\x80\x80" + std::string(1000, 'x'));
  MessageReader reader(1 << 16);
  Message m;
  size_t used = 0;
  EXPECT_EQ(reader.Next(std::string_view(frame).substr(0, 4 + 4 + 10), m, used),
            MessageReader::Result::kError);
  EXPECT_EQ(reader.close_code(), kCloseInvalidData);
}

TEST(WsCodecTest, EachMessageIsValidatedFromItsStart) {
  // A text message that ended inside nothing leaves no state behind; binary is not validated.
  MessageReader reader(100);
  MessageReader::Result r;
  auto got =
      Feed(reader,
           ClientFrame(Opcode::kText, "\xc3\xa9") + ClientFrame(Opcode::kBinary, "\xff\xc3") +
               ClientFrame(Opcode::kText, "\xc3\xa9"),
           2, r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].opcode, Opcode::kBinary);
  EXPECT_EQ(got[1].payload, "\xff\xc3");
  EXPECT_NE(r, MessageReader::Result::kError);
}

// ----- §5.5.1, §7.4 close frames ----------------------------------------------------------------

TEST(WsCodecTest, CloseCodesAPeerMaySendAreDelivered_Rfc6455Section7_4) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4008, 4999}) {
    MessageReader reader(100);
    MessageReader::Result r;
    auto got = Feed(reader, CloseFrame(code, "bye \xc3\xa9"), 1, r);
    ASSERT_EQ(got.size(), 1u) << code;
    EXPECT_EQ(got[0].opcode, Opcode::kClose);
    EXPECT_EQ(got[0].close_code, code);
    EXPECT_EQ(got[0].ReplyCode(), code);
    EXPECT_EQ(got[0].payload, "bye \xc3\xa9");
    EXPECT_TRUE(IsValidCloseCode(code));
  }
}

TEST(WsCodecTest, CloseCodesAPeerMayNotSendFailWith1002_Rfc6455Section7_4) {
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(FailureCode(CloseFrame(code)), kCloseProtocolError) << code;
    EXPECT_FALSE(IsValidCloseCode(code)) << code;
  }
}

TEST(WsCodecTest, ClosePayloadOfOneByteFailsWith1002_Rfc6455Section5_5_1) {
  EXPECT_EQ(FailureCode(ClientFrame(Opcode::kClose, "\x03")), kCloseProtocolError);
}

TEST(WsCodecTest, EmptyCloseCarriesNoStatusAndIsAnsweredWith1000_Rfc6455Section7_1_5) {
  MessageReader reader(100);
  MessageReader::Result r;
  auto got = Feed(reader, ClientFrame(Opcode::kClose, ""), 100, r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].close_code, kCloseNoStatus);
  EXPECT_EQ(got[0].ReplyCode(), kCloseNormal);
}

TEST(WsCodecTest, CloseReasonThatIsNotUtf8FailsWith1007_Rfc6455Section5_5_1) {
  EXPECT_EQ(FailureCode(CloseFrame(1000, "\xce\xba\xe1\xbd\xb9\xed\xa0\x80")), kCloseInvalidData);
  EXPECT_EQ(FailureCode(CloseFrame(1000, "cut \xe2\x82")), kCloseInvalidData);
  // The code is checked first: a bad code with a bad reason is a protocol error.
  EXPECT_EQ(FailureCode(CloseFrame(1005, "\xff")), kCloseProtocolError);
}

TEST(WsCodecTest, CloseReasonIsCutOnACharacterBoundary_Rfc6455Section5_5) {
  // 122 ASCII bytes then "€" (3 bytes): cutting at 123 bytes would split the character.
  const std::string reason = std::string(122, 'r') + "\xe2\x82\xac";
  const std::string frame = EncodeClose(1001, reason);
  ASSERT_EQ(static_cast<uint8_t>(frame[1]), 2 + 122);
  EXPECT_EQ(frame.substr(4), std::string(122, 'r'));
  // 123 bytes fit exactly; a longer ASCII reason is cut to them.
  EXPECT_EQ(EncodeClose(1000, std::string(123, 'a')).size(), 2u + 125u);
  EXPECT_EQ(EncodeClose(1000, std::string(300, 'a')).size(), 2u + 125u);
  // Two-byte characters: the cut falls before the one that would not fit whole.
  std::string accents;
  for (int i = 0; i < 70; ++i) accents += "\xc3\xa9";  // 140 bytes of "é"
  const std::string cut = EncodeClose(1000, accents);
  EXPECT_EQ(cut.size(), 2u + 2u + 122u);  // 61 characters: 123 would end inside the 62nd
  EXPECT_TRUE(IsValidUtf8(std::string_view(cut).substr(4)));
}

// ----- §4.2.1 handshake -------------------------------------------------------------------------

TEST(WsCodecTest, ClientKeyMustBeBase64OfSixteenBytes_Rfc6455Section4_2_1) {
  EXPECT_TRUE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZQ=="));  // the RFC's example
  EXPECT_TRUE(IsValidClientKey("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(IsValidClientKey("/+/+/+/+/+/+/+/+/+/+/w=="));
  EXPECT_FALSE(IsValidClientKey(""));
  EXPECT_FALSE(IsValidClientKey("abc"));
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25j"));          // 15 bytes
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZQ"));        // padding missing
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZSE="));      // 17 bytes
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZR=="));      // stray bits: not canonical
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZ!=="));      // not base64
  EXPECT_FALSE(IsValidClientKey("dGhlIHNhbXBsZSBub25jZQ==AAAA"));  // 19 bytes
}

}  // namespace
}  // namespace presenced::net::ws
