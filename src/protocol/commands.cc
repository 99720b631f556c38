// The `/presence` command parser (commands.h); pure.
#include "protocol/commands.h"

#include <cctype>

namespace presenced::protocol {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The next whitespace-separated word of `rest` (consumed).
std::string_view NextWord(std::string_view& rest) {
  rest = Trim(rest);
  size_t end = 0;
  while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) ++end;
  std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

// Chat apps turn "..." into typographic quotes; both are accepted.
constexpr std::string_view kOpenCurly = "\xe2\x80\x9c";   // “
constexpr std::string_view kCloseCurly = "\xe2\x80\x9d";  // ”

// Parses the status text: a quoted string (with \" and \\ escapes) or the rest of the line as
// typed. Returns false with `problem` set when a quote is not closed or text follows it.
bool ParseText(std::string_view rest, std::optional<std::string>& text, std::string& problem) {
  rest = Trim(rest);
  std::string_view close;
  if (rest.starts_with('"')) {
    rest.remove_prefix(1);
    close = "\"";
  } else if (rest.starts_with(kOpenCurly)) {
    rest.remove_prefix(kOpenCurly.size());
    close = kCloseCurly;
  } else {
    if (rest.empty() || Lower(rest) == "clear") {
      text = std::nullopt;
    } else {
      text = std::string(rest);
    }
    return true;
  }
  std::string out;
  size_t i = 0;
  for (; i < rest.size(); ++i) {
    if (rest.substr(i).starts_with(close)) break;
    if (close == "\"" && rest[i] == '\\' && i + 1 < rest.size()) {
      out += rest[++i];
      continue;
    }
    out += rest[i];
  }
  if (i >= rest.size()) {
    problem = "the status text has no closing quote";
    return false;
  }
  if (!Trim(rest.substr(i + close.size())).empty()) {
    problem = "unexpected text after the closing quote";
    return false;
  }
  if (out.empty()) {
    text = std::nullopt;  // "" clears, like `clear`
  } else {
    text = std::move(out);
  }
  return true;
}

Command Invalid(std::string problem) {
  Command c;
  c.kind = CommandKind::kInvalid;
  c.problem = std::move(problem);
  return c;
}

}  // namespace

Command ParseCommand(std::string_view line) {
  std::string_view rest = Trim(line);
  const std::string_view head = NextWord(rest);
  if (Lower(head) != "/presence") {
    if (head.empty()) return Invalid("the command is empty");
    return Invalid("\"" + std::string(head) + "\" is not a presence command");
  }
  const std::string word = Lower(NextWord(rest));
  Command c;
  auto no_more = [&](CommandKind kind) {
    if (!Trim(rest).empty()) {
      return Invalid("/presence " + word + " takes no arguments");
    }
    Command done;
    done.kind = kind;
    return done;
  };
  if (word.empty()) return no_more(CommandKind::kSelf);
  if (word == "who") {
    const std::string_view channel = NextWord(rest);
    if (!Trim(rest).empty()) return Invalid("/presence who takes at most one channel");
    c.kind = CommandKind::kWho;
    if (!channel.empty()) c.channel = std::string(channel);
    return c;
  }
  if (word == "activity") return no_more(CommandKind::kActivity);
  if (word == "devices") return no_more(CommandKind::kDevices);
  if (word == "device") {
    const std::string status = Lower(NextWord(rest));
    auto parsed = engine::ParsePresence(status);
    if (!parsed) {
      return Invalid("/presence device takes online, away, dnd or offline, then a connectionId");
    }
    const std::string_view connection = NextWord(rest);
    if (!Trim(rest).empty()) return Invalid("/presence device takes a status and a connectionId");
    c.kind = CommandKind::kDevice;
    c.status = *parsed;
    if (!connection.empty()) c.connection_id = std::string(connection);
    return c;
  }
  if (word == "sync") return no_more(CommandKind::kSync);
  if (word == "help") return no_more(CommandKind::kHelp);
  if (auto status = engine::ParsePresence(word)) {
    c = no_more(CommandKind::kSetStatus);
    c.status = *status;
    return c;
  }
  if (word == "status") {
    c.kind = CommandKind::kSetText;
    if (!ParseText(rest, c.text, c.problem)) return Invalid(c.problem);
    return c;
  }
  return Invalid("unknown command /presence " + word);
}

const std::vector<CommandHelp>& CommandHelpList() {
  static const std::vector<CommandHelp> kList = {
      {"/presence", "your status, text, active device and last seen"},
      {"/presence who [channel]", "who is online (in a channel)"},
      {"/presence activity", "your recent activity"},
      {"/presence online|away|dnd|offline",
       "set your status (online = automatic; offline = appear offline)"},
      {"/presence status \"text\"", "set your status text (/presence status clear removes it)"},
      {"/presence devices", "your devices and which one is active"},
      {"/presence device online|away|dnd|offline [connectionId]",
       "set this device's own status (or that device's; online = automatic)"},
      {"/presence sync", "push your status to all your devices and report which hold it"},
      {"/presence help", "this list"},
  };
  return kList;
}

std::string HelpText() {
  std::string out = "Presence commands:";
  for (const CommandHelp& h : CommandHelpList()) {
    out += "\n  ";
    out += h.usage;
    out += " - ";
    out += h.description;
  }
  return out;
}

}  // namespace presenced::protocol
