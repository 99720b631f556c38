// Fuzzes the WebSocket frame reader (net::ws::MessageReader) the way a session drives it: bytes
// arrive in reads of arbitrary sizes, each read is appended to what is left of an incomplete frame,
// and Next is called until it needs more or fails.
//
// Input: byte 0 picks the message size limit, byte 1 the number of split points (0..8), then two
// bytes per split point (offsets into the stream), then the stream itself.
//
// Invariants checked:
//   - `consumed` never exceeds the bytes given;
//   - every message makes progress (consumed > 0), so a read loop cannot spin;
//   - data messages fit the limit, control frames are at most 125 bytes, no continuation opcode
//     is ever delivered; text messages and close reasons are valid UTF-8, close codes ones a peer
//     may send (RFC 6455 §7.4);
//   - the payload is consumed as it arrives: the caller never keeps more than a frame header;
//   - the outcome does not depend on how the stream was split: the messages (and the error, if
//     any) are the same as when the whole stream is fed in one read.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/utf8.h"
#include "fuzz_check.h"
#include "net/ws_codec.h"

namespace {

using presenced::net::ws::Message;
using presenced::net::ws::MessageReader;
using presenced::net::ws::Opcode;

struct Outcome {
  std::vector<Message> messages;
  bool failed = false;
  uint16_t close_code = 0;
};

bool IsControl(Opcode op) { return static_cast<uint8_t>(op) & 0x8; }

// Feeds `stream` in the reads delimited by `cuts` (sorted offsets), as net::WebSocketSession does.
Outcome Feed(std::string_view stream, const std::vector<size_t>& cuts, size_t limit) {
  Outcome outcome;
  MessageReader reader(limit);
  std::string pending;  // the bytes of an incomplete frame (Session::inbuf_)
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size() && !outcome.failed; ++i) {
    const size_t to = i < cuts.size() ? cuts[i] : stream.size();
    pending.append(stream.substr(from, to - from));
    from = to;
    size_t offset = 0;
    // Each iteration either fails, needs more, or delivers a message that consumed at least one
    // byte, so more iterations than bytes would be a loop without progress.
    for (size_t rounds = 0;; ++rounds) {
      FUZZ_CHECK(rounds <= pending.size() + 1);
      Message m;
      size_t used = 0;
      const std::string_view input = std::string_view(pending).substr(offset);
      const MessageReader::Result r = reader.Next(input, m, used);
      FUZZ_CHECK(used <= input.size());
      offset += used;
      if (r == MessageReader::Result::kNeedMore) {
        // Payload is consumed as it arrives: what is left is part of a frame header.
        FUZZ_CHECK(pending.size() - offset < 14);
        break;
      }
      if (r == MessageReader::Result::kError) {
        FUZZ_CHECK(reader.close_code() >= 1000 && reader.close_code() < 5000);
        FUZZ_CHECK(!reader.error().empty());
        outcome.failed = true;
        outcome.close_code = reader.close_code();
        break;
      }
      FUZZ_CHECK(used > 0);
      FUZZ_CHECK(m.opcode != Opcode::kContinuation);
      if (IsControl(m.opcode)) {
        FUZZ_CHECK(m.opcode == Opcode::kClose || m.opcode == Opcode::kPing ||
                   m.opcode == Opcode::kPong);
        FUZZ_CHECK(m.payload.size() <= 125);
        if (m.opcode == Opcode::kClose) {
          FUZZ_CHECK(m.close_code == presenced::net::ws::kCloseNoStatus ||
                     presenced::net::ws::IsValidCloseCode(m.close_code));
          FUZZ_CHECK(presenced::IsValidUtf8(m.payload));  // the reason
        }
      } else {
        FUZZ_CHECK(m.opcode == Opcode::kText || m.opcode == Opcode::kBinary);
        FUZZ_CHECK(m.payload.size() <= limit);
        if (m.opcode == Opcode::kText) FUZZ_CHECK(presenced::IsValidUtf8(m.payload));
      }
      outcome.messages.push_back(std::move(m));
    }
    pending.erase(0, offset);
  }
  return outcome;
}

constexpr size_t kLimits[] = {0, 1, 2, 125, 126, 127, 128, 1000, 4096, 65535, 65536, 1 << 20};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t limit = kLimits[data[0] % (sizeof kLimits / sizeof kLimits[0])];
  const size_t splits = data[1] % 9;
  size_t header = 2 + 2 * splits;
  if (size < header) return 0;
  const std::string_view stream(reinterpret_cast<const char*>(data) + header, size - header);
  std::vector<size_t> cuts;
  for (size_t i = 0; i < splits; ++i) {
    const size_t raw = static_cast<size_t>(data[2 + 2 * i]) << 8 | data[3 + 2 * i];
    cuts.push_back(stream.empty() ? 0 : raw % (stream.size() + 1));
  }
  std::sort(cuts.begin(), cuts.end());

  const Outcome split = Feed(stream, cuts, limit);
  const Outcome whole = Feed(stream, {}, limit);
  FUZZ_CHECK(split.failed == whole.failed);
  FUZZ_CHECK(split.close_code == whole.close_code);
  FUZZ_CHECK(split.messages.size() == whole.messages.size());
  for (size_t i = 0; i < split.messages.size(); ++i) {
    FUZZ_CHECK(split.messages[i].opcode == whole.messages[i].opcode);
    FUZZ_CHECK(split.messages[i].payload == whole.messages[i].payload);
  }
  return 0;
}
