// Fuzzes the `/presence` chat command parser (protocol::ParseCommand).
//
// Invariants: no crash or UB; an invalid command says why; what the parser returns is part of the
// input or its own text, so for valid UTF-8 input the channel, the status text and the problem
// are valid UTF-8 too (they end up in JSON replies); a parsed command has no surrounding blanks in
// its channel, and the text round-trips through the quoted form.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8.h"
#include "fuzz_check.h"
#include "protocol/commands.h"

namespace {

using presenced::IsValidUtf8;
using presenced::protocol::Command;
using presenced::protocol::CommandKind;
using presenced::protocol::ParseCommand;

// The quoted form of `text` that ParseCommand reads back as `text`.
std::string Quoted(std::string_view text) {
  std::string out = "/presence status \"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const Command c = ParseCommand(line);
  const bool utf8 = IsValidUtf8(line);
  switch (c.kind) {
    case CommandKind::kInvalid:
      FUZZ_CHECK(!c.problem.empty());
      if (utf8) FUZZ_CHECK(IsValidUtf8(c.problem));
      break;
    case CommandKind::kWho:
      if (c.channel) {
        FUZZ_CHECK(!c.channel->empty());
        FUZZ_CHECK(line.find(*c.channel) != std::string_view::npos);
        if (utf8) FUZZ_CHECK(IsValidUtf8(*c.channel));
      }
      break;
    case CommandKind::kSetText:
      if (c.text) {
        FUZZ_CHECK(!c.text->empty());
        if (utf8) FUZZ_CHECK(IsValidUtf8(*c.text));
        const Command again = ParseCommand(Quoted(*c.text));
        FUZZ_CHECK(again.kind == CommandKind::kSetText);
        FUZZ_CHECK(again.text == c.text);
      }
      break;
    case CommandKind::kDevice:
      if (c.connection_id) {
        FUZZ_CHECK(!c.connection_id->empty());
        FUZZ_CHECK(line.find(*c.connection_id) != std::string_view::npos);
        if (utf8) FUZZ_CHECK(IsValidUtf8(*c.connection_id));
      }
      break;
    case CommandKind::kSelf:
    case CommandKind::kActivity:
    case CommandKind::kSetStatus:
    case CommandKind::kDevices:
    case CommandKind::kSync:
    case CommandKind::kHelp:
      break;
  }
  return 0;
}
