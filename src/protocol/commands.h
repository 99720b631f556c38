// Chat commands: `/presence ...` lines a chat product or bot passes through as typed. The parser
// is pure (text in, Command out); the Dispatcher runs a Command for the calling user and replies
// with short human-readable text plus structured data.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/types.h"

namespace presenced::protocol {

enum class CommandKind {
  kSelf,       // /presence
  kWho,        // /presence who [channel]
  kActivity,   // /presence activity
  kSetStatus,  // /presence online|away|dnd|offline
  kSetText,    // /presence status "text" | /presence status clear
  kDevices,    // /presence devices
  kDevice,     // /presence device online|away|dnd|offline [connectionId]
  kSync,       // /presence sync
  kHelp,       // /presence help
  kInvalid,    // anything else: `problem` says what, the reply carries the help
};

struct Command {
  CommandKind kind = CommandKind::kInvalid;
  std::optional<std::string> channel;        // kWho
  engine::Presence status{};                 // kSetStatus, kDevice
  std::optional<std::string> connection_id;  // kDevice: absent = the calling connection
  std::optional<std::string> text;           // kSetText: nullopt clears
  std::string problem;                       // kInvalid
};

Command ParseCommand(std::string_view line);

struct CommandHelp {
  std::string_view usage;
  std::string_view description;
};
const std::vector<CommandHelp>& CommandHelpList();
// The help as text, one command per line.
std::string HelpText();

}  // namespace presenced::protocol
